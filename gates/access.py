"""What an API caller may do: pure policy over its token, no database.

A token acts as one principal the org file declares (a person, or a `service:` agent), may
start only the flows it names, and reads, signals, reports on and cancels only the runs it
started itself. No token decides, claims, snoozes or reassigns a gate: the API has no such
operation, and the engine refuses a service principal that tries through any other door.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Caller:
    """Who is asking through the API: a token, and the principal it acts as."""

    token_id: int
    token: str  # the token's name (never the secret)
    principal: str
    flows: frozenset[str]

    def origin(self) -> dict[str, Any]:
        """What a run it starts remembers about it (`Run.origin`)."""
        return {"kind": "api", "token": self.token, "token_id": self.token_id,
                "principal": self.principal}


def may_start(caller: Caller, flow: str) -> str | None:
    """Why `caller` may not start `flow`, or None when it may."""
    if flow in caller.flows:
        return None
    allowed = ", ".join(sorted(caller.flows)) or "none"
    return (f"token {caller.token!r} may not start {flow!r}; it may start: {allowed} "
            "(an operator widens it with `baton tokens create --flows`)")


def owns(caller: Caller, origin: Mapping[str, Any]) -> bool:
    """Whether a run (by its `Run.origin`) was started with this caller's token."""
    return origin.get("kind") == "api" and origin.get("token_id") == caller.token_id
