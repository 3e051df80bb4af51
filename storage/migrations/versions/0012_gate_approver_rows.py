"""who may decide each open gate, as rows (gate_approver) the database keeps with the gate, so
a person's waiting gates are an index lookup instead of a look into every open gate's list

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 02:10:00

Triggers on `gate` rewrite a gate's rows whenever a row is inserted or its `approvers` or
`status` written, whoever writes it; the gates open when this runs get their rows here.
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite: one trigger per kind of write; an UPDATE that sets neither column fires neither.
SQLITE = [
    """CREATE TRIGGER gate_approver_on_insert AFTER INSERT ON gate WHEN NEW.status = 'open'
    BEGIN
        INSERT OR IGNORE INTO gate_approver (principal, gate_id)
        SELECT value, NEW.id FROM json_each(NEW.approvers);
    END""",
    """CREATE TRIGGER gate_approver_on_update AFTER UPDATE OF status, approvers ON gate
    BEGIN
        DELETE FROM gate_approver WHERE gate_id = OLD.id;
        INSERT OR IGNORE INTO gate_approver (principal, gate_id)
        SELECT value, NEW.id FROM json_each(NEW.approvers) WHERE NEW.status = 'open';
    END""",
    """INSERT OR IGNORE INTO gate_approver (principal, gate_id)
    SELECT approver.value, gate.id FROM gate, json_each(gate.approvers) AS approver
    WHERE gate.status = 'open'""",
]
POSTGRESQL = [
    """CREATE FUNCTION baton_gate_approver_rows() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'UPDATE' THEN
            DELETE FROM gate_approver WHERE gate_id = OLD.id;
        END IF;
        IF NEW.status = 'open' THEN
            INSERT INTO gate_approver (principal, gate_id)
            SELECT DISTINCT approver, NEW.id FROM json_array_elements_text(NEW.approvers) AS approver
            ON CONFLICT DO NOTHING;
        END IF;
        RETURN NULL;
    END $$""",
    """CREATE TRIGGER gate_approver_rows AFTER INSERT OR UPDATE OF status, approvers ON gate
    FOR EACH ROW EXECUTE FUNCTION baton_gate_approver_rows()""",
    """INSERT INTO gate_approver (principal, gate_id)
    SELECT DISTINCT approver, gate.id
    FROM gate CROSS JOIN LATERAL json_array_elements_text(gate.approvers) AS approver
    WHERE gate.status = 'open'""",
]


def upgrade() -> None:
    op.create_table(
        'gate_approver',
        sa.Column('principal', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column('gate_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['gate_id'], ['gate.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('principal', 'gate_id'),
        sqlite_with_rowid=False,
    )
    # what the triggers delete by: without it each gate's UPDATE scanned every open gate's rows
    op.create_index('ix_gate_approver_gate', 'gate_approver', ['gate_id'])
    for statement in (POSTGRESQL if op.get_bind().dialect.name == 'postgresql' else SQLITE):
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('DROP TRIGGER gate_approver_rows ON gate')
        op.execute('DROP FUNCTION baton_gate_approver_rows()')
    else:
        op.execute('DROP TRIGGER gate_approver_on_insert')
        op.execute('DROP TRIGGER gate_approver_on_update')
    op.drop_table('gate_approver')
