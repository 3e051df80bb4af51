"""Buttons and modals on gate messages: decide, edit-and-approve, claim, snooze.

A click that needs a reason opens the reason modal straight away (Slack's trigger lasts
three seconds); anything that changes state is stored in the inbox, acknowledged, then
done. The gate policy decides who may decide; the bot only reports what it said.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.blocks import esc, plain, section
from bot.commands import Reply, error_reply, problem_reply
from bot.inbox import Inbox, request_key, signed_at
from bot.render.modals import REASON_ACTION, REASON_BLOCK, edit_modal, reason_modal
from bot.replies import Replies
from bot.views import gate_view
from bot.wire import parse_json
from orchestrator.engine import Engine
from orchestrator.errors import BatonError
from orchestrator.gating import eligible
from orchestrator.inputs import coerce
from storage import repo
from storage.models import Gate, Run

log = structlog.get_logger("baton.slack")


def _note(icon: str, text: str) -> Reply:
    """What Baton tells the person who clicked. The sentence is Baton's, but it may quote
    what others wrote (why a run was stopped, an agent's failure): it is shown as text, so
    nothing in it is formatted, linked or turned into a mention."""
    return Reply(f"{icon} {esc(text)}", [section(plain(f"{icon} {text}"))])


# Database ids stop at 2**63 - 1; anything else in a payload is not one of Baton's gates.
MAX_ID = 2**63 - 1


def _dig(data: Any, *keys: str) -> Any:
    """`data[k1][k2]...`, or None where a level is missing or not an object (payloads are
    Slack's JSON: any field may be absent or of another type)."""
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _origin(body: dict[str, Any]) -> dict[str, Any]:
    """Where to answer the person: the conversation and the response URL of the click."""
    channel = _text(_dig(body, "channel", "id")) or _text(_dig(body, "container", "channel_id"))
    return {k: v for k, v in {"c": channel, "r": _text(body.get("response_url"))}.items() if v}


def _metadata(view: dict[str, Any]) -> dict[str, Any]:
    """What Baton put in a modal's private_metadata; {} when it is not Baton's JSON object."""
    try:
        meta = parse_json(view.get("private_metadata") or "{}")
    except (ValueError, TypeError):
        return {}
    if not isinstance(meta, dict):
        return {}
    return {k: v for k, v in meta.items() if k not in ("c", "r") or _text(v)}


def _id(value: Any) -> int | None:
    try:
        number = int(value)
    except (ValueError, TypeError, OverflowError):
        return None
    return number if 0 < number <= MAX_ID else None


def _gate_id(value: Any) -> int | None:
    try:
        return _id(parse_json(value or "{}")["g"])
    except (ValueError, KeyError, TypeError):
        return None


class GateActions:
    def __init__(self, engine: Engine, replies: Replies, inbox: Inbox,
                 later: Callable[..., None], soon: Callable[..., None]) -> None:
        self.engine = engine
        self.replies = replies
        self.inbox = inbox
        # The work after the acknowledgement, off the listener's thread: `later` for what a
        # request asks, `soon` for opening a modal, which must happen within the three
        # seconds a trigger lasts and so does not queue behind decisions.
        self.later = later
        self.soon = soon

    def _principal(self, slack_user: str) -> str:
        return self.engine.org.principal_for_slack(slack_user)

    def _gate(self, gate_id: int | None) -> tuple[Gate, Run] | None:
        if gate_id is None:
            return None
        with self.engine.db.read() as s:
            gate = repo.get(s, Gate, gate_id)
            run = repo.get(s, Run, gate.run_id) if gate else None
        return (gate, run) if gate and run else None

    def _store(self, ack: Callable[..., None], body: dict[str, Any], kind: str,
               request: Any) -> tuple[int, str] | None:
        """Accept the request into the inbox, then acknowledge it."""
        key = request_key(kind, body, signed_at(request))
        row = self.inbox.accept(key, kind, body)
        ack()
        return (row, key) if row is not None else None

    # -- clicks -------------------------------------------------------------------------------
    def on_decide(self, ack: Callable[..., None], body: dict[str, Any], action: dict[str, Any],
                  client: WebClient, request: Any) -> None:
        try:
            value = parse_json(action.get("value") or "{}")
            gate_id, option_id = _id(value["g"]), str(value["o"])
        except (ValueError, KeyError, TypeError):
            gate_id = None
        found = self._gate(gate_id)
        if found is not None:
            gate, run = found
            option = next((o for o in gate.options if o["id"] == option_id), None)
            if (gate.status == "open" and option is not None and option.get("reason_required")
                    and self._principal(body["user"]["id"]) in eligible(gate, run.requester)):
                ack()
                self.soon(self._open_reason, client, body, gate, run, option)
                return
        stored = self._store(ack, body, "action", request)
        if stored is not None:
            self.later(self.finish, *stored, body)

    def on_edit(self, ack: Callable[..., None], body: dict[str, Any], action: dict[str, Any],
                client: WebClient, request: Any) -> None:
        found = self._gate(_gate_id(action.get("value")))
        user = body["user"]["id"]
        if (found is not None and found[0].status == "open"
                and self._principal(user) in eligible(found[0], found[1].requester)):
            ack()
            self.soon(self._open_edit, client, body, *found)
            return
        stored = self._store(ack, body, "action", request)  # not theirs to edit: the policy says why
        if stored is not None:
            self.later(self.finish, *stored, body)

    def _open_reason(self, client: WebClient, body: dict[str, Any], gate: Gate, run: Run,
                     option: dict[str, Any]) -> None:
        with self.engine.db.read() as s:
            view = gate_view(s, gate, run)
        self._open(client, body, reason_modal(view, option, _origin(body)))

    def _open_edit(self, client: WebClient, body: dict[str, Any], gate: Gate, run: Run) -> None:
        program = self.engine.program_for(run)
        types = {name: spec.type for name, spec in program.flow.inputs.items()}
        approve = next((o for o in gate.options if o["effect"] == "approve"), {})
        with self.engine.db.read() as s:
            view = gate_view(s, gate, run)
        self._open(client, body, edit_modal(
            view, {**run.inputs, **gate.proposal}, types, _origin(body),
            bool(approve.get("reason_required"))))

    def _open(self, client: WebClient, body: dict[str, Any], view: dict[str, Any]) -> None:
        """Open a modal for the click; when Slack will not (its trigger expired, or it
        refuses the view), the person is told so, not left looking at a button that did
        nothing."""
        try:
            client.views_open(trigger_id=body["trigger_id"], view=view)
        except SlackApiError as exc:
            error = exc.response.get("error") if exc.response is not None else None
            log.warning("modal_not_opened", error=error, callback=view.get("callback_id"))
            origin = _origin(body)
            self.replies.tell(origin.get("r"), error_reply(
                f"Slack did not open the form ({error or 'no answer'}); nothing was decided",
                "Click the button again."), channel=origin.get("c"), user=body["user"]["id"],
                once=f"open:{body.get('trigger_id')}")

    def on_escalation_control(self, ack: Callable[..., None], body: dict[str, Any],
                              request: Any) -> None:
        stored = self._store(ack, body, "action", request)
        if stored is not None:
            self.later(self.finish, *stored, body)

    # -- modals -------------------------------------------------------------------------------
    def on_reason(self, ack: Callable[..., None], body: dict[str, Any], view: dict[str, Any],
                  request: Any) -> None:
        meta = _metadata(view)
        reason = _reason(view)
        found = self._gate(_id(meta.get("g")))
        option = next((o for o in found[0].options if o["id"] == meta.get("o")), None) if found else None
        if option is not None and option.get("reason_required") and not reason.strip():
            ack(response_action="errors",
                errors={REASON_BLOCK: "Please say why: people read this in the trace later."})
            return
        stored = self._store(ack, body, "view", request)
        if stored is not None:
            self.later(self.finish, *stored, body)

    def on_edit_submit(self, ack: Callable[..., None], body: dict[str, Any],
                       view: dict[str, Any], request: Any) -> None:
        found = self._gate(_id(_metadata(view).get("g")))
        if found is not None:
            errors = self._edit_errors(found[0], found[1], view)
            if errors:
                ack(response_action="errors", errors=errors)
                return
        stored = self._store(ack, body, "view", request)
        if stored is not None:
            self.later(self.finish, *stored, body)

    def _edits(self, gate: Gate, run: Run, view: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        flow = self.engine.program_for(run).flow
        edits: dict[str, Any] = {}
        errors: dict[str, str] = {}
        values = _dig(view, "state", "values")
        current = {**run.inputs, **gate.proposal}
        for name in gate.editable:
            if not isinstance(values, dict) or f"edit:{name}" not in values:
                continue  # shown read-only (too long, invisible characters): kept as it is
            raw = _dig(values, f"edit:{name}", "value", "value")
            if raw in (None, "") and current.get(name) in (None, ""):
                continue  # it had no value (or an empty one), and was left empty: it stays so
            try:
                edits[name] = coerce(flow.inputs[name], raw if raw is not None else "", name)
            except ValueError as exc:
                errors[f"edit:{name}"] = str(exc)[:150]
        return edits, errors

    def _edit_errors(self, gate: Gate, run: Run, view: dict[str, Any]) -> dict[str, str]:
        _, errors = self._edits(gate, run, view)
        approve = next((o for o in gate.options if o["effect"] == "approve"), None)
        if approve is not None and approve.get("reason_required") and not _reason(view).strip():
            errors[REASON_BLOCK] = "Please say why."
        return errors

    # -- the work, after the acknowledgement ----------------------------------------------------
    def finish(self, row: int, key: str, body: dict[str, Any]) -> None:
        """Do what a stored click or submission asked; safe to run again for the same key."""
        user = body["user"]["id"]
        if body.get("type") == "view_submission":
            view = body["view"]
            origin = _metadata(view)
            found = self._gate(_id(origin.get("g")))
            if found is not None:
                gate, run = found
                if view.get("callback_id") == "gate.edit":
                    edits, _ = self._edits(gate, run, view)
                    approve = next((o["id"] for o in gate.options if o["effect"] == "approve"), "approve")
                    self._decide(key, run, gate, user, approve, _reason(view) or None, edits, origin)
                else:
                    self._decide(key, run, gate, user, str(origin.get("o")), _reason(view), None, origin)
            else:
                problem = "that gate no longer exists" if _id(origin.get("g")) \
                    else "this form is not one of Baton's"
                self.replies.tell(origin.get("r"), error_reply(problem), channel=origin.get("c"),
                                  user=user, once=f"{key}:told")
        else:
            action = (body.get("actions") or [{}])[0]
            origin = _origin(body)
            action_id = action.get("action_id", "")
            if action_id == "gate.snooze":
                choice = _text(_dig(action, "selected_option", "value")) or ""
                gate_id, _, seconds = choice.partition(":")
                # the select offers whole seconds; anything else is not one of its options
                whole = seconds.isascii() and seconds.isdigit() and len(seconds) < 10
                wanted = f"{seconds}s" if whole else None
                self._control(key, body, _id(gate_id) if wanted else None,
                              lambda ref, who, gate: self.engine.snooze(ref, who, wanted, gate))
            elif action_id == "gate.claim":
                self._control(key, body, _gate_id(action.get("value")),
                              lambda ref, who, gate: self.engine.claim(ref, who, gate))
            else:
                found = self._gate(_gate_id(action.get("value")))
                if found is not None:
                    gate, run = found
                    option = action_id.removeprefix("gate.decide.")
                    if action_id == "gate.edit":
                        option = next((o["id"] for o in gate.options if o["effect"] == "approve"),
                                      "approve")
                    self._decide(key, run, gate, user, option, None, None, origin)
                else:
                    problem = "that gate no longer exists" if _gate_id(action.get("value")) \
                        else "this button is not one of Baton's"
                    self.replies.tell(origin.get("r"), error_reply(problem),
                                      channel=origin.get("c"), user=user, once=f"{key}:told")
        self.inbox.finish(row)

    def _decide(self, key: str, run: Run, gate: Gate, user: str, option: str, reason: str | None,
                edits: dict[str, Any] | None, origin: dict[str, Any]) -> None:
        report = self.engine.decide(run.ref, self._principal(user), option, reason=reason,
                                    edits=edits, gate=str(gate.id))
        if report.status == "recorded" and report.outcome is not None and not report.notes:
            return  # the gate message itself now shows who decided, for everyone
        icon = {"refused": ":no_entry_sign:", "duplicate": ":information_source:",
                "escalated": ":rotating_light:"}.get(report.status, ":white_check_mark:")
        self.replies.tell(origin.get("r"), _note(icon, report.message), channel=origin.get("c"),
                          user=user, once=f"{key}:told")

    def _control(self, key: str, body: dict[str, Any], gate_id: int | None,
                 run_it: Callable[[str, str, str], str]) -> None:
        user = body["user"]["id"]
        origin = _origin(body)
        found = self._gate(gate_id)
        if found is None:
            problem = "that gate no longer exists" if gate_id is not None else \
                "this control is not one of Baton's"
            self.replies.tell(origin.get("r"), error_reply(problem), channel=origin.get("c"),
                              user=user, once=f"{key}:told")
            return
        gate, run = found
        try:
            reply = _note(":ok_hand:", run_it(run.ref, self._principal(user), str(gate.id)))
        except BatonError as exc:
            reply = problem_reply(exc)
        self.replies.tell(origin.get("r"), reply, channel=origin.get("c"), user=user, once=f"{key}:told")


def _reason(view: dict[str, Any]) -> str:
    return _text(_dig(view, "state", "values", REASON_BLOCK, REASON_ACTION, "value")) or ""
