"""Read models: what the gate messages, the App Home, `/baton` commands and the CLI show,
read as records (storage.records), never as ORM instances.

Every function takes what `Database.read()` gives, or the transaction an event sink is
handed (anything with `execute`); none writes. Statements are built once (per dialect
where the dialects differ).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm import Session

from storage.gates import APPROVERS, DECISIONS, GATES
from storage.records import Decision, Gate, Run
from storage.runs import RUNS, STATE
from storage.trace import TRACE
from storage.writer import Writer

_DECISIONS_OF_GATE = (sa.select(DECISIONS).where(DECISIONS.c.gate_id == sa.bindparam("gate"))
                      .order_by(DECISIONS.c.id))
_GATES_DECIDED = (sa.select(TRACE.c.data).where(TRACE.c.chain == sa.bindparam("chain"),
                                                TRACE.c.kind == "gate_decided")
                  .order_by(TRACE.c.seq.desc()))
_GATES_BY_ID = (sa.select(GATES).where(GATES.c.id.in_(sa.bindparam("gates", expanding=True)))
                .order_by(GATES.c.id))
_GATES_OF_RUN = sa.select(GATES).where(GATES.c.run_id == sa.bindparam("run")).order_by(GATES.c.id)
_CANCELLED_GATES_OF_RUN = (sa.select(GATES).where(GATES.c.run_id == sa.bindparam("run"),
                                                  GATES.c.status == "cancelled")
                           .order_by(GATES.c.id))
_UNFINISHED_RUNS_OF = (sa.select(RUNS).where(RUNS.c.requester == sa.bindparam("user"),
                                             RUNS.c.status.not_in(sa.bindparam("finished",
                                                                               expanding=True)))
                       .order_by(RUNS.c.id.desc()).limit(sa.bindparam("limit")))


_GATE_AND_RUN = (sa.select(GATES, RUNS).join(RUNS, GATES.c.run_id == RUNS.c.id)
                 .where(GATES.c.id == sa.bindparam("gate")))
_GATE_COLUMNS = len(GATES.columns)


def gate_and_run(conn: Any, gate_id: int) -> tuple[Gate, Run] | None:
    """The gate and its run, in one query (what a click on a gate's message reads before
    it is decided); None when there is no such gate."""
    row = compiled_reads(conn)(_GATE_AND_RUN, {"gate": gate_id}).first()
    if row is None:
        return None
    return Gate(*row[:_GATE_COLUMNS]), Run(*row[_GATE_COLUMNS:])


def decisions_of_gate(conn: Any, gate_id: int) -> list[Decision]:
    """The gate's decisions, oldest first."""
    return [Decision(*row) for row in conn.execute(_DECISIONS_OF_GATE, {"gate": gate_id})]


def gate_decided_entry(conn: Any, chain: str, gate_id: int) -> dict[str, Any] | None:
    """The data of the `gate_decided` trace entry that closed the gate (the latest, when a
    run's gates were decided more than once), or None."""
    for (data,) in conn.execute(_GATES_DECIDED, {"chain": chain}):
        if data.get("gate_id") == gate_id:
            return dict(data)
    return None


_ENTRIES_OF_KINDS = (sa.select(TRACE.c.kind, TRACE.c.actor, TRACE.c.data)
                     .where(TRACE.c.chain == sa.bindparam("chain"),
                            TRACE.c.kind.in_(sa.bindparam("kinds", expanding=True)))
                     .order_by(TRACE.c.seq))


def gate_entries(conn: Any, chain: str, gate_id: int,
                 kinds: tuple[str, ...]) -> list[tuple[str, str, dict[str, Any]]]:
    """(kind, actor, data) of `chain`'s entries of `kinds` about gate `gate_id`, oldest
    first. A gate's id is in its entries' data, so the chain's entries of these kinds are
    read and sorted out here."""
    return [(kind, actor, dict(data)) for kind, actor, data
            in conn.execute(_ENTRIES_OF_KINDS, {"chain": chain, "kinds": list(kinds)})
            if data.get("gate_id") == gate_id]


