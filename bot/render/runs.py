"""The run card (the message a run's thread hangs off) and run-level thread notes."""

from __future__ import annotations

from typing import Any

from bot.blocks import Block, context, esc, fallback, header, mrkdwn, plain, section
from bot.render.common import STATUS_ICON, input_fields, mention
from gates.org import Org

STATUS_WORDS = {"running": "running", "waiting": "waiting for a decision", "held": "held",
                "succeeded": "done", "rejected": "rejected", "stopped": "stopped",
                "failed": "failed"}


def run_card(org: Org, *, ref: str, flow: str, title: str, requester: str,
             inputs: dict[str, Any], status: str, reason: str | None = None) -> dict[str, Any]:
    icon = STATUS_ICON.get(status, "")
    state = STATUS_WORDS.get(status, status)
    blocks: list[Block] = [
        header(f"{ref} · {title or flow}"),
        section(mrkdwn(f"*Requested by* {mention(org, requester)} · flow `{esc(flow)}`")),
    ]
    if inputs:
        blocks.append(section(fields=input_fields(inputs)))
    status_line = [mrkdwn(f"{icon} *{esc(state.capitalize())}*")]
    if reason:
        status_line.append(plain(reason, 1000))
    blocks.append(context(*status_line))
    blocks.append(context(mrkdwn(f"Updates in the thread · `/baton trace {ref}` for the full trace")))
    return {"text": fallback(f"{ref} {esc(title or flow)}: {esc(state)}"), "blocks": blocks}


def run_note(ref: str, status: str, why: str, *, extra: str = "") -> dict[str, Any]:
    """Run finished / failed / stopped / held, as a thread reply."""
    icon = STATUS_ICON.get(status, ":information_source:")
    word = STATUS_WORDS.get(status, status).capitalize()
    blocks: list[Block] = [section(mrkdwn(f"{icon} *{ref} {esc(word)}*"))]
    if why:
        blocks.append(section(plain(why, 2900, f"(/baton trace {ref})")))
    if extra:
        blocks.append(context(mrkdwn(extra)))
    return {"text": fallback(f"{ref} {esc(word)}: {esc(why)}"), "blocks": blocks}


def note(text: str, detail: str | None = None) -> dict[str, Any]:
    """A short thread reply. `text` is our own mrkdwn; `detail` is untrusted."""
    blocks: list[Block] = [section(mrkdwn(text))]
    if detail:
        blocks.append(context(plain(detail, 2000)))
    return {"text": fallback(text), "blocks": blocks}
