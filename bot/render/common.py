"""Pieces several renderers share: people, times, signals, inputs."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from typing import Any

from bot.blocks import Block, context, esc, mrkdwn, plain, section
from gates.org import Org
from orchestrator.wording import deadline, number

VERDICT_ICON = {"ok": ":large_green_circle:", "warn": ":large_yellow_circle:",
                "block": ":red_circle:", None: ":white_circle:", "": ":white_circle:"}
STATUS_ICON = {"running": ":arrows_counterclockwise:", "waiting": ":hourglass_flowing_sand:",
               "held": ":double_vertical_bar:", "succeeded": ":white_check_mark:",
               "rejected": ":x:", "stopped": ":octagonal_sign:", "failed": ":warning:"}


def mention(org: Org, principal: str) -> str:
    """`<@U123>` for someone Slack knows; their escaped name otherwise."""
    slack_id = org.slack_id(principal)
    return f"<@{slack_id}>" if slack_id else esc(org.display(principal))


class SlackVoice:
    """How a Slack note names a person and quotes text (orchestrator.kinds.Voice)."""

    def __init__(self, org: Org) -> None:
        self.org = org

    def person(self, principal: str) -> str:
        return mention(self.org, principal)

    def code(self, text: str) -> str:
        return f"`{esc(text)}`"

    def text(self, text: str) -> str:
        return esc(text)


def mentions(org: Org, principals: Iterable[str]) -> str:
    return ", ".join(mention(org, p) for p in principals) or "nobody"


def target(org: Org, spec: str, leave_out: Collection[str] = ()) -> str:
    """A notify target (role, user, group, channel) as Slack shows it, pinging it; the
    people in `leave_out` (a requester under four-eyes) are not pinged: "" if nobody is."""
    kind, sep, name = spec.partition(":")
    if not sep or kind == "user":
        who = name if sep else spec
        if not _known(org, who):
            return esc(who)
        principal = org.principal(who)
        return "" if principal in leave_out else mention(org, principal)
    if kind == "role":
        return ", ".join(mention(org, p) for p in sorted(org.resolve(spec)) if p not in leave_out)
    if kind == "group":
        group = org.data.groups.get(name)
        if leave_out and set(leave_out) & org.resolve(spec):  # a group mention would ping them
            return ", ".join(mention(org, p) for p in sorted(org.resolve(spec) - set(leave_out)))
        return f"<!subteam^{group.slack_id}>" if group and group.slack_id else esc(f"@{name}")
    if kind == "channel":
        channel = org.channel_id(name)
        return f"<#{channel}>" if channel else esc(f"#{name}")
    return esc(spec)


def _known(org: Org, who: str) -> bool:
    try:
        org.principal(who)
        return True
    except ValueError:
        return False


def when(at: datetime | str | None) -> str:
    """A time as every surface writes it (orchestrator.wording.deadline)."""
    return deadline(at)


def slack_date(at: datetime | str) -> str:
    """A date Slack shows in each reader's own time zone."""
    if isinstance(at, str):
        at = datetime.fromisoformat(at)
    return f"<!date^{int(at.timestamp())}^{{date_short_pretty}} {{time}}|{when(at)}>"


def input_sections(inputs: Mapping[str, Any]) -> list[Block]:
    """Every input, ten to a section (Slack's most fields in one): people decide from these
    cards, and an input left off (the eleventh on, before) was one they never saw. A flow has
    at most 50 inputs, so this is at most 5 blocks."""
    fields = [plain(f"{name}: {number(value)}", 2000) for name, value in inputs.items()]
    return [section(fields=fields[at:at + 10]) for at in range(0, len(fields), 10)]


def signal_line(signal: Mapping[str, Any]) -> Block | None:
    """An agent's signal as a gate card shows it: its mark, name, verdict and summary. A
    router's signal says which branch it chose; a signal with no verdict, no branch and no
    failure says nothing a decider can use, and is left out."""
    verdict = signal.get("verdict")
    if not verdict and not signal.get("failed"):
        if not signal.get("branch"):
            return None
        elements = [mrkdwn(f":twisted_rightwards_arrows: *{esc(signal['agent'])}* chose "
                           f"{esc(signal['branch'])}")]
        if signal.get("summary"):
            elements.append(plain(signal["summary"], 300, "(see the trace)"))
        return context(*elements)
    label = "failed" if signal.get("failed") else (verdict or "-")
    severity = (f"/{signal['severity']}" if verdict and verdict != "ok" and signal.get("severity")
                else "")
    head = f"{VERDICT_ICON.get(None if signal.get('failed') else verdict, ':white_circle:')} " \
           f"*{esc(signal['agent'])}* {esc(label)}{esc(severity)}"
    elements = [mrkdwn(head)]
    if signal.get("summary"):
        elements.append(plain(signal["summary"], 300, "(see the trace)"))
    return context(*elements)


def signal_mark(signal: Mapping[str, Any]) -> str:
    """The emoji a signal is drawn with everywhere: its verdict's colour; white when it failed."""
    return VERDICT_ICON.get(None if signal.get("failed") else signal.get("verdict"), ":white_circle:")


def boundary_line(boundaries: list[Mapping[str, Any]]) -> Block | None:
    if not boundaries:
        return None
    parts = [f"{':white_check_mark:' if b['passed'] else ':no_entry:'} {b['boundary']}"
             for b in boundaries]
    return context(mrkdwn("*Boundaries* " + esc("  ".join(parts))))


def people_section(label: str, text: str) -> Block:
    return section(mrkdwn(f"*{label}* {text}"))
