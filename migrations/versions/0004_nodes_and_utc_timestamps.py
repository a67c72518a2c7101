"""Several nodes on one database: the node of each job, daemon state per node, and moments
stored with their time zone on PostgreSQL

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

``daemon_state`` held one row per key, which nodes sharing a database would overwrite: it is
keyed by (node, key) now.  Its rows are a running daemon's heartbeat and plan, rewritten within
seconds, so the table is recreated empty.  On PostgreSQL every timestamp column becomes
``timestamp with time zone`` (the values were naive UTC); SQLite stores text either way.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

MOMENTS = {
    "jobs": (
        "created_at",
        "updated_at",
        "started_at",
        "finished_at",
        "run_after",
        "lease_expires_at",
    ),
    "step_results": ("created_at",),
}


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("node", sa.String(64), nullable=True))
    op.drop_table("daemon_state")
    op.create_table(
        "daemon_state",
        sa.Column("node", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        _moments("timestamp with time zone", "AT TIME ZONE 'UTC'")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _moments("timestamp without time zone", "AT TIME ZONE 'UTC'")
    op.drop_table("daemon_state")
    op.create_table(
        "daemon_state",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("node")


def _moments(to_type: str, conversion: str) -> None:
    for table, columns in MOMENTS.items():
        for column in columns:
            op.execute(
                sa.text(
                    f"ALTER TABLE {table} ALTER COLUMN {column} TYPE {to_type} "
                    f"USING {column} {conversion}"
                )
            )
