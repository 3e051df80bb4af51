"""The hash-chained, append-only decision trace.

Each entry stores the SHA-256 of `the previous entry's hash + canonical JSON of its own
content` (the previous hash is not stored again: it is the hash of entry `seq - 1`).
Changing, removing or reordering any stored entry breaks every hash after it, which
`verify_entries` reports.

A chain is one run ("R-42") or "system" (halt, resume). The head of a chain (last seq and
hash) lives on its owner row (`Run` or `SystemState`), which the writer has locked, so two
writers can never append the same seq.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from storage import records, rows
from storage.models import Run, TraceEntry
from storage.writer import Writer

TRACE = TraceEntry.__table__  # type: ignore[attr-defined]
SYSTEM_CHAIN = "system"
GENESIS = ""


def canonical_json(value: Any) -> str:
    return _CANONICAL.encode(value)


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                              allow_nan=False)


def entry_body(entry: TraceEntry) -> dict[str, Any]:
    """The content an entry's hash covers: everything but its own hashes and row id."""
    return body(entry.chain, entry.seq, entry.kind, entry.actor, entry.node, entry.data,
                entry.created_at)


def body(chain: str, seq: int, kind: str, actor: str, node: str | None, data: dict[str, Any],
         at: datetime) -> dict[str, Any]:
    return {"chain": chain, "seq": seq, "kind": kind, "actor": actor, "node": node,
            "data": data, "at": at.isoformat(timespec="microseconds")}


def compute_hash(prev_hash: str, body: dict[str, Any]) -> str:
    return hashlib.sha256((prev_hash + canonical_json(body)).encode("utf-8")).hexdigest()


def entry_hash(prev_hash: str, chain: str, seq: int, kind: str, actor: str, node: str | None,
               data_text: str, at: datetime) -> str:
    """`compute_hash(prev_hash, body(...))` for an entry whose data is already encoded
    (`data_text`, its canonical JSON): the body's canonical JSON is put together around it,
    keys in sorted order, without building the body and encoding it again
    (tests/storage/test_trace_hash.py checks the two agree).

    The column keeps the data's own key order (`storage.engine.store_json`): the readers
    show a dict's entries in the order they were recorded (a conflict's verdicts, a
    decision's edits), so the canonical text, with its keys sorted, is not stored."""
    seen = _LAST_AT[0]
    if at is seen[0]:
        at_text = seen[1]
    else:
        at_text = at.isoformat(timespec="microseconds")
        _LAST_AT[0] = (at, at_text)
    text = (f'{prev_hash}{{"actor":{_string(actor)},'
            f'"at":"{at_text}","chain":{_string(chain)},'
            f'"data":{data_text},"kind":{_string(kind)},'
            f'"node":{"null" if node is None else _string(node)},"seq":{int(seq)}}}')
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# The entries of a transaction share its time (`Tx.now`): the text of the last one, kept
# with it as one tuple (the threads of a process share it).
_LAST_AT: list[tuple[Any, str]] = [(object(), "")]

# A string as the canonical encoder writes it (ensure_ascii=False: the C encoder's own)
_string = json.encoder.encode_basestring  # type: ignore[attr-defined]


def append(
    w: Writer | Session,
    owner: Any,
    *,
    kind: str,
    actor: str,
    data: dict[str, Any],
    at: datetime,
    node: str | None = None,
) -> str:
    """Append one entry to `owner`'s chain (a run, or the system state for the system chain)
    and return its hash. The caller holds `owner` locked. The entry is inserted with the
    transaction's other queued rows; the owner's new head is written with its other changes."""
    run_id = owner.id if isinstance(owner, (Run, records.Run)) else None
    chain = chain_of(run_id)
    seq = owner.trace_seq + 1
    digest = entry_hash(owner.trace_head, chain, seq, kind, actor, node, canonical_json(data),
                        at)
    row = {"run_id": run_id, "chain": chain, "seq": seq, "kind": kind, "actor": actor,
           "node": node, "data": data, "created_at": at, "hash": digest}
    owner.trace_seq = seq
    owner.trace_head = digest
    if isinstance(w, Writer):
        w.queue(TRACE, row)
    else:  # an ORM session (bot/callbacks.py) and an ORM owner
        rows.add(w, TraceEntry, row)
        w.add(owner)
    return digest


@dataclass(frozen=True)
class ChainBreak:
    chain: str
    seq: int
    entry_id: int | None
    problem: str

    def __str__(self) -> str:
        return f"{self.chain} entry #{self.seq} (row {self.entry_id}): {self.problem}"


def verify_entries(chain: str, entries: list[TraceEntry], head: str | None = None) -> ChainBreak | None:
    """Recompute the chain; return the first entry that does not fit, or None."""
    prev = GENESIS
    expected_seq = 1
    for entry in entries:
        if entry.seq != expected_seq:
            return ChainBreak(chain, entry.seq, entry.id,
                              f"sequence gap: expected #{expected_seq}")
        if compute_hash(prev, entry_body(entry)) != entry.hash:
            return ChainBreak(chain, entry.seq, entry.id,
                              "content does not match its hash (this entry or the one before "
                              "it was changed)")
        prev = entry.hash
        expected_seq += 1
    if head is not None and head != prev:
        last = expected_seq - 1
        return ChainBreak(chain, last, None,
                          "the chain head recorded for the run does not match its last "
                          "entry (entries were removed from the end)")
    return None


def chain_of(run_id: int | None) -> str:
    """The chain a run's entries are on (the system chain without a run)."""
    return SYSTEM_CHAIN if run_id is None else f"R-{run_id}"


def entry_at(conn: Writer | Session, chain: str, seq: int) -> records.TraceEntry | None:
    """Entry `seq` of `chain` (by the chain's unique index), in a write transaction or what
    `Database.read()` gives."""
    run = conn.execute if isinstance(conn, Writer) else conn.connection().execute
    row = run(_ENTRY_AT, {"chain": chain, "seq": seq}).first()
    return None if row is None else records.TraceEntry(*row)


_ENTRY_AT = sa.select(TRACE).where(TRACE.c.chain == sa.bindparam("chain"),
                                   TRACE.c.seq == sa.bindparam("seq"))


def chain_entries(session: Session, chain: str) -> list[TraceEntry]:
    return list(session.exec(
        select(TraceEntry).where(TraceEntry.chain == chain).order_by(TraceEntry.seq)
    ))


def gate_entries(session: Session, chain: str, gate_id: int, kinds: tuple[str, ...]) -> list[TraceEntry]:
    """`chain`'s entries of `kinds` about gate `gate_id`, oldest first. A gate's id is in its
    entries' data, so the chain's entries of these kinds are read and sorted out here."""
    found = session.exec(select(TraceEntry).where(TraceEntry.chain == chain,
                                                  col(TraceEntry.kind).in_(kinds))
                         .order_by(col(TraceEntry.seq)))
    return [entry for entry in found if entry.data.get("gate_id") == gate_id]


def latest_recorded_at(session: Session) -> datetime | None:
    """When the newest trace entry was recorded (naive UTC), or None for an empty trace."""
    return session.exec(select(func.max(TraceEntry.created_at))).one()
