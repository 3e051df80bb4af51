"""The run card (the message a run's thread hangs off) and run-level thread notes."""

from __future__ import annotations

import json
from typing import Any

from bot.blocks import Block, context, esc, fallback, header, mrkdwn, plain, section
from bot.render.common import STATUS_ICON, input_sections, mention, when
from gates.access import through, through_words
from gates.org import Org, is_service

STATUS_WORDS = {"running": "running", "waiting": "waiting for a decision", "held": "held",
                "succeeded": "done", "rejected": "rejected", "stopped": "stopped",
                "failed": "failed"}


def asked_through_api(org: Org, requester: str, flow: str, origin: dict[str, Any]) -> list[Block]:
    """Who asked through the API or MCP (and which of them), with which token, for which tool
    (and, as plain text, what the agent says it wants to do)."""
    who = mention(org, requester) + (" (service)" if is_service(requester) else "")
    parts = [f"*Asked by* {who}"]
    if origin.get("tool"):
        parts.append(f"tool `{esc(origin['tool'])}`")
    parts.append(f"flow `{esc(flow)}`")
    token = esc(origin.get("token", "?"))
    if through(origin) == "api":
        parts.append(f"API token `{token}`")
    else:
        parts += [f"through {esc(through_words(origin) or '?')}", f"token `{token}`"]
    blocks: list[Block] = [section(mrkdwn(" · ".join(parts)))]
    if origin.get("summary"):
        blocks.append(section(plain(origin["summary"], 2000)))
    return blocks


def run_card(org: Org, *, ref: str, flow: str, title: str, requester: str,
             inputs: dict[str, Any], status: str, reason: str | None = None,
             origin: dict[str, Any] | None = None) -> dict[str, Any]:
    icon = STATUS_ICON.get(status, "")
    state = STATUS_WORDS.get(status, status)
    blocks: list[Block] = [header(f"{ref} · {title or flow}")]
    if (origin or {}).get("kind") == "api":
        blocks += asked_through_api(org, requester, flow, origin or {})
    else:
        blocks.append(section(mrkdwn(f"*Requested by* {mention(org, requester)} · flow `{esc(flow)}`")))
    if inputs:
        blocks.extend(input_sections(inputs))
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


def action_due_note(org: Org, requester: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The run now waits for the caller to perform the approved action and report."""
    args = ", ".join(f"{k}={v}" for k, v in (payload.get("arguments") or {}).items())
    deadline = when(payload["deadline"]) if payload.get("deadline") else "-"
    text = (f":arrow_forward: Approved: waiting for {mention(org, requester)} to run "
            f"`{esc(payload.get('tool', '?'))}` and report back by {deadline}")
    blocks: list[Block] = [section(mrkdwn(text))]
    if args:
        blocks.append(context(plain(f"with {args}", 2000)))
    return {"text": fallback(text), "blocks": blocks}


def action_reported_note(org: Org, payload: dict[str, Any]) -> dict[str, Any]:
    """What the caller reported after performing the action."""
    ok = payload.get("succeeded")
    icon = ":white_check_mark:" if ok else ":warning:"
    word = "ran" if ok else "reports a failure of"
    text = (f"{icon} {mention(org, payload.get('reported_by', '?'))} {word} "
            f"`{esc(payload.get('tool', '?'))}`")
    detail = payload.get("result") if ok else payload.get("error")
    blocks: list[Block] = [section(mrkdwn(text))]
    if detail not in (None, ""):
        blocks.append(context(plain(detail if isinstance(detail, str) else json.dumps(detail),
                                    2000, "(see the trace)")))
    return {"text": fallback(text), "blocks": blocks}
