"""What every API request body must be before the API reads it: at most 1 MB (refused
unread when its Content-Length says more), JSON, nested at most 64 deep, and holding only
numbers every JSON reader agrees on. Checked here, in front of FastAPI, because its own body
parsing answers a body too deep for Python's JSON parser with a 500, and reads `NaN`,
`Infinity` and `1e400` (no JSON numbers: the trace cannot hash them, PostgreSQL cannot
store them, the engine turned a 400-digit amount into a 500)."""

from __future__ import annotations

import json
import math
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.api.problems import problem

MAX_BODY = 1_000_000
MAX_DEPTH = 64
MAX_INTEGER = 2**63 - 1  # what CEL, PostgreSQL and most JSON readers hold as a whole number


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (send a finite number)")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is too large a number (send a finite number)")
    return value


def _bounded(text: str) -> int:
    value = int(text)
    if abs(value) > MAX_INTEGER:
        raise ValueError(f"{text[:20]}... is too large a whole number (at most {MAX_INTEGER})")
    return value


def parse_body(body: bytes) -> Any:
    """The body's JSON value. Raises ValueError for anything but JSON with finite numbers
    and whole numbers within 64 bits, RecursionError for JSON nested too deep to parse."""
    return json.loads(body, parse_constant=_no_constant, parse_float=_finite,
                      parse_int=_bounded)


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether `value` nests lists and objects more than `limit` deep (without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def body_problem(body: bytes, content_type: str) -> tuple[int, str] | None:
    if not body:
        return None
    if content_type != "application/json":
        return 415, f"send the body as application/json (got {content_type or 'no content type'})"
    try:
        value = parse_body(body)
    except RecursionError:
        return 400, f"the body nests lists or objects more than {MAX_DEPTH} deep"
    except ValueError as exc:  # not JSON, not UTF-8, a number too long for Python
        return 400, f"the body is not valid JSON: {exc}"
    if too_deep(value):
        return 400, f"the body nests lists or objects more than {MAX_DEPTH} deep"
    return None


class BodyLimits:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            await problem(413, f"the body is over {MAX_BODY:,} bytes")(scope, receive, send)
            return
        body = b""
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > MAX_BODY:
                await problem(413, f"the body is over {MAX_BODY:,} bytes")(scope, receive, send)
                return
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        found = body_problem(body, content_type)
        if found is not None:
            await problem(*found)(scope, receive, send)
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
