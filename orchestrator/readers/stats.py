"""KPIs over a window of runs: `baton stats` and `/baton stats` (definitions in docs/trace.md).

Counts and sums are computed by the database (GROUP BY, CASE), so the work does not grow
with the size of the trace; only the per-gate decision times are fetched, to take exact
percentiles.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from storage import stats as figures
from storage.engine import Database
from storage.stats import Window


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least p% of values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass
class Stats:
    flow: str | None
    since: datetime
    until: datetime
    runs: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    setup_failures: int = 0  # runs stopped by a setup problem (docs/llm.md, "Setup checks")
    runs_with_people: int = 0
    gates: int = 0
    decided: dict[str, int] = field(default_factory=dict)  # effect -> gates
    closed_by_baton: int = 0
    escalated_gates: int = 0
    levels_reached: dict[int, int] = field(default_factory=dict)
    decision_seconds: list[float] = field(default_factory=list)
    decisions_per_day: dict[date, int] = field(default_factory=dict)
    median_per_day: dict[date, float] = field(default_factory=dict)
    agent_calls: int = 0
    agent_failures: int = 0
    agent_retried: int = 0
    tokens: int = 0
    cost: float = 0.0
    pending_by_approver: list[tuple[str, int]] = field(default_factory=list)

    @property
    def decided_total(self) -> int:
        return sum(self.decided.values())

    def rate(self, effect: str) -> float | None:
        return ratio(self.decided.get(effect, 0), self.decided_total)

    @property
    def intervention_rate(self) -> float | None:
        return ratio(self.runs_with_people, self.runs)

    @property
    def escalation_rate(self) -> float | None:
        return ratio(self.escalated_gates, self.gates)

    @property
    def median_decision_s(self) -> float | None:
        return statistics.median(self.decision_seconds) if self.decision_seconds else None

    @property
    def p90_decision_s(self) -> float | None:
        return percentile(self.decision_seconds, 90)

    @property
    def agent_error_rate(self) -> float | None:
        return ratio(self.agent_failures, self.agent_calls)

    @property
    def agent_retry_rate(self) -> float | None:
        return ratio(self.agent_retried, self.agent_calls)

    def as_dict(self) -> dict[str, Any]:
        return {
            "flow": self.flow, "since": self.since.isoformat(), "until": self.until.isoformat(),
            "runs": self.runs, "by_status": self.by_status, "setup_failures": self.setup_failures,
            "human_intervention_rate": self.intervention_rate,
            "gates": self.gates, "decided": self.decided, "closed_by_baton": self.closed_by_baton,
            "approval_rate": self.rate("approve"), "rejection_rate": self.rate("reject"),
            "request_changes_rate": self.rate("request_changes"),
            "escalation_rate": self.escalation_rate,
            "levels_reached": {str(k): v for k, v in sorted(self.levels_reached.items())},
            "time_to_decision_s": {"median": self.median_decision_s, "p90": self.p90_decision_s,
                                   "count": len(self.decision_seconds)},
            "agents": {"calls": self.agent_calls, "error_rate": self.agent_error_rate,
                       "retry_rate": self.agent_retry_rate, "tokens": self.tokens,
                       "cost": round(self.cost, 6)},
            "pending_by_approver": dict(self.pending_by_approver),
            "decisions_per_day": {d.isoformat(): n for d, n in sorted(self.decisions_per_day.items())},
        }


def compute(db: Database, *, now: datetime, since: timedelta = timedelta(days=7),
            flow: str | None = None) -> Stats:
    start = now - since
    stats = Stats(flow=flow, since=start, until=now)
    window = Window(start, now, flow)
    with db.read() as s:
        for status, outcome, count in figures.runs_by_status(s, window):
            stats.by_status[status] = stats.by_status.get(status, 0) + count
            if status == "failed" and outcome == "setup":
                stats.setup_failures += count
        stats.runs = sum(stats.by_status.values())
        stats.runs_with_people = figures.runs_with_gates(s, window)
        stats.gates, stats.escalated_gates, stats.closed_by_baton = figures.gate_counts(s, window)
        stats.decided = figures.decided_by_effect(s, window)
        for level, count in figures.escalation_levels(s, window).items():
            stats.levels_reached[level + 1] = count  # the level it was at when it closed (or now)
        per_day: dict[date, list[float]] = {}
        for opened, decided in figures.decision_times(s, window):
            seconds = (decided - opened).total_seconds()
            stats.decision_seconds.append(seconds)
            per_day.setdefault(decided.date(), []).append(seconds)
        stats.decisions_per_day = {d: len(v) for d, v in per_day.items()}
        stats.median_per_day = {d: statistics.median(v) for d, v in per_day.items()}
        (stats.agent_calls, stats.agent_failures, stats.agent_retried, stats.tokens,
         stats.cost) = figures.agent_figures(s, window)

        pending: Counter[str] = Counter()  # waiting now, whenever the run started
        for approvers, four_eyes, requester in figures.open_gate_approvers(s, flow):
            # under four-eyes the requester waits for others; it is not pending for them
            pending.update(p for p in approvers if not (four_eyes and p == requester))
        stats.pending_by_approver = pending.most_common(5)
    return stats
