"""`/baton trace` and `/baton stats` in Block Kit, from the same sections the CLI prints."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from bot.blocks import MAX_BLOCKS, Block, context, esc, fallback, header, mrkdwn, plain, section
from bot.render.common import STATUS_ICON, VERDICT_ICON, input_sections, mention, when
from gates.org import Org
from orchestrator import wording
from orchestrator.readers.report import Line, Section
from orchestrator.readers.summary import TraceSummary
from storage.records import Run

CHUNK = 2900
# Each line's mark, drawn as the gate cards and thread notes draw the same thing
MARK_ICON = {
    **{k: v for k, v in VERDICT_ICON.items() if k}, **STATUS_ICON,
    "passed": ":white_check_mark:", "violated": ":no_entry:", "approve": ":white_check_mark:",
    "reject": ":x:", "request_changes": ":leftwards_arrow_with_hook:", "retry": ":repeat:",
    "decided": ":ballot_box_with_check:", "refused": ":no_entry_sign:", "opened": ":hourglass_flowing_sand:",
    "skipped": ":heavy_minus_sign:", "escalated": ":rotating_light:", "reminder": ":bell:",
    "claimed": ":raising_hand:", "snoozed": ":zzz:", "reassigned": ":arrow_right:",
    "started": ":arrow_forward:", "done": ":white_check_mark:", "held": ":double_vertical_bar:",
    "route": ":twisted_rightwards_arrows:",
}
LINES_PER_SECTION = 12  # more lines than this are shown as one block of text


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


def _overview(s: TraceSummary, org: Org) -> list[Block]:
    """The run at a glance: who, when, how it ended, how long it took, with what inputs."""
    state = f"{MARK_ICON.get(s.status, '')} {esc(s.status)}".strip()
    fields = [mrkdwn(f"*Flow*\n{esc(s.flow)} v{esc(s.version)}"),
              mrkdwn(f"*Requested by*\n{mention(org, s.requester)}"),
              mrkdwn(f"*Started*\n{esc(wording.moment(s.started_at))}"),
              mrkdwn(f"*State*\n{state}" + (f" ({esc(s.outcome)})" if s.outcome else "")),
              mrkdwn(f"*Duration*\n{esc(wording.seconds(s.duration_s))}"),
              mrkdwn(f"*Trace*\n{esc(wording.count(s.entries, 'entry', 'entries'))}")]
    blocks: list[Block] = [section(fields=fields)]
    if s.reason:
        blocks.append(context(plain(s.reason, 2000)))
    if s.inputs:
        blocks.extend(input_sections(s.inputs))
    changed = {k: (s.requested_inputs.get(k), v) for k, v in s.inputs.items()
               if s.requested_inputs.get(k) != v}
    if changed:
        blocks.append(context(mrkdwn("*Changed by approvers:*"), plain(", ".join(
            f"{k} {wording.number(a)} → {wording.number(b)}" for k, (a, b) in changed.items()), 2000)))
    return blocks


def _line(line: Line, day: date) -> Block:
    when = "" if line.at is None else (f"{line.at:%H:%M:%S}" if line.at.date() == day
                                       else f"{line.at:%Y-%m-%d %H:%M:%S}")
    head = " ".join(part for part in (MARK_ICON.get(line.mark, ""), when and f"*{when}*") if part)
    text = ("↳ " if line.sub else "") + line.text
    return context(mrkdwn(head), plain(text, 2000)) if head else context(plain(text, 2000))


def _section(part: Section, day: date) -> list[Block]:
    if len(part.lines) == 1 and not part.lines[0].at and not part.lines[0].mark:
        return [context(mrkdwn(f"*{esc(part.title)}:*"), plain(part.lines[0].text, 2000))]
    title = section(mrkdwn(f"*{esc(part.title)}*"))
    if len(part.lines) > LINES_PER_SECTION or not any(line.at or line.mark for line in part.lines):
        return [title, *(section(plain(chunk, 3000)) for chunk in _chunks(part.texts()))]
    return [title, *(_line(line, day) for line in part.lines)]


def trace_message(s: TraceSummary, org: Org, sections: list[Section]) -> dict[str, Any]:
    """The summary in Block Kit, within Slack's limits: the run at a glance, then each
    section with one line per fact, its mark and its time (UTC); the timeline when it fits.
    What does not fit points to the full trace."""
    icon = STATUS_ICON.get(s.status, "")
    blocks: list[Block] = [header(f"{icon} {sections[0].title}".strip()), *_overview(s, org)]
    budget = MAX_BLOCKS - 1
    left_out: list[str] = []
    for part in sections[1:]:
        drawn = _section(part, s.started_at.date())
        if left_out or len(blocks) + len(drawn) > budget:
            left_out.append(part.title)
            continue
        blocks.extend(drawn)
    if left_out:
        blocks.append(context(mrkdwn(f"Not shown here: {esc(', '.join(left_out))}. "
                                     f"`/baton trace {esc(s.run)} full` sends you the complete trace "
                                     "(JSON and Markdown) by DM.")))
    return {"text": fallback(f"{icon} Trace of {esc(s.run)}: {esc(s.status)}"), "blocks": blocks}


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
