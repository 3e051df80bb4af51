import pytest

from gates.conflicts import (
    FollowEffect,
    SignalView,
    follow_effects,
    followed,
    nothing_to_compare,
    parse_effect,
    resolve,
)

DISAGREE = {
    "research": SignalView("research", "ok", "info"),
    "risk": SignalView("risk", "warn", "medium"),
    "compliance": SignalView("compliance", "block", "high"),
}


def test_follow_priority_picks_the_highest_priority_signal() -> None:
    result = resolve(DISAGREE, policy="follow_priority",
                     priority=["compliance", "risk", "research"])
    assert (result.agreed, result.winner) == (False, "compliance")


def test_follow_priority_skips_abstaining_signals() -> None:
    signals = {**DISAGREE, "compliance": SignalView("compliance", None, None, failed=True)}
    result = resolve(signals, policy="follow_priority", priority=["compliance", "risk", "research"])
    assert result.winner == "risk" and result.abstained == ("compliance",)


def test_most_severe() -> None:
    signals = {**DISAGREE, "compliance": SignalView("compliance", "warn", "critical")}
    assert resolve(signals, policy="most_severe").winner == "compliance"


def test_ask_and_escalate_need_people() -> None:
    assert resolve(DISAGREE, policy="ask").needs_human
    assert resolve(DISAGREE, policy="escalate").escalate


def test_agreement_passes_with_no_human() -> None:
    same = {n: SignalView(n, "ok", "info") for n in ("a", "b", "c")}
    result = resolve(same, policy="ask")
    assert result.agreed and not result.needs_human and result.winner == "a"


def test_compare_on_severity_sees_more_disagreement() -> None:
    signals = {"a": SignalView("a", "warn", "low"), "b": SignalView("b", "warn", "high")}
    assert resolve(signals, policy="ask").agreed
    assert not resolve(signals, policy="ask", compare=("verdict", "severity")).agreed


# -- what following a signal does ---------------------------------------------------------------
def test_safe_defaults_a_block_stops_a_warning_asks_and_no_signal_does_as_a_warning() -> None:
    effects = follow_effects({})
    assert {v: str(e) for v, e in effects.items()} == {
        "ok": "continue", "warn": "gate", "block": "stop", "none": "gate"}
    said = follow_effects({"warn": "path:review"})
    assert said["warn"] == FollowEffect("path", "review") == said["none"]
    assert follow_effects({"warn": "continue", "none": "stop"})["none"].kind == "stop"


@pytest.mark.parametrize("text", ["", "halt", "path:", "path: ", "gate:approve", None, 3, "stop:x"])
def test_only_the_documented_effects_parse(text: object) -> None:
    with pytest.raises(ValueError, match="continue, stop, gate or path:BLOCK"):
        parse_effect(text)


def test_the_verdict_followed_and_nothing_to_compare() -> None:
    assert [followed(v) for v in ("ok", "warn", "block", "", None, "weird")] == [
        "ok", "warn", "block", "none", "none", "none"]
    failed = {"a": SignalView("a", None, None, failed=True), "b": None}
    assert nothing_to_compare(failed)
    assert not nothing_to_compare({**failed, "c": SignalView("c", "ok", "info")})
    # resolve alone would call this "agreed" and ask a person under `ask`: the engine does not
    assert resolve(failed, policy="ask").needs_human
