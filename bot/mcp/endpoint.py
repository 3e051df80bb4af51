"""`/mcp`: the MCP tools over streamable HTTP, beside `/api/v1` under `baton serve --http`
and `baton dev`, authenticated with the same API tokens.

Authentication is the SDK's: a `TokenVerifier` (here, the approval service's own token
check) behind its bearer gate, which answers a request without a valid token 401 before
anything is parsed. The gate's own answer says only "Authentication required"; Baton says
why (no token, an unknown, expired or revoked one) and how to fix it, in the same shape.

Stateless: every request carries its token and may reach any replica, and a `baton serve`
restarted while a client waits is asked again as if nothing happened (no session to lose).
"""

from __future__ import annotations

import json
from contextlib import AbstractAsyncContextManager
from contextvars import ContextVar
from typing import Any

from mcp.server import ServerRequestContext
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken, TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import AnyHttpUrl
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.api.limits import MAX_BODY
from bot.mcp.backends import LocalApprovals
from bot.mcp.tools import Asker, build_server
from gates.access import Caller
from orchestrator.approvals import ApprovalService
from orchestrator.errors import Unauthorized

PATH = "/mcp"
NO_TOKEN = ("send your Baton API token: Authorization: Bearer bt_... (an operator makes one "
            "with `baton tokens create NAME --as PRINCIPAL --flows FLOW`)")
UNAUTHORIZED = -32001  # a JSON-RPC server error code (the -32000..-32099 range is the server's)
# What the SDK's bearer gate could not tell: why the token was refused (set per request).
_refusal: ContextVar[dict[str, str] | None] = ContextVar("baton_mcp_refusal", default=None)


class BatonTokens(TokenVerifier):
    """The SDK's token check, answered by the approval service (`baton tokens`)."""

    def __init__(self, service: ApprovalService) -> None:
        self.service = service

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            caller = await self.service.call(self.service.authenticate, token)
        except Unauthorized as exc:
            note = _refusal.get()
            if note is not None:
                note["why"] = str(exc)
            return None
        return AccessToken(token=token, client_id=caller.token, scopes=[],
                           subject=caller.principal, claims={"baton_caller": caller})


def _header_text(text: str) -> str:
    return "".join(c for c in text if c.isascii() and c.isprintable() and c not in '"\\')


class ExplainedRefusals:
    """The SDK's 401, with the reason the token check gave (or that no token came)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        note: dict[str, str] = {}
        reset = _refusal.set(note)
        replaced = False

        async def answer(message: Message) -> None:
            nonlocal replaced
            if message["type"] == "http.response.start" and message["status"] == 401:
                replaced = True
                why = note.get("why") or NO_TOKEN
                # A JSON-RPC error, so that an MCP client shows the reason to its user (the
                # Python SDK reads a non-2xx JSON body as one); OAuth's error in `data` and in
                # the challenge, for clients that read those.
                body = json.dumps({"jsonrpc": "2.0", "id": None, "error": {
                    "code": UNAUTHORIZED, "message": f"Baton refused the token: {why}",
                    "data": {"error": "invalid_token", "error_description": why}}}).encode()
                challenge = f'Bearer error="invalid_token", error_description="{_header_text(why)}"'
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(body)).encode()),
                                        (b"www-authenticate", challenge.encode())]})
                await send({"type": "http.response.body", "body": body})
            elif not replaced:  # the gate's own body is dropped
                await send(message)

        try:
            await self.app(scope, receive, answer)
        finally:
            _refusal.reset(reset)


class McpEndpoint:
    """The MCP server for `baton serve --http` and `baton dev`: `route` goes among the app's
    routes, and `running()` in its lifespan (the SDK's session manager)."""

    def __init__(self, service: ApprovalService, wait_s: float) -> None:
        self.service = service
        self.server = build_server(self._asker, wait_s)
        app = self.server.streamable_http_app(
            streamable_http_path=PATH, stateless_http=True, max_request_body_size=MAX_BODY,
            # Every request needs a bearer token, which a page rebinding a host name to this
            # server never has; host names are the deployment's business (a proxy's).
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
            # The SDK's resource-server settings: Baton issues its own tokens (no OAuth
            # authorization server exists), and with no resource_server_url the issuer is
            # published nowhere; it only has to be a URL.
            auth=AuthSettings(issuer_url=AnyHttpUrl("https://baton.invalid"),
                              resource_server_url=None),
            token_verifier=BatonTokens(service))
        self.app = ExplainedRefusals(app)

    def _asker(self, ctx: ServerRequestContext[Any]) -> Asker:
        token = get_access_token()
        caller = (token.claims or {}).get("baton_caller") if token is not None else None
        if token is None or not isinstance(caller, Caller):
            raise Unauthorized(NO_TOKEN)
        return Asker(caller.token, LocalApprovals(self.service, token.token, "mcp-http", caller))

    @property
    def route(self) -> Route:
        return Route(PATH, endpoint=self.app)

    def running(self) -> AbstractAsyncContextManager[None]:
        return self.server.session_manager.run()
