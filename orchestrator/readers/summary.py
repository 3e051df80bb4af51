"""A run's decision trace, summarised: the answer to "why was R-42 decided this way?".

Built only from the run's trace entries (the hash-chained record auditors rely on), never
from mutable state. One summary feeds every format: the CLI (plain or rich), the
Markdown file, and Slack's Block Kit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gates.org import Org
from orchestrator.readers.timeline import describe, mark, without_attempts
from orchestrator.wording import deadline
from storage.models import Run, TraceEntry


def one_line(text: str | None, limit: int = 160) -> str:
    line = " ".join((text or "").split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


@dataclass
class SignalFact:
    agent: str
    verdict: str | None
    severity: str | None
    confidence: float | None
    summary: str
    rationale: str
    failed: bool
    error: str | None
    attempts: int
    at: datetime


@dataclass
class Usage:
    agent: str
    calls: int = 0
    attempts: int = 0
    failures: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    latency_ms: float = 0.0
    models: set[str] = field(default_factory=set)


@dataclass
class Escalation:
    at: datetime
    gate: str
    kind: str  # escalated | reminder | exhausted | claimed | snoozed | reassigned | requested
    level: int | None
    notify: list[str]
    who: str | None
    why: str


@dataclass
class GateStory:
    key: str
    kind: str
    title: str
    opened_at: datetime
    approvers: list[str]
    quorum: int
    decisions: list[dict[str, Any]] = field(default_factory=list)
    refusals: list[dict[str, Any]] = field(default_factory=list)
    escalations: list[Escalation] = field(default_factory=list)
    outcome: str | None = None
    option: str | None = None
    decided_by: list[str] = field(default_factory=list)
    decided_at: datetime | None = None
    why: str = ""
    approved_inputs: dict[str, Any] = field(default_factory=dict)
    winner: str | None = None
    then: str | None = None  # a conflict: what following the chosen signal did


@dataclass
class TraceSummary:
    run: str
    flow: str
    version: str
    requester: str
    status: str
    outcome: str | None
    reason: str | None
    started_at: datetime
    finished_at: datetime | None
    inputs: dict[str, Any]
    requested_inputs: dict[str, Any]
    entries: int
    timeline: list[tuple[datetime, str, str]] = field(default_factory=list)  # at, what, mark
    signals: list[SignalFact] = field(default_factory=list)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    boundaries: list[dict[str, Any]] = field(default_factory=list)
    gates: list[GateStory] = field(default_factory=list)
    skipped_gates: list[dict[str, Any]] = field(default_factory=list)
    escalations: list[Escalation] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    routes: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, Usage] = field(default_factory=dict)
    refusals: list[dict[str, Any]] = field(default_factory=list)

    @property
    def duration_s(self) -> float | None:
        end = self.finished_at
        return (end - self.started_at).total_seconds() if end else None

    @property
    def tokens(self) -> int:
        return sum(u.tokens_in + u.tokens_out for u in self.usage.values())

    @property
    def cost(self) -> float:
        return sum(u.cost for u in self.usage.values())


def summarize(run: Run, entries: list[TraceEntry], org: Org) -> TraceSummary:
    first = entries[0].data if entries and entries[0].kind == "run_started" else {}
    summary = TraceSummary(
        run=run.ref, flow=run.flow_name, version=str(first.get("version", "")),
        requester=run.requester, status=run.status, outcome=run.outcome, reason=run.reason,
        started_at=run.created_at, finished_at=run.finished_at, inputs=dict(run.inputs),
        requested_inputs=dict(first.get("inputs", run.requested_inputs)), entries=len(entries))
    gates: dict[int | str, GateStory] = {}

    def story(data: dict[str, Any]) -> GateStory | None:
        return gates.get(data.get("gate_id") or data.get("gate") or "")

    for entry in entries:
        d = entry.data
        summary.timeline.append((entry.created_at, describe(entry, org), mark(entry)))
        kind = entry.kind
        if kind in ("signal", "agent_failed"):
            _signal(summary, entry)
        elif kind == "conflict":
            summary.conflicts.append({**d, "at": entry.created_at})
        elif kind == "boundary":
            summary.boundaries.append({**d, "at": entry.created_at})
        elif kind == "gate_skipped":
            summary.skipped_gates.append({**d, "at": entry.created_at})
        elif kind == "gate_opened":
            gate = GateStory(d["gate"], d["kind"], d.get("title", ""), entry.created_at,
                             list(d.get("approvers", [])), int(d.get("quorum", 1)))
            gates[d.get("gate_id") or d["gate"]] = gate
            summary.gates.append(gate)
        elif kind == "decision":
            found = story(d)
            record = {"by": entry.actor, "at": entry.created_at, "option": d["option"],
                      "effect": d.get("effect"), "reason": d.get("reason"),
                      "edits": d.get("edits", {})}
            if found:
                found.decisions.append(record)
        elif kind in ("decision_refused", "refused"):
            record = {"by": entry.actor, "at": entry.created_at, "action": d.get("action", "decide"),
                      "option": d.get("option"), "why": d.get("why", "")}
            summary.refusals.append(record)
            found = story(d)
            if found:
                found.refusals.append(record)
        elif kind == "gate_decided":
            found = story(d)
            if found:
                found.outcome, found.option = d.get("outcome"), d.get("option")
                found.decided_by, found.decided_at = list(d.get("decided_by", [])), entry.created_at
                found.why = d.get("why", "")
                found.approved_inputs = dict(d.get("approved_inputs", {}))
                found.winner = d.get("winner")
                found.then = d.get("then")
        elif kind in ("escalated", "reminder", "escalation_exhausted", "claimed", "snoozed",
                      "reassigned", "escalation_requested", "snooze_ended"):
            _escalation(summary, story(d), entry, org)
        elif kind in ("action_started", "action_done", "action_failed", "action_unknown",
                      "action_skipped", "action_due"):
            summary.actions.append({**d, "kind": kind, "at": entry.created_at})
            if kind in ("action_failed", "action_unknown"):
                summary.failures.append({"at": entry.created_at, "what": f"action {d['action']}",
                                         "error": d.get("error") or d.get("why"), "attempts":
                                         d.get("attempts", 1)})
        elif kind in ("route", "route_refused", "plan"):
            summary.routes.append({**d, "kind": kind, "at": entry.created_at})
    return summary


def _signal(summary: TraceSummary, entry: TraceEntry) -> None:
    d = entry.data
    failed = entry.kind == "agent_failed"
    fact = SignalFact(agent=d["agent"], verdict=d.get("verdict"), severity=d.get("severity"),
                      confidence=d.get("confidence"), summary=d.get("summary") or "",
                      rationale=one_line(d.get("rationale")), failed=failed,
                      error=without_attempts(d.get("error")), attempts=int(d.get("attempts", 1)),
                      at=entry.created_at)
    summary.signals.append(fact)
    usage = summary.usage.setdefault(d["agent"], Usage(d["agent"]))
    usage.calls += 1
    usage.attempts += fact.attempts
    usage.failures += 1 if failed else 0
    usage.tokens_in += int(d.get("tokens_in", 0))
    usage.tokens_out += int(d.get("tokens_out", 0))
    usage.cost += float(d.get("cost", 0.0))
    usage.latency_ms += float(d.get("latency_ms", 0.0))
    if d.get("model"):
        usage.models.add(d["model"])
    retries = d.get("failed_attempts", [])
    if failed or retries:
        summary.failures.append({"at": entry.created_at, "what": f"agent {d['agent']}",
                                 "error": without_attempts(d.get("error"))
                                 or (retries[-1]["error"] if retries else ""),
                                 "attempts": fact.attempts, "retries": retries,
                                 "recovered": not failed, "raw": d.get("raw")})


def _escalation(summary: TraceSummary, gate: GateStory | None, entry: TraceEntry, org: Org) -> None:
    d = entry.data
    kinds = {"escalated": "escalated", "reminder": "reminder", "escalation_exhausted": "exhausted",
             "claimed": "claimed", "snoozed": "snoozed", "reassigned": "reassigned",
             "escalation_requested": "requested", "snooze_ended": "snooze ended"}
    why = d.get("why") or ""
    if entry.kind in ("claimed", "snoozed"):
        why = f"until {deadline(d.get('until'))}"
    elif entry.kind == "reassigned":
        why = f"to {org.display(str(d.get('to')))}"
    item = Escalation(at=entry.created_at, gate=d.get("gate", ""), kind=kinds[entry.kind],
                      level=d.get("level"), notify=list(d.get("notify", [])),
                      who=entry.actor if entry.actor != "baton" else None, why=why)
    summary.escalations.append(item)
    if gate is not None:
        gate.escalations.append(item)
