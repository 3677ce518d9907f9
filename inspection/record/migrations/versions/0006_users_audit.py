"""Users and the audit trail: `users` (name, role, scrypt password hash, active) and `audit_log`,
an append-only table of every change that touches quality, each entry chained to the one before by
a hash. Triggers refuse UPDATE and DELETE on `audit_log` (defence in depth: the hash chain is what
detects an edit made around them); on PostgreSQL through a plpgsql function that raises.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("who", sa.String(64), nullable=False),
        sa.Column("action", sa.String(50), nullable=False),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("detail_json", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute(
            "CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$"
        )
    for when in ("UPDATE", "DELETE"):
        body = (
            "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()"
            if postgres
            else "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
        )
        op.execute(f"CREATE TRIGGER audit_log_no_{when.lower()} BEFORE {when} ON audit_log {body}")


def downgrade() -> None:
    on = " ON audit_log" if op.get_bind().dialect.name == "postgresql" else ""
    op.execute(f"DROP TRIGGER IF EXISTS audit_log_no_delete{on}")
    op.execute(f"DROP TRIGGER IF EXISTS audit_log_no_update{on}")
    if on:
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
    op.drop_table("audit_log")
    op.drop_table("users")
