"""The trace summary as sections of lines: the one renderer behind `baton trace`, the
Markdown file and `/baton trace` in Slack (which only change the typography)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gates.durations import format_duration
from gates.org import Org
from orchestrator.summary import GateStory, TraceSummary, one_line


@dataclass
class Section:
    title: str
    lines: list[str]


def _t(at: datetime | None) -> str:
    return f"{at:%Y-%m-%d %H:%M:%S}" if at else "-"


def _value(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return f"{value:.0f}"
    return str(value)


def money(amount: float) -> str:
    """Costs of single calls are often fractions of a cent: keep them visible."""
    if amount == 0:
        return "$0"
    return f"${amount:.6f}" if amount < 0.01 else f"${amount:.4f}"


def _people(org: Org, principals: list[str]) -> str:
    return ", ".join(org.display(p) for p in principals) or "nobody"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    from datetime import timedelta

    return format_duration(timedelta(seconds=seconds))


def header(s: TraceSummary, org: Org) -> Section:
    lines = [
        f"Flow {s.flow} (v{s.version}) · requested by {org.display(s.requester)} at {_t(s.started_at)} UTC",
        f"State: {s.status}" + (f" ({s.outcome}: {s.reason})" if s.reason else "")
        + f" · duration {_duration(s.duration_s)} · {s.entries} trace entries",
        "Inputs: " + ", ".join(f"{k}={_value(v)}" for k, v in s.inputs.items()),
    ]
    changed = {k: (s.requested_inputs.get(k), v) for k, v in s.inputs.items()
               if s.requested_inputs.get(k) != v}
    if changed:
        lines.append("Changed by approvers: " + ", ".join(
            f"{k} {_value(a)} -> {_value(b)}" for k, (a, b) in changed.items()))
    return Section(f"{s.run} · {s.flow} · {s.status}", lines)


def signals(s: TraceSummary) -> Section:
    lines = []
    for f in s.signals:
        if f.failed:
            lines.append(f"{f.agent}: FAILED after {f.attempts} attempt(s): {one_line(f.error, 200)}")
            continue
        verdict = f.verdict or "-"
        if f.verdict and f.severity and f.verdict != "ok":
            verdict += f"/{f.severity}"
        conf = f" ({f.confidence:.0%})" if f.confidence is not None and f.verdict else ""
        line = f"{f.agent}: {verdict}{conf} - {one_line(f.summary, 200)}".rstrip(" -")
        if f.rationale:
            line += f". Why: {f.rationale}"
        lines.append(line)
    return Section("Signals", lines or ["no agent ran"])


def conflicts(s: TraceSummary, org: Org) -> Section:
    lines = []
    for c in s.conflicts:
        verdicts = ", ".join(f"{a} {v or 'abstained'}" for a, v in c.get("verdicts", {}).items())
        then = f"; {c['then']}" if c.get("then") else ""
        if c.get("skipped"):
            lines.append(f"{c['conflict']}: skipped, {c['why']}{then}")
            continue
        if c.get("agreed"):
            lines.append(f"{c['conflict']}: signals agree ({verdicts}); policy {c['policy']} "
                         f"not needed{then}")
            continue
        line = f"{c['conflict']}: disagreement ({verdicts}); policy {c['policy']}"
        if c.get("winner"):
            line += f" -> followed {c['winner']}{then}"
        lines.append(line)
    for gate in s.gates:
        if gate.kind == "conflict" and gate.winner:
            who = _people(org, gate.decided_by)
            reason = next((d["reason"] for d in reversed(gate.decisions) if d.get("reason")), None)
            lines.append(f"{gate.key}: {who} chose to follow {gate.winner}"
                         + (f': "{one_line(reason, 300)}"' if reason else "")
                         + (f"; {gate.then}" if gate.then else ""))
    return Section("Conflicts", lines or ["no conflict step ran"])


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
        values = ", ".join(f"{k}={_value(v)}" for k, v in (b.get("values") or {}).items())
        if "limit" in b:
            values = f"{_value(b['value'])} of {_value(b['limit'])}"
        state = "passed" if b["passed"] else f"VIOLATED -> {b.get('on_violation', 'stop')}"
        if b.get("result") in ("allowed", "deferred"):
            state = f"VIOLATED, {b['result']}" if b["result"] == "allowed" else "not yet checkable"
        check = b.get("check") or b.get("message", "")
        lines.append(f"{b['boundary']}: {state}: {check}" + (f" ({values})" if values else "")
                     + recheck_note(b))
    return Section("Boundaries checked", lines or ["none"])


def _gate_lines(gate: GateStory, org: Org) -> list[str]:
    quorum = f", quorum {gate.quorum}" if gate.quorum > 1 else ""
    lines = [f"{gate.key} ({gate.kind}) opened {_t(gate.opened_at)}: {gate.title} - "
             f"could decide: {_people(org, gate.approvers)}{quorum}"]
    for d in gate.decisions:
        line = f"  {_t(d['at'])} {org.display(d['by'])} chose {d['option']}"
        if d.get("reason"):
            line += f': "{one_line(d["reason"], 300)}"'
        for name, change in (d.get("edits") or {}).items():
            line += f" (edited {name} {_value(change['from'])} -> {_value(change['to'])})"
        lines.append(line)
    for r in gate.refusals:
        lines.append(f"  {_t(r['at'])} REFUSED {org.display(r['by'])} ({r.get('option') or r['action']}): "
                     f"{one_line(r['why'], 300)}")
    if gate.outcome:
        waited = (gate.decided_at - gate.opened_at).total_seconds() if gate.decided_at else None
        by = _people(org, gate.decided_by) if gate.decided_by else "Baton"
        # only an approval gate "approves": elsewhere the option chosen says it
        outcome = gate.outcome if gate.kind == "approval" else "decided"
        line = f"  -> {outcome} ({gate.option}) by {by} after {_duration(waited)}: {gate.why}"
        for name, change in gate.approved_inputs.items():
            line += (f"; {name}: requested {_value(change['requested'])}, approved "
                     f"{_value(change['approved'])}")
        lines.append(line)
    else:
        lines.append("  -> still open" if gate.decided_at is None else "  -> closed")
    return lines


def gates(s: TraceSummary, org: Org) -> Section:
    lines: list[str] = []
    for skipped in s.skipped_gates:
        lines.append(f"{skipped['gate']}: not needed - {skipped['why']}")
    for gate in s.gates:
        lines.extend(_gate_lines(gate, org))
    return Section("Gates and decisions", lines or ["no gate"])


def escalations(s: TraceSummary, org: Org) -> Section:
    lines = []
    for e in s.escalations:
        who = f" by {org.display(e.who)}" if e.who else ""
        level = f" level {e.level}" if e.level else ""
        pinged = f" pinged {', '.join(e.notify)}" if e.notify else ""
        lines.append(f"{_t(e.at)} {e.gate}: {e.kind}{level}{who}{pinged}" + (f" - {e.why}" if e.why else ""))
    return Section("Escalations", lines or ["none"])


def failures(s: TraceSummary) -> Section:
    lines = []
    for f in s.failures:
        retries = f.get("retries") or []
        if f.get("recovered"):
            lines.append(f"{f['what']}: {len(retries)} failed attempt(s), then a signal "
                         f"(last error: {one_line(f['error'], 200)})")
        else:
            lines.append(f"{f['what']}: FAILED after {f.get('attempts', 1)} attempt(s): "
                         f"{one_line(f['error'], 300)}")
        if f.get("raw"):
            lines.append(f"  raw output: {one_line(f['raw'], 300)}")
    return Section("Failures and retries", lines or ["none"])


def agents(s: TraceSummary) -> Section:
    lines = []
    for u in s.usage.values():
        model = f" [{', '.join(sorted(u.models))}]" if u.models else ""
        lines.append(f"{u.agent}: {u.calls} call(s), {u.attempts} attempt(s), "
                     f"{u.tokens_in}+{u.tokens_out} tokens, {u.latency_ms:.0f} ms, "
                     f"{money(u.cost)}{model}")
    if s.usage:
        lines.append(f"total: {s.tokens} tokens, {money(s.cost)}")
    return Section("Agents: tokens, latency, cost", lines or ["no agent ran"])


def actions(s: TraceSummary) -> Section:
    lines = []
    for a in s.actions:
        kind = a["kind"].removeprefix("action_")
        detail = a.get("result") if kind == "done" else a.get("error") or a.get("why") or ""
        if kind == "due":  # an external action, approved for its caller
            detail = f"{a['tool']}(" + ", ".join(f"{k}={v}" for k, v in a["arguments"].items()) + ")"
        lines.append(f"{_t(a['at'])} {a['action']}: {kind}" + (f" - {one_line(str(detail), 200)}"
                                                              if detail else ""))
    for r in s.routes:
        if r["kind"] == "route":
            lines.append(f"{_t(r['at'])} route {r['route']}: {r['router']} chose {r['branch']} - "
                         f"{one_line(r.get('why'), 200)}")
        elif r["kind"] == "route_refused":
            lines.append(f"{_t(r['at'])} route {r['route']}: REFUSED branch {r['branch']!r}")
        else:
            lines.append(f"{_t(r['at'])} plan {r['plan']}: {len(r['subtasks'])} subtasks -> "
                         f"{r.get('verdict')}")
    return Section("Actions and routing", lines or ["none"])


def timeline(s: TraceSummary) -> Section:
    return Section("Timeline", [f"{_t(at)} {line}" for at, line in s.timeline])


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
        out.extend(f"  {line}" for line in section.lines)
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def markdown(s: TraceSummary, org: Org) -> str:
    out: list[str] = []
    for i, section in enumerate(sections(s, org)):
        out.append(f"{'#' if i == 0 else '##'} {section.title}\n")
        out.extend(f"- {_md(line)}" for line in section.lines)
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
    """`baton stats` in words (Stats from orchestrator.stats)."""
    statuses = ", ".join(f"{k} {v}" for k, v in sorted(stats.by_status.items(), key=lambda x: -x[1]))
    lines = [f"Runs: {stats.runs}" + (f" ({statuses})" if statuses else "")
             + f" · {stats.since:%Y-%m-%d} to {stats.until:%Y-%m-%d}"
             + (f" · flow {stats.flow}" if stats.flow else ""),
             f"Human intervention: {_pct(stats.intervention_rate)} of runs needed a person"]
    decided = stats.decided_total
    line = (f"Decisions: {decided} gate(s) decided: {_pct(stats.rate('approve'))} approved, "
            f"{_pct(stats.rate('reject'))} rejected, {_pct(stats.rate('request_changes'))} "
            "sent back for changes")
    if stats.closed_by_baton:
        line += f" ({stats.closed_by_baton} closed by Baton when escalation ran out)"
    lines.append(line)
    levels = ", ".join(f"level {k}: {v}" for k, v in sorted(stats.levels_reached.items()))
    lines.append(f"Escalation: {_pct(stats.escalation_rate)} of {stats.gates} gate(s) escalated"
                 + (f" (reached {levels})" if levels else ""))
    lines.append(f"Time to decision: median {_duration(stats.median_decision_s)}, p90 "
                 f"{_duration(stats.p90_decision_s)} ({len(stats.decision_seconds)} decided by people)")
    lines.append(f"Agents: {stats.agent_calls} call(s), {_pct(stats.agent_error_rate)} failed, "
                 f"{_pct(stats.agent_retry_rate)} retried · {stats.tokens:,} tokens · {money(stats.cost)}")
    if stats.pending_by_approver:
        lines.append("Most pending: " + ", ".join(f"{org.display(p)} {n}"
                                                  for p, n in stats.pending_by_approver))
    return lines
