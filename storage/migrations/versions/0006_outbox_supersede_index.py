"""outbox: an index for "is a newer call of this key waiting?"

The outbox sender asks it before every call that a newer one may replace (home tabs, gate
message updates). Without the index SQLite answered it by walking every open row after this
one: with a backlog of a few thousand calls, most of the sender's time.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21 12:40:00
"""
from collections.abc import Sequence

from alembic import op


revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('slack_outbox', schema=None) as batch_op:
        batch_op.create_index('ix_slack_outbox_supersede', ['supersede', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('slack_outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_slack_outbox_supersede')
