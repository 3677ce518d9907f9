"""The first tables: model versions, shifts, runs, inspections, events.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(100), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("thresholds_json", sa.Text, nullable=False),
        sa.Column("metadata_json", sa.Text, nullable=False),
        sa.Column("first_used_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "shifts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("start_at", sa.DateTime, nullable=False),
        sa.Column("end_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("start_at", "name", name="uq_shifts_start_name"),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("ended_at", sa.DateTime, nullable=True),
        sa.Column("line", sa.String(200), nullable=False),
        sa.Column("station", sa.String(200), nullable=False),
        sa.Column("camera_spec", sa.String(500), nullable=False),
        sa.Column("recipe", sa.String(200), nullable=False),
        sa.Column("model_version_id", sa.Integer, sa.ForeignKey("model_versions.id"), nullable=False),
        sa.Column("software_version", sa.String(50), nullable=False),
        sa.Column("end_state", sa.String(20), nullable=True),
        sa.Column("end_message", sa.Text, nullable=True),
    )
    op.create_table(
        "inspections",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("part_id", sa.String(64), nullable=False, unique=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("ts", sa.DateTime, nullable=False),
        sa.Column("shift_id", sa.Integer, sa.ForeignKey("shifts.id"), nullable=False),
        sa.Column("camera_id", sa.String(200), nullable=False),
        sa.Column("frame_id", sa.Integer, nullable=False),
        sa.Column("recipe", sa.String(200), nullable=False),
        sa.Column("model_version_id", sa.Integer, sa.ForeignKey("model_versions.id"), nullable=False),
        sa.Column("score", sa.Float, nullable=True),
        sa.Column("verdict", sa.String(10), nullable=False),
        sa.Column("classes_json", sa.Text, nullable=False),
        sa.Column("areas_json", sa.Text, nullable=False),
        sa.Column("image_path", sa.String(500), nullable=True),
        sa.Column("mask_path", sa.String(500), nullable=True),
        sa.Column("t_grab_ms", sa.Float, nullable=False),
        sa.Column("t_queue_ms", sa.Float, nullable=False),
        sa.Column("t_preprocess_ms", sa.Float, nullable=False),
        sa.Column("t_infer_ms", sa.Float, nullable=False),
        sa.Column("t_decide_ms", sa.Float, nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_index("ix_inspections_ts", "inspections", ["ts"])
    op.create_index("ix_inspections_shift", "inspections", ["shift_id"])
    op.create_index("ix_inspections_run", "inspections", ["run_id"])
    op.create_index("ix_inspections_verdict", "inspections", ["verdict"])
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("ts", sa.DateTime, nullable=False),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), nullable=True),
        sa.Column("level", sa.String(10), nullable=False),
        sa.Column("kind", sa.String(50), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("acknowledged_at", sa.DateTime, nullable=True),
    )
    op.create_index("ix_events_ts", "events", ["ts"])


def downgrade() -> None:
    op.drop_table("events")
    op.drop_table("inspections")
    op.drop_table("runs")
    op.drop_table("shifts")
    op.drop_table("model_versions")
