"""Image status of an inspection: NULL when its image and mask are on disk as its paths say (or
none was kept), "missing" when the image was to be kept but could not be written (a full disk, a
crash between the row's commit and the PNG), "removed" when the retention policy deleted it. The
row itself is never deleted.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("inspections", sa.Column("image_status", sa.String(20), nullable=True))  # no table copy


def downgrade() -> None:
    with op.batch_alter_table("inspections") as batch:
        batch.drop_column("image_status")
