"""Socket Mode: bolt's handler, with Baton's one rule for text from outside.

An envelope's payload arrives parsed by the SDK; JSON may carry lone surrogates
(`"\\udcff"`), which no database can store. The HTTP endpoint cleans parsed bodies the same
way (bot.http), so both transports hand Baton the same kind of text.
"""

from __future__ import annotations

from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk.socket_mode.client import BaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest

from orchestrator.text import well_formed


class BatonSocketModeHandler(SocketModeHandler):
    def handle(self, client: BaseSocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]
        req.payload = well_formed(req.payload)
        super().handle(client, req)  # type: ignore[arg-type]