def gates_of_run(conn: Any, run_id: int) -> list[Gate]:
    return [Gate(*row) for row in conn.execute(_GATES_OF_RUN, {"run": run_id})]


def cancelled_gates_of_run(conn: Any, run_id: int) -> list[Gate]:
    """The gates the run left open when it ended (stopped, cancelled by its API caller),
    oldest first: their messages lose their buttons."""
    return [Gate(*row) for row in conn.execute(_CANCELLED_GATES_OF_RUN, {"run": run_id})]


def unfinished_runs_of(conn: Any, user: str, finished: tuple[str, ...], limit: int) -> list[Run]:
    """The runs `user` requested whose status is none of `finished`, newest first."""
    return [Run(*row) for row in conn.execute(
        _UNFINISHED_RUNS_OF, {"user": user, "finished": list(finished), "limit": limit})]


def gates_by_id(conn: Any, gate_ids: list[int]) -> list[Gate]:
    """The gates of `gate_ids`, oldest first."""
    if not gate_ids:
        return []
    return [Gate(*row) for row in conn.execute(_GATES_BY_ID, {"gates": list(gate_ids)})]


def pending_gate_ids(conn: Any, user: str) -> list[int]:
    """Open gates `user` may decide, oldest first: found from `user`'s approver rows
    (storage.models.GateApprover), an index lookup however many gates are open. A
    requester's own gate under four-eyes is not theirs to decide (gates opened by older
    versions still list them)."""
    return [gate_id for (gate_id,) in conn.execute(_PENDING_GATE_IDS, {"user": user})]


def _theirs_to_decide(user: Any) -> tuple[Any, ...]:
    """The conditions on approver rows joined to their gate and its run that make the gate
    `user`'s to decide now: theirs, open, and not their own request under four-eyes."""
    return (APPROVERS.c.principal == user, GATES.c.status == "open",
            sa.or_(sa.not_(GATES.c.forbid_requester), RUNS.c.requester != user))


_APPROVER_GATES = (APPROVERS.join(GATES, GATES.c.id == APPROVERS.c.gate_id)
                   .join(RUNS, RUNS.c.id == GATES.c.run_id))
_PENDING_GATE_IDS = (sa.select(GATES.c.id).select_from(_APPROVER_GATES)
                     .where(*_theirs_to_decide(sa.bindparam("user", type_=sa.String)))
                     .order_by(APPROVERS.c.gate_id))


class HomeGate(NamedTuple):
    """A gate as the App Home lists it."""

    id: int
    run: str
    requester: str
    title: str
    options: list[dict[str, Any]]
    deadline: datetime | None
    version: int


class HomeRun(NamedTuple):
    """A run as the App Home lists it."""

    id: int
    flow_name: str
    status: str
    created_at: datetime

    @property
    def ref(self) -> str:
        return f"R-{self.id}"


_HOME_RUNS = (sa.select(RUNS.c.id, RUNS.c.flow_name, RUNS.c.status, RUNS.c.created_at)
              .where(RUNS.c.requester == sa.bindparam("user"))
              .order_by(RUNS.c.id.desc()).limit(sa.bindparam("limit")))


class Home(NamedTuple):
    """What one person's App Home shows."""

    gates: list[HomeGate]  # the first gates waiting for them, oldest first
    waiting: int  # how many gates wait for them in all
    runs: list[HomeRun]  # the newest runs they started


def home(conn: Any, user: str, *, gates: int, runs: int) -> Home:
    """What `user`'s App Home shows: the first `gates` open gates they may decide (the
    columns it lists, not every gate, run and decision with their dozen JSON columns), how
    many wait for them in all, and the newest `runs` runs they started. Two statements,
    compiled once and run on the driver's cursor of `conn`'s transaction (`conn`: what
    `Database.read()` gives, or a `Writer`): every approver's home is rendered from this
    whenever one of their gates changes."""
    run = compiled_reads(conn)
    shown, total = [], 0
    for gate_id, run_id, requester, title, options, deadline, version, waiting in run(
            _HOME_GATES, {"user": user, "limit": gates}):
        shown.append(HomeGate(gate_id, f"R-{run_id}", requester, title, list(options), deadline,
                              version))
        total = waiting
    return Home(shown, total, [HomeRun(*row) for row in run(_HOME_RUNS, {"user": user,
                                                                         "limit": runs})])


