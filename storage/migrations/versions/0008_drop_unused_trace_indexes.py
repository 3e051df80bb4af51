"""trace_entry: drop two indexes no query uses

`ix_trace_kind_created` served `stats` when it counted trace entries; since 0003 it reads
gates and decisions. `ix_trace_run` served the one lookup of a run's entries by run id,
which now goes by the run's chain (`uq_trace_chain_seq`). Together they were about 650
bytes of every run's 8 KB, and two more B-tree inserts for every trace entry.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-21 18:20:00
"""
from collections.abc import Sequence

from alembic import op


revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('trace_entry', schema=None) as batch_op:
        batch_op.drop_index('ix_trace_kind_created')
        batch_op.drop_index('ix_trace_run')


def downgrade() -> None:
    with op.batch_alter_table('trace_entry', schema=None) as batch_op:
        batch_op.create_index('ix_trace_run', ['run_id', 'seq'], unique=False)
        batch_op.create_index('ix_trace_kind_created', ['kind', 'created_at'], unique=False)
