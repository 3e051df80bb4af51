"""`POST /hooks/FLOW`: start a run from another system (a CI pipeline, a ticketing tool).

Only flows with `triggers.webhook` accept it, and only when the request is signed with the
flow's shared secret, the way Slack signs its requests:
`X-Baton-Timestamp: <unix seconds>` and `X-Baton-Signature: v1=<hex HMAC-SHA256 of
"v1:<timestamp>:<body>">`, at most five minutes old. The body is JSON:
`{"inputs": {...}}`. An `Idempotency-Key` header makes a retried request start one run.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import structlog

from orchestrator.engine import Engine
from orchestrator.errors import BatonError, NotFound, SetupError
from orchestrator.reach import hook_secret_value_problem

log = structlog.get_logger("baton.webhooks")
TOLERANCE_S = 300


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"v1:{timestamp}:".encode() + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def handle(engine: Engine, flow: str, headers: Mapping[str, str], body: bytes,
           now: datetime) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body). Nothing is written unless the request is accepted."""
    try:
        program = engine.flows.get(flow)
    except NotFound:
        return 404, {"error": f"no flow {flow!r}"}
    except BatonError as exc:
        return 500, {"error": f"flow {flow!r} is invalid: {exc}"}
    trigger = program.flow.triggers.webhook
    if trigger is None:
        return 404, {"error": f"flow {flow!r} has no webhook trigger (triggers.webhook)"}
    secret = os.environ.get(trigger.secret_env)
    unusable = hook_secret_value_problem(trigger.secret_env, secret)
    if unusable or not secret:  # a short secret is as good as none: anyone could sign
        log.warning("webhook_not_configured", flow=flow, problem=unusable)
        return 503, {"error": f"the webhook of {flow!r} is not configured: {unusable}"}
    timestamp = headers.get("x-baton-timestamp", "")
    signature = headers.get("x-baton-signature", "")
    if not timestamp.isdigit() or not signature:
        return 401, {"error": "missing X-Baton-Timestamp or X-Baton-Signature"}
    if abs(now.timestamp() - int(timestamp)) > TOLERANCE_S:
        return 401, {"error": "stale request: X-Baton-Timestamp is more than 5 minutes away"}
    if not hmac.compare_digest(sign(secret, timestamp, body), signature):
        return 401, {"error": "bad signature"}
    try:
        data = json.loads(body.decode("utf-8") or "{}")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return 400, {"error": f"the body is not JSON: {exc}"}
    if not isinstance(data, dict) or not isinstance(data.get("inputs", {}), dict):
        return 400, {"error": 'expected {"inputs": {"name": value, ...}}'}
    key = headers.get("idempotency-key")
    try:
        run = engine.start_run(program.name, data.get("inputs", {}),
                               engine.org.principal(trigger.requester),
                               origin={"kind": "webhook", "flow": program.name},
                               request_key=f"webhook:{program.name}:{key}" if key else None)
    except SetupError as exc:  # the server's to fix, not the caller's request
        return 503, {"error": str(exc)}
    except BatonError as exc:
        return 400, {"error": str(exc)}
    return 202, {"run": run.ref, "status": run.status}
