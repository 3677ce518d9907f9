"""Engineering: what engineers do with the record - review queries (review.py), relabels with
their permission check and audit entry (relabel.py), dataset export, retraining candidates
(retraining.py), the model registry of promotions and rollbacks (model_registry.py), and
threshold changes to a recipe (recipe_edit.py).

May import runtime/, access/, record/, settings/ and the shared vocabulary, never plant/ or
reports/ (its siblings)."""
