"""Enrolled voices: a name and a voice print (CAM++ centroid) with the weights that made it

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    timezone = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "voices",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("embedding", sa.JSON(), nullable=False),
        sa.Column("weights", sa.String(128), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=timezone), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=timezone), nullable=False),
        sa.UniqueConstraint("name", name="uq_voices_name"),
    )


def downgrade() -> None:
    op.drop_table("voices")
