"""Model promotions: an engineer's explicit choice of the model a recipe runs, one row per
promotion or rollback (who, when, which package, which model it replaced, the comparison it was
based on); a recipe's model is its latest row's. Also an index on the part score, which the review
view sorts by.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_promotions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("who", sa.String(200), nullable=False),
        sa.Column("recipe", sa.String(200), nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("model_version_id", sa.Integer, sa.ForeignKey("model_versions.id"), nullable=False),
        sa.Column(
            "package_path", sa.String(1000), nullable=False
        ),  # a file name in models/ of the data folder, or @recipe
        sa.Column("previous_model_version_id", sa.Integer, sa.ForeignKey("model_versions.id"), nullable=True),
        sa.Column("previous_path", sa.String(1000), nullable=True),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("evaluation_json", sa.Text, nullable=True),
    )
    op.create_index("ix_model_promotions_recipe", "model_promotions", ["recipe"])
    op.create_index("ix_inspections_score", "inspections", ["score"])


def downgrade() -> None:
    op.drop_index("ix_inspections_score", "inspections")
    op.drop_index("ix_model_promotions_recipe", "model_promotions")
    op.drop_table("model_promotions")
