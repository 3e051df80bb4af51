"""Errors of the emulator: the ones Slack answers with, and the ones a test makes."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A Web API error, answered as `{"ok": false, "error": code, **extra}` with HTTP 200."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra

    def to_api(self) -> dict[str, Any]:
        return {"ok": False, "error": self.error, **self.extra}


class SandboxError(LookupError):
    """A test or the UI asked for something a Slack user could not do (no such button...)."""
