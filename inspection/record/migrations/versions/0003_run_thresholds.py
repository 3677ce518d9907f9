"""Runs record the thresholds in force (the model's, or a recipe's override), for shift reports.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("ok_below", sa.Float, nullable=True))
    op.add_column("runs", sa.Column("ng_at", sa.Float, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("ng_at")
        batch.drop_column("ok_below")
