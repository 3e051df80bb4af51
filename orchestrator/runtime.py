"""What a step sees while the engine holds its run locked: the session, the run, the
compiled flow, the time, and the ways to record what happened (trace, events)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from orchestrator import context as ctxmod
from orchestrator.events import emit
from orchestrator.program import Node, Program
from storage import rows, trace
from storage.models import Decision, Gate, Run, Signal

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


Transition = Goto | Wait | Hold | Finish


class StoredSignal(SimpleNamespace):
    """A signal row, read like the `Signal` ORM object (`id` is None for one this transaction
    has just added)."""

    id = None


_SIGNALS = Signal.__table__  # type: ignore[attr-defined]
_RUN_SIGNALS = (select(_SIGNALS).where(_SIGNALS.c.run_id == sa.bindparam("run"))
                .order_by(_SIGNALS.c.id))  # built once: cheaper than building it per read


def latest_signals(session: Session, run_id: int) -> dict[str, StoredSignal]:
    """The run's latest signal of each agent, as plain rows."""
    found = session.connection().execute(_RUN_SIGNALS, {"run": run_id})
    return {row.agent: StoredSignal(**row._mapping) for row in found}


@dataclass
class Tx:
    session: Session
    run: Run
    program: Program
    engine: Engine
    now: datetime
    _signals: dict[str, Signal] | None = field(default=None, repr=False)
    _gates: dict[str, dict[str, Any]] | None = field(default=None, repr=False)
    # Re-checks of edited values already made and traced in this transaction, by values
    # (orchestrator.recheck): a decision and the gate it closes check once.
    rechecked: dict[str, Any] = field(default_factory=dict, repr=False)
    # What the person whose command this transaction carries should also be told.
    notes: list[str] = field(default_factory=list, repr=False)

    @classmethod
    def new_run(cls, session: Session, run: Run, program: Program, engine: Engine,
                now: datetime) -> Tx:
        """The transaction that created `run`: it has no signals and no decided gates yet."""
        return cls(session, run, program, engine, now, _signals={}, _gates={})

    @property
    def org(self):  # type: ignore[no-untyped-def]
        return self.engine.org

    def trace(self, kind: str, data: dict[str, Any], *, actor: str = SYSTEM_ACTOR,
              node: str | None = None) -> str:
        return trace.append(self.session, self.run, kind=kind, actor=actor, data=data,
                            at=self.now, node=node)

    def emit(self, kind: str, payload: dict[str, Any]) -> None:
        emit(self.session, self.run, kind, payload, self.now, self.engine.publish)

    def signals(self) -> dict[str, Signal]:
        """The run's latest signal of each agent, read once per transaction as plain rows
        (signals are only ever added, through `add_signal`, never changed)."""
        if self._signals is None:
            rows.write(self.session)  # signals this transaction queued before it asked
            assert self.run.id is not None
            self._signals = latest_signals(self.session, self.run.id)  # type: ignore[assignment]
        return self._signals  # type: ignore[return-value]

    def add_signal(self, values: dict[str, Any]) -> StoredSignal:
        """Store a signal (every column but the id); return it as the run's latest of its agent."""
        signals = self.signals()  # loaded before the new row is queued
        rows.add(self.session, Signal, values)  # inserted with the transaction's other rows
        signal = StoredSignal(**values)
        signals[signal.agent] = signal  # type: ignore[assignment]
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
        gates = list(self.session.exec(
            select(Gate).where(Gate.run_id == self.run.id, Gate.status == "decided")
            .order_by(col(Gate.id))))
        if not gates:
            return {}
        decisions = list(self.session.exec(
            select(Decision).where(Decision.run_id == self.run.id).order_by(col(Decision.id))))
        view: dict[str, dict[str, Any]] = {}
        for gate in gates:
            mine = [d for d in decisions if d.gate_id == gate.id and d.counted]
            reason = next((d.reason for d in reversed(mine) if d.reason), None)
            view[gate.key] = ctxmod.gate_view(gate, [d.decider for d in mine], reason)
        return view

    def conditions(self) -> dict[str, Any]:
        """The CEL context of gates/conditions.py."""
        return ctxmod.build(self.run, self.signals(), self.gates_view(), self.now)

    def node(self, key: str) -> Node:
        return self.program.node(key)
