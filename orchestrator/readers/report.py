"""The trace summary as sections of lines: the one renderer behind `baton trace`, the
Markdown file and `/baton trace` in Slack (which only change the typography)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gates.org import Org
from orchestrator import wording
from orchestrator.readers.summary import GateStory, TraceSummary, one_line
from orchestrator.wording import count, number, seconds


@dataclass(frozen=True)
class Line:
    """One fact of a section. `at`: when it happened, for a fact that is one event; `mark`:
    how it went (ok, warn, block, passed, violated, approved, rejected, refused, failed,
    escalated, ...), which Slack draws as the emoji its gate cards use; `sub`: a detail of
    the line above it."""

    text: str
    at: datetime | None = None
    mark: str = ""
    sub: bool = False

    def plain(self) -> str:
        return (f"{_t(self.at)} " if self.at else "") + self.text


@dataclass
class Section:
    title: str
    lines: list[Line]

    def texts(self) -> list[str]:
        """The lines as the CLI prints them (a detail indented under its line)."""
        return [("  " if line.sub else "") + line.plain() for line in self.lines]


def _t(at: datetime | None) -> str:
    return f"{at:%Y-%m-%d %H:%M:%S}" if at else "-"


def money(amount: float) -> str:
    """Costs of single calls are often fractions of a cent: keep them visible."""
    if amount == 0:
        return "$0"
    return f"${amount:.6f}" if amount < 0.01 else f"${amount:.4f}"


def _people(org: Org, principals: list[str]) -> str:
    return ", ".join(org.display(p) for p in principals) or "nobody"


def _none(text: str) -> list[Line]:
    return [Line(text)]


def header(s: TraceSummary, org: Org) -> Section:
    lines = [
        Line(f"Flow {s.flow} (v{s.version}) · requested by {org.display(s.requester)} at "
             f"{wording.moment(s.started_at)}"),
        Line(f"State: {s.status}" + (f" ({s.outcome}: {s.reason})" if s.reason else "")
             + f" · duration {seconds(s.duration_s)} · {count(s.entries, 'trace entry', 'trace entries')}",
             mark=s.status),
        Line("Inputs: " + wording.values(s.inputs)),
    ]
    changed = {k: (s.requested_inputs.get(k), v) for k, v in s.inputs.items()
               if s.requested_inputs.get(k) != v}
    if changed:
        lines.append(Line("Changed by approvers: " + ", ".join(
            f"{k} {number(a)} -> {number(b)}" for k, (a, b) in changed.items())))
    return Section(f"{s.run} · {s.flow} · {s.status}", lines)


def signals(s: TraceSummary) -> Section:
    lines = []
    for f in s.signals:
        if f.failed:
            lines.append(Line(f"{f.agent}: FAILED after {count(f.attempts, 'attempt')}: "
                              f"{one_line(f.error, 200)}", f.at, "failed"))
            continue
        verdict = f.verdict or "-"
        if f.verdict and f.severity and f.verdict != "ok":
            verdict += f"/{f.severity}"
        conf = f" ({f.confidence:.0%})" if f.confidence is not None and f.verdict else ""
        line = f"{f.agent}: {verdict}{conf} - {one_line(f.summary, 200)}".rstrip(" -")
        if f.rationale:
            line += f". Why: {f.rationale}"
        lines.append(Line(line, f.at, f.verdict or ""))
    return Section("Signals", lines or _none("no agent ran"))


def conflicts(s: TraceSummary, org: Org) -> Section:
    found: list[Line] = []
    for c in s.conflicts:
        verdicts = ", ".join(f"{a} {v or 'abstained'}" for a, v in c.get("verdicts", {}).items())
        then = f"; {c['then']}" if c.get("then") else ""
        if c.get("skipped"):
            found.append(Line(f"{c['conflict']}: skipped, {c['why']}{then}", c.get("at"), "skipped"))
            continue
        if c.get("agreed"):
            found.append(Line(f"{c['conflict']}: signals agree ({verdicts}); policy {c['policy']} "
                              f"not needed{then}", c.get("at"), "ok"))
            continue
        line = f"{c['conflict']}: disagreement ({verdicts}); policy {c['policy']}"
        if c.get("winner"):
            line += f" -> followed {c['winner']}{then}"
        found.append(Line(line, c.get("at"), "warn"))
    for gate in s.gates:
        if gate.kind == "conflict" and gate.winner:
            who = _people(org, gate.decided_by)
            reason = next((d["reason"] for d in reversed(gate.decisions) if d.get("reason")), None)
            said = f': "{one_line(reason, 300)}"' if reason else ""
            then = f"; {gate.then}" if gate.then else ""
            found.append(Line(f"{gate.key}: {who} chose to follow {gate.winner}{said}{then}",
                              gate.decided_at, "decided"))
    return Section("Conflicts", _in_time_order(found) or _none("no conflict step ran"))


def recheck_note(b: dict) -> str:
    """A boundary checked again because an approver edited the inputs."""
    about = b.get("recheck")
    if not about:
        return ""
    edited = ", ".join(about.get("edited", [])) or "inputs"
    return f" [re-checked: {edited} edited at '{about.get('gate')}'" + (
        f"; {b['note']}]" if b.get("note") else "]")


def boundaries(s: TraceSummary) -> Section:
    lines = []
    for b in s.boundaries:
        values = wording.values(b.get("values") or {})
        if "limit" in b:
            values = f"{number(b['value'])} of {number(b['limit'])}"
        state = "passed" if b["passed"] else f"VIOLATED -> {b.get('on_violation', 'stop')}"
        if b.get("result") in ("allowed", "deferred"):
            state = f"VIOLATED, {b['result']}" if b["result"] == "allowed" else "not yet checkable"
        check = b.get("check") or b.get("message", "")
        mark = ("passed" if b["passed"] else "warn" if b.get("result") in ("allowed", "deferred")
                else "violated")
        lines.append(Line(f"{b['boundary']}: {state}: {check}" + (f" ({values})" if values else "")
                          + recheck_note(b), b.get("at"), mark))
    return Section("Boundaries checked", lines or _none("none"))


def _in_time_order(lines: list[Line]) -> list[Line]:
    """Lines of several kinds of event, merged as they happened (a stable sort: lines of the
    same moment keep the order the trace recorded them in)."""
    return sorted(lines, key=lambda line: line.at or datetime.min)


def _gate_lines(gate: GateStory, org: Org) -> list[Line]:
    quorum = f", quorum {gate.quorum}" if gate.quorum > 1 else ""
    lines = [Line(f"{gate.key} ({gate.kind}) opened: {gate.title} - "
                  f"could decide: {_people(org, gate.approvers)}{quorum}", gate.opened_at, "opened")]
    happened: list[Line] = []
    for d in gate.decisions:
        line = f"{org.display(d['by'])} chose {d['option']}"
        if d.get("reason"):
            line += f': "{one_line(d["reason"], 300)}"'
        for name, change in (d.get("edits") or {}).items():
            line += f" (edited {name} {number(change['from'])} -> {number(change['to'])})"
        happened.append(Line(line, d["at"], d.get("effect") or "decided", sub=True))
    for r in gate.refusals:
        happened.append(Line(f"REFUSED {org.display(r['by'])} ({r.get('option') or r['action']}): "
                             f"{one_line(r['why'], 300)}", r["at"], "refused", sub=True))
    lines += _in_time_order(happened)
    if gate.outcome:
        waited = (gate.decided_at - gate.opened_at).total_seconds() if gate.decided_at else None
        deciders = _people(org, gate.decided_by) if gate.decided_by else None
        settled = wording.gate_outcome(gate.outcome, gate.option, deciders, gate.why, gate.kind)
        line = f"outcome: {settled} (after {seconds(waited)})"
        for name, change in gate.approved_inputs.items():
            line += (f"; {name}: requested {number(change['requested'])}, approved "
                     f"{number(change['approved'])}")
        lines.append(Line(line, mark=gate.outcome, sub=True))
    else:
        lines.append(Line("outcome: still open" if gate.decided_at is None else "outcome: closed", sub=True))
    return lines


def gates(s: TraceSummary, org: Org) -> Section:
    lines: list[Line] = []
    for skipped in s.skipped_gates:
        lines.append(Line(f"{skipped['gate']}: not needed - {skipped['why']}", skipped.get("at"), "skipped"))
    for gate in s.gates:
        lines.extend(_gate_lines(gate, org))
    return Section("Gates and decisions", lines or _none("no gate"))


ESCALATION_MARKS = {"escalated": "escalated", "exhausted": "escalated", "requested": "escalated",
                    "reminder": "reminder", "claimed": "claimed", "snoozed": "snoozed",
                    "snooze ended": "reminder", "reassigned": "reassigned"}


def escalations(s: TraceSummary, org: Org) -> Section:
    lines = []
    for e in s.escalations:
        who = f" by {org.display(e.who)}" if e.who else ""
        level = f" level {e.level}" if e.level else ""
        pinged = f" pinged {', '.join(e.notify)}" if e.notify else ""
        lines.append(Line(f"{e.gate}: {e.kind}{level}{who}{pinged}" + (f" - {e.why}" if e.why else ""),
                          e.at, ESCALATION_MARKS.get(e.kind, "")))
    return Section("Escalations", lines or _none("none"))


def failures(s: TraceSummary) -> Section:
    lines = []
    for f in s.failures:
        retries = f.get("retries") or []
        if f.get("recovered"):
            lines.append(Line(f"{f['what']}: {count(len(retries), 'failed attempt')}, then a "
                              f"signal (last error: {one_line(f['error'], 200)})", f.get("at"), "warn"))
        else:
            lines.append(Line(f"{f['what']}: FAILED after {count(f.get('attempts', 1), 'attempt')}: "
                              f"{one_line(f['error'], 300)}", f.get("at"), "failed"))
        if f.get("raw"):
            lines.append(Line(f"raw output: {one_line(f['raw'], 300)}", sub=True))
    return Section("Failures and retries", lines or _none("none"))


def agents(s: TraceSummary) -> Section:
    lines = []
    for u in s.usage.values():
        model = f" [{', '.join(sorted(u.models))}]" if u.models else ""
        lines.append(Line(f"{u.agent}: {count(u.calls, 'call')}, {count(u.attempts, 'attempt')}, "
                          f"{u.tokens_in:,}+{u.tokens_out:,} tokens, {u.latency_ms:,.0f} ms, "
                          f"{money(u.cost)}{model}"))
    if s.usage:
        lines.append(Line(f"total: {s.tokens:,} tokens, {money(s.cost)}"))
    return Section("Agents: tokens, latency, cost", lines or _none("no agent ran"))


ACTION_MARKS = {"started": "started", "done": "done", "failed": "failed", "unknown": "warn",
                "skipped": "skipped", "due": "approve"}


def actions(s: TraceSummary) -> Section:
    lines = []
    for a in s.actions:
        kind = a["kind"].removeprefix("action_")
        detail = a.get("result") if kind == "done" else a.get("error") or a.get("why") or ""
        if kind == "due":  # an external action, approved for its caller
            detail = f"{a['tool']}({wording.values(a['arguments'])})"
        elif isinstance(detail, dict):
            detail = wording.values(detail)
        lines.append(Line(f"{a['action']}: {kind}" + (f" - {one_line(str(detail), 200)}" if detail else ""),
                          a["at"], ACTION_MARKS.get(kind, "")))
    for r in s.routes:
        if r["kind"] == "route":
            lines.append(Line(f"route {r['route']}: {r['router']} chose {r['branch']} - "
                              f"{one_line(r.get('why'), 200)}", r["at"], "route"))
        elif r["kind"] == "route_refused":
            lines.append(Line(f"route {r['route']}: REFUSED branch {r['branch']!r}", r["at"], "refused"))
        else:
            lines.append(Line(f"plan {r['plan']}: {count(len(r['subtasks']), 'subtask')} -> "
                              f"{r.get('verdict')}", r["at"], r.get("verdict") or ""))
    return Section("Actions and routing", _in_time_order(lines) or _none("none"))


def timeline(s: TraceSummary) -> Section:
    return Section("Timeline", [Line(text, at, mark) for at, text, mark in s.timeline])


def sections(s: TraceSummary, org: Org, *, with_timeline: bool = True) -> list[Section]:
    parts = [header(s, org), signals(s), conflicts(s, org), boundaries(s), gates(s, org),
             escalations(s, org), failures(s), agents(s), actions(s)]
    if with_timeline:
        parts.append(timeline(s))
    return parts


def plain(s: TraceSummary, org: Org) -> str:
    out: list[str] = []
    for section in sections(s, org):
        out.append(section.title)
        out.extend(f"  {line}" for line in section.texts())
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def markdown(s: TraceSummary, org: Org) -> str:
    out: list[str] = []
    for i, section in enumerate(sections(s, org)):
        out.append(f"{'#' if i == 0 else '##'} {section.title}\n")
        out.extend(f"{'  ' if line.sub else ''}- {_md(line.plain())}" for line in section.lines)
        out.append("")
    return "\n".join(out)


def _md(text: str) -> str:
    """Untrusted text in Markdown: escape what would format or link."""
    for ch in "\\`*_[]<>|#":
        text = text.replace(ch, "\\" + ch)
    return text


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}" if value in (0, 1) or value >= 0.1 else f"{value:.1%}"


def stats_lines(stats: Any, org: Org) -> list[str]:
    """`baton stats` in words (Stats from orchestrator.readers.stats)."""
    statuses = ", ".join(f"{k} {v}" for k, v in sorted(stats.by_status.items(), key=lambda x: -x[1]))
    lines = [f"Runs: {stats.runs:,}" + (f" ({statuses})" if statuses else "")
             + f" · {stats.since:%Y-%m-%d} to {stats.until:%Y-%m-%d}"
             + (f" · flow {stats.flow}" if stats.flow else ""),
             f"Human intervention: {_pct(stats.intervention_rate)} of runs needed a person"]
    decided = stats.decided_total
    line = (f"Decisions: {count(decided, 'gate')} decided: {_pct(stats.rate('approve'))} approved, "
            f"{_pct(stats.rate('reject'))} rejected, {_pct(stats.rate('request_changes'))} "
            "sent back for changes")
    if stats.closed_by_baton:
        line += f" ({stats.closed_by_baton} closed by Baton when escalation ran out)"
    lines.append(line)
    levels = ", ".join(f"level {k}: {v}" for k, v in sorted(stats.levels_reached.items()))
    lines.append(f"Escalation: {_pct(stats.escalation_rate)} of {count(stats.gates, 'gate')} escalated"
                 + (f" (reached {levels})" if levels else ""))
    lines.append(f"Time to decision: median {seconds(stats.median_decision_s)}, p90 "
                 f"{seconds(stats.p90_decision_s)} ({len(stats.decision_seconds):,} decided by people)")
    lines.append(f"Agents: {count(stats.agent_calls, 'call')}, {_pct(stats.agent_error_rate)} failed, "
                 f"{_pct(stats.agent_retry_rate)} retried · {stats.tokens:,} tokens · {money(stats.cost)}")
    if stats.pending_by_approver:
        lines.append("Most pending: " + ", ".join(f"{org.display(p)} {n}"
                                                  for p, n in stats.pending_by_approver))
    return lines
