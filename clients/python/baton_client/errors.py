"""What can go wrong, as exceptions a caller can act on."""

from __future__ import annotations

from typing import Any


class BatonError(Exception):
    """Anything the client raises."""


class ApiError(BatonError):
    """Baton refused the request (an `application/problem+json` answer)."""

    def __init__(self, status: int, detail: str, errors: list[dict[str, str]] | None = None,
                 body: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail
        self.errors = errors or []
        self.body = body or {}


class Unauthorized(ApiError):
    """401: no token, or an unknown, expired or revoked one."""


class Forbidden(ApiError):
    """403: the token may not do this (a flow it may not start)."""


class NotFound(ApiError):
    """404: no such flow, or no such run started with this token."""


class Conflict(ApiError):
    """409: a result reported twice or with other arguments, an Idempotency-Key reused for
    another request, a finished run."""


class InvalidRequest(ApiError):
    """400, 413, 415 or 422: the request is wrong; `errors` names each bad field."""


class ServerError(ApiError):
    """5xx: Baton could not answer now (halted, an invalid flow file, a failure)."""


class Rejected(BatonError):
    """People (or a boundary of the flow) said no."""

    def __init__(self, run: str, by: list[str], reason: str | None) -> None:
        who = ", ".join(by) or "the flow's policy"
        super().__init__(f"{run} rejected by {who}" + (f": {reason}" if reason else ""))
        self.run = run
        self.by = by
        self.reason = reason

    @property
    def decider(self) -> str | None:
        """Who rejected it (names, comma-separated); None when a boundary stopped it."""
        return ", ".join(self.by) or None


class TimedOut(BatonError):
    """Nobody decided in time: the flow's escalation failed closed, or the caller's own
    `timeout` passed."""

    def __init__(self, run: str, reason: str | None) -> None:
        super().__init__(f"{run}: no decision in time" + (f" ({reason})" if reason else ""))
        self.run = run
        self.reason = reason


class RunFailed(BatonError):
    """The run failed, was cancelled, or the action failed or may have run already."""

    def __init__(self, run: str, reason: str | None) -> None:
        super().__init__(f"{run}: {reason or 'failed'}")
        self.run = run
        self.reason = reason


_BY_STATUS = {401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict}


def api_error(status: int, body: Any) -> ApiError:
    """The exception for an error answer (problem+json, or anything else)."""
    data = body if isinstance(body, dict) else {}
    detail = str(data.get("detail") or data.get("title") or body or f"HTTP {status}")
    kind = _BY_STATUS.get(status) or (ServerError if status >= 500 else InvalidRequest)
    return kind(status, detail, data.get("errors"), data)
