"""The external step through the engine (a fake clock, a real SQLite file or PostgreSQL):
the approval is bound to its arguments and consumed once; a report that never comes makes
the outcome unknown; the flow file is checked strictly."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from orchestrator import external
from orchestrator.clock import FakeClock
from orchestrator.engine import Engine
from orchestrator.errors import BatonError, Conflict, FlowError, InputError
from orchestrator.loader import load_flow, load_org
from orchestrator.readers.export import export_run
from storage.models import Action, Run
from tests.conftest import EXAMPLE_FLOWS

AGENT = "service:billing-agent"
ORG = load_org(EXAMPLE_FLOWS / "org.yaml")


def _start(engine: Engine, inputs: dict[str, str]) -> Run:
    """As the API starts a run (the only way a flow with an external step starts)."""
    return engine.start_run("vendor-payment-api", inputs, AGENT, origin={"kind": "api"})


def _due(engine: Engine, ref: str) -> Action:
    run = engine.get_run(ref)
    with engine.db.read() as s:
        action = external.due_action(s, run.id)
    assert action is not None, f"{ref} has no action due ({run.status})"
    return action


def _report(engine: Engine, ref: str, action: Action, outcome: str = "succeeded", **args: object
            ) -> None:
    arguments = {**action.arguments, **args}
    engine.report_external(ref, AGENT, external.Report(action.approval or "", arguments,
                                                       outcome, {"ok": True}))


def _kinds(engine: Engine, ref: str) -> list[str]:
    return [e["kind"] for e in export_run(engine.db, engine.get_run(ref))["entries"]]


def test_the_approval_carries_the_edited_arguments_and_is_consumed_once(engine: Engine) -> None:
    run = _start(engine, {"vendor": "ACME", "amount": "20000",
                                                  "invoice": "INV-1"})
    engine.decide(run.ref, "bob", "approve", reason="ok", edits={"amount": "18000"})
    action = _due(engine, run.ref)
    assert action.arguments == {"vendor": "ACME", "amount": 18000.0, "invoice": "INV-1"}
    assert action.call == "pay_vendor" and action.idempotency_key == f"{run.ref}:pay"

    with pytest.raises(Conflict, match=r"amount was approved as 18000\.0, reported as 20000"):
        _report(engine, run.ref, action, amount=20000)
    with pytest.raises(Conflict, match="not the approved ones"):
        _report(engine, run.ref, action, memo="extra")
    with pytest.raises(Conflict, match="not the approval"):
        engine.report_external(run.ref, AGENT, external.Report("ap_forged", action.arguments,
                                                               "succeeded"))
    assert engine.get_run(run.ref).status == "waiting"
    _report(engine, run.ref, action, amount=18000)  # 18000 is the approved 18000.0
    assert engine.get_run(run.ref).status == "succeeded"
    with pytest.raises(Conflict, match="already reported"):
        _report(engine, run.ref, action)
    kinds = _kinds(engine, run.ref)
    assert kinds.count("action_report_refused") == 4
    assert kinds[-3:] == ["action_done", "run_finished", "action_report_refused"]


def test_started_is_reported_once_and_a_failure_fails_the_run(engine: Engine) -> None:
    run = _start(engine, {"vendor": "ACME", "amount": "200"})
    action = _due(engine, run.ref)
    _report(engine, run.ref, action, outcome="started")
    with pytest.raises(Conflict, match="not started twice"):
        _report(engine, run.ref, action, outcome="started")
    engine.report_external(run.ref, AGENT, external.Report(
        action.approval or "", action.arguments, "failed", error="the bank said no"))
    final = engine.get_run(run.ref)
    assert final.status == "failed" and "the bank said no" in (final.reason or "")


def test_no_report_in_time_asks_a_person_who_may_have_the_caller_try_again(
        engine: Engine, clock: FakeClock) -> None:
    run = _start(engine, {"vendor": "ACME", "amount": "200"})
    first = _due(engine, run.ref)
    clock.advance(timedelta(minutes=59))
    assert engine.fire_due_timers() == 0
    clock.advance(timedelta(minutes=2))
    assert engine.fire_due_timers() == 1
    (gate,) = engine.open_gates(run.id)
    assert gate.key == "pay-unknown" and "dave" in gate.approvers
    with pytest.raises(Conflict, match="declared unknown"):
        _report(engine, run.ref, first)
    engine.decide(run.ref, "dave", "retry", reason="the bank shows nothing")
    second = _due(engine, run.ref)
    assert second.approval != first.approval and second.attempts == 2
    with pytest.raises(Conflict):
        _report(engine, run.ref, first)  # the first approval is spent
    _report(engine, run.ref, second)
    assert engine.get_run(run.ref).status == "succeeded"


def test_a_person_confirms_an_unknown_outcome(engine: Engine, clock: FakeClock) -> None:
    run = _start(engine, {"vendor": "ACME", "amount": "200"})
    clock.advance(timedelta(hours=2))
    engine.fire_due_timers()
    report = engine.decide(run.ref, "dave", "done", reason="the bank shows it")
    assert report.ok, report.message
    assert engine.get_run(run.ref).status == "succeeded"


def test_an_emergency_stop_holds_the_approval_back(engine: Engine) -> None:
    run = _start(engine, {"vendor": "ACME", "amount": "20000"})
    engine.halt("erin", "incident")
    engine.decide(run.ref, "bob", "approve", reason="ok")
    assert engine.get_run(run.ref).status == "held"
    with engine.db.read() as s:
        assert external.due_action(s, run.id) is None
    engine.resume("erin")
    assert _due(engine, run.ref).arguments["amount"] == 20000.0


def test_an_approval_not_acted_on_is_withdrawn_when_the_run_is_stopped(engine: Engine) -> None:
    run = _start(engine, {"vendor": "ACME", "amount": "200"})
    action = _due(engine, run.ref)
    engine.stop(run.ref, AGENT, "the invoice was withdrawn")
    with engine.db.read() as s:
        assert s.get(Action, action.id).status == "withdrawn"
    with pytest.raises(Conflict, match="already finished"):
        _report(engine, run.ref, action)


def test_a_service_never_decides_claims_or_is_asked_to(engine: Engine) -> None:
    run = _start(engine, {"vendor": "ACME", "amount": "20000"})
    report = engine.decide(run.ref, AGENT, "approve", reason="I approve myself")
    assert report.status == "refused" and "only people decide" in report.message
    with pytest.raises(BatonError, match="only people"):
        engine.claim(run.ref, AGENT)
    with pytest.raises(BatonError, match="only people"):
        engine.reassign(run.ref, "erin", AGENT)
    assert engine.get_run(run.ref).status == "waiting"


STEP = """\
name: demo
inputs:
  amount: {type: number, required: true}
