from gates.conflicts import SignalView, resolve

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
