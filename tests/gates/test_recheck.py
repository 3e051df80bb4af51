"""Edited values against the flow's policy, as pure functions (gates/recheck.py)."""

from gates.conditions import compile_condition
from gates.recheck import (
    BoundaryRule,
    GateRule,
    Override,
    approval_stands,
    gate_now_required,
    reads_inputs,
    recheck_boundaries,
)

LIMIT = BoundaryRule("amount-limit", "amount-limit", compile_condition("inputs.amount <= 50000.0"),
                     "stop", "Payments above 50,000 need the treasury")
REVIEW = BoundaryRule("review", "review", compile_condition("inputs.amount <= 20000.0"),
                      "escalate")
AHEAD = BoundaryRule("later", "later", compile_condition(
    "signals.legal.verdict == 'ok' || inputs.amount < 100.0"), "gate", passed_before=False)
BEHIND = BoundaryRule("earlier", "earlier", compile_condition(
    "signals.legal.verdict == 'ok' || inputs.amount < 100.0"), "gate", passed_before=True)


def context(amount: float, **signals: dict) -> dict:
    return {"inputs": {"amount": amount}, "signals": signals, "run": {}, "gates": {},
            "conflicts": {}}


def statuses(results: list) -> list[tuple[str, str]]:
    return [(r.rule.label, r.status) for r in results]


def test_a_stop_boundary_broken_by_an_edit_refuses_it() -> None:
    (result,) = recheck_boundaries([LIMIT], context(9_999_999))
    assert result.status == "violated" and result.stops and not result.asks_now
    assert result.check.values == {"inputs.amount": 9_999_999}
    assert result.as_trace()["result"] == "violated"
    assert recheck_boundaries([LIMIT], context(50_000))[0].status == "passed"


def test_an_escalating_boundary_asks_now_if_passed_and_when_reached_if_ahead() -> None:
    (behind,) = recheck_boundaries([REVIEW], context(30_000))
    assert behind.asks_now and not behind.stops
    ahead = BoundaryRule("review", "review", REVIEW.condition, "escalate", passed_before=False)
    (later,) = recheck_boundaries([ahead], context(30_000))
    assert later.status == "violated" and not later.asks_now and not later.stops
    assert "escalates when the run reaches it" in later.as_trace()["note"]


def test_a_boundary_allowed_once_stays_allowed_for_exactly_those_values() -> None:
    allowed = Override("review", {"amount": 30_000}, {"inputs.amount": 30_000})
    assert statuses(recheck_boundaries([REVIEW], context(30_000), [allowed])) == [("review", "allowed")]
    assert statuses(recheck_boundaries([REVIEW], context(30_001), [allowed])) == [("review", "violated")]
    other = Override("amount-limit", {"amount": 30_000}, {"inputs.amount": 30_000})
    assert statuses(recheck_boundaries([REVIEW], context(30_000), [other])) == [("review", "violated")]
    # an override binds every input, not only what the check reads: `inputs['amount']`
    # hides what it reads from the trace, and must not turn an override into a blank cheque
    hidden = BoundaryRule("hidden", "hidden", compile_condition("inputs['amount'] <= 20000.0"),
                          "escalate")
    blank = Override("hidden", {"amount": 30_000}, {})
    assert statuses(recheck_boundaries([hidden], context(9_000_000), [blank])) == [("hidden", "violated")]


def test_what_cannot_be_evaluated_yet_waits_only_if_the_run_has_not_passed_it() -> None:
    assert statuses(recheck_boundaries([AHEAD, BEHIND], context(500))) == [
        ("later", "deferred"), ("earlier", "violated")]
    ok = {"legal": {"verdict": "ok"}}
    assert statuses(recheck_boundaries([AHEAD, BEHIND], context(500, **ok))) == [
        ("later", "passed"), ("earlier", "passed")]


def test_a_skipped_gate_applies_again_when_its_when_holds_or_cannot_be_told() -> None:
    cfo = GateRule("cfo", "cfo", compile_condition("inputs.amount > 20000.0"))
    assert gate_now_required(cfo, context(30_000)) == (True, {"inputs.amount": 30_000})
    assert gate_now_required(cfo, context(500))[0] is False
    broken = GateRule("x", "x", compile_condition("signals.risk.verdict == 'warn'"))
    assert gate_now_required(broken, context(500))[0] is True  # fails closed


def test_only_conditions_that_read_inputs_can_change_with_an_edit() -> None:
    assert reads_inputs(compile_condition("inputs.amount > 1.0"))
    assert reads_inputs(compile_condition("inputs.exists(k, k == 'amount')"))
    assert not reads_inputs(compile_condition("signals.risk.verdict == 'ok'"))


def test_an_approval_stands_only_for_the_inputs_its_when_reads_as_they_were() -> None:
    cfo = GateRule("cfo", "cfo", compile_condition("inputs.amount > 20000.0"),
                   approved_for={"amount": 25000.0, "vendor": "ACME"})
    assert approval_stands(cfo, {"amount": 25000.0, "vendor": "Initech"})
    assert not approval_stands(cfo, {"amount": 49000.0, "vendor": "ACME"})
    whole = GateRule("any", "any", compile_condition("'amount' in inputs && inputs.amount > 1.0"),
                     approved_for={"amount": 25000.0, "vendor": "ACME"})
    assert not approval_stands(whole, {"amount": 25000.0, "vendor": "Initech"})
    skipped = GateRule("cfo", "cfo", compile_condition("inputs.amount > 20000.0"))
    assert not approval_stands(skipped, {"amount": 25000.0})
