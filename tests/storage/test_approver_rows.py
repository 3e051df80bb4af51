"""Who may decide each open gate, as rows the database keeps (`gate_approver`, migration 0012).

A person's App Home and `/baton pending` find their gates through these rows. The rows
must follow every write of a gate's approvers or status, by the engine or by hand, and
they must hold after the upgrade of a database that already had open gates. Each check
compares what the read shows with what the engine's policy says (`Engine.pending_for`,
which reads every open gate and applies `gates.deciders.eligible` in Python).
"""

from datetime import timedelta

import sqlalchemy as sa

from orchestrator.clock import FakeClock
from orchestrator.engine import Engine
from storage import migrate, reads
from storage.gates import APPROVERS

PEOPLE = ("alice", "bob", "carol", "dave", "erin", "frank", "henry", "zoe")


def approver_rows(engine: Engine) -> set[tuple[str, int]]:
    with engine.db.read() as s:
        return {(p, g) for p, g in s.execute(sa.select(APPROVERS.c.principal, APPROVERS.c.gate_id))}


def assert_reads_follow_policy(engine: Engine) -> None:
    """The rows are the open gates' approvers, and everyone's pending gates and home list
    exactly the gates the policy lets them decide."""
    assert approver_rows(engine) == {(p, g.id) for g in engine.open_gates() for p in g.approvers}
    with engine.db.read() as s:
        for person in PEOPLE:
            theirs = [g.id for g in engine.pending_for(person)]
            assert reads.pending_gate_ids(s, person) == theirs, person
            home = reads.home(s, person, gates=2, runs=5)
            assert ([g.id for g in home.gates], home.waiting) == (theirs[:2], len(theirs)), person


def test_a_persons_gates_follow_every_change_the_engine_makes(
        test_engine: Engine, clock: FakeClock) -> None:
    escalating = [test_engine.start_run("escalating", {}, "alice") for _ in range(3)]
    four_eyes = test_engine.start_run("two-approvals", {"amount": 100}, "bob")
    assert_reads_follow_policy(test_engine)
    assert {p for p, _ in approver_rows(test_engine)} == {"bob", "carol", "dave"}

    test_engine.reassign(escalating[0].ref, "bob", "henry")  # approvers grow
    assert_reads_follow_policy(test_engine)
    test_engine.claim(escalating[1].ref, "carol")  # neither approvers nor status: rows stay
    assert_reads_follow_policy(test_engine)

    clock.advance(timedelta(minutes=31))  # escalating gates reach level 2: dave may decide
    test_engine.fire_due_timers()
    assert_reads_follow_policy(test_engine)
    assert ("dave", test_engine.open_gates(escalating[2].id)[0].id) in approver_rows(test_engine)

    test_engine.decide(four_eyes.ref, "carol", "approve")  # one of two: still open
    assert_reads_follow_policy(test_engine)
    test_engine.decide(four_eyes.ref, "dave", "approve")  # decided: its rows go
    test_engine.decide(escalating[0].ref, "henry", "approve")
    test_engine.stop(escalating[1].ref, "alice", "not needed")  # cancelled: its rows go
    assert_reads_follow_policy(test_engine)
    assert {g for _, g in approver_rows(test_engine)} == {test_engine.open_gates()[0].id}

    clock.advance(timedelta(hours=8))  # the last one fails closed, decided by Baton
    while test_engine.fire_due_timers():
        clock.advance(timedelta(hours=3))
    assert test_engine.get_run(escalating[2].ref).status == "rejected"
    assert approver_rows(test_engine) == set()
    assert_reads_follow_policy(test_engine)


def test_the_rows_follow_a_gate_edited_by_hand(test_engine: Engine) -> None:
    """An operator's UPDATE of the gate table is followed too: the database keeps the rows."""
    run = test_engine.start_run("escalating", {}, "alice")
    (gate,) = test_engine.open_gates(run.id)

    def update(sql: str) -> None:
        with test_engine.db.engine.begin() as conn:
            conn.execute(sa.text(sql), {"gate": gate.id})

    update("""UPDATE gate SET approvers = '["zoe", "erin", "zoe"]' WHERE id = :gate""")
    assert approver_rows(test_engine) == {("zoe", gate.id), ("erin", gate.id)}
    update("UPDATE gate SET title = 'renamed', version = version + 1 WHERE id = :gate")
    assert approver_rows(test_engine) == {("zoe", gate.id), ("erin", gate.id)}
    assert_reads_follow_policy(test_engine)
    update("UPDATE gate SET status = 'decided' WHERE id = :gate")
    assert approver_rows(test_engine) == set()
    update("UPDATE gate SET status = 'open' WHERE id = :gate")
    assert approver_rows(test_engine) == {("zoe", gate.id), ("erin", gate.id)}
    assert_reads_follow_policy(test_engine)


def test_upgrading_a_database_with_open_gates_gives_them_their_rows(test_engine: Engine) -> None:
    """A database of the version before 0012, with gates open and closed: after the upgrade
    the open gates have their rows, the closed ones none, and the homes show the same."""
    from alembic import command

    open_run = test_engine.start_run("two-approvals", {"amount": 5}, "bob")
    decided = test_engine.start_run("escalating", {}, "alice")
    test_engine.decide(decided.ref, "carol", "approve")
    db = test_engine.db
    db.engine.dispose()
    cfg = migrate._config(db)
    with db.engine.execution_options(baton_write=True).connect() as conn, conn.begin():
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0011")
        assert not sa.inspect(conn).has_table("gate_approver")
        # what the version before wrote after its last start: another gate, opened
        conn.execute(sa.text("UPDATE gate SET approvers = '[\"carol\", \"frank\"]' "
                             "WHERE run_id = :run"), {"run": open_run.id})

    assert migrate.upgrade(db) == migrate.HEAD
    (gate,) = test_engine.open_gates(open_run.id)
    assert approver_rows(test_engine) == {("carol", gate.id), ("frank", gate.id)}
    assert_reads_follow_policy(test_engine)
