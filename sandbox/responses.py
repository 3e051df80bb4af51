"""What Slack does with a POST to a `response_url` it handed out."""

from __future__ import annotations

from typing import Any

from sandbox.blockkit import block_errors
from sandbox.errors import ApiError
from sandbox.webapi.base import MAX_TEXT
from sandbox.workspace import Workspace


def _flag(value: Any) -> bool:
    return value in (True, "true", "True", 1, "1")


def answer(workspace: Workspace, token: str, payload: dict[str, Any]) -> None:
    """Apply one response (validated first: a rejected one changes nothing and uses nothing)."""
    text = payload.get("text")
    blocks = payload.get("blocks")
    if blocks is not None and block_errors(blocks):
        raise ApiError("invalid_blocks", errors=block_errors(blocks))
    if text is not None and (not isinstance(text, str) or len(text) > MAX_TEXT):
        raise ApiError("msg_too_long" if isinstance(text, str) else "invalid_payload")
    delete, replace_original = _flag(payload.get("delete_original")), _flag(payload.get("replace_original"))
    if not delete and not text and not blocks:
        raise ApiError("no_text")
    response_type = payload.get("response_type") or "ephemeral"
    if response_type not in ("ephemeral", "in_channel"):
        raise ApiError("invalid_response_type")

    url = workspace.use_response_url(token)
    if url.channel is None:
        raise ApiError("channel_not_found")
    if (delete or replace_original) and url.message_ts:
        if delete and url.is_ephemeral:
            workspace.delete_ephemeral(url.user, url.message_ts)
        elif delete:
            workspace.delete_message(url.channel, url.message_ts)
        elif url.is_ephemeral:
            workspace.replace_ephemeral(url.user, url.message_ts, text=text or "", blocks=blocks or ())
        else:
            workspace.update_message(url.channel, url.message_ts, text=text or "", blocks=blocks or [])
        return
    if delete:
        return
    thread_ts = payload.get("thread_ts") or None
    if response_type == "in_channel":
        workspace.post_message(url.channel, text=text or "", blocks=blocks or (), thread_ts=thread_ts)
    else:
        workspace.post_ephemeral(url.channel, url.user, text=text or "", blocks=blocks or (),
                                 thread_ts=thread_ts)
