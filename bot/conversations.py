"""`/baton` as a slash command, in a DM to the bot, after an @-mention; and the App Home."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from bot.commands import ALREADY_HANDLED, Commands, Invocation
from bot.inbox import Inbox, Stored, request_key, signed_at
from bot.notifier import SlackSink
from bot.replies import Replies
from orchestrator.engine import Engine


class Conversations:
    def __init__(self, engine: Engine, replies: Replies, inbox: Inbox, sink: SlackSink,
                 bot_user: Callable[[], str | None],
                 later: Callable[..., None], hand_on: Callable[[Stored], None]) -> None:
        self.later = later  # work off the listener's thread that stores nothing (App Home)
        self.hand_on = hand_on  # a stored request, to be finished off the listener's thread
        self.engine = engine
        self.replies = replies
        self.inbox = inbox
        self.sink = sink
        self.bot_user = bot_user
        self.commands = Commands(engine, upload=replies.upload,
                                 upload_privately=replies.upload_privately)

    def _who(self, user: str, channel: str | None, source: str,
             thread_ts: str | None = None) -> Invocation:
        return Invocation(user=self.engine.org.principal_for_slack(user), slack_user=user,
                          channel=channel, source=source, thread_ts=thread_ts,
                          now=self.engine.clock.now())

    # -- slash command ------------------------------------------------------------------------
    def on_command(self, ack: Callable[..., None], body: dict[str, Any], request: Any) -> None:
        # Stored before anything is done: the same request again (a replayed capture of a
        # signed `/baton resume`, say) finds its key taken and changes nothing.
        key = request_key("command", body, signed_at(request))
        row = self.inbox.accept(key, "command", body)
        if row is None:
            ack(response_type="ephemeral", **ALREADY_HANDLED.payload())
            return
        who = self._who(body["user_id"], body.get("channel_id"), "command")
        reply, follow = self.commands.handle(body.get("text", ""), who)
        if follow is None:  # answered in full (or refused) right here
            self.inbox.finish(row)
            ack(response_type="in_channel" if reply.in_channel else "ephemeral", **reply.payload())
            return
        ack(response_type="in_channel" if reply.in_channel else "ephemeral", **reply.payload())
        self.hand_on(Stored(row, key, "command", body))

    def finish_command(self, request: Stored) -> None:
        """The work after the acknowledgement; also a stored command whose process died
        before it was answered (`received_at` then says when it was asked)."""
        row, key, body = request.row, request.key, request.body
        who = self._who(body["user_id"], body.get("channel_id"), "command")
        if request.received_at is not None:
            who.now = request.received_at
        reply, follow = self.commands.handle(body.get("text", ""), who)
        told = follow(key) if follow is not None else reply
        if told is not None:
            self.replies.tell(body.get("response_url"), told,
                              channel=who.channel, user=who.slack_user,
                              once=f"{key}:problem" if follow is not None else f"{key}:reply")
        self.inbox.finish(row)

    # -- DMs and mentions -----------------------------------------------------------------------
    def on_mention(self, event: dict[str, Any], body: dict[str, Any], request: Any) -> None:
        self._accept_event(body, request)

    def on_message(self, event: dict[str, Any], body: dict[str, Any], request: Any) -> None:
        if event.get("channel_type") != "im" or event.get("bot_id") or event.get("subtype"):
            return
        if self.bot_user() and event.get("user") == self.bot_user():
            return
        self._accept_event(body, request)

    def _accept_event(self, body: dict[str, Any], request: Any) -> None:
        event = body.get("event")
        if not isinstance(event, dict) or not all(isinstance(event.get(k), str) and event[k]
                                                  for k in ("user", "channel")) \
                or not isinstance(event.get("text", ""), str):
            return  # not a message a person wrote: nothing to answer, nothing to store
        key = request_key("event", body, signed_at(request))
        row = self.inbox.accept(key, "event", body)
        if row is not None:  # None: Slack delivered it again (a retry); handled already
            self.hand_on(Stored(row, key, "event", body))

    def finish_event(self, request: Stored) -> None:
        row, key, body = request.row, request.key, request.body
        event = body.get("event") or {}
        text = event.get("text", "")
        thread_ts = event.get("thread_ts")
        if event.get("type") == "app_mention":
            bot = self.bot_user()
            pattern = rf"<@{re.escape(bot)}(\|[^>]*)?>" if bot else r"^\s*<@[A-Z0-9]+(\|[^>]*)?>"
            text = re.sub(pattern, " ", text)
            thread_ts = thread_ts or event.get("ts")
            source = "mention"
        else:
            source = "dm"
        who = self._who(event["user"], event.get("channel"), source, thread_ts)
        reply, follow = self.commands.handle(text, who)
        self.replies.say(event["channel"], reply, thread_ts, once=f"{key}:reply")
        problem = follow(key) if follow is not None else None
        if problem is not None:
            self.replies.say(event["channel"], problem, thread_ts, once=f"{key}:problem")
        self.inbox.finish(row)

    # -- App Home -----------------------------------------------------------------------------
    def on_home_opened(self, event: dict[str, Any]) -> None:
        if event.get("tab", "home") != "home" or not isinstance(event.get("user"), str):
            return
        self.later(self.refresh_home, event)

    def refresh_home(self, event: dict[str, Any]) -> None:
        with self.engine.db.write() as s:
            self.sink.refresh_home(s, self.engine.org.principal_for_slack(event["user"]),
                                   self.engine.clock.now())
        self.replies.wake()