# The first open gates a person may decide, as the home lists them, each row with how many
# there are in all (a window count, taken before the LIMIT): `pending_gate_ids`'s
# conditions, in one statement.
_HOME_GATES = (sa.select(GATES.c.id, GATES.c.run_id, RUNS.c.requester, GATES.c.title,
                         GATES.c.options, GATES.c.next_deadline, GATES.c.version,
                         sa.func.count().over())
               .select_from(_APPROVER_GATES)
               .where(*_theirs_to_decide(sa.bindparam("user", type_=sa.String)))
               .order_by(APPROVERS.c.gate_id).limit(sa.bindparam("limit")))


_NEWER_RUNS_OF = (sa.select(sa.func.count()).select_from(
    sa.select(RUNS.c.id).where(RUNS.c.requester == sa.bindparam("user"),
                               RUNS.c.id > sa.bindparam("run"))
    .limit(sa.bindparam("limit")).subquery()))


def among_newest_runs(conn: Any, requester: str, run_id: int, newest: int) -> bool:
    """Whether run `run_id` is among the `newest` runs `requester` started (what their App
    Home lists): fewer than `newest` of their runs are newer. Counts at most `newest`
    rows, by the (requester, created_at) index's run ids."""
    run = compiled_reads(conn)
    newer = run(_NEWER_RUNS_OF, {"user": requester, "run": run_id, "limit": newest}).scalar()
    return int(newer or 0) < newest


def compiled_reads(conn: Any) -> Any:
    """Runs a statement on the driver's cursor of `conn`'s transaction (storage.compiled):
    a read session's or connection's, or a `Writer`'s own."""
    if isinstance(conn, Writer):
        return conn.execute
    connection = _connection(conn)
    return Writer(connection.connection, connection.engine, connection).read


def _connection(conn: Any) -> Any:
    """The Core connection of an ORM session (its `execute` costs more Python), else `conn`."""
    return conn.connection() if isinstance(conn, Session) else conn


# -- finding runs, checking chains ----------------------------------------------------------------
_RUN_HEADS = sa.select(RUNS.c.id, RUNS.c.trace_head).order_by(RUNS.c.id)
_SYSTEM_HEAD = sa.select(STATE.c.trace_head).where(STATE.c.id == 1)


def find_runs(conn: Any, *, requester: str | None = None, flow: str | None = None,
              since: datetime | None = None, decided_by: str | None = None,
              limit: int = 20) -> list[Run]:
    """Runs, newest first, by any of: who requested them, their flow, created since, someone
    decided on them (since). Uses the (requester, created_at), (flow_name, created_at) and
    (decider, created_at) indexes."""
    query = sa.select(RUNS)
    if requester is not None:
        query = query.where(RUNS.c.requester == requester)
    if flow is not None:
        query = query.where(RUNS.c.flow_name == flow)
    if since is not None:
        query = query.where(RUNS.c.created_at >= since)
    if decided_by is not None:
        decided = sa.select(DECISIONS.c.run_id).where(DECISIONS.c.decider == decided_by)
        if since is not None:
            decided = decided.where(DECISIONS.c.created_at >= since)
        query = query.where(RUNS.c.id.in_(decided))
    return [Run(*row) for row in conn.execute(query.order_by(RUNS.c.id.desc()).limit(limit))]


def run_chain_heads(conn: Any) -> list[tuple[int, str]]:
    """(run id, its trace chain's head hash) of every run, oldest first."""
    return [(run_id, head) for run_id, head in conn.execute(_RUN_HEADS)]


def system_chain_head(conn: Any) -> str | None:
    """The system trace chain's head hash (None in a database without its row)."""
    return conn.execute(_SYSTEM_HEAD).scalar()
