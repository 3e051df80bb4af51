"""A run as Baton answers it (`RunView` in docs/api.md), with the questions a caller asks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

WAITING = ("pending", "reported")


@dataclass(frozen=True)
class Run:
    data: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.data["id"])

    @property
    def status(self) -> str:
        return str(self.data["status"])

    @property
    def state(self) -> str:
        """pending | approved | reported | completed | rejected | timed_out | cancelled | failed"""
        return str(self.data["decision"]["state"])

    @property
    def settled(self) -> bool:
        """Something to do (act on the approval) or nothing left to wait for."""
        return self.state not in WAITING

    @property
    def approved(self) -> bool:
        return self.state == "approved"

    @property
    def deciders(self) -> list[str]:
        return [p["name"] for p in self.data["decision"].get("by", [])]

    @property
    def reason(self) -> str | None:
        return self.data["decision"].get("reason")

    @property
    def action(self) -> dict[str, Any] | None:
        return self.data.get("action")

    @property
    def arguments(self) -> dict[str, Any]:
        """The approved arguments (edits included) of the external action."""
        return dict((self.action or {}).get("arguments") or {})

    @property
    def approval(self) -> str | None:
        return (self.action or {}).get("approval")

    def __getitem__(self, key: str) -> Any:
        return self.data[key]
