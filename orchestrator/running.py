"""Running a run: the step loop, leases and recovery.

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

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import structlog

from orchestrator import external, gating, steps
from orchestrator.failpoints import crash_point
from orchestrator.logs import log_context
from orchestrator.program import Node
from orchestrator.runs import FINISHED
from orchestrator.runtime import Finish, Goto, Hold, Transition, Tx, Wait, Work
from orchestrator.workers import Watchdog
from storage import gates, runs
from storage.records import Run

if TYPE_CHECKING:
    from orchestrator.engine import Engine

log = structlog.get_logger("baton.engine")
T = TypeVar("T")

# Deadlines of the work the inline engine does on its caller's thread (`Running._watched`).
WATCHDOG = Watchdog("baton-watchdog")


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
            with log_context(run=f"R-{self.run_id}"):
                self.engine._work(self.run_id, self.owner, self.node, self.work, self.started)
        finally:
            self.abandon()

    def abandon(self) -> None:
        """The transaction did not commit, or the work is done: the lease owner is free."""
        self.engine.owners.release(self.owner)


class Running:
    """Part of `Engine` (orchestrator/engine.py): advancing runs."""

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
            with log_context(run=f"R-{run_id}"):
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
                with log_context(step=node.key), self._heartbeat(run_id, owner):
                    if work.timeout is None:
                        outcome = work.fn()
                    else:
                        done, outcome = self._watched(run_id, owner, node, work, started)
                        if not done:
                            return  # the watchdog took the run over
                went_on = self._isolate_on_crash(
                    partial(self._record_work, run_id, owner, node, work, outcome, started))
                if went_on is None:
                    return
                node, work, started = went_on
                crash_point("step.committed")
        except Exception as exc:
            log.exception("step_crashed", step=node.key if node else None)
            self._fail(run_id, owner, node, exc)

    def _watched(self, run_id: int, owner: str, node: Node, work: Work,
                 started: datetime) -> tuple[bool, Any]:
        """Do `work.fn()` on this thread under the watchdog: past `work.timeout`, the watchdog
        records `work.late()` in its place and carries the run on from a thread of its own.
        Returns (True, the outcome), or (False, None) once the watchdog took over and is done."""
        assert work.timeout is not None and work.late is not None
        late = work.late
        taken = threading.Lock()  # by whoever decides the outcome: the call, or the watchdog
        handed_over = threading.Lock()  # held until the watchdog's part is done
        handed_over.acquire()

        def take_over() -> None:
            if not taken.acquire(blocking=False):
                return  # the call returned just in time
            try:
                log.warning("work_timed_out", step=node.key, timeout_s=work.timeout)
                self._work(run_id, owner, node, Work(late, work.finish), started)
            finally:
                handed_over.release()

        disarm = WATCHDOG.watch(work.timeout, take_over)
        try:
            outcome = work.fn()
        except Exception:
            if taken.acquire(blocking=False):
                raise
            outcome = None  # raised too late to count, as a result would have come
        finally:
            disarm()
        if taken.acquire(blocking=False):
            return True, outcome
        handed_over.acquire()
        log.warning("work_returned_after_timeout", step=node.key, discarded=True)
        return False, None

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
            with log_context(run=run.ref):
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
        with log_context(flow=run.flow_name, step=node.key):
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
            tx.record("run_held", {"why": transition.reason}, node=node.key if node else None,
                      event="run_held")
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
        tx.record("run_finished", data, actor=actor,
                  event={"failed": "run_failed", "stopped": "run_stopped"}.get(finish.status,
                                                                               "run_finished"))
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
