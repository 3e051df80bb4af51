"""Errors as `application/problem+json` (RFC 9457): `type`, `title`, `status`, `detail`,
and, for invalid input, `errors`: each bad field and what is wrong with it."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from orchestrator.errors import (
    BatonError,
    Conflict,
    FlowError,
    Forbidden,
    InputError,
    NotFound,
    Unauthorized,
    Unavailable,
)

MEDIA_TYPE = "application/problem+json"
TITLES = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found",
          405: "Method not allowed", 409: "Conflict", 413: "Request body too large",
          415: "Unsupported media type", 422: "Invalid input", 500: "Internal error",
          503: "Unavailable"}
# Most specific first: the first class an error is an instance of gives its status.
STATUS_OF: tuple[tuple[type[BatonError], int], ...] = (
    (Unauthorized, 401), (Forbidden, 403), (NotFound, 404), (Conflict, 409),
    (InputError, 422), (FlowError, 503), (Unavailable, 503), (BatonError, 422))


def problem(status: int, detail: str, *, errors: list[dict[str, str]] | None = None,
            headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": TITLES.get(status, "Error"),
                            "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    if status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": 'Bearer realm="baton"'}
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def from_error(exc: BatonError) -> JSONResponse:
    status = next(code for kind, code in STATUS_OF if isinstance(exc, kind))
    if isinstance(exc, FlowError):
        return problem(503, "the flow file has errors an operator must fix (`baton flows "
                            "validate`): " + str(exc).splitlines()[0])
    errors = ([{"field": field, "detail": detail} for field, detail in exc.fields]
              if isinstance(exc, InputError) else None)
    return problem(status, str(exc), errors=errors)
