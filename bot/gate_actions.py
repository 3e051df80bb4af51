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
from bot.inbox import Inbox, Stored, request_key, signed_at
from bot.render.modals import REASON_ACTION, REASON_BLOCK, edit_modal, reason_modal
from bot.replies import Replies
from bot.views import gate_view
from bot.wire import parse_json
from orchestrator.engine import Engine
from orchestrator.errors import BatonError
from orchestrator.gating import eligible
from orchestrator.inputs import coerce
from storage import reads
from storage.records import Gate, Run

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
                 hand_on: Callable[[Stored], None], soon: Callable[..., None]) -> None:
        self.engine = engine
        self.replies = replies
        self.inbox = inbox
        # The work after the acknowledgement, off the listener's thread: `hand_on` for what a
        # stored request asks, `soon` for opening a modal, which must happen within the three
        # seconds a trigger lasts and so does not queue behind decisions.
        self.hand_on = hand_on
        self.soon = soon
        # Each kind of request these listeners store, and what finishes it. A listener names
        # the kind (bolt routed the request to it by action or callback id); the finisher
        # never looks at the ids again.
        self.finishers: dict[str, Callable[[Stored], None]] = {
            "action:gate.decide": self.finish_decide,
            "action:gate.edit": self.finish_edit_click,
            "action:gate.claim": self.finish_claim,
            "action:gate.snooze": self.finish_snooze,
            "view:gate.reason": self.finish_reason,
            "view:gate.edit": self.finish_edit,
            # Stored by a Baton from before kinds named their listener (found after an
            # upgrade, if that Baton died with them unfinished): sorted by their ids once.
            "action": self.finish_stored_before_kinds,
            "view": self.finish_stored_before_kinds,
        }

    def _principal(self, slack_user: str) -> str:
        return self.engine.org.principal_for_slack(slack_user)

    def _gate(self, gate_id: int | None) -> tuple[Gate, Run] | None:
        if gate_id is None:
            return None
        with self.engine.db.read() as s:
            return reads.gate_and_run(s, gate_id)

    def _store(self, ack: Callable[..., None], body: dict[str, Any], kind: str,
               request: Any) -> None:
        """Accept the request into the inbox as `kind`, acknowledge it, then hand it on to
        be finished. A request seen before (its key taken) is only acknowledged."""
        key = request_key(kind, body, signed_at(request))
        row = self.inbox.accept(key, kind, body)
        ack()
        if row is not None:
            self.hand_on(Stored(row, key, kind, body))

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
        self._store(ack, body, "action:gate.decide", request)

    def on_edit(self, ack: Callable[..., None], body: dict[str, Any], action: dict[str, Any],
                client: WebClient, request: Any) -> None:
        found = self._gate(_gate_id(action.get("value")))
        user = body["user"]["id"]
        if (found is not None and found[0].status == "open"
                and self._principal(user) in eligible(found[0], found[1].requester)):
            ack()
            self.soon(self._open_edit, client, body, *found)
            return
        self._store(ack, body, "action:gate.edit", request)  # not theirs to edit: the policy says why

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

    def on_claim(self, ack: Callable[..., None], body: dict[str, Any], request: Any) -> None:
        self._store(ack, body, "action:gate.claim", request)

    def on_snooze(self, ack: Callable[..., None], body: dict[str, Any], request: Any) -> None:
        self._store(ack, body, "action:gate.snooze", request)

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
        self._store(ack, body, "view:gate.reason", request)

    def on_edit_submit(self, ack: Callable[..., None], body: dict[str, Any],
                       view: dict[str, Any], request: Any) -> None:
        found = self._gate(_id(_metadata(view).get("g")))
        if found is not None:
            errors = self._edit_errors(found[0], found[1], view)
            if errors:
                ack(response_action="errors", errors=errors)
                return
        self._store(ack, body, "view:gate.edit", request)

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

    # -- the work, after the acknowledgement: one finisher per kind ------------------------------
    def finish_decide(self, request: Stored) -> None:
        """A button naming an option (`gate.decide.<option>`)."""
        action = _action(request.body)
        self._decide_clicked(request, action, str(action.get("action_id", "")).removeprefix("gate.decide."))

    def finish_edit_click(self, request: Stored) -> None:
        """Edit, clicked by someone who may not edit (the others got the modal): asked of the
        engine as an approval, so the gate policy says why not."""
        self._decide_clicked(request, _action(request.body), None)

    def finish_claim(self, request: Stored) -> None:
        self._control(request, _gate_id(_action(request.body).get("value")),
                      lambda ref, who, gate: self.engine.claim(ref, who, gate))

    def finish_snooze(self, request: Stored) -> None:
        choice = _text(_dig(_action(request.body), "selected_option", "value")) or ""
        gate_id, _, seconds = choice.partition(":")
        # the select offers whole seconds; anything else is not one of its options
        whole = seconds.isascii() and seconds.isdigit() and len(seconds) < 10
        wanted = f"{seconds}s" if whole else None
        self._control(request, _id(gate_id) if wanted else None,
                      lambda ref, who, gate: self.engine.snooze(ref, who, wanted, gate))

    def finish_reason(self, request: Stored) -> None:
        """The reason modal, submitted: the option it was opened for, and the reason."""
        view = request.body["view"]
        found = self._submitted_gate(request, view)
        if found is not None:
            gate, run = found
            self._decide(request, run, gate, str(_metadata(view).get("o")), _reason(view), None,
                         _metadata(view))

    def finish_edit(self, request: Stored) -> None:
        """The edit modal, submitted: an approval with the edited values."""
        view = request.body["view"]
        found = self._submitted_gate(request, view)
        if found is not None:
            gate, run = found
            edits, _ = self._edits(gate, run, view)
            self._decide(request, run, gate, _approve_option(gate), _reason(view) or None, edits,
                         _metadata(view))

    def finish_stored_before_kinds(self, request: Stored) -> None:
        """A click (`action`) or submission (`view`) an older Baton stored: its kind told
        once from its ids, as bolt would route it now, then finished as that kind."""
        body = request.body
        if body.get("type") == "view_submission":
            edit = _dig(body, "view", "callback_id") == "gate.edit"
            kind = "view:gate.edit" if edit else "view:gate.reason"
        else:
            action_id = str(_action(body).get("action_id", ""))
            kind = {"gate.snooze": "action:gate.snooze", "gate.claim": "action:gate.claim",
                    "gate.edit": "action:gate.edit"}.get(action_id, "action:gate.decide")
        self.finishers[kind](request)

    def _submitted_gate(self, request: Stored, view: dict[str, Any]) -> tuple[Gate, Run] | None:
        """The gate a modal was opened for; None (the person told why, the request done)
        when it is gone or the form is not Baton's."""
        origin = _metadata(view)
        found = self._gate(_id(origin.get("g")))
        if found is None:
            problem = "that gate no longer exists" if _id(origin.get("g")) \
                else "this form is not one of Baton's"
            self._tell(request, origin, error_reply(problem))
            self.inbox.finish(request.row)
        return found

    def _decide_clicked(self, request: Stored, action: dict[str, Any], option: str | None) -> None:
        """A click that decides: `option`, or the gate's approve option when None."""
        origin = _origin(request.body)
        found = self._gate(_gate_id(action.get("value")))
        if found is None:
            problem = "that gate no longer exists" if _gate_id(action.get("value")) \
                else "this button is not one of Baton's"
            self._tell(request, origin, error_reply(problem))
            self.inbox.finish(request.row)
            return
        gate, run = found
        self._decide(request, run, gate, _approve_option(gate) if option is None else option,
                     None, None, origin)

    def _tell(self, request: Stored, origin: dict[str, Any], reply: Reply) -> None:
        self.replies.tell(origin.get("r"), reply, channel=origin.get("c"),
                          user=request.body["user"]["id"], once=f"{request.key}:told")

    def _decide(self, request: Stored, run: Run, gate: Gate, option: str, reason: str | None,
                edits: dict[str, Any] | None, origin: dict[str, Any]) -> None:
        report = self.engine.decide(run.ref, self._principal(request.body["user"]["id"]), option,
                                    reason=reason, edits=edits, gate=str(gate.id))
        if not (report.status == "recorded" and report.outcome is not None and not report.notes):
            # otherwise the gate message itself now shows who decided, for everyone
            icon = {"refused": ":no_entry_sign:", "duplicate": ":information_source:",
                    "escalated": ":rotating_light:"}.get(report.status, ":white_check_mark:")
            self._tell(request, origin, _note(icon, report.message))
        self.inbox.finish(request.row)

    def _control(self, request: Stored, gate_id: int | None,
                 run_it: Callable[[str, str, str], str]) -> None:
        origin = _origin(request.body)
        found = self._gate(gate_id)
        if found is None:
            problem = "that gate no longer exists" if gate_id is not None else \
                "this control is not one of Baton's"
            reply = error_reply(problem)
        else:
            gate, run = found
            try:
                reply = _note(":ok_hand:", run_it(run.ref, self._principal(request.body["user"]["id"]),
                                                  str(gate.id)))
            except BatonError as exc:
                reply = problem_reply(exc)
        self._tell(request, origin, reply)
        self.inbox.finish(request.row)


def _action(body: dict[str, Any]) -> dict[str, Any]:
    """The clicked element of a block_actions payload ({} when there is none)."""
    actions = body.get("actions")
    first = actions[0] if isinstance(actions, list) and actions else None
    return first if isinstance(first, dict) else {}


def _approve_option(gate: Gate) -> str:
    return next((o["id"] for o in gate.options if o["effect"] == "approve"), "approve")


def _reason(view: dict[str, Any]) -> str:
    return _text(_dig(view, "state", "values", REASON_BLOCK, REASON_ACTION, "value")) or ""
