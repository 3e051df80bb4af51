"""HTTP mode: `POST /slack/events` for commands, interactivity and events (signature
checked by bolt), `GET /healthz`, `GET /metrics` (Prometheus). Bolt's dispatch runs in a
worker thread, so one slow request never holds up another's acknowledgement."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from prometheus_client import CONTENT_TYPE_LATEST
from slack_bolt import App, BoltRequest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.metrics import BatonCollector, metrics_text
from orchestrator.clock import SystemClock
from storage.engine import Database

MAX_BODY = 1_000_000  # Slack's payloads are far smaller; refuse anything bigger unread
SLACK_TYPES = ("application/x-www-form-urlencoded", "application/json")


def http_app(app: App, db: Database, extra_routes: list[Route] | None = None,
             clock: Any = None) -> Starlette:
    collector = BatonCollector(db, clock or SystemClock())

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
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return JSONResponse({"error": "body is not UTF-8"}, status_code=400)
        bolt_request = BoltRequest(body=text, query=request.url.query,
                                   headers=dict(request.headers))
        reply = await run_in_threadpool(app.dispatch, bolt_request)
        return Response(status_code=reply.status, content=reply.body,
                        headers=reply.first_headers_without_set_cookie())

    async def healthz(request: Request) -> Response:
        status: dict[str, Any] = {"ok": True}
        try:
            with db.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except Exception as exc:
            status = {"ok": False, "database": str(exc)}
        return JSONResponse(status, status_code=200 if status["ok"] else 503)

    async def metrics(request: Request) -> Response:
        body = await run_in_threadpool(metrics_text, collector)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    routes = [Route("/slack/events", slack_events, methods=["POST"]),
              Route("/healthz", healthz, methods=["GET"]),
              Route("/metrics", metrics, methods=["GET"]), *(extra_routes or [])]
    return Starlette(routes=routes)
