"""The Slack app: one bolt `App`, with listeners from one module per feature
(bot.conversations for commands, DMs, mentions and the App Home; bot.gate_actions for
gate buttons and modals).

Listeners store what must be done in the inbox, answer Slack (`ack()`), then do the work:
Slack gets its answer within milliseconds whatever the Web API is doing, and an answered
request is never lost. Who clicked is `body.user.id`; whether they may decide is the gate
policy's call, not the bot's. Replies go through the outbox, so they survive Slack being
down.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from typing import Any

import structlog
from slack_bolt import App, BoltResponse
from slack_bolt.authorization import AuthorizeResult
from slack_sdk import WebClient

from bot.commands import error_reply
from bot.conversations import Conversations
from bot.gate_actions import GateActions
from bot.inbox import Inbox, Stored
from bot.notifier import SlackSink
from bot.replies import Replies
from bot.response_urls import ResponseUrls
from orchestrator.engine import Engine
from orchestrator.failpoints import crash_point

log = structlog.get_logger("baton.slack")


class BotIdentity:
    """Who the bot is in Slack (from auth.test), learnt once and cached; requests are
    authorized from this cache so a Slack outage never delays an acknowledgement."""

    def __init__(self, token: str, user_id: str | None = None, bot_id: str | None = None,
                 team_id: str | None = None) -> None:
        self.token = token
        self.user_id = user_id
        self.bot_id = bot_id
        self.team_id = team_id

    def learn(self, client: WebClient) -> bool:
        try:
            found = client.auth_test()
        except Exception as exc:
            log.warning("auth_test_failed", error=str(exc))
            return False
        self.user_id = found.get("user_id")
        self.bot_id = found.get("bot_id")
        self.team_id = found.get("team_id")
        return True

    def authorizer(self) -> Callable[..., AuthorizeResult]:
        """For bolt's `authorize=` (bolt passes arguments by their names)."""

        def authorize(enterprise_id: str | None = None, team_id: str | None = None) -> AuthorizeResult:
            return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id or self.team_id,
                                   bot_token=self.token, bot_user_id=self.user_id, bot_id=self.bot_id)

        return authorize


class SlackBot:
    """The Slack features, sharing one inbox (requests to finish) and one way to reply."""

    def __init__(self, engine: Engine, sink: SlackSink, identity: BotIdentity,
                 wake_outbox: Callable[[], None], response_urls: ResponseUrls,
                 later: Callable[..., None], soon: Callable[..., None]) -> None:
        self.engine = engine
        self.identity = identity
        self.later = later
        self.replies = Replies(engine.db, engine.clock, wake_outbox, response_urls)
        self.inbox = Inbox(engine.db, engine.clock)
        self.conversations = Conversations(engine, self.replies, self.inbox, sink,
                                           lambda: identity.user_id, later, self.hand_on)
        self.gates = GateActions(engine, self.replies, self.inbox, self.hand_on, soon)
        # Every kind of request the listeners store, and what finishes it: the work right
        # after the acknowledgement and the sweep after a crash both look the kind up here.
        self.finishers: dict[str, Callable[[Stored], None]] = {
            "command": self.conversations.finish_command,
            "event": self.conversations.finish_event,
            **self.gates.finishers,
        }

    def hand_on(self, request: Stored) -> None:
        """A request stored and acknowledged: finish it off the listener's thread."""
        self.later(self._after_ack, request)

    def _after_ack(self, request: Stored) -> None:
        crash_point("request.accepted")  # stored and acknowledged, nothing done yet
        self.finish(request)

    def finish(self, request: Stored) -> None:
        finisher = self.finishers.get(request.kind)
        if finisher is None:  # stored by another version of Baton: left for a person to see
            log.error("inbox_kind_unknown", key=request.key, kind=request.kind)
            self.inbox.finish(request.row, f"no finisher for requests of kind {request.kind!r}")
            return
        finisher(request)

    def finish_abandoned(self) -> int:
        """Finish requests a dead process acknowledged but did not complete."""
        rows = self.inbox.claim_abandoned()
        for row in rows:
            assert row.id is not None
            try:
                self.finish(Stored(row.id, row.key, row.kind, row.payload, row.received_at))
            except Exception as exc:
                log.exception("inbox_request_failed", key=row.key)
                if row.attempts >= 3:
                    self.inbox.finish(row.id, f"{type(exc).__name__}: {exc}")
        if rows:
            log.info("inbox_requests_finished", count=len(rows))
        return len(rows)


