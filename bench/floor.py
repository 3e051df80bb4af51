"""The storage floor: what Baton's own statements cost with none of Baton's Python around them.

After the suspend/resume benchmark, Baton's database holds every run it wrote. This replays
those runs into a fresh database with the same schema and the same connection settings
(WAL, `synchronous=NORMAL`, foreign keys on), through the bare `sqlite3` driver: per run,
the statements of Baton's three transactions (one suspend, the two of a resume: see "What
dominated the cost" in docs/benchmarks.md and `bench/profiles.py`), reads included, in the
same order and with the rows' stored values.

What it leaves out is everything else a run needs: evaluating the conditions, deciding who
may decide, building the values (JSON, SHA-256 chain, times), the action's thread, and
SQLAlchemy. So Baton's median less the floor's is what the engine's Python costs per run,
and LangGraph's median over the floor's is the most this storage design could give.

With `build=True` it also builds the values as Baton does, from Python objects and with
Baton's own encoders: the JSON columns (`storage.engine.store_json`), the times (SQLAlchemy's
SQLite DATETIME format), and each trace entry's SHA-256 over the chain (`storage.trace.
entry_hash`, around the canonical JSON of its data), which must come out equal to the hash
Baton stored.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlmodel import SQLModel

from bench.common import PhaseTimes, Timing, db_bytes, fresh
from storage import models
from storage.engine import store_json
from storage.trace import canonical_json, entry_hash

# Baton's statements, as its SQLite dialect renders them (bench/profiles.py lists them).
HALTED = "SELECT halted, halted_by, halt_reason FROM system_state WHERE id = ?"


def _columns(model: type[SQLModel]) -> str:
    """The model's columns but its id, in table order and quoted as SQLAlchemy's SQLite
    dialect quotes them: the column list of the INSERT the ORM and Core emit."""
    quote = sqlite_dialect.dialect().identifier_preparer.quote
    return ", ".join(quote(c.name) for c in model.__table__.columns if c.name != "id")  # type: ignore[attr-defined]


RUN_COLUMNS = _columns(models.Run)
GATE_COLUMNS = _columns(models.Gate)
TRACE_COLUMNS = _columns(models.TraceEntry)
EVENT_COLUMNS = _columns(models.Event)
SIGNAL_COLUMNS = _columns(models.Signal)
STEP_COLUMNS = _columns(models.StepExecution)
DECISION_COLUMNS = _columns(models.Decision)
ACTION_COLUMNS = _columns(models.Action)


def _insert(table: str, columns: str, suffix: str = "") -> str:
    marks = ", ".join("?" * len(columns.split(", ")))
    return f"INSERT INTO {table} ({columns}) VALUES ({marks}){suffix}"


INSERT_RUN = _insert("run", RUN_COLUMNS, " RETURNING id")
INSERT_GATE = _insert("gate", GATE_COLUMNS, " RETURNING id")
INSERT_TRACE = _insert("trace_entry", TRACE_COLUMNS)
INSERT_EVENT = _insert("event", EVENT_COLUMNS)
INSERT_SIGNAL = _insert("signal", SIGNAL_COLUMNS)
INSERT_STEP = _insert("step_execution", STEP_COLUMNS)
INSERT_DECISION = _insert("decision", DECISION_COLUMNS)
INSERT_ACTION = _insert("action", ACTION_COLUMNS,
                        " ON CONFLICT (idempotency_key) DO NOTHING RETURNING id")
SELECT_RUN = f"SELECT id, {RUN_COLUMNS} FROM run WHERE id = ?"
SELECT_OPEN_GATES = f"SELECT id, {GATE_COLUMNS} FROM gate WHERE run_id = ? AND status = ? ORDER BY id"
SELECT_DECISIONS = f"SELECT id, {DECISION_COLUMNS} FROM decision WHERE gate_id = ? ORDER BY id"
ANY_OPEN_GATE = "SELECT id FROM gate WHERE run_id = ? AND status = ? LIMIT ? OFFSET ?"
WAITED = ("UPDATE run SET status=?, cursor=?, steps_taken=?, visits=?, trace_seq=?, trace_head=? "
          "WHERE id = ?")
GATE_DECIDED = ("UPDATE gate SET status=?, outcome=?, effect=?, closed_by=?, esc_state=?, "
                "timer_token=?, decided_at=?, version=? WHERE id = ?")
ACTING = ("UPDATE run SET status=?, cursor=?, steps_taken=?, visits=?, lease_owner=?, lease_until=?, "
          "trace_seq=?, trace_head=?, updated_at=? WHERE id = ?")
ACTION_DONE = "UPDATE action SET status=?, result=?, finished_at=? WHERE id = ?"
FINISHED = ("UPDATE run SET status=?, cursor=?, outcome=?, reason=?, lease_owner=?, lease_until=?, "
            "trace_seq=?, trace_head=?, updated_at=?, finished_at=? WHERE id = ?")

# How one run of bench/flows/bench-approval.yaml splits its rows between its transactions:
# trace entries (by seq), events and step records (by id) in the suspend, then in the
# resume's first transaction (the decision), then in its second (the action's result).
SPLIT = {"trace_entry": (5, 3, 2), "event": (2, 1, 1), "step_execution": (2, 0, 1)}


@dataclass
class Run:
    """One stored run's rows, as the replay writes them."""

    row: dict[str, Any]
    gate: dict[str, Any]
    decision: dict[str, Any]
    action: dict[str, Any]
    signals: list[dict[str, Any]]
    parts: dict[str, tuple[list[dict[str, Any]], ...]]  # SPLIT's tables, per transaction
    replayed_id: int = 0
    replayed_gate: int = 0
    replayed_action: int = 0
    head: str = ""  # the trace chain's head so far (build mode)


