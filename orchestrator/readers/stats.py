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

import sqlalchemy as sa
from sqlmodel import col, select

from storage.engine import Database
from storage.models import Gate, Run, Signal

AGENT_KINDS_EXCLUDED = ("plan", "external")  # joined plan signals and people's signals


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
    window = [col(Run.created_at) >= start, col(Run.created_at) <= now]
    if flow is not None:
        window.append(col(Run.flow_name) == flow)
    with db.read() as s:
        for status, outcome, count in s.exec(
                select(Run.status, Run.outcome, sa.func.count()).where(*window)
                .group_by(Run.status, Run.outcome)):
            stats.by_status[status] = stats.by_status.get(status, 0) + count
            if status == "failed" and outcome == "setup":
                stats.setup_failures += count
        stats.runs = sum(stats.by_status.values())

        stats.runs_with_people = s.exec(
            select(sa.func.count(sa.distinct(Gate.run_id)))
            .join(Run, col(Gate.run_id) == col(Run.id)).where(*window)).one()
        escalated = sa.case((sa.or_(col(Gate.esc_level) > 0, col(Gate.esc_cycle) > 0), 1), else_=0)
        baton_closed = sa.case((col(Gate.closed_by) == "baton", 1), else_=0)
        row = s.exec(select(sa.func.count(), sa.func.coalesce(sa.func.sum(escalated), 0),
                            sa.func.coalesce(sa.func.sum(baton_closed), 0))
                     .select_from(Gate).join(Run, col(Gate.run_id) == col(Run.id))
                     .where(*window)).one()
        stats.gates, stats.escalated_gates, stats.closed_by_baton = row[0], int(row[1]), int(row[2])
        for effect, count in s.exec(select(Gate.effect, sa.func.count())
                                    .join(Run, col(Gate.run_id) == col(Run.id))
                                    .where(*window, col(Gate.status) == "decided")
                                    .group_by(Gate.effect)):
            if effect:
                stats.decided[effect] = count
        for level, count in s.exec(
                select(Gate.esc_level, sa.func.count())
                .join(Run, col(Gate.run_id) == col(Run.id))
                .where(*window, sa.or_(col(Gate.esc_level) > 0, col(Gate.esc_cycle) > 0))
                .group_by(Gate.esc_level)):
            stats.levels_reached[level + 1] = count  # the level it was at when it closed (or now)
        times = s.exec(select(Gate.opened_at, Gate.decided_at)
                       .join(Run, col(Gate.run_id) == col(Run.id))
                       .where(*window, col(Gate.status) == "decided",
                              col(Gate.closed_by) == "person"))
        per_day: dict[date, list[float]] = {}
        for opened, decided in times:
            seconds = (decided - opened).total_seconds()
            stats.decision_seconds.append(seconds)
            per_day.setdefault(decided.date(), []).append(seconds)
        stats.decisions_per_day = {d: len(v) for d, v in per_day.items()}
        stats.median_per_day = {d: statistics.median(v) for d, v in per_day.items()}

        failed = sa.case((col(Signal.status) == "failed", 1), else_=0)
        retried = sa.case((col(Signal.attempts) > 1, 1), else_=0)
        tokens = col(Signal.tokens_in) + col(Signal.tokens_out)
        agent = s.exec(select(sa.func.count(), sa.func.coalesce(sa.func.sum(failed), 0),
                              sa.func.coalesce(sa.func.sum(retried), 0),
                              sa.func.coalesce(sa.func.sum(tokens), 0),
                              sa.func.coalesce(sa.func.sum(Signal.cost), 0.0))
                       .select_from(Signal).join(Run, col(Signal.run_id) == col(Run.id))
                       .where(*window, col(Signal.agent_kind).not_in(AGENT_KINDS_EXCLUDED))).one()
        stats.agent_calls, stats.agent_failures = agent[0], int(agent[1])
        stats.agent_retried = int(agent[2])
        stats.tokens, stats.cost = int(agent[3]), float(agent[4])

        pending: Counter[str] = Counter()  # waiting now, whenever the run started
        open_gates = (select(Gate.approvers, Gate.forbid_requester, Run.requester)  # not whole rows
                      .join(Run, col(Gate.run_id) == col(Run.id))
                      .where(col(Gate.status) == "open"))
        if flow is not None:
            open_gates = open_gates.where(col(Run.flow_name) == flow)
        for approvers, four_eyes, requester in s.exec(open_gates):
            # under four-eyes the requester waits for others; it is not pending for them
            pending.update(p for p in approvers if not (four_eyes and p == requester))
        stats.pending_by_approver = pending.most_common(5)
    return stats
