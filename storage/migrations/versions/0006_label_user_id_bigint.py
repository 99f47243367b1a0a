"""label.user_id becomes BIGINT, like subscriber.user_id and every chat id

Revision ID: 0006
Revises: 0005

Why: Telegram user ids pass 2**31 (accounts made since about 2021 have ten-digit ids). On PostgreSQL an
INTEGER column refused such an admin's /label and such a subscriber's feedback button ("integer out of
range"), so the label was lost. SQLite stores any integer either way; the batch operation rebuilds the
table there so the declared type matches the model.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("label") as batch_op:
        batch_op.alter_column("user_id", existing_type=sa.Integer(), type_=sa.BigInteger(), existing_nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("label") as batch_op:
        batch_op.alter_column("user_id", existing_type=sa.BigInteger(), type_=sa.Integer(), existing_nullable=True)
