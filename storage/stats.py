"""The figures `baton stats`, `/baton stats` and `/metrics` report, counted by the database
(GROUP BY, CASE): the work does not grow with the size of the trace. Only the per-gate
decision times are fetched, to take exact percentiles (orchestrator.readers.stats).

A window is the runs created between `start` and `end` (inclusive), of one flow or all.
Every function takes what `Database.read()` gives (anything with `execute`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from storage.gates import GATES
from storage.models import Event
from storage.runs import RUNS
from storage.signals import SIGNALS
from storage.slack import OPEN, OUTBOX

EVENTS: sa.Table = Event.__table__  # type: ignore[attr-defined]
AGENT_KINDS_EXCLUDED = ("plan", "external")  # joined plan signals and people's signals

_ESCALATED = sa.or_(GATES.c.esc_level > 0, GATES.c.esc_cycle > 0)
_GATES_OF_RUNS = GATES.join(RUNS, GATES.c.run_id == RUNS.c.id)


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    flow: str | None = None

    def where(self) -> list[Any]:
        found = [RUNS.c.created_at >= self.start, RUNS.c.created_at <= self.end]
        if self.flow is not None:
            found.append(RUNS.c.flow_name == self.flow)
        return found


def runs_by_status(conn: Any, window: Window) -> list[tuple[str, str | None, int]]:
    """(status, outcome, runs) of the window's runs."""
    return [(status, outcome, int(count)) for status, outcome, count in conn.execute(
        sa.select(RUNS.c.status, RUNS.c.outcome, sa.func.count()).where(*window.where())
        .group_by(RUNS.c.status, RUNS.c.outcome))]


def runs_with_gates(conn: Any, window: Window) -> int:
    """How many of the window's runs opened a gate (needed a person)."""
    return int(conn.execute(sa.select(sa.func.count(sa.distinct(GATES.c.run_id)))
                            .select_from(_GATES_OF_RUNS).where(*window.where())).scalar_one())


def gate_counts(conn: Any, window: Window) -> tuple[int, int, int]:
    """The window's gates: (all, escalated at least once, closed by Baton)."""
    escalated = sa.case((_ESCALATED, 1), else_=0)
    baton_closed = sa.case((GATES.c.closed_by == "baton", 1), else_=0)
    row = conn.execute(sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(escalated), 0),
                                 sa.func.coalesce(sa.func.sum(baton_closed), 0))
                       .select_from(_GATES_OF_RUNS).where(*window.where())).one()
    return int(row[0]), int(row[1]), int(row[2])


def decided_by_effect(conn: Any, window: Window) -> dict[str, int]:
    """The window's decided gates, by effect (approve, reject, ...)."""
    return {effect: int(count) for effect, count in conn.execute(
        sa.select(GATES.c.effect, sa.func.count()).select_from(_GATES_OF_RUNS)
        .where(*window.where(), GATES.c.status == "decided").group_by(GATES.c.effect))
        if effect}


def escalation_levels(conn: Any, window: Window) -> dict[int, int]:
    """The window's escalated gates by the level they were at when closed (or now)."""
    return {int(level): int(count) for level, count in conn.execute(
        sa.select(GATES.c.esc_level, sa.func.count()).select_from(_GATES_OF_RUNS)
        .where(*window.where(), _ESCALATED).group_by(GATES.c.esc_level))}


def decision_times(conn: Any, window: Window) -> list[tuple[datetime, datetime]]:
    """(opened, decided) of each of the window's gates a person decided."""
    return [(opened, decided) for opened, decided in conn.execute(
        sa.select(GATES.c.opened_at, GATES.c.decided_at).select_from(_GATES_OF_RUNS)
        .where(*window.where(), GATES.c.status == "decided", GATES.c.closed_by == "person"))]


def agent_figures(conn: Any, window: Window) -> tuple[int, int, int, int, float]:
    """The window's agent calls: (calls, failed, retried, tokens, cost)."""
    failed = sa.case((SIGNALS.c.status == "failed", 1), else_=0)
    retried = sa.case((SIGNALS.c.attempts > 1, 1), else_=0)
    tokens = SIGNALS.c.tokens_in + SIGNALS.c.tokens_out
    row = conn.execute(
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(failed), 0),
                  sa.func.coalesce(sa.func.sum(retried), 0),
                  sa.func.coalesce(sa.func.sum(tokens), 0),
                  sa.func.coalesce(sa.func.sum(SIGNALS.c.cost), 0.0))
        .select_from(SIGNALS.join(RUNS, SIGNALS.c.run_id == RUNS.c.id))
        .where(*window.where(), SIGNALS.c.agent_kind.not_in(AGENT_KINDS_EXCLUDED))).one()
    return int(row[0]), int(row[1]), int(row[2]), int(row[3]), float(row[4])


def open_gate_approvers(conn: Any, flow: str | None = None) -> list[tuple[list[str], bool, str]]:
    """(approvers, four-eyes, the run's requester) of every open gate now, whenever its run
    started (of one flow's runs, with `flow`): not whole rows."""
    query = (sa.select(GATES.c.approvers, GATES.c.forbid_requester, RUNS.c.requester)
             .select_from(_GATES_OF_RUNS).where(GATES.c.status == "open"))
    if flow is not None:
        query = query.where(RUNS.c.flow_name == flow)
    return [(list(approvers), bool(four_eyes), requester)
            for approvers, four_eyes, requester in conn.execute(query)]


_GATES_OPEN = sa.select(sa.func.count()).select_from(GATES).where(GATES.c.status == "open")
_EVENTS_UNDELIVERED = (sa.select(sa.func.count()).select_from(EVENTS)
                       .where(EVENTS.c.delivered_at.is_(None)))
_CALLS_OWED = sa.select(sa.func.count()).select_from(OUTBOX).where(OUTBOX.c.status.in_(OPEN))


def backlog(conn: Any) -> dict[str, int]:
    """What is waiting now: open gates, undelivered events, Slack calls still owed."""
    return {"gates_open": int(conn.execute(_GATES_OPEN).scalar_one()),
            "events_undelivered": int(conn.execute(_EVENTS_UNDELIVERED).scalar_one()),
            "slack_outbox_pending": int(conn.execute(_CALLS_OWED).scalar_one())}
