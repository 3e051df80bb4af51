"""A year of a company's runs, written straight into a Baton database.

Running 100,000 flows through the engine would take hours; instead the rows the engine
would have written are inserted in bulk: runs, their hash-chained trace entries (hashed
with storage.trace's own `entry_body` / `compute_hash`, so `baton trace verify` accepts
them), signals, gates, decisions and pending timers. The schema is Baton's own, created by
its migrations; the shapes of the trace data are those the engine writes (see
orchestrator/steps/, orchestrator/gating.py and orchestrator/deciding.py).

Ten flows, decided by ten teams of five approvers (bench/flows/org.yaml), spread over the
last 365 days; most runs were approved, some rejected, some needed no approval, a few
escalated, and the most recent 2% still wait at their gate.
"""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import fresh, settings
from orchestrator.bootstrap import open_database
from storage.trace import compute_hash, entry_body

TEAMS = 10
PER_TEAM = 5
REQUESTERS = ["requester", "lead", "admin"]
# shape: share of runs (the trace entries each shape writes are below)
SHAPES = {"approved": 0.55, "rejected": 0.13, "no_gate": 0.25, "escalated": 0.05, "waiting": 0.02}
OPTIONS = [{"id": "approve", "label": "Approve", "effect": "approve", "style": "primary",
            "reason_required": False},
           {"id": "reject", "label": "Reject", "effect": "reject", "style": "danger",
            "reason_required": False}]
CHAIN = {"name": "team-chain", "levels": [
    {"notify": ["role:team"], "wait_s": 14400.0, "remind_before_s": 3600.0, "can_decide": True},
    {"notify": ["role:lead"], "wait_s": 86400.0, "remind_before_s": None, "can_decide": True}],
    "repeat": 0, "final": "reject", "claim_timeout_s": 3600.0, "snooze_s": [900.0, 3600.0]}
AGENTS = ("research", "risk", "compliance")


@dataclass
class _Entry:
    """What `entry_body` reads from a TraceEntry."""

    chain: str
    seq: int
    kind: str
    actor: str
    node: str | None
    data: dict[str, Any]
    created_at: datetime


def _dt(value: datetime | None) -> str | None:
    """SQLAlchemy's SQLite DateTime storage format (UTC, no offset)."""
    return None if value is None else value.strftime("%Y-%m-%d %H:%M:%S.%f")


def _j(value: Any) -> str:
    return json.dumps(value)  # what SQLAlchemy's JSON type stores


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]


class _Table:
    def __init__(self, conn: sqlite3.Connection, name: str) -> None:
        self.conn = conn
        self.name = name
        keep_id = name in ("run", "gate", "flow_version")  # ids other rows refer to
        self.columns = [c for c in _columns(conn, name) if c != "id" or keep_id]
        self.rows: list[tuple[Any, ...]] = []
        self.sql = (f"INSERT INTO {name} ({', '.join(self.columns)}) VALUES "
                    f"({', '.join('?' for _ in self.columns)})")

    def add(self, **values: Any) -> None:
        self.rows.append(tuple(values.get(c) for c in self.columns))
        if len(self.rows) >= 20_000:
            self.flush()

    def flush(self) -> None:
        self.conn.executemany(self.sql, self.rows)
        self.rows.clear()


