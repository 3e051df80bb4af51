"""`/baton trace` and `/baton stats` in Block Kit, from the same sections the CLI prints."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.blocks import MAX_BLOCKS, Block, context, esc, fallback, header, mrkdwn, plain, section
from bot.render.common import STATUS_ICON, when
from gates.org import Org
from orchestrator.report import Section
from storage.models import Run

CHUNK = 2900


def _chunks(lines: Sequence[str]) -> list[str]:
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for line in lines:
        line = line if len(line) <= CHUNK else line[: CHUNK - 1] + "…"
        if current and size + len(line) + 1 > CHUNK:
            chunks.append("\n".join(current))
            current, size = [], 0
        current.append(line)
        size += len(line) + 1
    if current:
        chunks.append("\n".join(current))
    return chunks


def trace_message(ref: str, sections: list[Section], *, status: str) -> dict[str, Any]:
    """The summary within Slack's limits; what does not fit points to the full trace."""
    blocks: list[Block] = [header(sections[0].title)]
    budget = MAX_BLOCKS - 2
    truncated = False
    for i, part in enumerate(sections):
        body = _chunks(part.lines)
        needed = len(body) + (0 if i == 0 else 1)
        if len(blocks) + needed > budget:
            truncated = True
            break
        if i > 0:
            blocks.append(section(mrkdwn(f"*{esc(part.title)}*")))
        blocks.extend(section(plain(chunk, 3000)) for chunk in body)
    if truncated:
        blocks.append(context(mrkdwn(f"More than fits here: `/baton trace {esc(ref)} full` attaches "
                                     "the complete trace as JSON and Markdown files.")))
    icon = STATUS_ICON.get(status, "")
    return {"text": fallback(f"{icon} Trace of {esc(ref)}"), "blocks": blocks}


def runs_list(org: Org, runs: list[Run], title: str) -> dict[str, Any]:
    blocks: list[Block] = [header(title)]
    for run in runs[:40]:
        line = (f"{STATUS_ICON.get(run.status, '')} *{run.ref}* `{esc(run.flow_name)}` · "
                f"{esc(run.status)} · {when(run.created_at)} · {esc(org.display(run.requester))}")
        blocks.append(section(mrkdwn(line)))
    if not runs:
        blocks.append(section(mrkdwn("No runs match.")))
    blocks.append(context(mrkdwn("`/baton trace R-42` for one run · filters: `--flow NAME`, "
                                 "`--since 7d`, `--decided-by @person`")))
    return {"text": fallback(title), "blocks": blocks}


def stats_message(lines: list[str], flow: str | None) -> dict[str, Any]:
    title = "Baton stats" + (f" · {flow}" if flow else "")
    blocks: list[Block] = [header(title)]
    blocks.extend(section(plain(line, 3000)) for line in lines)
    return {"text": fallback(esc(title)), "blocks": blocks}
