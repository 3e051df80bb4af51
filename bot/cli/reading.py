"""The commands that read what is stored and change nothing: status, trace (and trace
verify), stats."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bot.cli.baton import app, engine, fail, person_named, settings, who
from orchestrator.errors import BatonError, FlowError

if TYPE_CHECKING:
    from orchestrator.engine import Engine
    from orchestrator.readers.summary import TraceSummary
    from orchestrator.settings_env import EnvironmentSettings
    from orchestrator.settings_fields import SettingsFields


def _settings_to_read() -> EnvironmentSettings | SettingsFields:
    """The settings as `settings()` reads them, for a command that only reads: without
    pydantic where every value is plainly right, without pydantic-settings unless a `.env`
    file is there to read."""
    from orchestrator.settings_env import read_environment

    plain = read_environment()
    if plain is not None:
        return plain
    from orchestrator.settings_fields import from_environment

    try:
        found = from_environment()
    except Exception as exc:  # pydantic's message names the variable
        fail(f"configuration: {exc}")
    return found if found is not None else settings()


@app.command()
def status(
    ref: Annotated[str | None, typer.Argument(help="a run id; without it, open runs")] = None,
    as_user: Annotated[str | None, typer.Option("--as", help="also list your pending approvals")] = None,
) -> None:
    """One run in detail, or the runs still open."""
    from bot.cli_status import show_open, show_run
    from orchestrator.orgfile import load_org
    from storage.status_reads import StatusReader

    config = _settings_to_read()
    try:
        org = load_org(config.org_path)
    except FlowError as exc:
        fail(exc)
    reads = StatusReader.open(config.database_url)
    if reads is None:  # to create, to migrate, or unreachable: as the engine does it
        from storage.status_queries import EngineStatusReader

        eng = engine(echo=False)
        org, reads = eng.org, EngineStatusReader(eng.db)
    with reads:
        try:
            if ref is None:
                show_open(reads, org, as_user, lambda name: person_named(org, name), typer.echo)
            else:
                show_run(reads, org, ref, typer.echo)
        except BatonError as exc:
            fail(exc)


@app.command("trace")
def trace_cmd(
    ref: Annotated[str | None, typer.Argument(help="a run id, or `verify`; none lists runs")] = None,
    target: Annotated[str | None, typer.Argument(help="with verify: a run id")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="the full trace as JSON")] = False,
    all_runs: Annotated[bool, typer.Option("--all", help="with verify: every run")] = False,
    flow: Annotated[str | None, typer.Option(help="list: runs of this flow")] = None,
    since: Annotated[str | None, typer.Option(help="list: started within, e.g. 7d")] = None,
    decided_by: Annotated[str | None, typer.Option(help="list: runs this person decided")] = None,
    as_user: Annotated[str | None, typer.Option("--as", help="list: runs this person started")] = None,
    plain_text: Annotated[bool, typer.Option("--plain", help="no colours or boxes")] = False,
) -> None:
    """Why a run was decided the way it was. `baton trace verify [R-42 | --all]` checks the
    hash chains; with no run id, lists runs (filters: --flow, --since, --decided-by, --as)."""
    import json

    from orchestrator.readers import report
    from orchestrator.readers.export import export_run
    from orchestrator.readers.summary import summarize
    from storage.trace import chain_entries

    eng = engine(echo=False)
    if ref == "verify":
        _verify(eng, target, all_runs)
        return
    if ref is None:
        _list_runs(eng, flow, since, decided_by, as_user)
        return
    try:
        current = eng.get_run(ref)
    except BatonError as exc:
        fail(exc)
    if as_json:
        typer.echo(json.dumps(export_run(eng.db, current), indent=2, ensure_ascii=False))
        return
    with eng.db.read() as s:
        entries = chain_entries(s, current.ref)
    summary = summarize(current, entries, eng.org)
    if sys.stdout.isatty() and not plain_text:
        _rich_summary(summary, eng)
    else:
        typer.echo(report.plain(summary, eng.org), nl=False)


def _rich_summary(summary: TraceSummary, eng: Engine) -> None:
    from rich.console import Console
    from rich.panel import Panel
    from rich.text import Text

    from orchestrator.readers import report

    console = Console()
    colours = {"succeeded": "green", "rejected": "red", "failed": "red", "stopped": "yellow"}
    for i, section in enumerate(report.sections(summary, eng.org)):
        body = Text("\n".join(section.texts()))  # Text: agent output is never read as markup
        style = colours.get(summary.status, "cyan") if i == 0 else "dim"
        console.print(Panel(body, title=Text(section.title), title_align="left", border_style=style))


def _list_runs(eng: Engine, flow: str | None, since: str | None, decided_by: str | None,
               as_user: str | None) -> None:
    from gates.durations import parse_duration
    from orchestrator.readers.queries import find_runs

    try:
        start = eng.clock.now() - parse_duration(since) if since else None
    except ValueError as exc:
        fail(f"--since: {exc}")
    runs = find_runs(eng.db, flow=flow, since=start,
                     decided_by=who(eng, decided_by, "--decided-by") if decided_by else None,
                     requester=who(eng, as_user) if as_user else None)
    if not runs:
        typer.echo("no runs match")
    for item in runs:
        typer.echo(f"{item.ref:8} {item.flow_name:20} {item.status:9} "
                   f"{item.created_at:%Y-%m-%d %H:%M} {eng.org.display(item.requester)}"
                   + (f" - {item.reason}" if item.reason else ""))


@app.command()
def stats(
    flow: Annotated[str | None, typer.Argument(help="only this flow")] = None,
    since: Annotated[str, typer.Option(help="window, e.g. 7d, 30d")] = "7d",
    chart: Annotated[Path | None, typer.Option(help="also write a PNG chart to this file")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="the figures as JSON")] = False,
) -> None:
    """KPIs: runs, approval and rejection rates, human intervention, escalations, time to
    decision (median, p90), agent errors and retries, tokens and cost."""
    import json

    from gates.durations import parse_duration
    from orchestrator.readers import report
    from orchestrator.readers.stats import compute as compute_stats

    eng = engine(echo=False)
    try:
        window = parse_duration(since)
    except ValueError as exc:
        fail(f"--since: {exc}")
    if flow is not None:
        try:
            eng.flows.get(flow)
        except BatonError as exc:
            fail(exc)
    figures = compute_stats(eng.db, now=eng.clock.now(), since=window, flow=flow)
    if as_json:
        typer.echo(json.dumps(figures.as_dict(), indent=2))
    else:
        for line in report.stats_lines(figures, eng.org):
            typer.echo(line)
    if chart is not None:
        from orchestrator.readers.charts import stats_chart

        chart.write_bytes(stats_chart(figures))
        typer.echo(f"chart written to {chart}")


def _verify(eng: Engine, target: str | None, all_runs: bool) -> None:
    from orchestrator.engine import parse_ref
    from orchestrator.readers.export import verify_all, verify_run

    if target is None and not all_runs:
        fail("say which run (baton trace verify R-42) or --all")
    if all_runs:
        checked, breaks = verify_all(eng.db)
        for problem in breaks:
            typer.echo(f"BROKEN {problem}")
        from orchestrator.wording import count

        typer.echo(f"{count(checked, 'chain')} checked, {len(breaks)} broken")
        if breaks:
            raise typer.Exit(1)
        return
    try:
        current = eng.get_run(parse_ref(target or ""))
    except BatonError as exc:
        fail(exc)
    problem = verify_run(eng.db, current)
    if problem:
        typer.echo(f"BROKEN {problem}")
        raise typer.Exit(1)
    typer.echo(f"{current.ref}: {current.trace_seq} entries, chain intact")
