"""Slack's side of the conversation with a bot in HTTP mode.

The driver does what Slack does when a person acts: stores what Slack would store (the
user's own message, the submitted state of a modal), builds the exact payload, signs it
with the app's signing secret and POSTs it to the app's request URL, then applies the
app's acknowledgement the way Slack does (a slash command's immediate reply, a
view_submission's `response_action`). Every call returns the `Delivery`: the request as
sent and the bot's answer, so tests can replay it, redeliver it as a Slack retry, or
sign it wrong on purpose.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

import httpx

from sandbox import payloads
from sandbox.blockkit import action_ids, block_errors, find_element, view_errors
from sandbox.errors import ApiError, SandboxError
from sandbox.records import JSON, Channel, User, View
from sandbox.workspace import Workspace

ACK_DEADLINE = 3.0
USER_AGENT = "Slackbot 1.0 (+https://api.slack.com/robots)"


@dataclass(frozen=True)
class Signing:
    """Override how a request is signed: another secret, or a timestamp from another time."""

    secret: str | None = None
    timestamp: int | None = None


@dataclass(frozen=True)
class SlackRequest:
    url: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Delivery:
    request: SlackRequest
    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def acked_in_time(self) -> bool:
        """Whether Slack would have accepted the answer (it gives up after 3 seconds)."""
        return self.elapsed < ACK_DEADLINE

    def json(self) -> Any:
        """The answer's JSON body, or None when it is empty or not JSON."""
        try:
            return json.loads(self.body) if self.body.strip() else None
        except ValueError:
            return None


def signature(secret: str, timestamp: int | str, body: bytes) -> str:
    base = f"v0:{timestamp}:".encode() + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


