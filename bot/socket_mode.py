"""Socket Mode: bolt's handler, with Baton's rules for JSON and text from outside.

An envelope's payload arrives parsed by the SDK. One nested deeper than any Slack sends is
acknowledged (so Slack does not send it again) and dropped, as the HTTP endpoint refuses
it with a 400 (bot.wire). JSON may carry lone surrogates (`"\\udcff"`), which no database
can store; the HTTP endpoint cleans parsed bodies the same way (bot.http), so both
transports hand Baton the same kind of text.
"""

from __future__ import annotations

import structlog
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk.socket_mode.client import BaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from bot.wire import MAX_DEPTH, depth_within
from orchestrator.text import well_formed

log = structlog.get_logger("baton.slack")


class BatonSocketModeHandler(SocketModeHandler):
    def handle(self, client: BaseSocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]
        if not depth_within(req.payload):
            log.warning("socket_mode_envelope_refused", envelope=req.envelope_id, type=req.type,
                        why=f"payload nested more than {MAX_DEPTH} levels deep")
            client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
            return
        req.payload = well_formed(req.payload)
        super().handle(client, req)  # type: ignore[arg-type]
