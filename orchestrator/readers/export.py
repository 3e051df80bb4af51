"""A run's full trace as JSON (schema: docs/trace-schema.json), and checking chains."""

from __future__ import annotations

from typing import Any

from storage import reads
from storage.engine import Database
from storage.records import Run
from storage.runs import flow_version
from storage.trace import GENESIS, SYSTEM_CHAIN, ChainBreak, chain_entries, verify_entries

SCHEMA_VERSION = 1


def export_run(db: Database, run: Run) -> dict[str, Any]:
    with db.read() as s:
        entries = chain_entries(s, run.ref)
        version = flow_version(s, run.flow_version_id)
    problem = verify_entries(run.ref, entries, run.trace_head)
    return {
        "schema_version": SCHEMA_VERSION,
        "run": {
            "id": run.ref,
            "flow": run.flow_name,
            "flow_version": (version.definition.get("version", 1) if version else None),
            "flow_digest": version.digest if version else None,
            "status": run.status,
            "outcome": run.outcome,
            "reason": run.reason,
            "requester": run.requester,
            "inputs": run.inputs,
            "requested_inputs": run.requested_inputs,
            "created_at": run.created_at.isoformat(),
            "finished_at": run.finished_at.isoformat() if run.finished_at else None,
            "trace_head": run.trace_head,
        },
        "entries": [
            {"seq": e.seq, "kind": e.kind, "actor": e.actor, "node": e.node,
             "at": e.created_at.isoformat(timespec="microseconds"), "data": e.data,
             "prev_hash": prev.hash if prev is not None else GENESIS, "hash": e.hash}
            for prev, e in zip([None, *entries], entries, strict=False)
        ],
        "verification": {"ok": problem is None, "first_break": str(problem) if problem else None},
    }


def verify_run(db: Database, run: Run) -> ChainBreak | None:
    with db.read() as s:
        return verify_entries(run.ref, chain_entries(s, run.ref), run.trace_head)


def verify_all(db: Database) -> tuple[int, list[ChainBreak]]:
    """Check every run's chain and the system chain; return (chains checked, breaks)."""
    breaks: list[ChainBreak] = []
    checked = 0
    with db.read() as s:
        heads = reads.run_chain_heads(s)
        system_head = reads.system_chain_head(s)
    for run_id, head in heads:
        with db.read() as s:
            found = verify_entries(f"R-{run_id}", chain_entries(s, f"R-{run_id}"), head)
        checked += 1
        if found:
            breaks.append(found)
    with db.read() as s:
        found = verify_entries(SYSTEM_CHAIN, chain_entries(s, SYSTEM_CHAIN),
                               system_head)
    checked += 1
    if found:
        breaks.append(found)
    return checked, breaks