@dataclass
class Result:
    n: int
    built: bool  # the values built as Baton builds them, or replayed as stored
    times: PhaseTimes = field(default_factory=PhaseTimes)
    bytes_per_run: float = 0.0

    @property
    def name(self) -> str:
        return "floor, values built" if self.built else "floor"

    def timings(self) -> dict[str, Timing]:
        return self.times.timings()


_DATETIME = sqlite_dialect.DATETIME()


def _rows(source: sqlite3.Connection, table: str, decode: bool) -> dict[int, list[dict[str, Any]]]:
    """Every row of `table` by run id, in id order; with `decode`, its JSON and DATETIME
    columns as the Python values Baton holds before writing them."""
    types = {name: kind for _, name, kind, *_ in source.execute(f"PRAGMA table_info({table})")}
    to_time = _DATETIME.result_processor(sqlite_dialect.dialect(), None)
    by_run: dict[int, list[dict[str, Any]]] = {}
    for found in source.execute(f"SELECT * FROM {table} ORDER BY id"):
        row = dict(found)
        if decode:
            for name, value in row.items():
                if value is not None and types[name] == "JSON":
                    row[name] = _Json(json.loads(value))
                elif value is not None and types[name] == "DATETIME":
                    row[name] = to_time(value).replace(tzinfo=UTC)  # stored as naive UTC
        by_run.setdefault(row["id"] if table == "run" else row["run_id"], []).append(row)
    return by_run


@dataclass(frozen=True)
class _Json:
    """A JSON column's value, encoded when written (build mode)."""

    value: Any


@dataclass(frozen=True)
class Schema:
    """Baton's tables and indexes, and the few rows every run refers to."""

    statements: list[str]
    seeds: list[tuple[str, list[tuple[Any, ...]]]]


