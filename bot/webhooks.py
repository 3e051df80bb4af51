"""`POST /hooks/FLOW`: start a run from another system (a CI pipeline, a ticketing tool).

Only flows with `triggers.webhook` accept it, and only when the request is signed with the
flow's shared secret, at most five minutes old: `X-Baton-Timestamp: <unix seconds>` and
`X-Baton-Signature`, one of

- `v2=<hex HMAC-SHA256 of "v2:<timestamp>:<flow>:<idempotency key>:<body>">`: covers the
  flow it is sent to and the `Idempotency-Key` header (empty when there is none);
- `v1=<hex HMAC-SHA256 of "v1:<timestamp>:<body>">`: the first scheme, kept for callers
  that send no `Idempotency-Key`.

The body is JSON: `{"inputs": {...}}`.

A request is acted on once. The same signed bytes sent again (a replay by anyone who saw
them, or a client's blind retry) find the run they started. A retry signed afresh is the
same request only when it carries the same signed `Idempotency-Key`: a key the signature
does not cover could be changed by anyone holding a captured request, so with `v1` the
header is refused rather than trusted.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import structlog

from bot.blocks import hide_paths
from bot.wire import parse_json
from gates.org import SpecError
from orchestrator.engine import Engine
from orchestrator.errors import BatonError, NotFound, SetupError
from orchestrator.reach import hook_secret_value_problem

log = structlog.get_logger("baton.webhooks")

TOLERANCE_S = 300
MAX_KEY = 255  # Idempotency-Key: as long as Stripe's, printable ASCII


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """The `v1` signature (covers the timestamp and the body)."""
    mac = hmac.new(secret.encode(), f"v1:{timestamp}:".encode() + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def sign_v2(secret: str, timestamp: int | str, flow: str, body: bytes, key: str = "") -> str:
    """The `v2` signature (covers the timestamp, the flow, the Idempotency-Key and the body)."""
    base = f"v2:{timestamp}:{flow}:{key}:".encode() + body
    return "v2=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def _key_problem(key: str) -> str | None:
    if not key or len(key) > MAX_KEY or not key.isascii() or not key.isprintable():
        return (f"Idempotency-Key must be 1 to {MAX_KEY} printable ASCII characters "
                "(a UUID, or the caller's own id for the job)")
    return None


def _verify(secret: str, flow: str, timestamp: str, signature: str, key: str | None,
            body: bytes) -> tuple[int, str] | None:
    """What is wrong with the request's signature, as (status, message); None when it holds."""
    scheme = signature.partition("=")[0]
    if scheme == "v2":
        expected = sign_v2(secret, timestamp, flow, body, key or "")
    elif scheme == "v1":
        expected = sign(secret, timestamp, body)
    else:
        return 401, "X-Baton-Signature must be v2=<hex> or v1=<hex>"
    if not hmac.compare_digest(expected.encode(), signature.encode("latin-1", "replace")):
        return 401, "bad signature"
    if scheme == "v1" and key is not None:
        return 400, ("Idempotency-Key is not covered by a v1 signature, so anyone holding the "
                     "request could change it: sign with v2 "
                     "(\"v2:<timestamp>:<flow>:<idempotency key>:<body>\") or leave the header out")
    return None


def request_key(flow: str, timestamp: str, body: bytes, key: str | None) -> str:
    """What makes two requests the same run: the signed key, else the signed bytes."""
    if key is not None:
        return f"webhook:{flow}:{key}"  # as before v2, so older runs are still found
    digest = hashlib.sha256(timestamp.encode() + b":" + body).hexdigest()
    return f"webhook-request:{flow}:{digest}"


def handle(engine: Engine, flow: str, headers: Mapping[str, str], body: bytes,
           now: datetime) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body). Nothing is written unless the request is accepted."""
    try:
        program = engine.flows.get(flow)
    except NotFound:
        return 404, {"error": f"no flow {flow!r}"}
    except BatonError as exc:
        log.error("webhook_flow_invalid", flow=flow, error=str(exc))
        return 503, {"error": f"flow {flow!r} cannot be loaded; the server's log says why"}
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
    key = headers.get("idempotency-key")
    if not (timestamp.isascii() and timestamp.isdigit()) or not signature:
        return 401, {"error": "missing X-Baton-Timestamp or X-Baton-Signature"}
    if abs(now.timestamp() - int(timestamp)) > TOLERANCE_S:
        return 401, {"error": "stale request: X-Baton-Timestamp is more than 5 minutes away"}
    refused = _verify(secret, program.name, timestamp, signature, key, body)
    if refused is not None:
        return refused[0], {"error": refused[1]}
    if key is not None and (problem := _key_problem(key)) is not None:
        return 400, {"error": problem}
    try:
        data = parse_json(body.decode("utf-8") or "{}")
    except ValueError as exc:  # UnicodeDecodeError and nesting too deep are ValueErrors too
        return 400, {"error": f"the body is not JSON: {exc}"}
    if not isinstance(data, dict) or not isinstance(data.get("inputs", {}), dict):
        return 400, {"error": 'expected {"inputs": {"name": value, ...}}'}
    try:
        requester = engine.org.principal(trigger.requester)
    except SpecError as exc:
        log.error("webhook_requester_unknown", flow=flow, error=str(exc))
        return 503, {"error": f"the webhook of {flow!r} names a requester the org file does not "
                              "know; the server's log says which"}
    try:
        run = engine.start_run(program.name, data.get("inputs", {}), requester,
                               origin={"kind": "webhook", "flow": program.name},
                               request_key=request_key(program.name, timestamp, body, key))
    except SetupError as exc:  # the server's to fix, not the caller's request
        return 503, {"error": str(exc)}
    except BatonError as exc:
        return 400, {"error": hide_paths(str(exc))}
    return 202, {"run": run.ref, "status": run.status}
