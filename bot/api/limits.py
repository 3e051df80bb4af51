"""What every API request body must be before the API reads it: at most 1 MB (refused
unread when its Content-Length says more), JSON, and nested at most 64 deep. Checked here,
in front of FastAPI, because its own body parsing answers a body too deep for Python's
JSON parser with a 500."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.api.problems import problem

MAX_BODY = 1_000_000
MAX_DEPTH = 64


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
        value = json.loads(body)
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
