"""Tasks record their tuner (`adapter`, `lora`, ...; list_core/tuners): `tasks.tuner`, with
`adapter` for every task created before tuners existed.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "tasks",
        sa.Column("tuner", sa.String(length=20), nullable=False, server_default="adapter"),
    )


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("tuner")