steps:
%s
"""


@pytest.mark.parametrize(("step", "problem"), [
    ("  - external: {id: pay, tool: pay, arguments: [amount, vendr]}",
     "steps[0].external.arguments[1]: 'vendr' is not an input of this flow"),
    ("  - external: {id: pay}", "steps[0].external.tool: 'tool' is required"),
    ("  - external: {id: pay, tool: 'rm -rf'}", "must be a function or tool name"),
    ("  - external: {id: pay, tool: pay, timeout: 0s}", "timeout must be between 1s and 30d"),
    ("  - external: {id: pay, tool: pay, approvers: 'service:billing-agent'}",
     "only people decide"),
    ("  - external: {id: pay, tool: pay, escalation: nope}", "unknown escalation chain 'nope'"),
    ("  - external: {id: pay, tool: pay, on_unknown: ignore}", "on_unknown"),
    ("  - gate: {approvers: 'service:billing-agent'}", "only people decide"),
])
def test_the_flow_file_is_checked_strictly(tmp_path: Path, step: str, problem: str) -> None:
    path = tmp_path / "demo.yaml"
    path.write_text(STEP % step)
    with pytest.raises(FlowError) as caught:
        load_flow(path, ORG)
    assert problem in str(caught.value), str(caught.value)


def test_a_flow_with_an_external_step_starts_only_through_the_api(engine: Engine,
                                                                   tmp_path: Path) -> None:
    with pytest.raises(InputError, match="start it through the API"):
        engine.start_run("vendor-payment-api", {"vendor": "ACME", "amount": "2"}, AGENT,
                         origin={"kind": "slack"})
    path = tmp_path / "demo.yaml"
    path.write_text(STEP % "  - external: {id: pay, tool: pay}"
                    + "triggers: {webhook: {secret_env: HOOK, requester: erin}}\n")
    with pytest.raises(FlowError, match="not by a schedule or a webhook"):
        load_flow(path, ORG)


def test_services_in_the_org_file(tmp_path: Path) -> None:
    assert ORG.principal("service:billing-agent") == AGENT
    assert ORG.display(AGENT) == "Billing agent"
    assert ORG.resolve(AGENT) == {AGENT}
    org = tmp_path / "org.yaml"
    org.write_text("users: {erin: {name: Erin}}\nservices: {bot: {owner: service:bot}}\n"
                   "admins: [service:bot]\n")
    with pytest.raises(FlowError) as caught:
        load_org(org)
    text = str(caught.value)
    assert "a service cannot be an admin" in text and "a service's owner is a person" in text
