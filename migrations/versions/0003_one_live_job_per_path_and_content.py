"""One live job per (path, content): a partial unique index; superseded and cancelled states

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

Two intakes that saw the same file at once could enqueue it twice; the index makes a second
insert a no-op.  Rows that already break it (from that race) are closed as superseded first,
keeping the oldest of each (path, content).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

WHERE = "status != 'superseded' AND sha256 != ''"


def upgrade() -> None:
    op.execute(
        sa.text(
            "UPDATE jobs SET status = 'superseded', finished_at = updated_at, "
            "error = 'a second job of the same file (enqueued twice)' "
            f"WHERE {WHERE} AND EXISTS ("
            "  SELECT 1 FROM jobs AS older WHERE older.path = jobs.path"
            "  AND older.sha256 = jobs.sha256 AND older.id < jobs.id"
            "  AND older.status != 'superseded')"
        )
    )
    op.create_index(
        "uq_jobs_path_content",
        "jobs",
        ["path", "sha256"],
        unique=True,
        sqlite_where=sa.text(WHERE),
        postgresql_where=sa.text(WHERE),
    )


def downgrade() -> None:
    op.drop_index("uq_jobs_path_content", table_name="jobs")