def load(baton_db: Path, *, decode: bool = False) -> tuple[Schema, list[Run]]:
    """The schema (tables and indexes, as Baton created them) and every finished run."""
    source = sqlite3.connect(baton_db)
    source.row_factory = sqlite3.Row
    try:
        schema = [sql for (sql,) in source.execute(
            "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' "
            "ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'index' THEN 1 ELSE 2 END, rowid")]
        # tables, then their indexes, then the triggers that write one table from another
        # (storage.models.GateApprover): the floor's writes do in SQLite what Baton's do
        tables = {t: _rows(source, t, decode) for t in ("run", "gate", "decision", "action", "signal",
                                                "trace_entry", "event", "step_execution")}
        system_state = [tuple(r) for r in source.execute("SELECT * FROM system_state")]
        flow_versions = [tuple(r) for r in source.execute("SELECT * FROM flow_version")]
    finally:
        source.close()
    runs = []
    for run_id, (row,) in tables["run"].items():
        if row["status"] != "succeeded":
            raise AssertionError(f"R-{run_id} did not finish ({row['status']}): nothing to replay")
        parts: dict[str, tuple[list[dict[str, Any]], ...]] = {}
        for table, counts in SPLIT.items():
            found = tables[table].get(run_id, [])
            if table == "trace_entry":
                found = sorted(found, key=lambda r: r["seq"])
            if len(found) != sum(counts):
                raise AssertionError(f"R-{run_id} has {len(found)} {table} rows, not {sum(counts)}: "
                                     "bench/flows/bench-approval.yaml changed; update SPLIT")
            cut = [sum(counts[:i]) for i in range(4)]
            parts[table] = tuple(found[cut[i]:cut[i + 1]] for i in range(3))
        (gate,), (decision,), (action,) = (tables[t][run_id] for t in ("gate", "decision", "action"))
        runs.append(Run(row, gate, decision, action, tables["signal"][run_id], parts))
    seeds = [("system_state", system_state), ("flow_version", flow_versions)]
    return Schema(schema, seeds), runs


_TIME = _DATETIME.bind_processor(sqlite_dialect.dialect())


def _encoded(value: Any) -> Any:
    if isinstance(value, _Json):
        return store_json(value.value)
    if isinstance(value, datetime):
        return _TIME(value)
    return value


def _values(row: dict[str, Any], columns: str, **changed: Any) -> tuple[Any, ...]:
    return tuple(_encoded(changed[c] if c in changed else row[c.strip('"')])
                 for c in columns.split(", "))


def _trace(run: Run, entries: list[dict[str, Any]], build: bool) -> list[tuple[Any, ...]]:
    """The INSERT values of `entries`; building, each hash computed over the chain."""
    if not build:
        return [_values(r, TRACE_COLUMNS, run_id=run.replayed_id) for r in entries]
    found = []
    for r in entries:
        digest = entry_hash(run.head, r["chain"], r["seq"], r["kind"], r["actor"], r["node"],
                            canonical_json(r["data"].value), r["created_at"])
        if digest != r["hash"]:
            raise AssertionError(f"{r['chain']} #{r['seq']}: the rebuilt hash differs from Baton's")
        run.head = digest
        found.append(_values(r, TRACE_COLUMNS, run_id=run.replayed_id, hash=digest))
    return found


def _head(entries: list[dict[str, Any]]) -> tuple[int, str]:
    return entries[-1]["seq"], entries[-1]["hash"]


