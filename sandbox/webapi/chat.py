"""chat.* methods: what the bot posts, edits and deletes."""

from __future__ import annotations

from typing import Any

from sandbox.errors import ApiError
from sandbox.records import JSON
from sandbox.webapi.base import ApiRequest, Args, message_content, method


def _metadata(args: Args) -> JSON | None:
    metadata: Any = args.json("metadata", "invalid_metadata_format")
    if metadata is None:
        return None
    if not isinstance(metadata, dict) or not isinstance(metadata.get("event_type"), str) \
            or not isinstance(metadata.get("event_payload", {}), dict):
        raise ApiError("invalid_metadata_schema")
    return metadata


@method("chat.postMessage")
def post_message(req: ApiRequest) -> JSON:
    ws, args = req.workspace, req.args
    channel = ws.resolve_channel(args.require("channel", "channel_not_found"))
    text, blocks = message_content(args)
    message = ws.post_message(channel.id, text=text or "", blocks=blocks or (), metadata=_metadata(args),
                              thread_ts=args.text("thread_ts") or None)
    return {"channel": channel.id, "ts": message.ts, "message": ws.message_to_api(message)}


@method("chat.update")
def update(req: ApiRequest) -> JSON:
    ws, args = req.workspace, req.args
    channel = ws.resolve_channel(args.require("channel", "channel_not_found"))
    ts = args.require("ts", "message_not_found")
    text, blocks = message_content(args, required=False)
    metadata = _metadata(args)
    if text is None and blocks is None and metadata is None:
        raise ApiError("no_text")
    message = ws.update_message(channel.id, ts, text=text, blocks=blocks, metadata=metadata)
    return {"channel": channel.id, "ts": message.ts, "text": message.text,
            "message": ws.message_to_api(message)}


@method("chat.postEphemeral")
def post_ephemeral(req: ApiRequest) -> JSON:
    ws, args = req.workspace, req.args
    channel = ws.resolve_channel(args.require("channel", "channel_not_found"))
    user = ws.user(args.require("user", "user_not_found"))
    text, blocks = message_content(args)
    ephemeral = ws.post_ephemeral(channel.id, user.id, text=text or "", blocks=blocks or (),
                                  thread_ts=args.text("thread_ts") or None)
    return {"message_ts": ephemeral.ts}


@method("chat.delete")
def delete(req: ApiRequest) -> JSON:
    ws, args = req.workspace, req.args
    channel = ws.resolve_channel(args.require("channel", "channel_not_found"))
    ts = args.require("ts", "message_not_found")
    ws.delete_message(channel.id, ts)
    return {"channel": channel.id, "ts": ts}


@method("chat.getPermalink")
def get_permalink(req: ApiRequest) -> JSON:
    ws, args = req.workspace, req.args
    channel = ws.channel(args.require("channel", "channel_not_found"))
    message = ws.message(channel.id, args.require("message_ts", "message_not_found"))
    link = f"https://{ws.team.domain}.slack.com/archives/{channel.id}/p{message.ts.replace('.', '')}"
    if message.is_reply:
        link += f"?thread_ts={message.thread_ts}&cid={channel.id}"
    return {"channel": channel.id, "permalink": link}
