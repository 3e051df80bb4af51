"""HTTP mode: `POST /slack/events` for commands, interactivity and events, `GET /healthz`,
`GET /metrics` (Prometheus). Bolt's dispatch runs in a worker thread, so one slow request
never holds up another's acknowledgement.

A request is checked here before bolt sees it, cheapest first: its size, its content type,
Slack's signature over the exact bytes (HMAC with the signing secret, timestamp within five
minutes), then whether the body is a Slack payload at all. Bolt's own body parser fails on
malformed JSON (a 500) and drops any form that merely contains the word "payload" (a slash
command typed with it got a 404), so bolt is handed the body parsed here, already verified.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import hmac
import re
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import structlog
from prometheus_client import CONTENT_TYPE_LATEST
from slack_bolt import App, BoltRequest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from bot import webhooks
from bot.metrics import BatonCollector, metrics_text
from bot.wire import TooDeep, parse_json
from orchestrator.clock import SystemClock
from orchestrator.engine import Engine
from orchestrator.text import well_formed
from storage.engine import Database

if TYPE_CHECKING:
    from bot.mcp.endpoint import McpEndpoint

log = structlog.get_logger("baton.http")

MAX_BODY = 1_000_000  # Slack's payloads are far smaller; refuse anything bigger unread
SLACK_TYPES = ("application/x-www-form-urlencoded", "application/json")
MAX_AGE = 5 * 60  # Slack's rule: a signature older (or newer) than five minutes is a replay
# Interactions that always say who acted.
USER_PAYLOADS = ("block_actions", "view_submission", "view_closed", "shortcut", "message_action",
                 "block_suggestion")
# The kinds of payload Baton's app takes (manifest.yaml enables no shortcuts, menus, dialogs
# or legacy attachments). Any other is refused here: bolt's path for a request no listener
# handles builds a message from its fields, assuming Slack's types, and fails with a 500.
PAYLOAD_TYPES = ("block_actions", "view_submission", "view_closed", "event_callback",
                 "url_verification", "app_rate_limited")


def signed_by_slack(secret: str, headers: Any, body: bytes, now: float) -> bool:
    """Whether `body` carries a valid, fresh Slack signature (v0, HMAC-SHA256)."""
    timestamp = headers.get("x-slack-request-timestamp") or ""
    signature = headers.get("x-slack-signature") or ""
    if not secret or not (timestamp.isascii() and timestamp.isdigit()) or not signature:
        return False
    if abs(now - int(timestamp)) > MAX_AGE:
        return False
    base = b"v0:" + timestamp.encode() + b":" + body
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), signature.encode("latin-1", "replace"))


# A `%` not followed by two hex digits: `parse_qsl` keeps it as it is.
_LONE_PERCENT = re.compile("%(?![0-9A-Fa-f]{2})")


def form_fields(text: str) -> list[tuple[str, str]]:
    """`parse_qsl(text, keep_blank_values=True)`, the same pairs, with the %-escapes of an
    ASCII body decoded in C (`codecs.escape_decode`) rather than one at a time in Python: an
    interaction's payload is JSON, a thousand escapes, and parsing it took longer than
    verifying, reading and answering the click. Any other body goes to `parse_qsl`."""
    if not text.isascii() or _LONE_PERCENT.search(text):
        return parse_qsl(text, keep_blank_values=True)
    pairs = []
    for pair in text.split("&"):
        if pair:
            name, _, value = pair.partition("=")
            pairs.append((_unquote_plus(name), _unquote_plus(value)))
    return pairs


def _unquote_plus(text: str) -> str:
    text = text.replace("+", " ")
    if "%" not in text:
        return text
    escaped = text.replace("\\", "\\\\").replace("%", "\\x").encode("ascii")
    return codecs.escape_decode(escaped)[0].decode("utf-8", "replace")  # type: ignore[no-any-return]


def parse_slack_body(text: str, content_type: str) -> dict[str, Any] | str:
    """The payload of a Slack request, or what is wrong with it."""
    if content_type == "application/json":
        try:
            data = parse_json(text)
        except TooDeep as exc:
            return f"body is too deeply nested ({exc})"
        except ValueError:
            return "body is not valid JSON"
        return data if isinstance(data, dict) else "body must be a JSON object"
    fields = dict(form_fields(text))
    if "payload" not in fields:
        return fields if "command" in fields else \
            "expected a slash command (command=...) or an interaction (payload=...)"
    try:
        payload = parse_json(fields["payload"])
    except TooDeep as exc:
        return f"payload is too deeply nested ({exc})"
    except ValueError:
        return "payload is not valid JSON"
    return payload if isinstance(payload, dict) else "payload must be a JSON object"


def _object(value: Any) -> bool:
    return isinstance(value, dict)


def _text(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def payload_problem(body: dict[str, Any]) -> str | None:
    """What a parsed payload lacks that every Slack request of its kind has, if anything."""
    if "command" in body and "type" not in body:  # a slash command's form fields
        if not _text(body.get("command")) or not _text(body.get("user_id")):
            return "a slash command needs command and user_id"
        # Slack sends a command form-encoded, every field a string; the same fields as JSON
        # could be of any type, which no listener expects (text: 5 failed the command)
        odd = sorted(name for name, value in body.items() if not isinstance(value, str))
        if odd:
            return f"a slash command's fields are strings ({', '.join(odd)[:100]} is not)"
        return None
    kind = body.get("type")
    if not _text(kind):
        return "the payload has no type"
    if kind not in PAYLOAD_TYPES:
        return f"Baton takes no {kind[:40]!r} payloads (it takes {', '.join(PAYLOAD_TYPES)})"
    if kind in USER_PAYLOADS and not (_object(body.get("user")) and _text(body["user"].get("id"))):
        return f"a {kind} payload needs user.id"
    for name in ("view", "container", "channel", "message", "state"):
        if body.get(name) is not None and not _object(body[name]):
            return f"{name} must be an object"
    if kind == "block_actions":
        actions = body.get("actions")
        if not isinstance(actions, list) or not actions or not all(
                _object(a) and _text(a.get("action_id")) for a in actions):
            return "block_actions needs actions, each with an action_id"
    if kind in ("view_submission", "view_closed") and not _text(_object(body.get("view"))
                                                              and body["view"].get("type")):
        return f"a {kind} payload needs a view with a type"
    for found in (body, body.get("view") or {}, *(body.get("actions") or [])):
        for name in ("callback_id", "action_id", "block_id"):  # what bolt matches listeners on
            if isinstance(found, dict) and found.get(name) is not None \
                    and not isinstance(found[name], str):
                return f"{name} must be a string"
    if kind == "event_callback":
        event = body.get("event")
        if not _object(event) or not _text(event.get("type")) or not _text(body.get("event_id")):
            return "an event_callback needs event_id and an event with a type"
    return None


def bearer_matches(headers: Any, token: str) -> bool:
    """Whether the request says `Authorization: Bearer <token>` (compared in constant time)."""
    scheme, _, given = (headers.get("authorization") or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode("latin-1", "replace"), token.encode())


def http_app(app: App, db: Database, extra_routes: list[Route] | None = None,
             clock: Any = None, signing_secret: str | None = None,
             engine: Engine | None = None, metrics_token: str | None = None,
             api: ASGIApp | None = None, mcp: McpEndpoint | None = None) -> Starlette:
    """The routes; with an `engine`, also `POST /hooks/FLOW` (webhook triggers); with a
    `metrics_token` (BATON_METRICS_TOKEN), `/metrics` answers only a bearer of it; with an
    `api`, the approval API under `/api/v1` (bot.api); with `mcp`, the MCP tools at `/mcp`
    (bot.mcp), whose session manager the app's lifespan runs."""
    clock = clock or SystemClock()
    collector = BatonCollector(db, clock, engine=engine)
    # The app's own secret unless told otherwise (bolt keeps it as `_signing_secret`).
    secret = signing_secret if signing_secret is not None else getattr(app, "_signing_secret", "")

    async def slack_events(request: Request) -> Response:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            return JSONResponse({"error": "request body too large"}, status_code=413)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in SLACK_TYPES:
            return JSONResponse({"error": f"unsupported content type {content_type or 'none'}"},
                                status_code=415)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                return JSONResponse({"error": "request body too large"}, status_code=413)
        # Signatures are Slack's wall clock, not the engine's (which tests may fake).
        if not signed_by_slack(secret, request.headers, body, time.time()):
            return JSONResponse({"error": "invalid request: missing, wrong or stale Slack signature"},
                                status_code=401)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return JSONResponse({"error": "body is not UTF-8"}, status_code=400)
        parsed = parse_slack_body(text, content_type)
        problem = parsed if isinstance(parsed, str) else payload_problem(parsed)
        if problem is not None:
            return JSONResponse({"error": f"not a Slack request: {problem}"}, status_code=400)
        assert isinstance(parsed, dict)
        # Verified above; bolt verifies only raw text bodies, and skips this one ("socket_mode"
        # is bolt's name for a request whose body arrives parsed, from a trusted transport).
        try:
            bolt_request = BoltRequest(body=well_formed(parsed), query=request.url.query,
                                       headers=dict(request.headers), mode="socket_mode")
        except (AttributeError, KeyError, IndexError, TypeError, ValueError):
            # bolt reads team, enterprise, authorizations ... assuming Slack's types
            return JSONResponse({"error": "not a Slack request: a field has an unexpected type"},
                                status_code=400)
        reply = await run_in_threadpool(app.dispatch, bolt_request)
        return Response(status_code=reply.status, content=reply.body,
                        headers=reply.first_headers_without_set_cookie())

    async def healthz(request: Request) -> Response:
        try:
            db.ping()
        except Exception as exc:
            # Open to anyone who can reach the port: the driver's message (the database's
            # host, port, user, file) is for the operator's log only.
            log.warning("healthz_database_unreachable", error=str(exc))
            return JSONResponse({"ok": False, "database": "not answering; the server's log says "
                                                          "why (healthz_database_unreachable)"},
                                status_code=503)
        return JSONResponse({"ok": True})

    async def metrics(request: Request) -> Response:
        if metrics_token and not bearer_matches(request.headers, metrics_token):
            return JSONResponse({"error": "send Authorization: Bearer <BATON_METRICS_TOKEN>"},
                                status_code=401,
                                headers={"WWW-Authenticate": 'Bearer realm="baton-metrics"'})
        body = await run_in_threadpool(metrics_text, collector)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    async def hook(request: Request) -> Response:
        assert engine is not None
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            return JSONResponse({"error": "send application/json"}, status_code=415)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                return JSONResponse({"error": "request body too large"}, status_code=413)
        status, reply = await run_in_threadpool(webhooks.handle, engine, request.path_params["flow"],
                                                request.headers, body, clock.now())
        return JSONResponse(reply, status_code=status)

    routes = [Route("/slack/events", slack_events, methods=["POST"]),
              Route("/healthz", healthz, methods=["GET"]),
              Route("/metrics", metrics, methods=["GET"]), *(extra_routes or [])]
    if engine is not None:
        routes.append(Route("/hooks/{flow}", hook, methods=["POST"]))
    if api is not None:
        from bot.api import ApiMount

        routes.append(ApiMount("/api/v1", api))
    if mcp is None:
        return Starlette(routes=routes)
    routes.append(mcp.route)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with mcp.running():
            yield

    return Starlette(routes=routes, lifespan=lifespan)
