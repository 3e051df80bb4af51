"""The Slack Web API, method by method, over a `Workspace`.

`call` answers one request the way Slack does: always a JSON body, `{"ok": true, ...}` or
`{"ok": false, "error": code}`; the HTTP layer (sandbox.app) adds the status codes.
"""

from __future__ import annotations

from typing import Any

from sandbox.errors import ApiError
from sandbox.records import JSON
from sandbox.webapi import chat, conversations, files, views
from sandbox.webapi.base import METHODS, TOKEN_TYPES, ApiRequest, Args
from sandbox.workspace import Workspace

__all__ = ["METHODS", "call", "chat", "conversations", "files", "views"]


def call(workspace: Workspace, method: str, values: dict[str, Any], *, token: str | None,
         base_url: str) -> JSON:
    try:
        handler = METHODS.get(method)
        if handler is None:
            raise ApiError("unknown_method", req_method=method)
        if not token:
            raise ApiError("not_authed")
        token_types = {workspace.app.bot_token: "bot", workspace.app.app_token: "app"}
        token_type = token_types.get(token)
        if token_type is None:
            raise ApiError("invalid_auth")
        if token_type != TOKEN_TYPES[method]:
            raise ApiError("not_allowed_token_type")
        body = handler(ApiRequest(workspace, Args(values), token_type, base_url))  # type: ignore[arg-type]
    except ApiError as error:
        return error.to_api()
    return {"ok": True, **body}
