"""A plant database gathers the rows of many stations (inspection.forward): runs and events get a
key unique across stations (`uid`, uuid4 hex; rows written before this revision get one here),
relabels are unique on (part, time), and `forward_state` keeps, per server and table, how far the
station's rows have been forwarded.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    random_uid = (
        "md5(random()::text || clock_timestamp()::text)"
        if op.get_bind().dialect.name == "postgresql"
        else "lower(hex(randomblob(16)))"
    )
    for table in ("runs", "events"):
        op.add_column(table, sa.Column("uid", sa.String(32), nullable=True))  # (no table copy on SQLite)
        op.execute(f"UPDATE {table} SET uid = {random_uid} WHERE uid IS NULL")
        op.create_index(f"ix_{table}_uid", table, ["uid"], unique=True)
    op.create_index("ix_relabels_inspection_at", "relabels", ["inspection_id", "at"], unique=True)
    op.create_table(
        "forward_state",
        sa.Column("server", sa.String(500), primary_key=True),
        sa.Column("table_name", sa.String(50), primary_key=True),
        sa.Column("last_id", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("forward_state")
    op.drop_index("ix_relabels_inspection_at", "relabels")
    for table in ("events", "runs"):
        op.drop_index(f"ix_{table}_uid", table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("uid")
