"""The emulator's append-only log of every request it answered, faulted ones included."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, overload

from sandbox.faults import Fault


@dataclass(frozen=True)
class Call:
    method: str
    args: dict[str, Any]
    at: float
    status: int
    response: dict[str, Any] | str | None
    token: str | None = None
    fault: Fault | None = None

    @property
    def ok(self) -> bool:
        """Whether it worked: a Web API call answers `ok` in its JSON; an upload URL answers
        with text (`OK - 1234`, as Slack's does), and its HTTP status says."""
        if self.status != 200:
            return False
        if isinstance(self.response, dict):
            return bool(self.response.get("ok"))
        return self.response is not None

    @property
    def error(self) -> str | None:
        if isinstance(self.response, dict):
            return self.response.get("error")
        return self.response if isinstance(self.response, str) and self.status != 200 else None


class CallLog(Sequence[Call]):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: list[Call] = []

    def append(self, call: Call) -> None:
        with self._lock:
            self._calls.append(call)

    @overload
    def __getitem__(self, index: int) -> Call: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Call]: ...

    def __getitem__(self, index: int | slice) -> Call | Sequence[Call]:
        with self._lock:
            return self._calls[index]

    def __len__(self) -> int:
        with self._lock:
            return len(self._calls)

    def __iter__(self) -> Iterator[Call]:
        with self._lock:
            return iter(list(self._calls))

    def calls_to(self, method: str, *, ok: bool | None = None) -> list[Call]:
        """Calls of one method in order; `ok=True` keeps the successful ones only."""
        return [c for c in self if c.method == method and (ok is None or c.ok == ok)]

    def methods(self) -> list[str]:
        return [c.method for c in self]
