"""A tenant's life after the first model: the served version, job kinds, error codes, keys.

`tasks.serving_version` is the version /predict serves (promotion moves it); existing tasks
serve their newest, as before. `tasks.prediction_key` signs the task's prediction ids.
`jobs.kind` tells a retrain from the first training, `jobs.promote` is a retrain's policy and
`jobs.error_code` says why a job failed.

Revision ID: 0002
Revises: 0001
"""

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("serving_version", sa.Integer(), nullable=True))
    op.add_column(
        "tasks",
        sa.Column("prediction_key", sa.String(length=64), nullable=False, server_default=""),
    )
    op.add_column(
        "jobs", sa.Column("kind", sa.String(length=20), nullable=False, server_default="create")
    )
    op.add_column("jobs", sa.Column("promote", sa.String(length=20), nullable=True))
    op.add_column("jobs", sa.Column("error_code", sa.String(length=40), nullable=True))
    tasks = sa.table(
        "tasks",
        sa.column("id", sa.String),
        sa.column("serving_version", sa.Integer),
        sa.column("prediction_key", sa.String),
    )
    versions = sa.table("adapter_versions", sa.column("task_id", sa.String), sa.column("version"))
    newest = (
        sa.select(sa.func.max(versions.c.version))
        .where(versions.c.task_id == tasks.c.id)
        .scalar_subquery()
    )
    connection = op.get_bind()
    connection.execute(sa.update(tasks).values(serving_version=newest))
    for (task_id,) in connection.execute(sa.select(tasks.c.id)).all():
        connection.execute(
            sa.update(tasks)
            .where(tasks.c.id == task_id)
            .values(prediction_key=secrets.token_hex(32))
        )


def downgrade() -> None:
    op.drop_column("jobs", "error_code")
    op.drop_column("jobs", "promote")
    op.drop_column("jobs", "kind")
    op.drop_column("tasks", "prediction_key")
    op.drop_column("tasks", "serving_version")