class Replay:
    """Baton's transactions for stored runs, through one bare `sqlite3` connection."""

    def __init__(self, path: Path, schema: Schema, *, build: bool = False) -> None:
        self.build = build
        self.conn = sqlite3.connect(fresh(path), isolation_level=None, check_same_thread=False)
        for pragma in ("busy_timeout = 30000", "journal_mode = WAL", "synchronous = NORMAL",
                       "foreign_keys = ON"):  # storage/engine.py's
            self.conn.execute(f"PRAGMA {pragma}")
        self.conn.execute("BEGIN")
        for sql in schema.statements:
            self.conn.execute(sql)
        for table, rows in schema.seeds:
            if rows:
                marks = ", ".join("?" * len(rows[0]))
                self.conn.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
        self.conn.execute("COMMIT")

    def suspend(self, run: Run) -> None:
        c = self.conn
        traces, events, steps = (run.parts[t][0] for t in SPLIT)
        c.execute("BEGIN IMMEDIATE")
        c.execute(HALTED, (1,)).fetchone()
        run.replayed_id = c.execute(INSERT_RUN, _values(
            run.row, RUN_COLUMNS, status="running", cursor="parallel-1", steps_taken=0, visits="{}",
            outcome=None, reason=None, trace_seq=0, trace_head="", finished_at=None,
            updated_at=run.row["created_at"])).fetchone()[0]
        rid = run.replayed_id
        run.replayed_gate = c.execute(INSERT_GATE, _values(
            run.gate, GATE_COLUMNS, run_id=rid, status="open", outcome=None, effect=None,
            closed_by=None, esc_state=None, decided_at=None, version=0)).fetchone()[0]
        c.executemany(INSERT_TRACE, _trace(run, traces, self.build))
        c.executemany(INSERT_EVENT, [_values(r, EVENT_COLUMNS, run_id=rid, delivered_at=None)
                                     for r in events])
        c.executemany(INSERT_SIGNAL, [_values(r, SIGNAL_COLUMNS, run_id=rid) for r in run.signals])
        c.executemany(INSERT_STEP, [_values(r, STEP_COLUMNS, run_id=rid) for r in steps])
        seq, head = _head(traces)
        c.execute(WAITED, ("waiting", run.gate["node"], 2, _encoded(run.row["visits"]), seq, head, rid))
        c.execute("COMMIT")

    def resume(self, run: Run) -> None:
        c, rid, gate = self.conn, run.replayed_id, run.gate
        # the decision, the gate's closing and the action's start
        traces, events, _ = (run.parts[t][1] for t in SPLIT)
        c.execute("BEGIN IMMEDIATE")
        c.execute(SELECT_RUN, (rid,)).fetchone()
        c.execute(SELECT_OPEN_GATES, (rid, "open")).fetchall()
        c.execute(SELECT_DECISIONS, (run.replayed_gate,)).fetchall()
        c.execute(INSERT_DECISION, _values(run.decision, DECISION_COLUMNS, gate_id=run.replayed_gate,
                                           run_id=rid))
        c.execute(HALTED, (1,)).fetchone()
        run.replayed_action = c.execute(INSERT_ACTION, _values(
            run.action, ACTION_COLUMNS, run_id=rid, status="started", result="{}",
            finished_at=None)).fetchone()[0]
        c.executemany(INSERT_TRACE, _trace(run, traces, self.build))
        c.executemany(INSERT_EVENT, [_values(r, EVENT_COLUMNS, run_id=rid, delivered_at=None)
                                     for r in events])
        c.execute(GATE_DECIDED, (*_values(gate, "status, outcome, effect, closed_by, esc_state, "
                                                "timer_token, decided_at, version"), run.replayed_gate))
        seq, head = _head(traces)
        at = _encoded(run.row["updated_at"])
        c.execute(ACTING, ("running", run.action["node"], 3, _encoded(run.row["visits"]), "replay",
                           at, seq, head, at, rid))
        c.execute("COMMIT")
        # the action's result and the run's end
        traces, events, steps = (run.parts[t][2] for t in SPLIT)
        c.execute("BEGIN IMMEDIATE")
        c.execute(SELECT_RUN, (rid,)).fetchone()
        c.execute(ACTION_DONE, (*_values(run.action, "status, result, finished_at"),
                                run.replayed_action))
        c.execute(ANY_OPEN_GATE, (rid, "open", 1, 0)).fetchall()
        c.executemany(INSERT_TRACE, _trace(run, traces, self.build))
        c.executemany(INSERT_STEP, [_values(r, STEP_COLUMNS, run_id=rid) for r in steps])
        c.executemany(INSERT_EVENT, [_values(r, EVENT_COLUMNS, run_id=rid, delivered_at=None)
                                     for r in events])
        seq, head = _head(traces)
        c.execute(FINISHED, (*_values(run.row, "status, cursor, outcome, reason, lease_owner, "
                                               "lease_until"), seq, head, _encoded(run.row["updated_at"]),
                             _encoded(run.row["finished_at"]), rid))
        c.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()


def run(baton_db: Path, path: Path, warmup: int, *, build: bool = False) -> Result:
    """Replay the runs of `baton_db` into a fresh database at `path`: the first `warmup`
    untimed, then every other one started (suspend), then each decided (resume), as the
    benchmark did them. With `build`, the values are built as Baton builds them."""
    schema, runs = load(baton_db, decode=build)
    replay = Replay(path, schema, build=build)
    try:
        for stored in runs[:warmup]:
            replay.suspend(stored)
            replay.resume(stored)
        baseline = db_bytes(path)
        timed = runs[warmup:]
        result = Result(len(timed), build)
        for stored in timed:
            result.times.timed("suspend", lambda s=stored: replay.suspend(s))
        for stored in timed:
            result.times.timed("resume", lambda s=stored: replay.resume(s))
        result.bytes_per_run = (db_bytes(path) - baseline) / max(1, len(timed))
    finally:
        replay.close()
    return result