def on_listener_error(error: Exception, body: dict[str, Any]) -> BoltResponse:
    """A listener raised: a bug, or a payload no check foresaw. Logged with its traceback;
    Slack gets a 200 (never bolt's 500), and a slash command an answer saying what happened.
    A request stored before the error is finished by the inbox's sweep."""
    log.error("listener_failed", exc_info=error)
    if isinstance(body, dict) and "command" in body and "type" not in body:
        reply = error_reply("Baton could not do that because of an error on its side (logged as "
                            "listener_failed). Try again; if it persists, tell whoever runs Baton.")
        return BoltResponse(status=200, body=json.dumps({"response_type": "ephemeral",
                                                         **reply.payload()}),
                            headers={"content-type": "application/json"})
    return BoltResponse(status=200, body="")


def request_context(listener: Callable[..., Any]) -> Callable[..., Any]:
    """Bind who and which Slack request to every log line a listener writes (bolt runs
    listeners in worker threads, where the request's context would otherwise be lost)."""

    @functools.wraps(listener)
    def run(**kwargs: Any) -> Any:
        body = kwargs.get("body") or {}
        event = kwargs.get("event") or body.get("event") or {}
        user = (body.get("user") or {}).get("id") if isinstance(body.get("user"), dict) else None
        ids = {"slack_user": user or body.get("user_id") or event.get("user"),
               "slack_request": body.get("trigger_id") or body.get("event_id") or event.get("ts"),
               "slack_kind": body.get("type") or body.get("command") or event.get("type")}
        with structlog.contextvars.bound_contextvars(**{k: v for k, v in ids.items() if v}):
            return listener(**kwargs)

    return run


def build_app(bot: SlackBot, client: WebClient, signing_secret: str | None) -> App:
    """The bolt App. In Socket Mode there is no signing secret (the socket is the proof).

    Listeners run in the thread that dispatches the request, and Slack's answer is what they
    acked once they return (`process_before_response`). They only store and acknowledge; the
    work is handed on (`SlackBot.hand_on`, or `soon` to open a modal). Otherwise bolt would
    run each listener on another pool and poll for its ack every 10 ms: every answer took at
    least 10 ms, and a burst of clicks held a dispatch thread each while their listeners
    queued for the other pool.
    """
    app = App(client=client, signing_secret=signing_secret or "",
              request_verification_enabled=signing_secret is not None,
              authorize=bot.identity.authorizer(), process_before_response=True,
              ignoring_self_events_enabled=False, url_verification_enabled=True)

    app.error(on_listener_error)
    listen = request_context
    # Bolt routes each request to one listener by its action or callback id; the listener
    # stores it under one kind (`action:gate.claim`, ...) that names its finisher
    # (SlackBot.finishers), and nothing routes it again.
    app.command("/baton")(listen(bot.conversations.on_command))
    app.event("app_mention")(listen(bot.conversations.on_mention))
    app.event("message")(listen(bot.conversations.on_message))
    app.event("app_home_opened")(listen(bot.conversations.on_home_opened))
    app.action(re.compile(r"^gate\.decide\."))(listen(bot.gates.on_decide))
    app.action("gate.edit")(listen(bot.gates.on_edit))
    app.action("gate.claim")(listen(bot.gates.on_claim))
    app.action("gate.snooze")(listen(bot.gates.on_snooze))
    app.view("gate.reason")(listen(bot.gates.on_reason))
    app.view("gate.edit")(listen(bot.gates.on_edit_submit))
    return app

