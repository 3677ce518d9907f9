"""Stations with more than one camera: each camera's view of a part is an inspection row of its
own (its image, score and verdict); the views of one part share the run's `seq`, `view` says which
camera of the station took it (0 for the first, and for every row of a one-camera station), and
`part_verdict` is the part's verdict combining its views (the worst of them). NULL in rows written
before this revision, where the row's verdict is the part's.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("inspections", sa.Column("view", sa.Integer, nullable=False, server_default="0"))
    op.add_column("inspections", sa.Column("part_verdict", sa.String(10), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inspections") as batch:
        batch.drop_column("part_verdict")
        batch.drop_column("view")
