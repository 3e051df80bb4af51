"""The run engine: what its parts share, and the queries.

Its parts, one concern each: starting a run (orchestrator/starting.py), running it (the step
loop, leases, recovery: orchestrator/running.py), commands from people (orchestrator/people.py)
and timers coming due (orchestrator/wakeups.py). The engine never builds SQL: it works on
records through storage/ (storage/writer.py, storage/runs.py, storage/gates.py, ...).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import structlog

from gates.org import Org
from orchestrator import gating
from orchestrator.agents import LlmDefaults
from orchestrator.callables import CallableLoader
from orchestrator.clock import Clock, SystemClock
from orchestrator.errors import (
    BatonError,
    NotFound,
)
from orchestrator.events import DomainEvent, Notifier
from orchestrator.loader import FlowCatalog, definition, program_from_definition
from orchestrator.owners import Owners
from orchestrator.people import PeopleCommands
from orchestrator.program import Program
from orchestrator.running import Running
from orchestrator.runs import FINISHED, ONLY_PEOPLE, parse_ref
from orchestrator.runtime import Tx
from orchestrator.starting import Starting
from orchestrator.wakeups import Wakeups
from orchestrator.workers import TrackingExecutor
from storage import gates, runs
from storage.engine import Database
from storage.records import Gate, Run
from storage.writer import Writer

__all__ = ["FINISHED", "ONLY_PEOPLE", "Engine", "parse_ref"]

log = structlog.get_logger("baton.engine")


class Engine(Starting, Running, PeopleCommands, Wakeups):
    """The run engine: starting runs (orchestrator/starting.py), running them
    (orchestrator/running.py), people's commands (orchestrator/people.py) and timers
    (orchestrator/wakeups.py); here, what they share and the queries."""

    def __init__(self, db: Database, flows: FlowCatalog, org: Org, callables: CallableLoader,
                 clock: Clock | None = None, *, observers: Sequence[Notifier] = (),
                 background: bool = False, workers: int = 8, agent_concurrency: int = 8,
                 lease_ttl: timedelta = timedelta(seconds=60),
                 llm: LlmDefaults | None = None) -> None:
        self.db = db
        self.flows = flows
        self.org = org
        self.callables = callables
        self.clock: Clock = clock or SystemClock()
        self.observers = list(observers)
        self.agent_concurrency = agent_concurrency
        self.lease_ttl = lease_ttl
        self.rng = random.Random()
        self.owners = Owners()
        self._programs: dict[int, Program] = {}
        self._versions: dict[str, int] = {}
        self._pool = TrackingExecutor(workers, thread_name_prefix="baton-run") if background else None
        self.timer_hook: Callable[[int, datetime], None] | None = None
        self._held: dict[str, int] = {}  # lease owner -> run id, while its slow work runs
        self._held_lock = threading.Lock()
        self._keeper: threading.Thread | None = None
        self._keeper_stop = threading.Event()
        self.llm = llm or LlmDefaults()

    # -- plumbing ---------------------------------------------------------------------------
    def publish(self, events: list[DomainEvent]) -> None:
        """After commit: hand the transaction's events to in-process observers."""
        if not self.observers:
            return
        for event in events:
            for observer in self.observers:
                try:
                    observer.notify(event)
                except Exception:
                    log.exception("observer_failed", kind=event.kind)

    def arm_timer(self, timer_id: int | None, due: datetime) -> None:
        if self.timer_hook is not None and timer_id is not None:
            self.timer_hook(timer_id, due)

    @property
    def inline(self) -> bool:
        """Runs are advanced on the caller's thread (the CLI), not by run workers (`serve`)."""
        return self._pool is None

    @property
    def busy(self) -> bool:
        """Runs are being advanced in the background right now."""
        return self._pool is not None and self._pool.busy

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self._keeper_stop.set()

    def _schedule(self, run_id: int) -> None:
        if self._pool is not None:
            self._pool.submit(self._advance_logged, run_id)
        else:
            self.advance(run_id)

    def _advance_logged(self, run_id: int) -> None:
        try:
            self.advance(run_id)
        except Exception:
            log.exception("advance_failed", run=f"R-{run_id}")

    def program_for(self, run: Any, w: Writer | None = None) -> Program:
        """The compiled flow `run` follows. Inside a transaction pass it: taking a second
        connection while holding the write lock can wait for a pool that every other
        writer has emptied, each of them waiting for that lock (a 30 s stall, then
        "database is locked")."""
        program = self._programs.get(run.flow_version_id)
        if program is not None:
            return program
        if w is not None:
            version = runs.flow_version(w, run.flow_version_id)
        else:
            with self.db.read() as s:
                version = runs.flow_version(s, run.flow_version_id)
        assert version is not None
        try:
            current = self.flows.get(run.flow_name)
        except BatonError:
            current = None
        if current is not None and current.digest == version.digest:
            program = current
        else:
            program = program_from_definition(version.definition, version.source or "")
            program.digest = version.digest
        self._programs[run.flow_version_id] = program
        return program

    def _flow_version(self, w: Writer, program: Program, now: datetime) -> int:
        cached = self._versions.get(program.digest)
        if cached is not None:
            return cached
        version_id = runs.flow_version_id(w, program.digest)
        if version_id is None:  # stored unless another process stored it just now
            version_id = runs.store_flow_version(w, {
                "name": program.name, "digest": program.digest,
                "definition": definition(program.flow), "source": program.source,
                "created_at": now})

        def remember() -> None:  # only once committed: another thread may use it at once
            self._versions[program.digest] = version_id
            self._programs.setdefault(version_id, program)

        w.after_commit(remember)
        return version_id

    def _tx(self, w: Writer, run: Run) -> Tx:
        return Tx(w, run, self.program_for(run, w), self, self.clock.now())

    def get_run(self, ref: str | int) -> Run:
        with self.db.read() as s:
            run = runs.read_run(s, parse_ref(ref))
        if run is None:
            raise NotFound(f"no run {ref}", see="status")
        return run

    def open_gates(self, run_id: int | None = None) -> list[Gate]:
        with self.db.read() as s:
            return gates.read_open_gates(s, run_id)

    def pending_for(self, user: str) -> list[Gate]:
        """Open gates `user` may decide (never their own request under four-eyes)."""
        with self.db.read() as s:
            found = gates.read_open_gates_with_requester(s)
        return [g for g, requester in found if user in gating.eligible(g, requester)]
