"""What an API caller may do: pure policy over its token, no database.

A token acts as one principal the org file declares (a person, or a `service:` agent), may
start only the flows it names, and reads, signals, reports on and cancels only the runs it
started itself. No token decides, claims, snoozes or reassigns a gate: the API has no such
operation, and the engine refuses a service principal that tries through any other door.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

# Which door of Baton a token's request came through. The server code that serves the door
# says it (the REST routes, `baton mcp`, the `/mcp` endpoint), never the request: a REST
# caller cannot pass for an MCP client, nor one for the other.
Through = Literal["api", "mcp-stdio", "mcp-http"]
THROUGH_WORDS: dict[str, str] = {"api": "the API", "mcp-stdio": "MCP (stdio)",
                                 "mcp-http": "MCP (HTTP)"}


@dataclass(frozen=True)
class Caller:
    """Who is asking through the API or MCP: a token, the principal it acts as, and the door
    it came through."""

    token_id: int
    token: str  # the token's name (never the secret)
    principal: str
    flows: frozenset[str]
    through: Through = "api"

    def origin(self) -> dict[str, Any]:
        """What a run it starts remembers about it (`Run.origin`). The kind stays "api" for
        both doors (the run is owned, called back and refused alike); `through` tells them
        apart."""
        return {"kind": "api", "token": self.token, "token_id": self.token_id,
                "principal": self.principal, "through": self.through}


def through(origin: Mapping[str, Any]) -> str | None:
    """The door a token's run was asked through ("api", "mcp-stdio", "mcp-http"); None for a
    run no token started. Runs stored before Baton recorded the door came through the API."""
    if origin.get("kind") != "api":
        return None
    return str(origin.get("through") or "api")


def through_words(origin: Mapping[str, Any]) -> str | None:
    """`through` in a person's words: "the API", "MCP (stdio)", "MCP (HTTP)"."""
    door = through(origin)
    return None if door is None else THROUGH_WORDS.get(door, door)


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
