"""Saying things in Slack from a listener: every reply goes through the outbox, so it is
delivered even when Slack is down. A reply tied to a request carries that request's key
(`once`), so processing a request twice never says it twice.

A reply to one person goes by the request's response_url when it is Slack's (see
bot.response_urls), in a lane of its own: a URL that expired or fails holds up no other
reply to that person. It carries where it may go instead (`fallback`): the outbox sends it
by chat.postEphemeral, then by DM, when the URL cannot take it."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from bot.commands import Reply
from bot.response_urls import ResponseUrls
from storage import slack
from storage.engine import Database


class Replies:
    def __init__(self, db: Database, clock: Any, wake: Callable[[], None],
                 response_urls: ResponseUrls | None = None) -> None:
        self.db = db
        self.clock = clock
        self.wake = wake
        self.response_urls = response_urls or ResponseUrls()

    def queue(self, lane: str, method: str, payload: dict[str, Any], *, once: str | None = None) -> None:
        with self.db.writer() as w:
            queued = slack.queue_call_once(w, {"lane": lane, "method": method, "payload": payload,
                                               "ref": once, "created_at": self.clock.now()})
        if queued:
            self.wake()

    def tell(self, response_url: str | None, reply: Reply, *, channel: str | None = None,
             user: str | None = None, once: str | None = None) -> None:
        """An ephemeral message to one person, by response_url, else postEphemeral, else DM."""
        body = reply.payload()
        url = self.response_urls.slack_only(response_url, slack_user=user)
        fallback = {k: v for k, v in {"channel": channel, "user": user}.items() if v}
        if url:
            lane = "reply:" + hashlib.sha256(url.encode()).hexdigest()[:24]
            self.queue(lane, "response_url",
                       {"url": url, "response_type": "ephemeral", "replace_original": False,
                        **body, "fallback": fallback}, once=once)
        elif channel and user:
            self.queue(f"eph:{user}", "chat.postEphemeral",
                       {"channel": channel, "user": user, **body, "fallback": {"user": user}},
                       once=once)
        elif user:
            self.queue(f"dm:{user}", "chat.postMessage", {"channel": user, **body}, once=once)

    def say(self, channel: str, reply: Reply, thread_ts: str | None = None, *,
            once: str | None = None) -> None:
        body = reply.payload()
        if thread_ts:
            body["thread_ts"] = thread_ts
        self.queue(f"chat:{channel}", "chat.postMessage", {"channel": channel, **body}, once=once)

    def upload(self, channel: str, files: list[dict[str, Any]], comment: str,
               thread_ts: str | None, *, once: str | None = None) -> None:
        payload: dict[str, Any] = {"channel": channel, "files": files, "initial_comment": comment}
        if thread_ts:
            payload["thread_ts"] = thread_ts
        self.queue(f"files:{channel}", "files.upload_v2", payload, once=once)

    def upload_privately(self, user: str, files: list[dict[str, Any]], comment: str, *,
                         once: str | None = None) -> None:
        """Files for one person alone: in their DM with the bot (Slack has no ephemeral
        files). The DM is opened when the files are sent."""
        self.queue(f"dm:{user}", "files.upload_v2",
                   {"user": user, "files": files, "initial_comment": comment}, once=once)
