"""trace_entry: drop `prev_hash`, the hash of the entry before it, stored a second time

An entry's hash still covers the previous entry's hash; verification and the export take
it from entry `seq - 1` of the chain. 64 characters of every trace entry: 620 bytes of a
finished run's 7.5 KB in the benchmark.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-21 18:40:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('trace_entry', schema=None) as batch_op:
        batch_op.drop_column('prev_hash')


def downgrade() -> None:
    with op.batch_alter_table('trace_entry', schema=None) as batch_op:
        batch_op.add_column(sa.Column('prev_hash', sa.String(), nullable=False, server_default=''))
    op.execute("UPDATE trace_entry SET prev_hash = COALESCE((SELECT p.hash FROM trace_entry p "
               "WHERE p.chain = trace_entry.chain AND p.seq = trace_entry.seq - 1), '')")