def generate(path: Path, runs: int, *, seed: int = 42, now: datetime | None = None) -> dict[str, int]:
    rng = random.Random(seed)
    now = now or datetime.now(UTC)  # aware, as Baton reads its datetimes back (hashes cover "+00:00")
    db = open_database(settings(fresh(path)))  # Baton's schema, from its migrations
    db.dispose()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")  # generation only; the timed code uses Baton's engine
    tables = {name: _Table(conn, name) for name in ("run", "trace_entry", "signal", "gate",
                                                    "decision", "timer", "flow_version")}
    versions = {}
    for team in range(1, TEAMS + 1):
        name = f"bench-click-{team:02d}"
        digest = hashlib.sha256(name.encode()).hexdigest()
        versions[team] = (team, name, digest)
        tables["flow_version"].add(id=team, name=name, digest=digest, source=None,
                                   created_at=_dt(now - timedelta(days=400)),
                                   definition=_j({"name": name, "title": f"Payments of team {team:02d}",
                                                  "version": 1}))
    shapes, weights = zip(*SHAPES.items(), strict=True)
    counts = {"runs": 0, "entries": 0, "gates": 0, "open_gates": 0, "decisions": 0, "signals": 0}
    gate_id = 0
    for run_id in range(1, runs + 1):
        shape = rng.choices(shapes, weights)[0]
        team = rng.randint(1, TEAMS)
        version_id, flow, digest = versions[team]
        # runs are spread over the year in id order; the waiting ones are the last week's
        age = timedelta(days=365 * (1 - run_id / runs)) + timedelta(seconds=rng.uniform(0, 60))
        if shape == "waiting":
            age = timedelta(days=rng.uniform(0, 7))
        t = now - age
        members = [f"approver{(team - 1) * PER_TEAM + i:02d}" for i in range(1, PER_TEAM + 1)]
        requester = rng.choice(REQUESTERS)
        amount = round(rng.uniform(100, 45_000), 2)
        inputs = {"vendor": f"Vendor {rng.randint(1, 5000)}", "amount": amount}
        chain = f"R-{run_id}"
        entries: list[_Entry] = []

        def trace(kind: str, data: dict[str, Any], actor: str = "baton", node: str | None = None,
                  after: float = 0.05, chain: str = chain, entries: list[_Entry] = entries) -> None:
            nonlocal t
            t += timedelta(seconds=after)
            entries.append(_Entry(chain, len(entries) + 1, kind, actor, node, data, t))

        started = t
        trace("run_started", {"flow": flow, "version": "1", "digest": digest, "requester": requester,
                              "inputs": inputs, "origin": {"kind": "slack", "channel": "C0BAPPROVE1"}},
              actor=requester, after=0)
        trace("boundary", {"boundary": "amount-limit", "check": "inputs.amount <= 50000.0",
                           "passed": True, "values": {"inputs.amount": amount}, "on_violation": "stop"},
              node="amount-limit")
        llm = rng.random() < 0.3
        for agent in AGENTS:
            verdict = "warn" if agent == "risk" and amount > 25_000 else "ok"
            data: dict[str, Any] = {"agent": agent, "kind": "llm" if llm and agent == "risk" else "rules",
                                    "status": "ok", "attempts": 1, "latency_ms": 0.5,
                                    "verdict": verdict, "severity": "medium" if verdict == "warn" else "info",
                                    "confidence": 1.0, "summary": f"{agent}: nothing unusual",
                                    "rationale": ""}
            tokens = (0, 0)
            if llm and agent == "risk":
                tokens = (rng.randint(600, 1200), rng.randint(80, 250))
                data.update({"latency_ms": round(rng.uniform(400, 2500), 3), "tokens_in": tokens[0],
                             "tokens_out": tokens[1], "cost": round(tokens[0] * 1.5e-7 + tokens[1] * 6e-7, 8),
                             "model": "gpt-4o-mini"})
            trace("signal", data, node="parallel-1", after=0.02)
            tables["signal"].add(run_id=run_id, node="parallel-1", agent=agent, agent_kind=data["kind"],
                                 status="ok", verdict=verdict, severity=data["severity"], confidence=1.0,
                                 summary=data["summary"], rationale="", evidence="[]", output="{}",
                                 error=None, attempts=1, tokens_in=tokens[0], tokens_out=tokens[1],
                                 latency_ms=data["latency_ms"], cost=data.get("cost", 0.0),
                                 model=data.get("model"), started_at=_dt(t), created_at=_dt(t))
            counts["signals"] += 1
        status, outcome, reason, finished = "succeeded", "completed", "all steps done", None
        if shape == "no_gate":
            trace("gate_skipped", {"gate": "approve", "when": "inputs.amount > 10000.0",
                                   "values": {"inputs.amount": amount},
                                   "why": "no approval needed: `inputs.amount > 10000.0` is false"},
                  node="approve")
        else:
            gate_id += 1
            opened = t + timedelta(seconds=0.05)
            deadline = opened + timedelta(hours=4)
            trace("gate_opened", {"gate": "approve", "gate_id": gate_id, "kind": "approval",
                                  "title": "Approve the payment?", "approvers": members,
                                  "approver_spec": [f"role:team{team:02d}"], "quorum": 1,
                                  "options": ["approve", "reject"],
                                  "escalation": {"chain": "team-chain", "level": 1, "notify": members,
                                                 "deadline": deadline.isoformat()}}, node="approve")
            approvers = list(members)
            level = 0
            if shape == "escalated":
                trace("reminder", {"gate": "approve", "gate_id": gate_id, "level": 1, "notify": members,
                                   "deadline": deadline.isoformat()}, node="approve", after=3 * 3600)
                trace("escalated", {"gate": "approve", "gate_id": gate_id, "chain": "team-chain",
                                    "level": 2, "cycle": 1, "notify": ["role:lead"],
                                    "added_approvers": ["lead"],
                                    "deadline": (deadline + timedelta(days=1)).isoformat(),
                                    "why": "no decision within 4h at level 1"},
                      node="approve", after=3600)
                approvers.append("lead")
                level = 1
            gate = {"id": gate_id, "run_id": run_id, "node": "approve", "visit": 1, "key": "approve",
                    "kind": "approval", "title": "Approve the payment?", "question": "",
                    "approvers": _j(sorted(approvers)), "approver_spec": _j([f"role:team{team:02d}"]),
                    "quorum": 1, "forbid_requester": 0, "reject_ends": 1, "options": _j(OPTIONS),
                    "editable": "[]", "proposal": "{}",
                    "policy": _j({"when": "inputs.amount > 10000.0", "values": {"inputs.amount": amount}}),
                    "shown": _j({"signals": [{"agent": a, "verdict": "ok", "severity": "info",
                                              "summary": f"{a}: nothing unusual", "failed": False}
                                             for a in AGENTS], "boundaries": [], "inputs": inputs}),
                    "chain": _j(CHAIN), "esc_level": level, "esc_cycle": 0,
                    "timer_token": f"{gate_id:016x}", "opened_at": _dt(opened), "version": 0}
            counts["gates"] += 1
            if shape == "waiting":
                status, outcome, reason = "waiting", None, None
                tables["gate"].add(**gate, status="open", esc_state="waiting", next_deadline=_dt(deadline))
                for kind, due in (("remind", deadline - timedelta(hours=1)), ("escalate", deadline)):
                    tables["timer"].add(run_id=run_id, gate_id=gate_id, kind=kind, due_at=_dt(due),
                                        token=gate["timer_token"], status="pending", payload="{}")
                counts["open_gates"] += 1
            else:
                who = rng.choice(approvers)
                option = "reject" if shape == "rejected" else "approve"
                waited = rng.uniform(60, 3 * 3600) if shape != "escalated" else 0.0
                why_text = "the amount matches the invoice" if option == "approve" else "duplicate invoice"
                trace("decision", {"gate": "approve", "gate_id": gate_id, "option": option,
                                   "effect": option, "reason": why_text}, actor=who, node="approve",
                      after=waited)
                word = "approved" if option == "approve" else "rejected"
                trace("gate_decided", {"gate": "approve", "gate_id": gate_id, "outcome": option,
                                       "option": option, "decided_by": [who],
                                       "why": f"{word} by {who}",
                                       "waited_s": round((t - opened).total_seconds(), 3)},
                      actor=who, node="approve", after=0)
                tables["decision"].add(gate_id=gate_id, run_id=run_id, decider=who, option=option,
                                       effect=option, reason=why_text, edits="{}", counted=1,
                                       created_at=_dt(t))
                tables["gate"].add(**gate, status="decided", outcome=option, effect=option,
                                   closed_by="person", esc_state="done", decided_at=_dt(t))
                counts["decisions"] += 1
                if option == "reject":
                    status, outcome, reason = "rejected", "rejected", f"gate 'approve': {word} by {who}"
        if status in ("succeeded",):
            trace("action_started", {"action": "pay", "call": "bench_actions:pay",
                                     "idempotency_key": f"{chain}:pay"}, node="pay")
            trace("action_done", {"action": "pay", "idempotency_key": f"{chain}:pay", "attempts": 1,
                                  "latency_ms": 120.5, "result": {"paid": amount, "key": f"{chain}:pay"}},
                  node="pay", after=0.12)
        if status != "waiting":
            trace("run_finished", {"status": status, "outcome": outcome, "why": reason,
                                   "duration_s": round((t - started).total_seconds(), 3), "steps": 4,
                                   "tokens": 0})
            finished = t
        prev = ""
        for entry in entries:
            digest_ = compute_hash(prev, entry_body(entry))  # type: ignore[arg-type]
            tables["trace_entry"].add(run_id=run_id, chain=chain, seq=entry.seq, kind=entry.kind,
                                      actor=entry.actor, node=entry.node, data=_j(entry.data),
                                      created_at=_dt(entry.created_at), hash=digest_)
            prev = digest_
        counts["entries"] += len(entries)
        tables["run"].add(id=run_id, flow_name=flow, flow_version_id=version_id, status=status,
                          requester=requester, inputs=_j(inputs), requested_inputs=_j(inputs),
                          cursor="approve" if status == "waiting" else None, steps_taken=3,
                          visits=_j({"parallel-1": 1, "approve": 1}), tokens_used=0, context="{}",
                          origin=_j({"kind": "slack", "channel": "C0BAPPROVE1"}), outcome=outcome,
                          reason=reason, trace_seq=len(entries), trace_head=prev, created_at=_dt(started),
                          updated_at=_dt(t), finished_at=_dt(finished))
        counts["runs"] += 1
    for name in ("flow_version", "run", "gate", "signal", "decision", "timer", "trace_entry"):
        tables[name].flush()
    conn.commit()
    conn.execute("ANALYZE")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return counts
