"""The durable, in-process run engine.

A run's position is a node key in the database. `advance` moves a run forward one step
at a time, each step inside a write transaction on the locked run row; slow work
(agents, actions) happens between two transactions, never inside one. When a run reaches
a gate it is marked `waiting` and nothing of it stays in memory: no thread, no task. A
decision, a timer or a restart picks it up from the database.

Who advances a run is recorded as a lease on the run row, so two workers (threads,
processes, replicas) never execute the same run at once, and a run whose worker died is
taken over.
"""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

import structlog

from gates.durations import parse_duration
from gates.options import Refusal
from gates.org import Org, is_service
from orchestrator import claims, external, gating, steps
from orchestrator.agents import LlmDefaults
from orchestrator.agents.base import (
    AgentFailure,
    AgentResult,
    Attempt,
    validate_output,
)
from orchestrator.agents.endpoints import SetupProblem, explain, setup_problems
from orchestrator.callables import CallableLoader
from orchestrator.clock import Clock, SystemClock
from orchestrator.errors import (
    BatonError,
    Conflict,
    Forbidden,
    InputError,
    NotFound,
    SetupError,
    Unavailable,
)
from orchestrator.events import DomainEvent, Notifier, emit
from orchestrator.failpoints import crash_point
from orchestrator.gating import DecisionReport
from orchestrator.inputs import parse_inputs
from orchestrator.loader import FlowCatalog, definition, program_from_definition
from orchestrator.owners import Owners
from orchestrator.program import Node, Program
from orchestrator.runtime import Finish, Goto, Hold, Transition, Tx, Wait, Work
from orchestrator.spec import ExternalAgent
from orchestrator.text import well_formed
from orchestrator.workers import TrackingExecutor
from storage import gates, runs, timers, trace
from storage.engine import Database
from storage.records import Gate, Run, Timer
from storage.runs import halt_state
from storage.writer import Writer

log = structlog.get_logger("baton.engine")

T = TypeVar("T")
FINISHED = frozenset({"succeeded", "rejected", "stopped", "failed"})
ONLY_PEOPLE = ("only people decide, claim, snooze or reassign gates; a service (an agent) "
               "starts runs, submits signals and reports results")
_REF = re.compile(r"^\s*(?:R-?)?(\d+)\s*$", re.IGNORECASE)


def parse_ref(ref: str | int) -> int:
    if isinstance(ref, int):
        return ref
    match = _REF.match(ref)
    if not match:
        raise BatonError(f"{ref!r} is not a run id; run ids look like R-42")
    digits = match.group(1).lstrip("0") or "0"
    # no database holds an id this large (and int() refuses text of over 4,300 digits)
    if len(digits) > 19 or int(digits) > 2**63 - 1:
        raise NotFound(f"no run {ref.strip()[:40]}", see="status")
    return int(digits)


def _internal(node: Node | None, exc: Exception) -> str:
    return f"internal error at step {node.key if node else '?'}: {type(exc).__name__}: {exc}"


class _LaterStepCrashed(Exception):
    """A later step of a shared transaction crashed (`Engine._isolate_on_crash`)."""

    def __init__(self, step: str) -> None:
        super().__init__(step)
        self.step = step


@dataclass
class _Carry:
    """A run an inline engine advanced in the transaction that made it runnable: its slow
    work, done once that transaction has committed (`Engine._carry_on`)."""

    engine: Engine
    run_id: int
    owner: str
    started: datetime
    node: Node | None = None
    work: Work | None = None

    def __call__(self) -> None:
        try:
            crash_point("step.committed")
            with structlog.contextvars.bound_contextvars(run=f"R-{self.run_id}"):
                self.engine._work(self.run_id, self.owner, self.node, self.work, self.started)
        finally:
            self.abandon()

    def abandon(self) -> None:
        """The transaction did not commit, or the work is done: the lease owner is free."""
        self.engine.owners.release(self.owner)


