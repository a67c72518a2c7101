"""The HTTP face: API keys (hashed), done jobs' transcripts in the database, a job's origin

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    timezone = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("origin", sa.String(80), nullable=True))
    op.create_table(
        "transcripts",
        sa.Column(
            "job_id",
            sa.Integer(),
            sa.ForeignKey("jobs.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.Column("names", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=timezone), nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=timezone), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=timezone), nullable=True),
        sa.UniqueConstraint("name", name="uq_api_keys_name"),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_hash"),
    )


def downgrade() -> None:
    op.drop_table("api_keys")
    op.drop_table("transcripts")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("origin")
