"""The commands that start and move runs: run, decide, signal, stop, claim, snooze,
reassign, halt, resume, tick."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from bot.cli.baton import actor, app, engine, fail, who
from orchestrator.errors import BatonError

if TYPE_CHECKING:
    from orchestrator.engine import Engine


AsUser = Annotated[str | None, typer.Option(
    "--as", help="who is acting: an org user or Slack id (default: $BATON_USER, else your login "
                 "if the org file lists it under a user's logins)")]


@app.command(context_settings={"allow_extra_args": False})
def run(
    flow: Annotated[str, typer.Argument(help="flow name")],
    assignments: Annotated[list[str] | None, typer.Argument(help="inputs as key=value")] = None,
    as_user: AsUser = None,
    follow: Annotated[bool, typer.Option(
        "--follow", "-f", help="keep printing until the run finishes")] = False,
) -> None:
    """Start a run: `baton run vendor-payment vendor=ACME amount=20000`."""
    from orchestrator.inputs import parse_assignments

    eng = engine()
    requester = actor(eng, as_user)
    try:
        values = parse_assignments(assignments or [])
        started = eng.start_run(flow, values, requester, origin={"kind": "cli"})
    except BatonError as exc:
        fail(exc)
    current = eng.get_run(started.ref)
    typer.echo(f"{current.ref} {current.status}")
    if follow:
        _follow(eng, current.ref, current.trace_seq)


def _follow(eng: Engine, ref: str, seen: int) -> None:
    import time

    from orchestrator.engine import FINISHED
    from orchestrator.readers.timeline import describe
    from storage.trace import chain_entries

    while True:
        current = eng.get_run(ref)
        if current.trace_seq > seen:
            with eng.db.read() as s:
                for entry in chain_entries(s, ref)[seen:]:
                    typer.echo(f"{ref} {describe(entry, eng.org)}")
            seen = current.trace_seq
        if current.status in FINISHED:
            return
        time.sleep(0.5)


@app.command()
def decide(
    ref: Annotated[str, typer.Argument(help="run id, e.g. R-42")],
    option: Annotated[str, typer.Argument(help="approve, reject, request_changes, or the gate's own option")],
    as_user: AsUser = None,
    gate: Annotated[str | None, typer.Option(help="gate id, when the run has several open")] = None,
    reason: Annotated[str | None, typer.Option(help="why (required for some options)")] = None,
    edit: Annotated[list[str] | None, typer.Option(help="edit-and-approve: key=value, repeatable")] = None,
) -> None:
    """Decide a gate as an approver."""
    from orchestrator.inputs import parse_assignments

    eng = engine()
    user = actor(eng, as_user)
    try:
        edits = parse_assignments(edit or [])
        report = eng.decide(ref, user, option, reason=reason, edits=edits, gate=gate)
    except BatonError as exc:
        fail(exc)
    if not report.ok:
        from gates.options import REASON_NEEDED

        fail(report.message + (' with --reason "..."' if REASON_NEEDED in report.message else ""))
    typer.echo(report.message)
    typer.echo(f"{report.run} {eng.get_run(report.run).status}")


@app.command()
def signal(
    ref: Annotated[str, typer.Argument(help="run id")],
    agent: Annotated[str, typer.Argument(help="an external agent of the run's flow")],
    verdict: Annotated[str, typer.Option(help="ok, warn or block")],
    as_user: AsUser = None,
    severity: Annotated[str, typer.Option(help="info, low, medium, high, critical")] = "info",
    confidence: Annotated[float, typer.Option(help="0 to 1")] = 1.0,
    summary: Annotated[str, typer.Option()] = "",
    rationale: Annotated[str, typer.Option()] = "",
    evidence: Annotated[list[str] | None, typer.Option(help="repeatable")] = None,
) -> None:
    """Submit an external agent's signal to a run."""
    eng = engine()
    output = {"verdict": verdict, "severity": severity, "confidence": confidence,
              "summary": summary, "rationale": rationale, "evidence": evidence or []}
    try:
        typer.echo(eng.submit_signal(ref, agent, output, actor(eng, as_user)))
    except BatonError as exc:
        fail(exc)


@app.command()
def stop(ref: str, as_user: AsUser = None,
         reason: Annotated[str | None, typer.Option(help="why")] = None) -> None:
    """Stop a run (its requester or an admin)."""
    eng = engine()
    try:
        eng.stop(ref, actor(eng, as_user), reason)
    except BatonError as exc:
        fail(exc)


@app.command()
def claim(ref: str, as_user: AsUser = None, gate: Annotated[str | None, typer.Option()] = None) -> None:
    """Claim a waiting gate ("I'm on it"): pings pause until the claim times out."""
    eng = engine()
    try:
        typer.echo(eng.claim(ref, actor(eng, as_user), gate))
    except BatonError as exc:
        fail(exc)


@app.command()
def snooze(ref: str, duration: Annotated[str, typer.Argument(help="e.g. 15m, 1h, 4h, 1d")],
           as_user: AsUser = None, gate: Annotated[str | None, typer.Option()] = None) -> None:
    """Snooze a waiting gate's escalation for one of its chain's snooze durations."""
    eng = engine()
    try:
        typer.echo(eng.snooze(ref, actor(eng, as_user), duration, gate))
    except BatonError as exc:
        fail(exc)


@app.command()
def reassign(ref: str, to: Annotated[str, typer.Option("--to", help="who should decide")],
             as_user: AsUser = None, gate: Annotated[str | None, typer.Option()] = None) -> None:
    """Let another person decide a waiting gate."""
    eng = engine()
    try:
        typer.echo(eng.reassign(ref, actor(eng, as_user), who(eng, to, "--to"), gate))
    except BatonError as exc:
        fail(exc)


@app.command()
def halt(as_user: AsUser = None, reason: Annotated[str | None, typer.Option()] = None) -> None:
    """Emergency stop: no new runs, no actions, until `baton resume` (admins only)."""
    eng = engine()
    try:
        eng.halt(actor(eng, as_user), reason)
    except BatonError as exc:
        fail(exc)


@app.command()
def resume(as_user: AsUser = None) -> None:
    """Lift the emergency stop and continue held runs (admins only)."""
    eng = engine()
    try:
        held = eng.resume(actor(eng, as_user))
    except BatonError as exc:
        fail(exc)
    typer.echo("resumed" + (f"; continuing {', '.join(held)}" if held else ""))


@app.command()
def tick() -> None:
    """Fire escalation timers that are due and continue interrupted runs (for cron, when
    no `baton serve` is running)."""
    eng = engine()
    fired = eng.fire_due_timers()
    recovered = eng.recover()
    from orchestrator.wording import count

    typer.echo(f"{count(fired, 'timer')} fired, {count(len(recovered), 'run')} continued")