class Engine:
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
            version = runs.flow_version(w.conn, run.flow_version_id)
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

    # -- starting ---------------------------------------------------------------------------
    def start_run(self, flow_name: str, inputs: Mapping[str, Any], requester: str,
                  origin: Mapping[str, Any] | None = None, request_key: str | None = None) -> Run:
        """Validate and start a run; in the CLI it is advanced before this returns.

        With a `request_key` (the Slack request that asked for it) a run starts once, however
        often the request is processed (a retry, a replica finishing a dead one's work)."""
        if request_key is not None:
            existing = self._run_for_request(request_key)
            if existing is not None:
                return existing
        program = self.flows.get(flow_name)
        flow = program.flow
        if flow.requesters and requester not in self.org.resolve_many(flow.requesters):
            raise Forbidden(f"you may not start {flow.name}; it may be started by: "
                             + ", ".join(flow.requesters))
        if (origin or {}).get("kind") != "api" and external.performed_by_caller(program):
            raise InputError(f"{flow.name} ends with an action its caller performs (an agent "
                             "with an API token, docs/api.md): start it through the API, which "
                             "gives the caller the approval and takes its report")
        values = parse_inputs(flow, inputs)
        self.check_setup(program)
        now = self.clock.now()
        origin = dict(origin or {})
        run, carry = self._isolate_on_crash(partial(
            self._insert_run, program, values, requester, origin, request_key, now))
        if run is None:
            assert request_key is not None
            found = self._run_for_request(request_key)
            assert found is not None
            return found
        assert run.id is not None
        if carry is not None:
            carry()
        else:
            self._schedule(run.id)
        return run

    def setup_report(self) -> dict[str, list[SetupProblem]]:
        """Every valid flow's setup problems now (`baton serve` at start-up, /metrics)."""
        flows, _ = self.flows.load_all()
        return {name: setup_problems(program.flow, self.llm.model, self.llm.reach)
                for name, program in flows.items()}

    def check_setup(self, program: Program) -> None:
        """Refuse to start a run whose llm agents cannot work on this server (a key that is
        not set, a server or key the settings do not allow), before anyone is asked anything."""
        problems = setup_problems(program.flow, self.llm.model, self.llm.reach)
        if problems:
            log.warning("run_refused_setup", flow=program.name,
                        problems=[str(p) for p in problems])
            raise SetupError(explain(program.name, problems))

    def _insert_run(self, program: Program, values: dict[str, Any], requester: str,
                    origin: dict[str, Any], request_key: str | None, now: datetime,
                    isolated: bool) -> tuple[Run | None, _Carry | None]:
        """The transaction that starts a run (None: the same request started it elsewhere),
        and, inline, takes it as far as it goes without slow work (`_carry_on`)."""
        flow = program.flow
        carry: _Carry | None = None
        try:
            with self.db.writer() as w:
                state = halt_state(w)
                if state.halted:
                    raise Unavailable(
                        f"Baton is halted (emergency stop by {self.org.display(state.halted_by or '?')}"
                        + (f": {state.halt_reason}" if state.halt_reason else "")
                        + "); no new runs start until an admin resumes Baton")
                version_id = self._flow_version(w, program, now)
                row = {"flow_name": flow.name, "flow_version_id": version_id,
                       "status": "running", "requester": requester, "inputs": values,
                       "requested_inputs": dict(values), "cursor": program.start,
                       "origin": origin, "created_at": now, "updated_at": now,
                       "request_key": request_key}
                run = runs.insert_run(w, row)  # None: the same request, started elsewhere
                if run is not None:
                    tx = Tx.new_run(w, run, program, self, now)
                    tx.trace("run_started", {"flow": flow.name, "version": str(flow.version),
                                             "digest": program.digest, "requester": requester,
                                             "inputs": values, "origin": origin}, actor=requester)
                    tx.emit("run_started", {"flow": flow.name, "title": flow.title,
                                            "requester": requester, "inputs": values,
                                            "origin": origin})
                    log.info("run_started", run=run.ref, flow=flow.name, requester=requester)
                    carry = self._carry_on(tx, isolated=isolated)
        except BaseException:
            if carry is not None:  # it did not commit
                carry.abandon()
            raise
        return run, carry

    def _run_for_request(self, request_key: str) -> Run | None:
        with self.db.read() as s:
            return runs.run_for_request(s, request_key)

    # -- running ----------------------------------------------------------------------------
    def _lease_free(self, run: Run, owner: str, now: datetime) -> bool:
        if not run.lease_owner or run.lease_owner == owner:
            return True
        if run.lease_until is not None and run.lease_until <= now:
            return True
        return self.owners.dead(run.lease_owner)

    @contextmanager
    def _heartbeat(self, run_id: int, owner: str) -> Iterator[None]:
        """Keep the lease alive while slow work runs outside a transaction. One keeper thread
        per engine renews every lease held: a step starts no thread of its own."""
        with self._held_lock:
            self._held[owner] = run_id
            if self._keeper is None:
                self._keeper = threading.Thread(target=self._keep_leases, daemon=True,
                                                name="baton-lease")
                self._keeper.start()
        try:
            yield
        finally:
            with self._held_lock:
                self._held.pop(owner, None)

    def _keep_leases(self) -> None:
        interval = max(0.05, self.lease_ttl.total_seconds() / 3)
        while not self._keeper_stop.wait(interval):
            with self._held_lock:
                held = list(self._held.items())
            if not held:
                continue
            try:
                with self.db.writer() as w:
                    runs.renew_leases(w, held, self.clock.now() + self.lease_ttl)
            except Exception:
                log.exception("lease_renewal_failed")

    def advance(self, run_id: int) -> None:
        """Execute steps until the run waits, finishes, or belongs to another worker."""
        owner = self.owners.take()
        try:
            with structlog.contextvars.bound_contextvars(run=f"R-{run_id}"):
                while self._step(run_id, owner):
                    pass
        finally:
            self.owners.release(owner)

    def _step(self, run_id: int, owner: str) -> bool:
        """Advance the run, as many steps per transaction as settle there (gates, boundaries,
        conflicts, rules agents); slow work (other agents, actions) runs between two
        transactions. Returns True when the run should be looked at again."""

        def attempt(isolated: bool) -> tuple[Node | None, Work | None, datetime] | None:
            with self.db.writer() as w:
                run = runs.lock_run(w, run_id)
                if run is None or run.status != "running":
                    return None
                tx = self._tx(w, run)
                if not self._lease_free(run, owner, tx.now):
                    return None
                run.lease_owner, run.lease_until = owner, tx.now + self.lease_ttl
                node, work = self._chain(tx, first=True, isolated=isolated)
                return node, work, tx.now

        try:
            begun = self._isolate_on_crash(attempt)
            if begun is None:
                return False
            crash_point("step.committed")
        except Exception as exc:
            log.exception("step_crashed", step=None)
            self._fail(run_id, owner, None, exc)
            return False
        self._work(run_id, owner, *begun)
        return False

    def _work(self, run_id: int, owner: str, node: Node | None, work: Work | None,
              started: datetime) -> None:
        """Do `node`'s slow work outside any transaction, record its result in a new one and
        go on, until the run waits, finishes, or reaches no more slow work."""
        try:
            while work is not None:
                assert node is not None
                with structlog.contextvars.bound_contextvars(step=node.key), \
                        self._heartbeat(run_id, owner):
                    outcome = work.fn()
                went_on = self._isolate_on_crash(
                    partial(self._record_work, run_id, owner, node, work, outcome, started))
                if went_on is None:
                    return
                node, work, started = went_on
                crash_point("step.committed")
        except Exception as exc:
            log.exception("step_crashed", step=node.key if node else None)
            self._fail(run_id, owner, node, exc)

    def _record_work(self, run_id: int, owner: str, node: Node, work: Work, outcome: Any,
                     started: datetime, isolated: bool,
                     ) -> tuple[Node | None, Work | None, datetime] | None:
        """The transaction after `node`'s slow work: its result, then the steps after it."""
        with self.db.writer() as w:
            run = runs.lock_run(w, run_id)
            if run is None or run.status != "running" or run.lease_owner != owner:
                log.warning("step_result_discarded", step=node.key,
                            status=run.status if run else None)
                return None
            tx = self._tx(w, run)
            next_node, next_work = node, None
            if self._apply(tx, node, work.finish(tx, outcome), started):
                next_node, next_work = self._chain(tx, first=False, isolated=isolated)
            return next_node, next_work, tx.now

    def _carry_on(self, tx: Tx, *, isolated: bool) -> _Carry | None:
        """Inline engine (the CLI): advance the run that `tx` has just made runnable in that
        same transaction, rather than committing and opening another to begin its next step.
        Its steps are later steps of the transaction (see `_chain`): a step that crashes
        fails the run there, and what made the run runnable still commits.
        Returns what to do once the transaction has committed (the slow work, if any), or
        None in background mode, where a run worker takes the run over."""
        if self._pool is not None:
            return None
        run = tx.run
        assert run.id is not None
        carry = _Carry(self, run.id, self.owners.take(), tx.now)
        try:
            run.lease_owner, run.lease_until = carry.owner, tx.now + self.lease_ttl
            with structlog.contextvars.bound_contextvars(run=run.ref):
                carry.node, carry.work = self._chain(tx, first=False, isolated=isolated)
        except BaseException:
            carry.abandon()
            raise
        return carry

    def _isolate_on_crash(self, attempt: Callable[[bool], T]) -> T:
        """Run the write transaction `attempt(isolated=False)`, whose later steps share it
        with nothing around each. Should one of them crash (rare: an internal error), the
        whole transaction has rolled back; it is then run again with each later step in a
        savepoint (`isolated=True`), so that the run fails at that step and everything
        before it commits. A savepoint per step on every transaction would cost more than
        the steps."""
        try:
            return attempt(False)
        except _LaterStepCrashed as crash:
            log.info("transaction_redone_isolated", step=crash.step)
            return attempt(True)

    def _chain(self, tx: Tx, *, first: bool, isolated: bool) -> tuple[Node | None, Work | None]:
        """Settle steps in `tx` until the run waits or finishes (no work), or reaches slow
        work, returned to be done outside the transaction. A crash in the `first` step
        propagates; in a later one, see `_isolate_on_crash`."""
        run = tx.run
        node: Node | None = None
        while True:
            if run.cursor is None:
                self._apply(tx, None, Finish("succeeded", "completed", "all steps done"), tx.now)
                return node, None
            node = tx.node(run.cursor)
            if first:
                first = False
                work, go_on = self._begin(tx, node)
            elif not isolated:
                try:
                    work, go_on = self._begin(tx, node)
                except Exception as exc:
                    raise _LaterStepCrashed(node.key) from exc
            else:
                # if this step crashes, what the earlier steps did still commits, and the
                # run fails at this step
                try:
                    with tx.w.savepoint():
                        work, go_on = self._begin(tx, node)
                except Exception as exc:
                    log.exception("step_crashed", step=node.key)
                    self._finish(tx, Finish("failed", "error", _internal(node, exc)))
                    return node, None
            if work is not None or not go_on:
                return node, work

    def _begin(self, tx: Tx, node: Node) -> tuple[Work | None, bool]:
        """Begin `node`: the slow work to do outside the transaction (or None), and whether
        the run goes on."""
        run = tx.run
        started = tx.now
        guard = steps.check_limits(tx, node)
        if guard is not None:
            self._apply(tx, node, guard, started)
            return None, False
        run.steps_taken += 1
        run.visits = {**run.visits, node.key: int(run.visits.get(node.key, 0)) + 1}
        with structlog.contextvars.bound_contextvars(flow=run.flow_name, step=node.key):
            result = steps.begin(tx, node)
            if isinstance(result, Work) and result.inline:
                result = result.finish(tx, result.fn())
        if isinstance(result, Work):
            return result, True
        return None, self._apply(tx, node, result, started)

    def _apply(self, tx: Tx, node: Node | None, transition: Transition,
               started: datetime) -> bool:
        """Record where the run goes after `node`. Returns True to keep stepping."""
        run = tx.run
        run.updated_at = tx.now
        if node is not None:
            status = {Goto: "done", Wait: "waiting", Hold: "held", Finish: "done"}[type(transition)]
            runs.record_step(tx.w, run.id, node.key, node.kind, int(run.visits.get(node.key, 1)),
                             status, started, tx.now)
        if isinstance(transition, Goto):
            run.cursor = transition.node
            run.status = "running"
            return True
        run.lease_owner, run.lease_until = None, None
        if isinstance(transition, Wait):
            run.status = "waiting"
        elif isinstance(transition, Hold):
            run.status = "held"
            tx.trace("run_held", {"why": transition.reason}, node=node.key if node else None)
            tx.emit("run_held", {"why": transition.reason})
        else:
            self._finish(tx, transition)
        return False

    def _finish(self, tx: Tx, finish: Finish, actor: str = "baton") -> None:
        run = tx.run
        if run.status == "waiting" and run.cursor in tx.program.nodes \
                and tx.program.nodes[run.cursor].kind == "external":
            external.withdraw(tx, run.cursor)  # stopped while its caller was to act
        # Usually the run has no open gate left: ask the table first. Loading the gates would
        # first write the rows queued so far (as every read in a write transaction does),
        # and the rest at commit: two INSERTs per table instead of one.
        still_open = gates.open_gates(tx.w, run.id) if gates.has_open_gate(tx.w, run.id) else []
        for gate in still_open:
            if gate.status != "open":  # closed in this transaction
                continue
            gating.cancel_timers(tx, gate)
            gate.status = "cancelled"
            gate.next_deadline = None
        run.status = finish.status
        run.outcome = finish.outcome
        run.reason = finish.reason
        run.finished_at = tx.now
        run.lease_owner, run.lease_until = None, None
        if finish.status == "failed":
            run.error = finish.reason
        data = {"status": finish.status, "outcome": finish.outcome, "why": finish.reason,
                "duration_s": round((tx.now - run.created_at).total_seconds(), 3),
                "steps": run.steps_taken, "tokens": run.tokens_used}
        tx.trace("run_finished", data, actor=actor)
        kind = {"failed": "run_failed", "stopped": "run_stopped"}.get(finish.status, "run_finished")
        tx.emit(kind, data)
        log.info("run_finished", run=run.ref, status=finish.status, why=finish.reason)

    def _fail(self, run_id: int, owner: str, node: Node | None, exc: Exception) -> None:
        with self.db.writer() as w:
            run = runs.lock_run(w, run_id)
            if run is None or run.status in FINISHED:
                return
            if run.status == "running" and run.lease_owner not in (None, owner):
                return
            tx = self._tx(w, run)
            self._finish(tx, Finish("failed", "error", _internal(node, exc)))

    def recover(self) -> list[str]:
        """Continue runs a dead worker left mid-step, and runs whose decision was recorded
        but not yet acted on. Called on start and periodically by the server."""
        now = self.clock.now()
        with self.db.read() as s:
            running = runs.runs_with_status(s, "running")
        resumed = []
        for run in running:
            if run.lease_owner is None or self._lease_free(run, "-", now):
                resumed.append(run.ref)
                assert run.id is not None
                self._schedule(run.id)
        if resumed:
            log.info("runs_recovered", runs=resumed)
        return resumed

    # -- people -------------------------------------------------------------------------------
    def _open_gate(self, w: Writer, run: Run, gate_key: str | None) -> Gate:
        found_open = gates.open_gates(w, run.id)
        if gate_key is not None:
            wanted = [g for g in found_open if g.key == gate_key or str(g.id) == str(gate_key)]
            if not wanted:
                closed = [g for g in gates.gates_newest_first(w, run.id)
                          if g.key == gate_key or str(g.id) == str(gate_key)]
                if closed:
                    state = (f"already decided ({closed[0].outcome})" if closed[0].status == "decided"
                             else "closed: the run ended")
                    raise Refusal(f"gate '{closed[0].key}' of {run.ref} is {state}")
                open_keys = ", ".join(g.key for g in found_open) or "none"
                raise Refusal(f"{run.ref} has no open gate {gate_key!r}; open gates: {open_keys}")
            found_open = wanted
        if not found_open:
            state = run.status if run.status != "running" else "running (not at a gate)"
            raise Refusal(f"{run.ref} has no open gate to decide; it is {state}")
        if len(found_open) > 1:
            raise Refusal(f"{run.ref} has several open gates: "
                          + ", ".join(g.key for g in found_open) + "; say which one (--gate)")
        found = gates.lock_gate(w, found_open[0].id)
        assert found is not None
        return found

    def _run_for_update(self, w: Writer, ref: str | int) -> Run:
        run = runs.lock_run(w, parse_ref(ref))
        if run is None:
            raise NotFound(f"no run {ref}", see="status")
        return run

    def _refused(self, tx: Tx, action: str, user: str, why: str, **data: Any) -> None:
        tx.trace("refused", {"action": action, "why": why, **data}, actor=user)

    def _resume_after(self, tx: Tx, transition: Transition | None) -> bool:
        """Apply what a closed gate or fired timer says; True if the run should advance."""
        if transition is None:
            return False
        if isinstance(transition, Goto):
            tx.run.status = "running"
            tx.run.cursor = transition.node
            tx.run.updated_at = tx.now
            return True
        if isinstance(transition, Finish):
            self._finish(tx, transition)
        return False

    def decide(self, ref: str | int, user: str, option: str, *, reason: str | None = None,
               edits: Mapping[str, Any] | None = None, gate: str | None = None) -> DecisionReport:
        """Record one person's decision. Refusals are traced and change nothing else."""
        reason, edits = well_formed(reason), well_formed(edits)
        report, resume, carry = self._isolate_on_crash(partial(
            self._record_decision, ref, user, option, reason, edits, gate))
        crash_point("decision.committed")
        if carry is not None:
            carry()
        elif resume:
            self._schedule(parse_ref(report.run))
        return report

    def _record_decision(self, ref: str | int, user: str, option: str, reason: str | None,
                         edits: Mapping[str, Any] | None, gate: str | None, isolated: bool,
                         ) -> tuple[DecisionReport, bool, _Carry | None]:
        """The transaction of a decision: the report, whether the run goes on, and, inline,
        how far it went in the same transaction (`_carry_on`)."""
        carry: _Carry | None = None
        try:
            with self.db.writer() as w:
                run = self._run_for_update(w, ref)
                tx = self._tx(w, run)
                if run.status in FINISHED:
                    why = f"{run.ref} already finished ({run.status}: {run.reason})"
                    self._refused(tx, "decide", user, why, option=option)
                    return DecisionReport("refused", why, run.ref), False, None
                if is_service(user):
                    self._refused(tx, "decide", user, ONLY_PEOPLE, option=option)
                    return DecisionReport("refused", ONLY_PEOPLE, run.ref), False, None
                try:
                    found = self._open_gate(w, run, gate)
                except Refusal as exc:
                    self._refused(tx, "decide", user, str(exc), option=option)
                    return DecisionReport("refused", str(exc), run.ref), False, None
                report, transition = gating.record_decision(tx, found, user, option, reason, edits)
                with structlog.contextvars.bound_contextvars(run=report.run):
                    log.info("decision", gate=report.gate, by=user, option=option,
                             status=report.status, why=None if report.ok else report.message)
                resume = self._resume_after(tx, transition)
                if resume:
                    carry = self._carry_on(tx, isolated=isolated)
        except BaseException:
            if carry is not None:  # it did not commit
                carry.abandon()
            raise
        return report, resume, carry

    def report_external(self, ref: str | int, by: str, report: external.Report) -> Run:
        """Record the caller's report of an external action it performed. Refusals (a second
        report, other arguments, nothing approved) are traced and raise Conflict."""
        report = external.Report(report.approval, well_formed(dict(report.arguments)),
                                 report.outcome, well_formed(report.result),
                                 well_formed(report.error))
        refused, resume, carry, run = self._isolate_on_crash(partial(
            self._record_report, ref, by, report))
        if refused is not None:
            raise (Unavailable if refused.later else Conflict)(refused.message)
        if carry is not None:
            carry()
        elif resume:
            self._schedule(parse_ref(ref))
        return run

    def _record_report(self, ref: str | int, by: str, report: external.Report, isolated: bool,
                       ) -> tuple[external.ReportRefused | None, bool, _Carry | None, Run]:
        carry: _Carry | None = None
        try:
            with self.db.writer() as w:
                run = self._run_for_update(w, ref)
                tx = self._tx(w, run)
                outcome = external.record_report(tx, report, by)
                if isinstance(outcome, external.ReportRefused):
                    return outcome, False, None, run
                log.info("external_reported", run=run.ref, by=by, outcome=report.outcome)
                resume = self._resume_after(tx, outcome)
                if resume:
                    carry = self._carry_on(tx, isolated=isolated)
        except BaseException:
            if carry is not None:  # it did not commit
                carry.abandon()
            raise
        return None, resume, carry, run

    def submit_signal(self, ref: str | int, agent: str, output: Mapping[str, Any], by: str) -> str:
        """Record an external agent's signal; a conflict settling for it continues once every
        signal it compares is in."""
        output = well_formed(dict(output))
        refusal = None
        refusal_kind: type[BatonError] = BatonError
        resume = False
        with self.db.writer() as w:
            run = self._run_for_update(w, ref)
            tx = self._tx(w, run)
            flow = tx.program.flow
            spec = flow.agents.get(agent)
            externals = [n for n, a in flow.agents.items() if a.kind == "external"]
            if run.status in FINISHED:
                refusal, refusal_kind = f"{run.ref} already finished ({run.status})", Conflict
            elif spec is None or not isinstance(spec, ExternalAgent):
                refusal = (f"{agent!r} is not an external agent of {flow.name}; external agents: "
                           + (", ".join(externals) or "none"))
                refusal_kind = InputError
            elif by not in self.org.resolve_many(spec.submitters):
                refusal = f"you may not submit {agent}'s signal; submitters: " + ", ".join(
                    spec.submitters)
                refusal_kind = Forbidden
            else:
                try:
                    output_model = validate_output(agent, dict(output))
                except AgentFailure as exc:
                    refusal, refusal_kind = str(exc), InputError
            if refusal:
                self._refused(tx, "signal", by, refusal, agent=agent)
            else:
                result = AgentResult(agent, "external", "ok", output_model, tx.now,
                                     [Attempt(1, tx.now, 0.0)])
                steps.store_result(tx, run.cursor or "external", result, actor=by)
                node = tx.node(run.cursor) if run.cursor else None
                if (run.status == "waiting" and node is not None and node.kind == "conflict"
                        and node.key in run.context.get("settles", {})
                        and all(n in tx.signals() for n in node.spec.among)):
                    run.status = "running"
                    resume = True
        if refusal:
            raise refusal_kind(refusal)
        if resume:
            self._schedule(parse_ref(ref))
        return f"{agent} signal recorded on {run.ref}"

    def stop(self, ref: str | int, user: str, reason: str | None = None) -> Run:
        reason = well_formed(reason)
        refusal = None
        with self.db.writer() as w:
            run = self._run_for_update(w, ref)
            tx = self._tx(w, run)
            refusal_kind: type[BatonError] = Conflict
            if run.status in FINISHED:
                refusal = f"{run.ref} already finished ({run.status})"
            elif user != run.requester and not self.org.is_admin(user):
                refusal = (f"only the requester ({self.org.display(run.requester)}) or an admin "
                           f"can stop {run.ref}")
                refusal_kind = Forbidden
            if refusal:
                self._refused(tx, "stop", user, refusal)
            else:
                why = f"stopped by {self.org.display(user)}" + (f": {reason}" if reason else "")
                self._finish(tx, Finish("stopped", "stopped", why), actor=user)
        if refusal:
            raise refusal_kind(refusal)
        return run

    def _gate_command(self, ref: str | int, user: str, gate_key: str | None, action: str,
                      fn: Callable[[Tx, Gate], str]) -> str:
        refusal = None
        message = ""
        with self.db.writer() as w:
            run = self._run_for_update(w, ref)
            tx = self._tx(w, run)
            try:
                if is_service(user):
                    raise Refusal(ONLY_PEOPLE)
                gate = self._open_gate(w, run, gate_key)
                message = fn(tx, gate)
            except Refusal as exc:
                refusal = str(exc)
                self._refused(tx, action, user, refusal)
        if refusal:
            raise BatonError(refusal)
        return message

    def claim(self, ref: str | int, user: str, gate: str | None = None) -> str:
        return self._gate_command(ref, user, gate, "claim",
                                  lambda tx, g: claims.claim(tx, g, user))

    def snooze(self, ref: str | int, user: str, duration: str | timedelta,
               gate: str | None = None) -> str:
        try:
            wanted = duration if isinstance(duration, timedelta) else parse_duration(duration)
        except ValueError as exc:
            raise BatonError(str(exc)) from None
        return self._gate_command(ref, user, gate, "snooze",
                                  lambda tx, g: claims.snooze(tx, g, user, wanted))

    def reassign(self, ref: str | int, user: str, to: str, gate: str | None = None) -> str:
        if is_service(to):
            raise BatonError(f"{to} cannot be asked to decide: {ONLY_PEOPLE}")
        return self._gate_command(
            ref, user, gate, "reassign",
            lambda tx, g: claims.reassign(tx, g, user, to, is_admin=self.org.is_admin(user)))

    def halt(self, user: str, reason: str | None = None) -> None:
        self._set_halt(user, True, reason)

    def resume(self, user: str, asked_at: datetime | None = None) -> list[str]:
        """Lift the emergency stop. With `asked_at` (when the person asked), only a halt
        from before then: a resume handled late never lifts a newer halt."""
        self._set_halt(user, False, None, asked_at)
        with self.db.read() as s:
            held_ids = runs.run_ids_with_status(s, "held")
        resumed: list[Run] = []
        for run_id in held_ids:
            with self.db.writer() as w:
                run = runs.lock_run(w, run_id)
                if run is None or run.status != "held":
                    continue  # another replica resumed it first
                run.status = "running"
                trace.append(w, run, kind="run_resumed", actor=user,
                             data={"why": f"resumed by {self.org.display(user)}"},
                             at=self.clock.now())
                resumed.append(run)
        for run in resumed:
            assert run.id is not None
            self._schedule(run.id)
        return [r.ref for r in resumed]

    def _set_halt(self, user: str, halted: bool, reason: str | None,
                  asked_at: datetime | None = None) -> None:
        word = "halt" if halted else "resume"
        reason = well_formed(reason)
        with self.db.writer() as w:
            state = runs.lock_system_state(w)
            now = self.clock.now()
            if not self.org.is_admin(user):
                admins = ", ".join(sorted(self.org.display(a) for a in self.org.admins)) or "none"
                why = f"only admins can {word} Baton (admins: {admins})"
                trace.append(w, state, kind="refused", actor=user,
                             data={"action": word, "why": why}, at=now)
                refusal = why
            elif state.halted == halted:
                refusal = "Baton is already halted" if halted else "Baton is not halted"
            elif not halted and asked_at is not None and state.halted_at is not None \
                    and state.halted_at > asked_at:
                refusal = (f"Baton was halted again at {state.halted_at:%H:%M:%S} UTC, after "
                           "this resume was asked; resume again to lift the new halt")
            else:
                refusal = None
                state.halted = halted
                state.halted_by = user if halted else None
                state.halted_at = now if halted else None
                state.halt_reason = reason if halted else None
                trace.append(w, state, kind="halted" if halted else "resumed", actor=user,
                             data={"reason": reason}, at=now)
                emit(w, None, "halted" if halted else "resumed", {"by": user, "reason": reason},
                     now, self.publish)
        if refusal:
            raise BatonError(refusal)
        log.warning("halted" if halted else "resumed", by=user, reason=reason)

    # -- time ----------------------------------------------------------------------------------
    def fire_timer(self, timer_id: int) -> bool:
        """A timer is due. Returns True if it did something (it was current)."""
        with self.db.read() as s:
            state = timers.timer_state(s, timer_id)
        if state is None or state[0] != "pending":
            return False
        run_id = state[1]
        resume = False
        acted = False
        with self.db.writer() as w:
            run = runs.lock_run(w, run_id)
            timer = timers.lock_timer(w, timer_id)
            if run is None or timer is None or timer.status != "pending":
                return False
            if timer.due_at > self.clock.now():
                return False  # woken early (another replica's clock, a rounding): not yet
            timer.fired_at = self.clock.now()
            if timer.gate_id is None:
                return self._fire_run_timer(w, run, timer)
            gate = gates.lock_gate(w, timer.gate_id)
            if gate is None or gate.status != "open" or gate.timer_token != timer.token:
                timer.status = "stale"
                return False
            timer.status = "fired"
            tx = self._tx(w, run)
            transition = gating.on_timer(tx, gate, timer)
            resume = self._resume_after(tx, transition)
            acted = True
        if resume:
            self._schedule(run_id)
        return acted

    def _fire_run_timer(self, w: Writer, run: Run, timer: Timer) -> bool:
        """A timer of the run itself (not of a gate), by its kind."""
        handlers = {"settle": self._end_settle, external.TIMER_KIND: self._external_overdue}
        return handlers[timer.kind](w, run, timer)

    def _external_overdue(self, w: Writer, run: Run, timer: Timer) -> bool:
        """The caller did not report an external action's result in time."""
        tx = self._tx(w, run)
        transition = external.on_timeout(tx, timer)
        timer.status = "stale" if transition is None else "fired"
        if transition is None:
            return False
        if self._resume_after(tx, transition):
            run_id = run.id
            w.after_commit(lambda: self._schedule(run_id))
        return True

    def _end_settle(self, w: Writer, run: Run, timer: Timer) -> bool:
        """A settle window closed: continue the conflict step with the signals it has."""
        node = timer.payload.get("node")
        current = (run.status == "waiting" and run.cursor == node
                   and run.context.get("settles", {}).get(node) == timer.token)
        timer.status = "fired" if current else "stale"
        if not current:
            return False
        run.status = "running"
        trace.append(w, run, kind="settle_ended", actor="baton", node=node,
                     data={"why": "the settle window closed"}, at=self.clock.now())
        run_id = run.id
        w.after_commit(lambda: self._schedule(run_id))
        return True

    def due_timers(self, limit: int = 500) -> list[int]:
        now = self.clock.now()
        with self.db.read() as s:
            return timers.due_timer_ids(s, now, limit)

    def fire_due_timers(self) -> int:
        fired = 0
        for timer_id in self.due_timers():
            try:
                fired += self.fire_timer(timer_id)
            except Exception:
                log.exception("timer_failed", timer=timer_id)
        return fired

    def pending_timers(self, until: datetime | None = None) -> list[tuple[int, datetime]]:
        with self.db.read() as s:
            return timers.pending_timers(s, until)

    # -- queries ------------------------------------------------------------------------------
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
