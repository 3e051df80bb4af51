"""Errors people can act on. Raised in the domain, shown at the edge (CLI exit code 2, an
ephemeral Slack message), always naming the problem and the fix."""

from __future__ import annotations

from dataclasses import dataclass


class BatonError(Exception):
    """A problem with what someone asked for; the message is meant for them.

    The message names no command of any one surface: `usage` (how the command is written,
    without its program: "run vendor-payment vendor=TEXT amount=NUMBER") and `see` (the
    command that shows what there is: "status") are written by each surface its own way,
    `baton status` on the command line, `/baton status` in Slack.
    """

    exit_code = 2

    def __init__(self, message: str, *, usage: str | None = None, see: str | None = None) -> None:
        super().__init__(message)
        self.usage = usage
        self.see = see


class NotFound(BatonError):
    pass


class InputError(BatonError):
    """Input that does not fit what it is checked against (a flow's declared inputs, a
    request's fields). `fields`: each problem as (the field, what is wrong with it)."""

    def __init__(self, message: str, fields: list[tuple[str, str]] | None = None, *,
                 usage: str | None = None) -> None:
        super().__init__(message, usage=usage)
        self.fields = list(fields or [])


class Unauthorized(BatonError):
    """No credentials, or ones Baton does not accept (unknown, expired, revoked)."""


class SetupError(BatonError):
    """The server is not set up for what was asked (a flow whose llm agents have no key):
    the operator's to fix, told to whoever asked."""


class Forbidden(BatonError):
    """Who asked may not do this (a flow they may not start, a signal they may not submit)."""


class Conflict(BatonError):
    """What was asked contradicts the state (a result reported twice, a finished run)."""


class Unavailable(BatonError):
    """Baton cannot do it now (the emergency stop); the same request may work later."""


@dataclass(frozen=True)
class Problem:
    file: str
    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class FlowError(BatonError):
    """An invalid flow or org file. Carries every problem found, each with file and path."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))
