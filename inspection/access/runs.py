"""A run's start as the record keeps it: the run's row and events (inspection.record.runs) and, by
the station, an audit entry for each change it brings, in one transaction."""

from __future__ import annotations

from inspection.access import audit
from inspection.record.runs import RunSpec, add_run
from inspection.record.store import Store


def start_run(store: Store, spec: RunSpec) -> int:
    """A new run; its id. What differs from the last run is logged, and in the audit trail by the
    station: a recipe changed (a changeover), and for the same recipe a model changed (a
    promotion, a rollback or `--model`) or, with the same model, thresholds changed (the recipe
    edited outside the program, or through `recipe_edit`, which audits who did it as well)."""
    with audit.session(store) as s:
        run = add_run(s, spec)
        for change in run.changes:
            audit.append(s, who=audit.STATION, action=change.action, target=change.target, detail=change.detail)
        return run.id