class Driver:
    def __init__(self, workspace: Workspace, request_url: str, *, emulator_url: str, timeout: float = 10.0,
                 now: Callable[[], float] = time.time) -> None:
        self.workspace = workspace
        self.request_url = request_url
        self.emulator_url = emulator_url.rstrip("/")
        # Signatures are checked against the bot's wall clock, not the workspace's clock.
        self.now = now
        self.http = httpx.Client(trust_env=False, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Driver:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    # -- transport ----------------------------------------------------------------------
    def post(self, body: bytes, content_type: str, *, signing: Signing | None = None,
             headers: Mapping[str, str] | None = None) -> Delivery:
        """POST `body` to the bot, signed as Slack signs it."""
        return self.send(self.sign(body, content_type, signing=signing, headers=headers))

    def sign(self, body: bytes, content_type: str, *, signing: Signing | None = None,
             headers: Mapping[str, str] | None = None) -> SlackRequest:
        """The request Slack would send for `body`, signed, not sent yet."""
        signing = signing or Signing()
        timestamp = signing.timestamp if signing.timestamp is not None else int(self.now())
        secret = signing.secret if signing.secret is not None else self.workspace.app.signing_secret
        sent = {"Content-Type": content_type, "User-Agent": USER_AGENT,
                "X-Slack-Request-Timestamp": str(timestamp),
                "X-Slack-Signature": signature(secret, timestamp, body), **(headers or {})}
        return SlackRequest(url=self.request_url, body=body, headers=sent)

    def send(self, request: SlackRequest) -> Delivery:
        """Send `request` exactly as it is (same bytes, same headers, same signature)."""
        started = time.monotonic()
        response = self.http.post(request.url, content=request.body, headers=request.headers)
        return Delivery(request=request, status=response.status_code, body=response.text,
                        headers=dict(response.headers), elapsed=time.monotonic() - started)

    def replay(self, delivery: Delivery) -> Delivery:
        """The very same request again, as a double click or a replayed capture would send it."""
        return self.send(delivery.request)

    def redeliver(self, delivery: Delivery, *, retry_num: int = 1, reason: str = "http_timeout") -> Delivery:
        """Slack's retry of an event: the same body, freshly signed, with X-Slack-Retry-* headers."""
        content_type = delivery.request.headers.get("Content-Type", "application/json")
        return self.post(delivery.request.body, content_type,
                         headers={"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": reason})

    def _form(self, fields: Mapping[str, str], signing: Signing | None) -> Delivery:
        return self.post(urlencode(fields).encode(), "application/x-www-form-urlencoded", signing=signing)

    def _interaction(self, payload: JSON, signing: Signing | None) -> Delivery:
        return self._form({"payload": json.dumps(payload)}, signing)

    def _json(self, payload: JSON, signing: Signing | None) -> Delivery:
        return self.post(json.dumps(payload).encode(), "application/json", signing=signing)

    # -- lookups ------------------------------------------------------------------------
    def _user(self, user: str) -> User:
        found = self.workspace.find_user(user)
        if found is None:
            raise SandboxError(f"no user {user!r} in the workspace")
        return found

    def _channel(self, channel: str) -> Channel:
        try:
            return self.workspace.resolve_channel(channel)
        except ApiError:
            raise SandboxError(f"no channel {channel!r} in the workspace") from None

    def _response_url(self, token: str) -> str:
        return f"{self.emulator_url}/response/{token}"

    # -- slash commands -------------------------------------------------------------------
    def slash_command(self, text: str = "", *, user: str, channel: str, command: str = "/baton",
                      signing: Signing | None = None) -> Delivery:
        ws = self.workspace
        person, place = self._user(user), self._channel(channel)
        token = ws.issue_response_url(person.id, place.id)
        fields = payloads.slash_command(ws, user=person, channel=place, command=command, text=text,
                                        response_url=self._response_url(token),
                                        trigger_id=ws.issue_trigger(person.id))
        delivery = self._form(fields, signing)
        if delivery.ok and delivery.body.strip():
            self._show_command_reply(person, place, delivery)
        return delivery

    def _show_command_reply(self, user: User, channel: Channel, delivery: Delivery) -> None:
        """A slash command's immediate answer: ephemeral unless it says `in_channel`."""
        reply = delivery.json()
        if not isinstance(reply, dict):
            reply = {"text": delivery.body}
        text, blocks = str(reply.get("text") or ""), reply.get("blocks") or []
        problems = block_errors(blocks)
        if problems:
            raise SandboxError(f"the app answered the slash command with invalid blocks: {problems}")
        if reply.get("response_type") == "in_channel":
            self.workspace.post_message(channel.id, text=text, blocks=blocks)
        elif text or blocks:
            self.workspace.post_ephemeral(channel.id, user.id, text=text, blocks=blocks)

    # -- interactive components ------------------------------------------------------------
    def click(self, *, user: str, action_id: str, channel: str | None = None, ts: str | None = None,
              view_id: str | None = None, value: str | None = None, block_id: str | None = None,
              signing: Signing | None = None) -> Delivery:
        """Click a button in a message (`channel` + `ts`, ephemeral ones too) or a view (`view_id`).

        `value` or `block_id` pick one button when several share an action_id.
        """
        return self._act(user=user, action_id=action_id, channel=channel, ts=ts, view_id=view_id,
                         block_id=block_id, value=value, chosen=None, signing=signing)

    def prepare_click(self, *, user: str, action_id: str, channel: str, ts: str,
                      value: str | None = None, block_id: str | None = None) -> SlackRequest:
        """A click built and signed against the message as it is now, sent later with
        `send()`: many people clicking the same button before any answer arrives."""
        payload = self._act_payload(user=user, action_id=action_id, channel=channel, ts=ts,
                                    view_id=None, block_id=block_id, value=value, chosen=None)
        return self.sign(urlencode({"payload": json.dumps(payload)}).encode(),
                         "application/x-www-form-urlencoded")

    def choose(self, chosen: Any, *, user: str, action_id: str, channel: str | None = None,
               ts: str | None = None, view_id: str | None = None, block_id: str | None = None,
               signing: Signing | None = None) -> Delivery:
        """Pick in a select, overflow menu, radio group, date picker...: `chosen` is the option's value
        (a list for multi-selects and checkboxes, a user id for users_select)."""
        return self._act(user=user, action_id=action_id, channel=channel, ts=ts, view_id=view_id,
                         block_id=block_id, value=None, chosen=chosen, signing=signing)

    def _act(self, *, user: str, action_id: str, channel: str | None, ts: str | None, view_id: str | None,
             block_id: str | None, value: str | None, chosen: Any, signing: Signing | None) -> Delivery:
        payload = self._act_payload(user=user, action_id=action_id, channel=channel, ts=ts,
                                    view_id=view_id, block_id=block_id, value=value, chosen=chosen)
        return self._interaction(payload, signing)

    def _act_payload(self, *, user: str, action_id: str, channel: str | None, ts: str | None,
                     view_id: str | None, block_id: str | None, value: str | None, chosen: Any) -> JSON:
        ws = self.workspace
        person = self._user(user)
        view: View | None = None
        place: Channel | None = None
        message: JSON | None = None
        is_ephemeral = False
        if view_id is not None:
            view = self._view(view_id)
            blocks = view.blocks
        elif channel is not None and ts is not None:
            place = self._channel(channel)
            try:
                stored = ws.message(place.id, ts)
                blocks, message = stored.blocks, ws.message_to_api(stored)
            except ApiError:
                try:
                    blocks, is_ephemeral = ws.ephemeral(person.id, ts).blocks, True
                except ApiError:
                    raise SandboxError(f"no message {ts} in {channel} that {user} can see") from None
        else:
            raise SandboxError("say where the element is: channel and ts of a message, or view_id")
        found = find_element(blocks, action_id, block_id=block_id, value=value)
        if found is None:
            raise SandboxError(f"no element with action_id {action_id!r} there; found: {action_ids(blocks)}")
        block, element = found
        act = payloads.action(block, element, action_ts=ws.next_ts(), chosen=chosen)
        trigger_id = ws.issue_trigger(person.id)
        if view is not None:
            payload = payloads.block_actions(
                ws, user=person, actions=[act], trigger_id=trigger_id, view=view, state=view.state,
                container={"type": "view", "view_id": view.id})
        else:
            assert place is not None and ts is not None
            token = ws.issue_response_url(person.id, place.id, message_ts=ts, is_ephemeral=is_ephemeral)
            payload = payloads.block_actions(
                ws, user=person, actions=[act], trigger_id=trigger_id, channel=place, message=message,
                response_url=self._response_url(token), state={"values": {}},
                container={"type": "message", "message_ts": ts, "channel_id": place.id,
                           "is_ephemeral": is_ephemeral})
        return payload

    # -- modals ---------------------------------------------------------------------------
    def _view(self, view_id: str) -> View:
        try:
            return self.workspace.view(view_id)
        except ApiError:
            raise SandboxError(f"no view {view_id!r}") from None

    def _top_modal(self, user: User, view_id: str | None) -> View:
        stack = self.workspace.modal_stack(user.id)
        if view_id is None:
            if not stack:
                raise SandboxError(f"{user.name} has no modal open")
            return stack[-1]
        if view_id not in [v.id for v in stack]:
            raise SandboxError(f"{user.name} has no modal {view_id!r} open")
        return self.workspace.view(view_id)

    def submit_view(self, *, user: str, values: Mapping[str, Any] | None = None, view_id: str | None = None,
                    signing: Signing | None = None) -> Delivery:
        """Fill a modal's inputs (`values` keyed by block_id or action_id) and press its submit button."""
        ws = self.workspace
        person = self._user(user)
        view = self._top_modal(person, view_id)
        view = ws.set_view_state(view.id, payloads.input_state(view.blocks, dict(values or {})))
        payload = payloads.view_submission(ws, user=person, view=view, trigger_id=ws.issue_trigger(person.id))
        delivery = self._interaction(payload, signing)
        if delivery.ok:
            self._apply_response_action(person, view, delivery)
        return delivery

    def _apply_response_action(self, user: User, view: View, delivery: Delivery) -> None:
        ws = self.workspace
        answer = delivery.json()
        action = answer.get("response_action") if isinstance(answer, dict) else None
        if action in ("update", "push"):
            problems = view_errors(answer.get("view"))
            if problems:
                raise SandboxError(f"the app answered with an invalid view: {problems}")
        if action == "errors":
            ws.set_view_state(view.id, view.state, errors=answer.get("errors") or {})
        elif action == "update":
            ws.update_view(view.id, answer["view"])
        elif action == "push":
            ws.open_modal(user.id, answer["view"], push=True)
        elif action == "clear":
            ws.close_modal(user.id, all=True)
        else:
            ws.close_modal(user.id, view.id)

    def close_view(self, *, user: str, view_id: str | None = None,
                   signing: Signing | None = None) -> Delivery | None:
        """Press a modal's close button; Slack tells the app only if the view asked (notify_on_close)."""
        person = self._user(user)
        view = self._top_modal(person, view_id)
        self.workspace.close_modal(person.id, all=view.clear_on_close)
        if not view.notify_on_close:
            return None
        payload = payloads.view_closed(self.workspace, user=person, view=view, is_cleared=view.clear_on_close)
        return self._interaction(payload, signing)

    # -- events -------------------------------------------------------------------------
    def send_event(self, event: JSON, *, signing: Signing | None = None) -> Delivery:
        """Deliver one Events API event, in its event_callback envelope."""
        ws = self.workspace
        envelope = payloads.event_callback(ws, event, event_id=ws.new_id("Ev"), event_time=int(ws.clock()))
        return self._json(envelope, signing)

    def mention(self, text: str, *, user: str, channel: str, thread_ts: str | None = None,
                signing: Signing | None = None) -> Delivery:
        """Post a message @-mentioning the bot (the mention is added if `text` lacks it)."""
        ws = self.workspace
        person, place = self._user(user), self._channel(channel)
        tag = f"<@{ws.app.bot_user_id}>"
        if tag not in text:
            text = f"{tag} {text}".strip()
        posted = ws.post_message(place.id, text=text, author=person.id, thread_ts=thread_ts)
        event = {"type": "app_mention", "user": person.id, "text": text, "ts": posted.ts, "channel": place.id,
                 "event_ts": posted.ts, "client_msg_id": ws.new_id("M"), "team": ws.team.id}
        if posted.thread_ts:
            event["thread_ts"] = posted.thread_ts
        return self.send_event(event, signing=signing)

    def direct_message(self, text: str, *, user: str, thread_ts: str | None = None,
                       signing: Signing | None = None) -> Delivery:
        """Post a message in the user's DM with the bot (in a thread there, with `thread_ts`)."""
        ws = self.workspace
        person = self._user(user)
        dm = ws.open_dm(person.id)
        posted = ws.post_message(dm.id, text=text, author=person.id, thread_ts=thread_ts)
        event = {"type": "message", "user": person.id, "text": text, "ts": posted.ts, "channel": dm.id,
                 "event_ts": posted.ts, "channel_type": "im", "client_msg_id": ws.new_id("M"),
                 "team": ws.team.id}
        if posted.thread_ts:
            event["thread_ts"] = posted.thread_ts
        return self.send_event(event, signing=signing)

    def open_home(self, *, user: str, signing: Signing | None = None) -> Delivery:
        """Open the bot's App Home tab."""
        ws = self.workspace
        person = self._user(user)
        event: JSON = {"type": "app_home_opened", "user": person.id, "channel": ws.open_dm(person.id).id,
                       "tab": "home", "event_ts": ws.next_ts()}
        home = ws.home(person.id)
        if home is not None:
            event["view"] = home.to_api(ws.team, ws.app)
        return self.send_event(event, signing=signing)

    def url_verification(self, challenge: str = "sandbox-challenge", *,
                         signing: Signing | None = None) -> Delivery:
        return self._json(payloads.url_verification(self.workspace, challenge), signing)
