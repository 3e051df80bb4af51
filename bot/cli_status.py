"""`baton status`: one run in detail, or the open runs and a person's pending approvals.

A person runs it to see where things stand, and it answers as soon as the interpreter and
typer have started: it reads the settings, the org file (to name people) and the database
through its DB-API driver (storage/status_reads.py), and imports neither SQLAlchemy, the
models nor the engine (tests/cli/test_startup.py). Where that reader cannot read the
database as the engine would (one to create or migrate, a URL it does not take apart), the
engine opens it, as every command does, and the same statements run through SQLAlchemy.
Both print with the functions below.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gates.access import through_words
from gates.deciders import eligible
from orchestrator.errors import NotFound
from orchestrator.runs import parse_ref
from orchestrator.wording import count, deadline, moment, values

if TYPE_CHECKING:
    from gates.org import Org
    from storage.status_reads import StatusReader

Echo = Callable[[str], None]


def show_run(reads: StatusReader, org: Org, ref: str, echo: Echo) -> None:
    """One run: its state, inputs, open gates (who can decide, the escalation), and the Slack
    calls about it that failed for good. Raises BatonError for an id that names no run."""
    run = reads.run(parse_ref(ref))
    if run is None:
        raise NotFound(f"no run {ref}", see="status")
    echo(f"R-{run.id} {run.flow_name}: {run.status}"
         + (f" ({run.outcome}: {run.reason})" if run.reason else ""))
    echo(f"  requested by {org.display(run.requester)} at {moment(run.created_at)}")
    door = through_words(run.origin or {})
    if door:  # a token's run: which door (the API, MCP) and which token
        echo(f"  asked through {door} with token {run.origin.get('token')}")
    echo(f"  inputs: {values(run.inputs)}")
    for gate in reads.open_gates(run.id):
        people = ", ".join(org.display(p) for p in sorted(eligible(gate, run.requester)))
        echo(f"  waiting at gate '{gate.key}' ({gate.kind}): {gate.title}")
        echo(f"    can decide: {people}; options: {', '.join(o['id'] for o in gate.options)}")
        if gate.chain:
            echo(_escalation(gate, org))
    _failed_slack_calls(reads, echo, run.id)


def _escalation(gate: Any, org: Org) -> str:
    levels = len(gate.chain["levels"])
    state = gate.esc_state or "waiting"
    if state == "claimed" and gate.claimed_by:
        state = f"claimed by {org.display(gate.claimed_by)}"
    elif state == "snoozed" and gate.snoozed_until:
        state = f"snoozed until {gate.snoozed_until:%H:%M} UTC"
    if not gate.next_deadline:
        return f"    escalation {gate.chain['name']}: {state}"
    return (f"    escalation {gate.chain['name']}: level {gate.esc_level + 1} of {levels}, {state}, "
            f"next step {deadline(gate.next_deadline)}")


def show_open(reads: StatusReader, org: Org, as_user: str | None, who: Callable[[str], str],
              echo: Echo) -> None:
    """The runs still open, where each waits; with `as_user`, the gates that person may
    decide (`who` names them, or refuses a name the org file does not know)."""
    runs = reads.open_runs()
    gates = {g.run_id: g for g in reads.open_gates()}
    with_requester = reads.open_gates_with_requester() if as_user else []
    if not runs:
        echo("no open runs")
    for run in runs:
        gate = gates.get(run.id)
        where = f"at gate '{gate.key}'" if gate else f"at {run.cursor}"
        echo(f"{f'R-{run.id}':8} {run.flow_name:20} {run.status:8} {where} "
             f"(requested by {org.display(run.requester)})")
    if as_user:
        user = who(as_user)
        mine = [g for g, requester in with_requester if user in eligible(g, requester)]
        echo(f"\n{len(mine)} pending for {org.display(user)}:")
        for gate in mine:
            echo(f"  R-{gate.run_id} gate '{gate.key}': {gate.title}")
    _failed_slack_calls(reads, echo)


def _failed_slack_calls(reads: StatusReader, echo: Echo, run_id: int | None = None) -> None:
    """Say so when messages to Slack failed for good (of one run, with `run_id`)."""
    failed, latest = reads.failed_slack_calls(run_id)
    if not failed:
        return
    echo(f"{'  ' if run_id else chr(10)}{count(failed, 'Slack call')} failed for good "
         "(baton_slack_calls_failed in /metrics, slack_call_failed in the log); latest:")
    for call in latest:
        at = moment(call.sent_at) if call.sent_at else "?"
        echo(f"{'    ' if run_id else '  '}{at} {call.method}: {call.last_error or 'failed'}")
