"""an event points at the trace entry it reports (seq) instead of carrying a copy of it

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 21:00:00

Events written before this revision keep their full payload and no seq: the notifiers
still read them as they were written.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.add_column(sa.Column('seq', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.drop_column('seq')
