"""The Slack app: one bolt `App`, listeners registered per feature.

Every listener answers Slack first (`ack()`), then does the work: Slack gets its answer
within milliseconds whatever the database or Slack's Web API are doing. Who clicked is
`body.user.id`; whether they may decide is the gate policy's call, not the bot's.
Replies that need the Web API go through the outbox, so they survive Slack being down.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from concurrent.futures import Executor
from datetime import datetime
from typing import Any

import structlog
from slack_bolt import App, BoltResponse
from slack_bolt.authorization import AuthorizeResult
from slack_sdk import WebClient
from sqlalchemy.exc import IntegrityError

from bot.blocks import esc
from bot.commands import Commands, Invocation, Reply, error_reply
from bot.notifier import SlackSink
from bot.outbox import enqueue
from bot.render.modals import REASON_ACTION, REASON_BLOCK, edit_modal, reason_modal
from bot.views import gate_view
from orchestrator.engine import Engine
from orchestrator.inputs import coerce
from storage.models import Gate, Run, SlackDelivery

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
    """The listeners, with what they need: the engine, the sink, a way to queue replies."""

    def __init__(self, engine: Engine, sink: SlackSink, identity: BotIdentity,
                 wake_outbox: Callable[[], None]) -> None:
        self.engine = engine
        self.org = engine.org
        self.sink = sink
        self.identity = identity
        self.wake_outbox = wake_outbox
        self.commands = Commands(engine, upload=self.upload)

    # -- replies ------------------------------------------------------------------------------
    def _queue(self, lane: str, method: str, payload: dict[str, Any]) -> None:
        with self.engine.db.write() as s:
            enqueue(s, lane=lane, method=method, payload=payload, at=self.engine.clock.now())
        self.wake_outbox()

    def tell(self, response_url: str | None, reply: Reply, *, channel: str | None = None,
             user: str | None = None) -> None:
        """An ephemeral message to one person, by response_url, else postEphemeral, else DM."""
        body = reply.payload()
        if response_url:
            self._queue(f"eph:{user}", "response_url",
                        {"url": response_url, "response_type": "ephemeral",
                         "replace_original": False, **body})
        elif channel and user:
            self._queue(f"eph:{user}", "chat.postEphemeral", {"channel": channel, "user": user, **body})
        elif user:
            self._queue(f"dm:{user}", "chat.postMessage", {"channel": user, **body})

    def say(self, channel: str, reply: Reply, thread_ts: str | None = None) -> None:
        body = reply.payload()
        if thread_ts:
            body["thread_ts"] = thread_ts
        self._queue(f"chat:{channel}", "chat.postMessage", {"channel": channel, **body})

    def upload(self, channel: str, files: list[dict[str, Any]], comment: str,
               thread_ts: str | None) -> None:
        payload: dict[str, Any] = {"channel": channel, "files": files, "initial_comment": comment}
        if thread_ts:
            payload["thread_ts"] = thread_ts
        self._queue(f"files:{channel}", "files.upload_v2", payload)

    def principal(self, slack_user: str) -> str:
        return self.org.principal_for_slack(slack_user)

    def now(self) -> datetime:
        return self.engine.clock.now()

    # -- de-duplication ---------------------------------------------------------------------
    def first_delivery(self, delivery_id: str) -> bool:
        """True the first time Slack delivers `delivery_id` (retries and replicas included)."""
        try:
            with self.engine.db.write() as s:
                if s.get(SlackDelivery, delivery_id) is not None:
                    return False
                s.add(SlackDelivery(id=delivery_id, received_at=self.now()))
        except IntegrityError:
            return False
        return True

    # -- commands -----------------------------------------------------------------------------
    def on_command(self, ack: Callable[..., None], body: dict[str, Any]) -> None:
        who = Invocation(user=self.principal(body["user_id"]), slack_user=body["user_id"],
                         channel=body.get("channel_id"), source="command", now=self.now())
        reply, follow = self.commands.handle(body.get("text", ""), who)
        ack(response_type="in_channel" if reply.in_channel else "ephemeral", **reply.payload())
        if follow is not None:
            problem = follow()
            if problem is not None:
                self.tell(body.get("response_url"), problem, channel=who.channel, user=who.slack_user)

    def _conversation(self, event: dict[str, Any], text: str, source: str,
                      thread_ts: str | None) -> None:
        user = event["user"]
        who = Invocation(user=self.principal(user), slack_user=user, channel=event.get("channel"),
                         source=source, thread_ts=thread_ts, now=self.now())
        reply, follow = self.commands.handle(text, who)
        self.say(event["channel"], reply, thread_ts)
        if follow is not None:
            problem = follow()
            if problem is not None:
                self.say(event["channel"], problem, thread_ts)

    def on_mention(self, event: dict[str, Any]) -> None:
        bot = self.identity.user_id
        text = re.sub(rf"<@{re.escape(bot)}(\|[^>]*)?>", " ", event.get("text", "")) if bot else \
            re.sub(r"^\s*<@[A-Z0-9]+(\|[^>]*)?>", " ", event.get("text", ""))
        self._conversation(event, text, "mention", event.get("thread_ts") or event.get("ts"))

    def on_message(self, event: dict[str, Any]) -> None:
        if event.get("channel_type") != "im" or event.get("bot_id") or event.get("subtype"):
            return
        if self.identity.user_id and event.get("user") == self.identity.user_id:
            return
        self._conversation(event, event.get("text", ""), "dm", event.get("thread_ts"))

    def on_home_opened(self, event: dict[str, Any]) -> None:
        if event.get("tab", "home") != "home":
            return
        with self.engine.db.write() as s:
            self.sink.refresh_home(s, self.principal(event["user"]), self.now())
        self.wake_outbox()

    # -- gate buttons ---------------------------------------------------------------------------
    def _gate(self, gate_id: int) -> tuple[Gate, Run] | None:
        with self.engine.db.read() as s:
            gate = s.get(Gate, gate_id)
            run = s.get(Run, gate.run_id) if gate else None
        return (gate, run) if gate and run else None

    @staticmethod
    def _origin(body: dict[str, Any]) -> dict[str, Any]:
        channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")
        return {k: v for k, v in {"c": channel, "r": body.get("response_url")}.items() if v}

    def on_decide(self, ack: Callable[..., None], body: dict[str, Any], action: dict[str, Any],
                  client: WebClient) -> None:
        ack()
        user = body["user"]["id"]
        origin = self._origin(body)
        try:
            value = json.loads(action.get("value") or "{}")
            gate_id, option_id = int(value["g"]), str(value["o"])
        except (ValueError, KeyError, TypeError):
            self.tell(origin.get("r"), error_reply("this button is not one of Baton's"),
                      channel=origin.get("c"), user=user)
            return
        found = self._gate(gate_id)
        if found is None:
            self.tell(origin.get("r"), error_reply("that gate no longer exists"),
                      channel=origin.get("c"), user=user)
            return
        gate, run = found
        principal = self.principal(user)
        option = next((o for o in gate.options if o["id"] == option_id), None)
        needs_words = option is not None and option.get("reason_required")
        if gate.status == "open" and needs_words and principal in gate.approvers:
            with self.engine.db.read() as s:
                view = gate_view(s, gate, run)
            client.views_open(trigger_id=body["trigger_id"],
                              view=reason_modal(view, option, origin))
            return
        self._decide(run, gate, principal, user, option_id, None, None, origin)

    def _decide(self, run: Run, gate: Gate, principal: str, user: str, option: str,
                reason: str | None, edits: dict[str, Any] | None, origin: dict[str, Any]) -> None:
        report = self.engine.decide(run.ref, principal, option, reason=reason, edits=edits,
                                    gate=str(gate.id))
        if report.status == "recorded" and report.outcome is not None:
            return  # the gate message itself now shows who decided, for everyone
        icon = {"refused": ":no_entry_sign:", "duplicate": ":information_source:",
                "escalated": ":rotating_light:"}.get(report.status, ":white_check_mark:")
        text = f"{icon} {esc(report.message)}"
        self.tell(origin.get("r"), Reply(text, [{"type": "section",
                                                "text": {"type": "mrkdwn", "text": text[:3000]}}]),
                  channel=origin.get("c"), user=user)

    def on_edit(self, ack: Callable[..., None], body: dict[str, Any], action: dict[str, Any],
                client: WebClient) -> None:
        ack()
        user = body["user"]["id"]
        origin = self._origin(body)
        found = self._gate(int(json.loads(action.get("value") or "{}").get("g", 0)))
        if found is None:
            return
        gate, run = found
        if gate.status != "open" or self.principal(user) not in gate.approvers:
            # not theirs to edit: let the policy refuse it (and trace who tried)
            approve = next((o["id"] for o in gate.options if o["effect"] == "approve"), "approve")
            self._decide(run, gate, self.principal(user), user, approve, None, None, origin)
            return
        program = self.engine.program_for(run)
        types = {name: spec.type for name, spec in program.flow.inputs.items()}
        approve = next((o for o in gate.options if o["effect"] == "approve"), {})
        with self.engine.db.read() as s:
            view = gate_view(s, gate, run)
        client.views_open(trigger_id=body["trigger_id"], view=edit_modal(
            view, {**run.inputs, **gate.proposal}, types, origin, bool(approve.get("reason_required"))))

    def on_claim(self, ack: Callable[..., None], body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        self._escalation_command(body, action, lambda ref, who, gate: self.engine.claim(ref, who, gate))

    def on_snooze(self, ack: Callable[..., None], body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        choice = (action.get("selected_option") or {}).get("value", "")
        gate_id, _, seconds = choice.partition(":")
        action = {**action, "value": json.dumps({"g": gate_id})}
        self._escalation_command(
            body, action, lambda ref, who, gate: self.engine.snooze(ref, who, f"{seconds}s", gate))

    def _escalation_command(self, body: dict[str, Any], action: dict[str, Any],
                            run_it: Callable[[str, str, str], str]) -> None:
        user = body["user"]["id"]
        origin = self._origin(body)
        try:
            gate_id = int(json.loads(action.get("value") or "{}")["g"])
        except (ValueError, KeyError, TypeError):
            return
        found = self._gate(gate_id)
        if found is None:
            return
        gate, run = found
        try:
            message = run_it(run.ref, self.principal(user), str(gate.id))
            reply = Reply(esc(message), [{"type": "section", "text": {"type": "mrkdwn",
                                                                      "text": f":ok_hand: {esc(message)}"}}])
        except Exception as exc:  # a refusal (BatonError): say why
            reply = error_reply(str(exc))
        self.tell(origin.get("r"), reply, channel=origin.get("c"), user=user)

    # -- modals -------------------------------------------------------------------------------
    def on_reason(self, ack: Callable[..., None], body: dict[str, Any], view: dict[str, Any]) -> None:
        meta = json.loads(view.get("private_metadata") or "{}")
        values = view.get("state", {}).get("values", {})
        reason = ((values.get(REASON_BLOCK) or {}).get(REASON_ACTION) or {}).get("value") or ""
        found = self._gate(int(meta.get("g", 0)))
        if found is None:
            ack()
            return
        gate, run = found
        option = next((o for o in gate.options if o["id"] == meta.get("o")), None)
        if option is not None and option.get("reason_required") and not reason.strip():
            ack(response_action="errors", errors={REASON_BLOCK: "Please say why: people read this "
                                                                "in the trace later."})
            return
        ack()
        self._decide(run, gate, self.principal(body["user"]["id"]), body["user"]["id"],
                     str(meta.get("o")), reason, None, meta)

    def on_edit_submit(self, ack: Callable[..., None], body: dict[str, Any],
                       view: dict[str, Any]) -> None:
        meta = json.loads(view.get("private_metadata") or "{}")
        values = view.get("state", {}).get("values", {})
        found = self._gate(int(meta.get("g", 0)))
        if found is None:
            ack()
            return
        gate, run = found
        flow = self.engine.program_for(run).flow
        edits: dict[str, Any] = {}
        errors: dict[str, str] = {}
        for name in gate.editable:
            raw = ((values.get(f"edit:{name}") or {}).get("value") or {}).get("value")
            try:
                edits[name] = coerce(flow.inputs[name], raw if raw is not None else "", name)
            except ValueError as exc:
                errors[f"edit:{name}"] = str(exc)[:150]
        reason = ((values.get(REASON_BLOCK) or {}).get(REASON_ACTION) or {}).get("value") or ""
        approve = next((o for o in gate.options if o["effect"] == "approve"), None)
        if approve is not None and approve.get("reason_required") and not reason.strip():
            errors[REASON_BLOCK] = "Please say why."
        if errors:
            ack(response_action="errors", errors=errors)
            return
        ack()
        option = approve["id"] if approve else "approve"
        self._decide(run, gate, self.principal(body["user"]["id"]), body["user"]["id"], option,
                     reason or None, edits, meta)


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


def build_app(bot: SlackBot, client: WebClient, signing_secret: str | None,
              listeners: Executor | None = None) -> App:
    """The bolt App. In Socket Mode there is no signing secret (the socket is the proof)."""
    app = App(client=client, signing_secret=signing_secret or "", listener_executor=listeners,
              request_verification_enabled=signing_secret is not None,
              authorize=bot.identity.authorizer(), process_before_response=False,
              ignoring_self_events_enabled=False, url_verification_enabled=True)

    @app.middleware
    def once_per_delivery(body: dict[str, Any], next: Callable[[], Any]) -> Any:
        event_id = body.get("event_id") if body.get("type") == "event_callback" else None
        if event_id and not bot.first_delivery(f"event:{event_id}"):
            return BoltResponse(status=200, body="")  # a redelivery: already handled
        return next()

    app.command("/baton")(request_context(bot.on_command))
    app.event("app_mention")(request_context(bot.on_mention))
    app.event("message")(request_context(bot.on_message))
    app.event("app_home_opened")(request_context(bot.on_home_opened))
    app.action(re.compile(r"^gate\.decide\."))(request_context(bot.on_decide))
    app.action("gate.edit")(request_context(bot.on_edit))
    app.action("gate.claim")(request_context(bot.on_claim))
    app.action("gate.snooze")(request_context(bot.on_snooze))
    app.view("gate.reason")(request_context(bot.on_reason))
    app.view("gate.edit")(request_context(bot.on_edit_submit))
    return app

