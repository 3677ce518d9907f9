"""Recipes are versioned: `recipe_versions` keeps each distinct content of a recipe (by name) with
its version number (1, 2, ... in the order first used) and the content itself; every inspection
and run keeps the version in force (`recipe_version`, NULL in rows written before this revision).
Inspections keep the lot they belong to (`lot_id`, from the PLC or the operator; NULL: none).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "recipe_versions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("content_json", sa.Text, nullable=False),
        sa.Column("first_used_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("name", "sha256", name="uq_recipe_versions_name_sha256"),
        sa.UniqueConstraint("name", "version", name="uq_recipe_versions_name_version"),
    )
    op.add_column("inspections", sa.Column("recipe_version", sa.Integer, nullable=True))
    op.add_column("inspections", sa.Column("lot_id", sa.String(100), nullable=True))
    op.add_column("runs", sa.Column("recipe_version", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("recipe_version")
    with op.batch_alter_table("inspections") as batch:
        batch.drop_column("lot_id")
        batch.drop_column("recipe_version")
    op.drop_table("recipe_versions")
