"""Gate messages: what is asked, the inputs, the signals that bear on it, the boundaries
checked, the deadline and escalation level, one button per option; after a decision the
buttons are replaced by who decided, when and why."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot.blocks import (
    Block,
    action_rows,
    actions,
    button,
    confirm_dialog,
    context,
    divider,
    esc,
    fallback,
    fit,
    header,
    mrkdwn,
    plain,
    section,
    static_select,
)
from bot.render.common import (
    VERDICT_ICON,
    boundary_line,
    input_sections,
    mention,
    mentions,
    signal_line,
    signal_mark,
    when,
)
from gates.durations import format_duration
from gates.org import Org

# Every part of a gate message is bounded so that the buttons always fit in Slack's 50.
MAX_SIGNALS = 12
OUTCOME_WORDS = {"approve": (":white_check_mark:", "Approved"), "reject": (":x:", "Rejected"),
                 "request_changes": (":leftwards_arrow_with_hook:", "Sent back for changes"),
                 "retry": (":repeat:", "Retry requested"), "cancelled": (":octagonal_sign:", "Closed")}


@dataclass
class GateView:
    """A gate as the Slack adapter shows it (assembled by bot.views from the database)."""

    id: int
    key: str
    kind: str
    run: str
    requester: str
    title: str
    question: str
    options: list[dict[str, Any]]
    approvers: list[str]
    quorum: int
    status: str
    shown: dict[str, Any]
    editable: list[str] = field(default_factory=list)
    approvals: list[str] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    outcome_effect: str | None = None
    outcome_option: str | None = None
    decided_by: list[str] = field(default_factory=list)
    decided_at: datetime | None = None
    why: str = ""
    deadline: datetime | None = None
    level: int = 0
    levels: int = 0
    chain: str | None = None
    esc_state: str | None = None
    claimed_by: str | None = None
    claim_until: datetime | None = None
    snoozed_until: datetime | None = None
    snooze: list[float] = field(default_factory=list)
    version: int = 0
    then: str | None = None  # a decided conflict: what following the chosen signal does


def _decide_buttons(gate: GateView) -> list[dict[str, Any]]:
    buttons = []
    for option in gate.options:
        confirm = None
        if option["effect"] == "reject" and not option.get("reason_required"):
            confirm = confirm_dialog(f"{option['label']}?",
                                     f"This ends {gate.run} at gate '{gate.key}'.", option["label"])
        buttons.append(button(option["label"], f"gate.decide.{option['id']}",
                              {"g": gate.id, "o": option["id"]}, style=option.get("style"),
                              confirm=confirm))
    if gate.editable:
        buttons.insert(1, button("Edit & approve", "gate.edit", {"g": gate.id}))
    return buttons


def _escalation_controls(gate: GateView) -> list[dict[str, Any]]:
    if not gate.chain:
        return []
    controls = [button("I'm on it", "gate.claim", {"g": gate.id})]
    if gate.snooze:
        choices = [(f"Snooze {format_duration(timedelta(seconds=s))}", f"{gate.id}:{int(s)}")
                   for s in gate.snooze]
        controls.append(static_select("Snooze…", "gate.snooze", choices))
    return controls


def _state_line(org: Org, gate: GateView) -> Block | None:
    parts = []
    if gate.deadline is not None and gate.status == "open":
        parts.append(f":alarm_clock: next step {when(gate.deadline)}")
    if gate.chain:
        parts.append(f"escalation level {gate.level + 1} of {gate.levels} ({esc(gate.chain)})")
    if gate.esc_state == "claimed" and gate.claimed_by:
        parts.append(f"claimed by {esc(org.display(gate.claimed_by))}"
                     + (f" until {when(gate.claim_until)}" if gate.claim_until else ""))
    elif gate.esc_state == "snoozed":
        parts.append("snoozed" + (f" until {when(gate.snoozed_until)}" if gate.snoozed_until
                                  else ""))
    elif gate.esc_state == "held":
        parts.append("escalation ended: held open")
    return context(mrkdwn(" · ".join(parts))) if parts else None


def _conflict_fields(gate: GateView) -> list[Block] | None:
    """The signals side by side, every one of them (up to 50), ten to a section."""
    signals = gate.shown.get("signals", [])
    if gate.kind != "conflict" or not signals:
        return None
    fields = []
    for s in signals:
        verdict = "failed" if s.get("failed") else (s.get("verdict") or "no signal")
        # plain text (agents' words are shown as written), with the mark the gate cards use
        fields.append(plain(f"{signal_mark(s)} {s['agent']}: {verdict}"
                            + (f"/{s['severity']}" if s.get("severity") and s.get("verdict") else "")
                            + (f"\n{s['summary']}" if s.get("summary") else ""), 2000))
    return [section(fields=fields[at:at + 10]) for at in range(0, len(fields), 10)]


def why_you(org: Org, principal: str, entries: Sequence[tuple[str, str, Mapping[str, Any]]],
            levels: int) -> str | None:
    """Why a gate came to `principal` by DM, from its `(kind, actor, data)` trace entries
    (oldest first): the newest reassignment to them or escalation to a level that names them."""
    for kind, actor, data in reversed(entries):
        if kind == "reassigned" and data.get("to") == principal:
            return f"{org.display(actor)} asked you to decide."
        if kind != "escalated":
            continue
        named = [spec for spec in data.get("notify", []) if _names(org, spec, principal)]
        if not named:
            continue
        why = str(data.get("why") or "the level before ran out of time")
        return (f"{why[:1].upper()}{why[1:]}, so it escalated to level {data.get('level')} of {levels}: "
                f"{_named_you(named[0])}.")
    return None


def _names(org: Org, spec: str, principal: str) -> bool:
    try:
        return principal in org.resolve(spec)
    except ValueError:  # the org file no longer knows whom a frozen chain named
        return False


def _named_you(spec: str) -> str:
    kind, sep, name = spec.partition(":")
    if kind == "role" and sep:
        return f"you are {name}"
    if kind == "group" and sep:
        return f"you are in {name}"
    return "that level names you"


def gate_message(org: Org, gate: GateView, *, dm: bool = False,
                 why: str | None = None) -> dict[str, Any]:
    """The gate request, or the decided gate when `gate.status` is not open. A DM copy
    (`dm`) says `why` it came to its reader."""
    blocks: list[Block] = [header(gate.title or f"Decision needed on {gate.run}")]
    if dm and why and gate.status == "open":
        blocks.append(context(mrkdwn(":rotating_light: *Why you:*"), plain(why, 1000)))
    if gate.question:
        blocks.append(section(plain(gate.question, 2900, f"(/baton trace {gate.run})")))
    blocks.append(section(fields=[
        mrkdwn(f"*Run* {esc(gate.run)} · gate `{esc(gate.key)}`"),
        mrkdwn(f"*Requested by* {mention(org, gate.requester)}"),
    ]))
    inputs = gate.shown.get("inputs") or {}
    if inputs:
        blocks.extend(input_sections(inputs))
    conflict = _conflict_fields(gate)
    if conflict is not None:
        blocks.extend(conflict)
    else:
        signals = gate.shown.get("signals", [])
        blocks.extend(line for line in map(signal_line, signals[:MAX_SIGNALS]) if line is not None)
        if len(signals) > MAX_SIGNALS:
            blocks.append(context(mrkdwn(f"{len(signals) - MAX_SIGNALS} more signals: "
                                         f"`/baton trace {esc(gate.run)}`")))
    checked = boundary_line(gate.shown.get("boundaries", []))
    if checked is not None:
        blocks.append(checked)
    required = _required_line(gate)
    if required is not None:
        blocks.append(required)
    blocks.append(divider())
    if gate.status == "open":
        who = mentions(org, gate.approvers)
        need = f" · {len(gate.approvals)} of {gate.quorum} approvals" if gate.quorum > 1 else ""
        blocks.append(context(mrkdwn(f"*Can decide:* {who}{need}")))
        state = _state_line(org, gate)
        if state is not None:
            blocks.append(state)
        blocks.extend(action_rows(_decide_buttons(gate), f"gate-{gate.id}-v{gate.version}"))
        if dm:
            controls = _escalation_controls(gate)
            if controls:
                blocks.append(actions(controls, block_id=f"esc-{gate.id}-v{gate.version}"))
        text = f"{esc(gate.run)}: {esc(gate.title)} (can decide: {who})"
    else:
        blocks.extend(decided_blocks(org, gate))
        icon, word = outcome_words(gate)
        text = f"{icon} {esc(gate.run)} {esc(word)}"
    return {"text": fallback(text), "blocks": fit(blocks, f"See /baton trace {gate.run}.")}


def outcome_words(gate: GateView) -> tuple[str, str]:
    """The icon and words of a decided gate. Only an approval gate is "Approved": elsewhere
    the option chosen says what happened ("Follow research (warn)", "Allow this once",
    "Continue without it")."""
    icon, word = OUTCOME_WORDS.get(gate.outcome_effect or "cancelled", OUTCOME_WORDS["cancelled"])
    if gate.kind == "approval" or gate.status == "cancelled":
        return icon, word
    label = next((o["label"] for o in gate.options if o["id"] == gate.outcome_option), None)
    if gate.kind == "conflict" and gate.outcome_effect == "approve":
        icon = ":arrow_right:"
    return icon, label or word


def _required_line(gate: GateView) -> Block | None:
    """Why a gate is open that its `when` alone would not have opened."""
    need = gate.shown.get("required_by")
    if not isinstance(need, dict) or gate.status != "open":
        return None
    followed = (f"{need.get('winner')} ({need.get('verdict') or '-'})" if need.get("winner")
                else "no signal (every agent failed)")
    text = f":warning: Asked because conflict `{esc(str(need.get('conflict')))}` followed {esc(followed)}"
    if need.get("reason"):
        return context(mrkdwn(text + ":"), plain(f"“{need['reason']}”", 1000))
    return context(mrkdwn(text))


def decided_blocks(org: Org, gate: GateView) -> list[Block]:
    icon, word = outcome_words(gate)
    if gate.status == "cancelled":
        return [section(mrkdwn(f"{icon} *Closed without a decision* · the run ended"))]
    by = mentions(org, gate.decided_by) if gate.decided_by else "Baton"
    option = next((o["label"] for o in gate.options if o["id"] == gate.outcome_option), None)
    # a custom option ("Approve with conditions") is named; a plain approve is not repeated
    chosen = (f" ({esc(option)})" if gate.kind == "approval" and option
              and gate.outcome_option != gate.outcome_effect else "")
    blocks: list[Block] = [section(mrkdwn(f"{icon} *{esc(word)}*{chosen} by {by} · "
                                          f"{when(gate.decided_at)}"))]
    if gate.then:
        blocks.append(context(mrkdwn(f"Then: {esc(gate.then)}")))
    reasons = [d for d in gate.decisions if d.get("reason")]
    for decision in reasons[-5:]:
        blocks.append(context(mrkdwn(f"{mention(org, decision['by'])}:"),
                              plain(f"“{decision['reason']}”", 2000, f"(/baton trace {gate.run})")))
    edits = [d for d in gate.decisions if d.get("edits")]
    for decision in edits[-3:]:
        changes = ", ".join(f"{k} → {v}" for k, v in decision["edits"].items())
        blocks.append(context(mrkdwn(f"{mention(org, decision['by'])} edited:"), plain(changes, 1000)))
    if not gate.decided_by and gate.why:
        blocks.append(context(plain(gate.why, 2000)))
    return blocks


def vote_note(org: Org, gate: GateView, by: str, option: str) -> dict[str, Any]:
    label = next((o["label"] for o in gate.options if o["id"] == option), option)
    text = (f"{mention(org, by)} chose *{esc(label)}* on `{esc(gate.key)}` · "
            f"{len(gate.approvals)} of {gate.quorum} approvals")
    return {"text": fallback(text), "blocks": [section(mrkdwn(text))]}


def escalation_note(org: Org, run: str, gate_key: str, *, level: int | None, notify: str,
                    why: str, deadline: str | None, final: str | None = None) -> dict[str, Any]:
    """A thread reply pinging the new level (their mentions are in `notify`)."""
    if final:
        text = f":rotating_light: Escalation of `{esc(gate_key)}` ended ({esc(final)})"
    else:
        text = (f":rotating_light: {esc(run)} escalated to level {level}: {notify}"
                + (f" · decide by {when(deadline)}" if deadline else ""))
    return {"text": fallback(text), "blocks": [section(mrkdwn(text)), context(plain(why, 2000))]}


def reminder_note(org: Org, run: str, gate_key: str, notify: str, deadline: str | None,
                  why: str | None = None) -> dict[str, Any]:
    text = (f":bell: Reminder: {notify}, {esc(run)} is waiting for you at `{esc(gate_key)}`"
            + (f" · escalates at {when(deadline)}" if deadline else ""))
    blocks: list[Block] = [section(mrkdwn(text))]
    if why:
        blocks.append(context(plain(why, 500)))
    return {"text": fallback(text), "blocks": blocks}


def verdict_icon(verdict: str | None) -> str:
    return VERDICT_ICON.get(verdict, ":white_circle:")
