"""outbox: indexes on `ref` (the key a sent message is remembered under) and `run_id`

`ref` is looked up when a message refers to another one not sent yet, when a reply must go
out only once and when a run's card is updated; a gate's DM copies are found among its
run's rows on every decision. Without the indexes each of these read the whole outbox,
which keeps every call made: on a year of runs, hundreds of thousands of rows.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-21 18:10:00
"""
from collections.abc import Sequence

from alembic import op


revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('slack_outbox', schema=None) as batch_op:
        batch_op.create_index('ix_slack_outbox_ref', ['ref'], unique=False)
        batch_op.create_index('ix_slack_outbox_run_id', ['run_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('slack_outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_slack_outbox_run_id')
        batch_op.drop_index('ix_slack_outbox_ref')
