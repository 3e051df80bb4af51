"""When agents disagree: which signal wins, or whether a person must choose.

Signals are compared on verdict (and severity, when the flow asks). A failed or missing
signal abstains. Agreement passes silently, but is still traced.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

Policy = Literal["follow_priority", "most_severe", "ask", "escalate"]

VERDICT_RANK = {"ok": 0, "warn": 1, "block": 2}
SEVERITY_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


@dataclass(frozen=True)
class SignalView:
    agent: str
    verdict: str | None
    severity: str | None
    failed: bool = False

    @property
    def abstains(self) -> bool:
        return self.failed or self.verdict is None


@dataclass(frozen=True)
class Resolution:
    agreed: bool
    policy: str
    winner: str | None  # the agent whose signal is followed; None when a person must choose
    needs_human: bool
    escalate: bool
    verdicts: dict[str, str | None] = field(default_factory=dict)
    abstained: tuple[str, ...] = ()
    explanation: str = ""


def _key(signal: SignalView, compare: Sequence[str]) -> tuple:
    return tuple(getattr(signal, part) for part in compare)


def severity_order(signal: SignalView) -> tuple[int, int]:
    return (VERDICT_RANK.get(signal.verdict or "ok", 0),
            SEVERITY_RANK.get(signal.severity or "info", 0))


def resolve(signals: Mapping[str, SignalView | None], *, policy: Policy,
            priority: Sequence[str] = (), compare: Sequence[str] = ("verdict",)) -> Resolution:
    """Apply the conflict policy to the latest signal of each named agent."""
    present = {name: s for name, s in signals.items() if s is not None and not s.abstains}
    abstained = tuple(name for name, s in signals.items() if s is None or s.abstains)
    verdicts = {name: (s.verdict if s is not None else None) for name, s in signals.items()}
    distinct = {_key(s, compare) for s in present.values()}

    if len(distinct) <= 1:
        winner = next(iter(present), None)
        verdict = present[winner].verdict if winner else None
        why = (f"all {len(present)} signals agree ({verdict})" if present
               else "no signal to compare: every agent abstained")
        return Resolution(True, policy, winner, needs_human=not present and policy == "ask",
                          escalate=not present and policy == "escalate",
                          verdicts=verdicts, abstained=abstained, explanation=why)

    summary = ", ".join(f"{n}: {s.verdict}" for n, s in present.items())
    if policy == "follow_priority":
        order = list(priority) + [n for n in present if n not in priority]
        winner = next(n for n in order if n in present)
        return Resolution(False, policy, winner, False, False, verdicts, abstained,
                          f"signals disagree ({summary}); following {winner}, the "
                          "highest-priority signal that did not abstain")
    if policy == "most_severe":
        # Ties keep the declared order, so the result does not depend on timing.
        order = list(priority) + [n for n in present if n not in priority]
        ranked = sorted(present.values(),
                        key=lambda s: (severity_order(s), -order.index(s.agent)), reverse=True)
        winner = ranked[0].agent
        return Resolution(False, policy, winner, False, False, verdicts, abstained,
                          f"signals disagree ({summary}); following {winner}, the most severe")
    if policy == "ask":
        return Resolution(False, policy, None, True, False, verdicts, abstained,
                          f"signals disagree ({summary}); a person must choose which to follow")
    return Resolution(False, policy, None, False, True, verdicts, abstained,
                      f"signals disagree ({summary}); escalated by policy")


# -- what following a signal does ---------------------------------------------------------------
# The verdict a conflict follows, or `none` when there was no signal to compare (every agent
# failed or gave none).
FOLLOWED = ("ok", "warn", "block", "none")
# Following a block never silently carries on: it stops the run. Following a warning asks a
# person (the next gate opens, whatever its `when`); `none` does what `warn` does.
DEFAULT_THEN = {"block": "stop", "warn": "gate", "ok": "continue"}
EFFECT_KINDS = ("continue", "stop", "gate", "path")


@dataclass(frozen=True)
class FollowEffect:
    kind: str  # continue | stop | gate | path
    path: str | None = None  # the block a `path:NAME` effect runs

    def __str__(self) -> str:
        return f"path:{self.path}" if self.kind == "path" else self.kind


def parse_effect(text: object) -> FollowEffect:
    """`continue`, `stop`, `gate` or `path:BLOCK`; ValueError names what is allowed."""
    if isinstance(text, str):
        kind, sep, name = text.strip().partition(":")
        if not sep and kind in ("continue", "stop", "gate"):
            return FollowEffect(kind)
        if sep and kind == "path" and name.strip():
            return FollowEffect("path", name.strip())
    raise ValueError(f"expected continue, stop, gate or path:BLOCK (a block's name), got {text!r}")


def follow_effects(then: Mapping[str, str]) -> dict[str, FollowEffect]:
    """The effect of following each verdict: the flow's `then`, over the defaults."""
    effects = {v: parse_effect(then.get(v, DEFAULT_THEN.get(v, "continue")))
               for v in ("ok", "warn", "block")}
    effects["none"] = parse_effect(then["none"]) if "none" in then else effects["warn"]
    return effects


def followed(verdict: str | None) -> str:
    return verdict if verdict in ("ok", "warn", "block") else "none"


def nothing_to_compare(signals: Mapping[str, SignalView | None]) -> bool:
    """No agent gave a signal: there is no disagreement to put to anyone."""
    return all(s is None or s.abstains for s in signals.values())
