"""What a step sees while the engine holds its run locked: the write transaction, the run,
the compiled flow, the time, and the ways to record what happened (trace, events)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from orchestrator import context as ctxmod
from orchestrator.events import DomainEvent, announce
from orchestrator.program import Node, Program
from storage import gates, signals, trace
from storage.records import Run
from storage.runs import halt_state
from storage.writer import Writer

if TYPE_CHECKING:
    from orchestrator.engine import Engine

SYSTEM_ACTOR = "baton"


# -- transitions: what a step asks the engine to do next ------------------------------
@dataclass(frozen=True)
class Goto:
    node: str | None  # None: the flow is done


@dataclass(frozen=True)
class Wait:
    """The run waits for people (a gate is open). No thread is kept."""


@dataclass(frozen=True)
class Hold:
    reason: str


@dataclass(frozen=True)
class Finish:
    status: str  # succeeded | rejected | stopped | failed
    outcome: str
    reason: str


@dataclass
class Work:
    """Slow work (agents, actions) done outside any transaction, then `finish`ed in a new
    one. `fn` must not touch the database."""

    fn: Callable[[], Any]
    finish: Callable[[Tx, Any], Goto | Wait | Hold | Finish]
    # Fast, deterministic and offline (rules agents only): the engine does it inside the
    # step's transaction instead of committing, working, and opening another one.
    inline: bool = False
    # Called on the caller's thread under a watchdog (the inline engine's actions): if `fn`
    # has not returned after `timeout` seconds, the watchdog records `late()`'s outcome in
    # its place and carries the run on; what `fn` returns later is discarded.
    timeout: float | None = None
    late: Callable[[], Any] | None = None


Transition = Goto | Wait | Hold | Finish


class StoredSignal(SimpleNamespace):
    """A signal row, read like a record (`id` is None for one this transaction has just
    added)."""

    id = None


def latest_signals(conn: Any, run_id: int) -> dict[str, StoredSignal]:
    """The run's latest signal of each agent, as plain rows."""
    return {agent: StoredSignal(**row._asdict())
            for agent, row in signals.latest_signals(conn, run_id).items()}


@dataclass
class Tx:
    w: Writer
    run: Run
    program: Program
    engine: Engine
    now: datetime
    _signals: dict[str, StoredSignal] | None = field(default=None, repr=False)
    _gates: dict[str, dict[str, Any]] | None = field(default=None, repr=False)
    # Re-checks of edited values already made and traced in this transaction, by values
    # (orchestrator.recheck): a decision and the gate it closes check once.
    rechecked: dict[str, Any] = field(default_factory=dict, repr=False)
    # What the person whose command this transaction carries should also be told.
    notes: list[str] = field(default_factory=list, repr=False)
    # The entries this transaction appended (seq -> kind, actor, data), for its events.
    _recorded: dict[int, tuple[str, str, dict[str, Any]]] = field(default_factory=dict,
                                                                   repr=False)

    @classmethod
    def new_run(cls, w: Writer, run: Run, program: Program, engine: Engine,
                now: datetime) -> Tx:
        """The transaction that created `run`: it has no signals and no decided gates yet."""
        return cls(w, run, program, engine, now, _signals={}, _gates={})

    @property
    def org(self):  # type: ignore[no-untyped-def]
        return self.engine.org

    def record(self, kind: str, data: dict[str, Any], *, actor: str = SYSTEM_ACTOR,
               node: str | None = None, event: str | None = None,
               extra: dict[str, Any] | None = None) -> int:
        """Append a trace entry to the run's chain and return its seq. With `event`, the
        notifiers are told of it too: the event points at this entry (`announce`)."""
        trace.append(self.w, self.run, kind=kind, actor=actor, data=data, at=self.now,
                     node=node)
        seq = self.run.trace_seq
        self._recorded[seq] = (kind, actor, data)
        if event is not None:
            self.announce(event, seq, extra)
        return seq

    def announce(self, event: str, seq: int, extra: dict[str, Any] | None = None) -> None:
        """Tell the notifiers of entry `seq`, recorded in this transaction, as `event`
        (with `extra`, what the entry does not say: events.EXTRAS)."""
        kind, actor, data = self._recorded[seq]
        announce(self.w, DomainEvent(None, event, self.run.id, seq, kind, actor, data,
                                     extra or {}, self.now), self.engine.publish)

    def signals(self) -> dict[str, StoredSignal]:
        """The run's latest signal of each agent, read once per transaction as plain rows
        (signals are only ever added, through `add_signal`, never changed)."""
        if self._signals is None:
            # after the signals this transaction queued before it asked
            self._signals = latest_signals(self.w, self.run.id)
        return self._signals

    def add_signal(self, values: dict[str, Any]) -> StoredSignal:
        """Store a signal (every column but the id); return it as the run's latest of its agent."""
        known = self.signals()  # loaded before the new row is queued
        signal = StoredSignal(**signals.queue_signal(self.w, values))
        known[signal.agent] = signal
        return signal

    def gates_view(self) -> dict[str, dict[str, Any]]:
        """The `gates` part of the CEL context: the run's decided gates. Read once per
        transaction; `gate_decided` drops it when a gate of the run is decided."""
        if self._gates is None:
            self._gates = self._read_gates_view()
        return self._gates

    def gate_decided(self) -> None:
        self._gates = None

    def _read_gates_view(self) -> dict[str, dict[str, Any]]:
        decided = gates.decided_gates(self.w, self.run.id)
        if not decided:
            return {}
        decisions = gates.decisions_of_run(self.w, self.run.id)
        view: dict[str, dict[str, Any]] = {}
        for gate in decided:
            mine = [d for d in decisions if d.gate_id == gate.id and d.counted]
            reason = next((d.reason for d in reversed(mine) if d.reason), None)
            view[gate.key] = ctxmod.gate_view(gate, [d.decider for d in mine], reason)
        return view

    def conditions(self) -> dict[str, Any]:
        """The CEL context of gates/conditions.py."""
        return ctxmod.build(self.run, self.signals(), self.gates_view(), self.now)

    def node(self, key: str) -> Node:
        return self.program.node(key)


def emergency_stop(org: Any, state: Any) -> str:
    """Who stopped Baton, and why if they said (`state`: `halt_state`'s answer)."""
    return (f"emergency stop by {org.display(state.halted_by or '?')}"
            + (f": {state.halt_reason}" if state.halt_reason else ""))


def hold_if_halted(tx: Tx) -> Hold | None:
    """A step that would act waits while Baton is halted."""
    state = halt_state(tx.w)
    return Hold(emergency_stop(tx.org, state)) if state.halted else None
