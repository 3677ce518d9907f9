"""Runs record the frames they never inspected: dropped (a full queue, frames the camera skipped)
and failed grabs, so that shift counters rebuilt from the record include them. A faulted run's
end becomes a warning (alarms are the alarm monitor's rows).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("dropped_frames", sa.Integer, nullable=True))
    op.add_column("runs", sa.Column("failed_grabs", sa.Integer, nullable=True))
    # A faulted run's end was logged as an alarm; alarms are now the AlarmMonitor's (acknowledgeable)
    # rows, and a run's end is a warning.
    op.execute("UPDATE events SET level = 'warning' WHERE level = 'alarm' AND kind = 'run'")


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("failed_grabs")
        batch.drop_column("dropped_frames")
