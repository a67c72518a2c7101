"""Announcing a job's end: hook commands and the webhook, delivered from an outbox table

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

``jobs.runs`` counts a job's attempts over its whole life (``attempts`` starts again at a
requeue), so that (job, run) names one end of a job for ever: the idempotency key of its
announcements.  ``deliveries`` holds each announcement, written in the same transaction as the
job's final state, until it is delivered or given up.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    timezone = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("runs", sa.Integer(), nullable=False, server_default="0"))
    op.execute(sa.text("UPDATE jobs SET runs = attempts"))
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "job_id", sa.Integer(), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("run", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "delivered",
                "failed",
                name="delivery_status",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("next_at", sa.DateTime(timezone=timezone), nullable=False),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("lease_owner", sa.String(128), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=timezone), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=timezone), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=timezone), nullable=False),
        sa.UniqueConstraint("job_id", "run", "kind", name="uq_deliveries_job_run_kind"),
    )
    op.create_index("ix_deliveries_due", "deliveries", ["status", "next_at"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_due", table_name="deliveries")
    op.drop_table("deliveries")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("runs")
