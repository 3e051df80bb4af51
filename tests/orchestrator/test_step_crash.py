"""A step that crashes half way through a transaction it shares with other steps.

The inline engine (the CLI) advances a run in the transaction that made it runnable, with
no savepoint per step; when one of those later steps crashes, the whole transaction is
done again with each later step in a savepoint. What came before the crash must commit
(the run, its signals, a person's decision), the run must fail at the step that crashed,
and the trace must stay whole. The crash is a real one: the database refuses the step's
INSERT (a trigger), as a full disk or a broken constraint would.
"""

import io
from collections.abc import Callable, Iterator

import pytest
import structlog
from sqlmodel import select

from orchestrator.engine import Engine
from orchestrator.logs import configure_logging
from orchestrator.readers.export import verify_run
from storage.models import Action, Decision, Gate, Signal, TraceEntry


@pytest.fixture(autouse=True)
def logs() -> Iterator[io.StringIO]:
    """JSON logs, as `baton` writes them (structlog's default renders each traceback with
    its locals, which takes seconds)."""
    stream = io.StringIO()
    configure_logging("json", "info", stream=stream)
    yield stream
    structlog.reset_defaults()


def refuse_inserts(engine: Engine, table: str) -> None:
    with engine.db.engine.begin() as conn:
        if engine.db.is_postgresql:
            conn.exec_driver_sql(
                "CREATE FUNCTION baton_test_refuse() RETURNS trigger AS $$ BEGIN "
                f"RAISE EXCEPTION 'the database refuses {table} rows'; END $$ LANGUAGE plpgsql")
            conn.exec_driver_sql(f"CREATE TRIGGER refuse BEFORE INSERT ON {table} FOR EACH ROW "
                                 "EXECUTE FUNCTION baton_test_refuse()")
        else:
            conn.exec_driver_sql(f"CREATE TRIGGER refuse BEFORE INSERT ON {table} BEGIN "
                                 f"SELECT RAISE(ABORT, 'the database refuses {table} rows'); END")


def kinds(engine: Engine, ref: str) -> list[str]:
    with engine.db.read() as s:
        return [e.kind for e in s.exec(select(TraceEntry).where(TraceEntry.chain == ref)
                                       .order_by(TraceEntry.seq))]


def test_a_gate_that_cannot_be_stored_fails_the_run_and_its_signals_are_kept(
        engine: Engine, logs: io.StringIO) -> None:
    refuse_inserts(engine, "gate")
    run = engine.start_run("vendor-payment", {"vendor": "ACME", "amount": "20000"}, "alice")

    final = engine.get_run(run.ref)
    assert final.status == "failed"
    assert "internal error at step approve" in (final.reason or "")
    assert "refuses gate rows" in (final.reason or "")
    with engine.db.read() as s:
        agents = {x.agent for x in s.exec(select(Signal).where(Signal.run_id == run.id))}
        assert s.exec(select(Gate)).all() == []
    assert agents == {"research", "risk", "compliance"}
    trace = kinds(engine, run.ref)
    assert trace[0] == "run_started" and trace.count("signal") == 3
    assert trace[-1] == "run_finished"
    assert verify_run(engine.db, final) is None
    # the first try shared one transaction and rolled back whole; the second kept the signals
    assert '"event": "transaction_redone_isolated"' in logs.getvalue()


def test_an_action_that_cannot_be_stored_fails_the_run_after_the_decision_is_kept(
        engine: Engine, ledger: Callable) -> None:
    run = engine.start_run("vendor-payment", {"vendor": "ACME", "amount": "20000"}, "alice")
    assert engine.get_run(run.ref).status == "waiting"
    refuse_inserts(engine, "action")

    report = engine.decide(run.ref, "bob", "approve", reason="Invoice matches the PO")

    assert report.status == "recorded" and report.outcome == "approve"
    final = engine.get_run(run.ref)
    assert final.status == "failed" and "refuses action rows" in (final.reason or "")
    with engine.db.read() as s:
        decisions = s.exec(select(Decision).where(Decision.run_id == run.id)).all()
        assert s.exec(select(Action)).all() == []
    assert [(d.decider, d.option, d.reason) for d in decisions] == [
        ("bob", "approve", "Invoice matches the PO")]
    assert ledger() == []  # the payment never ran
    trace = kinds(engine, run.ref)
    assert trace.count("decision") == 1 and trace.count("gate_decided") == 1
    assert trace[-1] == "run_finished"
    assert verify_run(engine.db, final) is None


def test_a_run_whose_first_step_crashes_as_it_starts_is_kept_and_failed(
        test_engine: Engine, logs: io.StringIO) -> None:
    refuse_inserts(test_engine, "gate")  # two-approvals begins with its gate

    run = test_engine.start_run("two-approvals", {"amount": "100"}, "alice")

    final = test_engine.get_run(run.ref)
    assert final.status == "failed" and "internal error at step approve" in (final.reason or "")
    assert kinds(test_engine, run.ref) == ["run_started", "run_finished"]
    assert verify_run(test_engine.db, final) is None
    assert '"event": "transaction_redone_isolated"' in logs.getvalue()
