"""How one queued Slack call is made (bot.outbox sends them, in order, and records what
became of each): its payload built (a `{"render": NAME}` payload by the renderer
registered under NAME, from the database as it is then), the messages it refers to filled
in, the Web API or a `response_url` called, and a post made before a crash found again by
the `metadata` it carries (`baton_outbox` with the row id)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import httpx
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.response_urls import ResponseUrls
from storage.engine import Database
from storage.slack import OutboxCall, Ref

METADATA_TYPE = "baton_outbox"
# Errors another attempt cannot fix: the row is marked failed and its lane moves on.
PERMANENT = frozenset({
    "channel_not_found", "not_in_channel", "is_archived", "msg_too_long", "invalid_blocks",
    "invalid_arguments", "user_not_found", "users_not_found", "cant_update_message",
    "message_not_found", "no_text", "too_many_attachments", "not_authed", "invalid_auth",
    "account_inactive", "token_revoked", "missing_scope", "restricted_action",
    "cannot_dm_bot", "user_disabled", "invalid_blocks_format", "expired_url", "edit_window_closed",
})

# Builds a payload from the database as it is when the call is sent: given what
# `Database.read()` yields and the payload's arguments.
Renderer = Callable[[Any, dict[str, Any]], dict[str, Any]]


class RetryLater(Exception):
    def __init__(self, delay: float, reason: str) -> None:
        super().__init__(reason)
        self.delay = delay


class Undeliverable(Exception):
    """This call can never succeed where it is addressed (an expired response_url)."""


class Transient(Exception):
    """This call failed in a way another attempt may not (a response_url's 5xx)."""


class SlackCalls:
    """Makes the calls the outbox claimed."""

    def __init__(self, db: Database, client: WebClient,
                 http_post: Callable[[str, dict[str, Any]], httpx.Response] | None,
                 response_urls: ResponseUrls | None) -> None:
        self.db = db
        self.client = client
        self.http_post = http_post
        # checked again at sending: a row queued by an older version was never checked
        self.response_urls = response_urls or ResponseUrls(str(getattr(client, "base_url", "")))
        self.renderers: dict[str, Renderer] = {}  # payloads built when sent, by name

    def payload(self, row: OutboxCall, refs: dict[str, Ref]) -> dict[str, Any]:
        payload = dict(row.payload)
        payload.pop("fallback", None)  # where it goes if this call cannot: not for Slack
        name = payload.pop("render", None)
        if name is not None:
            payload = self.render(str(name), payload)
        if "thread" in refs:
            payload.setdefault("channel", refs["thread"].channel)
            if refs["thread"].channel == payload.get("channel"):
                payload["thread_ts"] = refs["thread"].ts
        if "target" in refs:
            payload["channel"] = refs["target"].channel
            payload["ts"] = refs["target"].ts
        if row.method == "chat.postMessage":
            payload["metadata"] = {"event_type": METADATA_TYPE,
                                   "event_payload": {"outbox_id": row.id}}
        return payload

    def render(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        renderer = self.renderers.get(name)
        if renderer is None:  # queued by another version of Baton: a replica that has it sends it
            raise RuntimeError(f"no outbox renderer {name!r} in this process")
        with self.db.read() as s:
            return renderer(s, args)

    def make(self, row: OutboxCall, refs: dict[str, Ref]) -> dict[str, Any]:
        payload = self.payload(row, refs)
        if row.method == "files.upload_v2":
            files = [{"filename": f["filename"], "title": f.get("title", f["filename"]),
                      "content": base64.b64decode(f["content_b64"]) if "content_b64" in f
                      else f["content"]} for f in payload["files"]]
            # for one person alone (`user`): their DM with the bot, opened (or found) first
            channel = payload.get("channel") or \
                self.client.conversations_open(users=payload["user"])["channel"]["id"]
            self.client.files_upload_v2(file_uploads=files, channel=channel,
                                        initial_comment=payload.get("initial_comment"),
                                        thread_ts=payload.get("thread_ts"))
            return {}
        if row.method == "response_url":
            return self.respond(payload)
        response = self.client.api_call(row.method, json=payload)
        return dict(response.data) if isinstance(response.data, dict) else {}

    def respond(self, payload: dict[str, Any]) -> dict[str, Any]:
        """POST a reply to the response_url of the request it answers."""
        if self.http_post is None:
            raise RuntimeError("no HTTP client for response_url")
        url = payload.pop("url", None)
        if not self.response_urls.allows(url):
            raise Undeliverable("the response_url is not Slack's")
        answer = self.http_post(str(url), payload)
        status = answer.status_code
        if status == 429:
            raise RetryLater(float(answer.headers.get("Retry-After", 1) or 1),
                             "response_url rate limited (429)")
        if status >= 500:
            raise Transient(f"response_url answered {status}")
        if status >= 400:  # 404, 410: expired or used up; any other 4xx will not change either
            raise Undeliverable(f"response_url answered {status} {answer.text[:100]}".strip())
        return {}

    def find_sent(self, row: OutboxCall, refs: dict[str, Ref]) -> dict[str, Any] | None:
        """Look for a message this row already posted before a crash."""
        payload = self.payload(row, refs)
        channel = payload.get("channel")
        if not channel:
            return None
        try:
            if payload.get("thread_ts"):
                found = self.client.conversations_replies(channel=channel, ts=payload["thread_ts"],
                                                          include_all_metadata=True, limit=200)
            else:
                found = self.client.conversations_history(channel=channel,
                                                          include_all_metadata=True, limit=100)
        except SlackApiError:
            return None
        for message in found.get("messages", []):
            meta = message.get("metadata") or {}
            if (meta.get("event_type") == METADATA_TYPE
                    and (meta.get("event_payload") or {}).get("outbox_id") == row.id):
                return {"channel": channel, "ts": message["ts"]}
        return None
