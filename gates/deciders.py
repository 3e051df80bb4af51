"""Who may decide an open gate: its approvers, less those four-eyes bars. Pure policy over the
gate's stored fields (any object with them: a storage record, or a row `baton status` read
without the engine)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class GateLike(Protocol):
    approvers: list[Any]
    forbid_requester: bool
    policy: dict[str, Any]


def editors_barred(policy: Mapping[str, Any]) -> set[str]:
    """The approvers whose edits a gate is needed for: the editor a re-check opened it for,
    or those whose edits made a gate further on apply (or a boundary break) that the values
    the requester gave would not have (`recheck.editors_behind`)."""
    about = policy.get("recheck") or {}
    return {*([about["by"]] if about.get("by") else []), *about.get("editors", []),
            *policy.get("edited_by", [])}


def excluded(gate: GateLike, requester: str) -> set[str]:
    """Who may never decide `gate`: its run's requester, under four-eyes; and the approvers
    whose edits it is needed for (another person looks at an edit that needs more than the
    gate it was made at)."""
    barred = {requester} if gate.forbid_requester else set()
    return barred | editors_barred(gate.policy or {})


def eligible(gate: GateLike, requester: str) -> set[str]:
    """Who may decide: the gate's approvers, less the requester under four-eyes (gates
    opened before the requester was left out of `approvers` still list them)."""
    return set(gate.approvers) - excluded(gate, requester)
