"""Relabels: an engineer's later judgement of a part, one row per relabel, never an update of the
model's verdict in `inspections`; a part's current label is its latest relabel.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "relabels",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("inspection_id", sa.Integer, sa.ForeignKey("inspections.id"), nullable=False),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("who", sa.String(200), nullable=False),
        sa.Column("previous_verdict", sa.String(10), nullable=False),
        sa.Column("verdict", sa.String(10), nullable=False),
        sa.Column("classes_json", sa.Text, nullable=False),
        sa.Column("mask_path", sa.String(500), nullable=True),
        sa.Column("comment", sa.Text, nullable=False),
    )
    op.create_index("ix_relabels_inspection", "relabels", ["inspection_id"])


def downgrade() -> None:
    op.drop_index("ix_relabels_inspection", "relabels")
    op.drop_table("relabels")
