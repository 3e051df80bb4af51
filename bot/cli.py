"""The `baton` command line.

Identity on the command line is asserted with `--as` (an org user or Slack id): the CLI
is an operator's tool on a machine that already holds the database. Bad input exits
with status 2 and a message that names the problem; nothing is written.

Every `baton` invocation imports this module, `baton --help` included, so it imports only
typer and the standard library at module level. A command imports what it uses inside its
own body (the database, the engine, CEL, matplotlib, openai, Slack, a web server), and
tests/cli/test_startup.py fails when a heavy library is imported with the module.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from orchestrator.errors import BatonError, FlowError

if TYPE_CHECKING:
    from gates.org import Org
    from orchestrator.engine import Engine
    from orchestrator.program import Program
    from orchestrator.readers.summary import TraceSummary
    from orchestrator.settings import Settings
    from orchestrator.settings_env import EnvironmentSettings
    from orchestrator.settings_fields import SettingsFields

# Plain help and usage errors (click's): typer's rich panels import rich, markdown-it and
# pygments first, which took longer than the rest of `baton --help` (bench/cli_start.py).
app = typer.Typer(no_args_is_help=True, add_completion=False, rich_markup_mode=None,
                  help="Baton: human approval and escalation for AI-agent flows.")
flows_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                        help="Inspect and validate flow files.")
db_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Database schema.")
tokens_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                         help="API tokens for external agents (docs/api.md).")
app.add_typer(flows_app, name="flows")
app.add_typer(db_app, name="db")
app.add_typer(tokens_app, name="tokens")

def _print_version(wanted: bool) -> None:
    if not wanted:
        return
    from importlib.metadata import PackageNotFoundError, version

    try:
        typer.echo(f"baton {version('baton')}")
    except PackageNotFoundError:  # run from a source tree that was never installed
        typer.echo("baton (version unknown: not installed; pip install -e .)")
    raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print Baton's version and exit.")] = False,
) -> None:
    pass


AsUser = Annotated[str | None, typer.Option(
    "--as", help="who is acting: an org user or Slack id (default: $BATON_USER, else your login "
                 "if the org file lists it under a user's logins)")]


# What the command a BatonError points to (`see`) does, on the command line
_SEE = {"status": "lists runs"}


def fail(problem: str | BatonError, code: int = 2) -> NoReturn:
    """Say what is wrong (and, for a BatonError, the command that helps) and exit."""
    text = str(problem)
    if isinstance(problem, BatonError):
        if problem.see:
            text += f"; `baton {problem.see}` {_SEE.get(problem.see, 'shows what there is')}"
        if problem.usage:
            text += f"\nusage: baton {problem.usage}"
    typer.echo(f"error: {text}", err=True)
    raise typer.Exit(code)


def settings() -> Settings:
    from orchestrator.settings import Settings

    try:
        return Settings()
    except Exception as exc:  # pydantic's message names the variable
        fail(f"configuration: {exc}")


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


def engine(*, echo: bool = True) -> Engine:
    from orchestrator.bootstrap import open_engine
    from orchestrator.logs import configure_logging

    config = settings()
    configure_logging(config.log_format, os.environ.get("BATON_LOG_LEVEL", "warning"))
    try:
        built = open_engine(config)
    except FlowError as exc:
        fail(exc)
    if echo:
        from orchestrator.console import ConsoleNotifier

        built.observers.append(ConsoleNotifier(built.org, typer.echo))
    return built


def who(eng: Engine, name: str, option: str = "--as") -> str:
    """The person `name` names in the org file (a key, @key, user:key or a Slack id)."""
    return _person(eng.org, name, option)


def _person(org: Org, name: str, option: str = "--as") -> str:
    try:
        return org.principal(name)
    except ValueError as exc:
        fail(f"{option}: {exc}")


def actor(eng: Engine, as_user: str | None) -> str:
    """Who is acting: --as, else $BATON_USER, else the operating-system login when the org
    file lists it under a user's `logins`. Never guessed: a name the org file does not know
    is refused the same way whatever it came from, and nothing is written."""
    if as_user is not None:  # given, even empty (`--as "$UNSET"`): never fall back to the login
        return who(eng, as_user)
    if "BATON_USER" in os.environ:
        return who(eng, os.environ["BATON_USER"], "BATON_USER")
    import getpass

    try:
        login = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container's arbitrary user)
        login = ""
    person = eng.org.principal_for_login(login) if login else None
    if person is None:
        org = eng.org
        if not org.data.users:
            fail(f"who is acting? Say --as or set BATON_USER: {org.known_users}")
        why = f"your login {login!r} is not one of the logins in {org.source}" if login else \
            "this process has no login name"
        fix = f", or add {login!r} to a user's logins there (docs/flows.md)" if login else ""
        fail(f"who is acting? {why[0].upper()}{why[1:]}. Say --as NAME (users: "
             f"{', '.join(sorted(org.data.users))}), set BATON_USER{fix}.")
    return person


# -- flows --------------------------------------------------------------------------------------
@flows_app.command("validate")
def flows_validate(
    path: Annotated[Path | None, typer.Argument(help="a flow file or folder (default: BATON_FLOWS)")] = None,
) -> None:
    """Check flow files strictly: schema, references, roles, CEL. Exit 2 on any problem."""
    from orchestrator.callables import CallableLoader
    from orchestrator.loader import FlowCatalog, load_flow
    from orchestrator.orgfile import load_org

    config = settings()
    try:
        org = load_org(config.org_path)
    except FlowError as exc:
        fail(exc)
    target = path or config.flows
    callables = CallableLoader(config.python_modules,
                               (target if target.is_dir() else target.parent).resolve())
    if target.is_dir():
        files = FlowCatalog(target, org, callables).files()
    elif target.exists():
        files = [target]
    else:
        fail(f"{target}: no such file or folder")
    problems = 0
    reach = config.reach()
    for file in files:
        try:
            program = load_flow(file, org, callables, reach=reach)
            typer.echo(f"ok    {file} ({program.name}: {len(program.nodes)} steps)")
        except FlowError as exc:
            problems += len(exc.problems)
            for problem in exc.problems:
                typer.echo(f"error {problem}", err=True)
            continue
        for warning in setup_warnings(program, config):  # this server's, not the file's
            typer.echo(f"setup {file}: {warning}", err=True)
    if not files:
        fail(f"no flow files (*.yaml) in {target}")
    if problems:
        raise typer.Exit(2)


def setup_warnings(program: Program, config: Settings) -> list[str]:
    """What this server lacks for `program` to run (a key, a webhook secret), and the fix."""
    from orchestrator.agents.endpoints import setup_problems
    from orchestrator.reach import hook_secret_value_problem

    found = [f"{problem}" for problem in
             setup_problems(program.flow, config.llm_model, config.reach())]
    hook = program.flow.triggers.webhook
    if hook is not None:
        problem = hook_secret_value_problem(hook.secret_env, os.environ.get(hook.secret_env))
        if problem:
            found.append(f"webhook: {problem}; until then POST /hooks/{program.name} answers 503")
    return found


@flows_app.command("list")
def flows_list() -> None:
    """List the flows and how to start each (as `/baton flows` shows them)."""
    from orchestrator.inputs import usage

    eng = engine(echo=False)
    flows, errors = eng.flows.load_all()
    for name, program in sorted(flows.items()):
        typer.echo(f"{name:24} {program.flow.title}\n{'':24} baton {usage(program.flow)}")
    for error in errors:
        typer.echo(f"invalid: {error}", err=True)


# -- runs ---------------------------------------------------------------------------------------
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
                show_open(reads, org, as_user, lambda name: _person(org, name), typer.echo)
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


def slack_transport(config: Settings, http: bool) -> tuple[str | None, str]:
    """Which transport the settings allow: ("socket" | "http" | None, an explanation)."""
    if not config.slack_bot_token:
        missing = "SLACK_BOT_TOKEN (xoxb-...)"
        extra = (" and SLACK_APP_TOKEN (xapp-..., Socket Mode) or SLACK_SIGNING_SECRET (HTTP mode)"
                 if not (config.slack_app_token or config.slack_signing_secret) else "")
        return None, (f"no Slack credentials: {missing}{extra} not set. To try Baton without a "
                      "Slack workspace, run `baton dev` (a local Slack sandbox in your browser).")
    if http or not config.slack_app_token:
        if not config.slack_signing_secret:
            return None, ("HTTP mode needs SLACK_SIGNING_SECRET (Slack app > Basic Information) to "
                          "verify requests; or set SLACK_APP_TOKEN to use Socket Mode")
        return "http", "HTTP mode: Slack sends requests to POST /slack/events, verified with " \
                       "SLACK_SIGNING_SECRET"
    return "socket", "Socket Mode (SLACK_APP_TOKEN is set): no public URL needed"


def _freeze_startup_heap() -> None:
    """Keep what start-up built (modules, flows, the Slack app) out of the garbage collector's
    full collections: walking it all paused the process for up to 90 ms, in the middle of
    whatever request was being answered (bench/click_ack.py, issue 9)."""
    import gc

    gc.collect()
    gc.freeze()


@app.command()
def serve(
    http: Annotated[bool, typer.Option("--http", help="HTTP mode instead of Socket Mode")] = False,
    port: Annotated[int, typer.Option(help="HTTP port")] = 3000,
    host: Annotated[str, typer.Option(help="HTTP interface")] = "0.0.0.0",
) -> None:
    """Run Baton for Slack: Socket Mode when SLACK_APP_TOKEN is set, else HTTP mode."""
    config = settings()
    transport, why = slack_transport(config, http)
    if transport is None:
        if config.slack_bot_token or config.slack_app_token or config.slack_signing_secret:
            fail(why)  # half-configured: say what is missing rather than guess
        typer.echo(f"baton serve: {why}\nStarting `baton dev` instead.", err=True)
        dev(port=port)
        return
    from bot.service import BatonService
    from orchestrator.logs import configure_logging

    configure_logging(config.log_format, config.log_level)

    service = BatonService(config)
    typer.echo(f"baton serve: {why}")
    flows, errors = service.engine.flows.load_all()
    for error in errors:
        typer.echo(f"baton serve: invalid flow file (it cannot run until fixed):\n{error}", err=True)
    for program in flows.values():
        for warning in setup_warnings(program, config):
            typer.echo(f"baton serve: flow {program.name} cannot run: {warning}", err=True)
    service.start()
    try:
        if transport == "socket":
            from slack_sdk import WebClient

            from bot.socket_mode import BatonSocketModeHandler

            handler = BatonSocketModeHandler(service.app, config.slack_app_token,
                                        web_client=WebClient(base_url=service.client.base_url))
            _freeze_startup_heap()
            handler.start()
        else:
            import uvicorn

            typer.echo(f"listening on http://{host}:{port}/slack/events (health: /healthz; "
                       f"approval API: /api/v1; MCP: /mcp)")
            _freeze_startup_heap()
            # Long polls of the approval API may be open for up to a minute: on SIGTERM they
            # get a few seconds, then their connections close and clients ask again.
            uvicorn.run(service.http_app(), host=host, port=port,
                        log_level="warning", timeout_graceful_shutdown=5)
    finally:
        service.stop()


@app.command()
def dev(port: Annotated[int, typer.Option(help="port of the sandbox page")] = 3000,
        api_port: Annotated[int | None, typer.Option(
            help="port of the bot and the approval API (default: the next one)")] = None) -> None:
    """Run Baton against a local Slack sandbox in your browser (no Slack workspace needed)."""
    from sandbox.dev import run_dev

    raise typer.Exit(run_dev(settings(), port=port, api_port=api_port))


@app.command("mcp")
def mcp_stdio() -> None:
    """Serve Baton's MCP tools on stdio for a coding agent (docs/mcp.md), as the principal of
    the API token in BATON_TOKEN: on the local database, or through the `baton serve` at
    BATON_URL."""
    config = settings()
    if not config.mcp_token:
        fail("BATON_TOKEN is not set: `baton mcp` acts as the principal of an API token "
             "(`baton tokens create NAME --as PRINCIPAL --flows FLOW` makes one)")
    from orchestrator.logs import configure_logging

    # Standard output carries the protocol: logs go to standard error, as JSON lines.
    configure_logging("json" if config.log_format == "auto" else config.log_format,
                      os.environ.get("BATON_LOG_LEVEL", "warning"))
    from bot.mcp.stdio import serve_stdio

    try:
        serve_stdio(config, config.mcp_token, config.mcp_url)
    except BatonError as exc:
        fail(str(exc))


# -- API tokens -----------------------------------------------------------------------------------
@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Argument(help="a name for the token, e.g. billing-bot")],
    as_principal: Annotated[str, typer.Option(
        "--as", help="who it acts as: service:NAME or a person of the org file")],
    flows: Annotated[str, typer.Option(help="the flows it may start, comma-separated")],
    expires: Annotated[str | None, typer.Option(help="lifetime, e.g. 90d (default: none)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the token as JSON")] = False,
) -> None:
    """Create an API token; it is shown once (Baton keeps only its hash)."""
    import json

    from gates.durations import parse_duration
    from orchestrator import tokens

    eng = engine(echo=False)
    try:
        lifetime = parse_duration(expires) if expires else None
    except ValueError as exc:
        fail(f"--expires: {exc}")
    try:
        issued = tokens.create(eng.db, eng.org, eng.flows, name, as_principal, flows.split(","),
                               eng.clock.now(), lifetime)
    except BatonError as exc:
        fail(str(exc))
    expires_text = f"{issued.expires_at:%Y-%m-%d %H:%M} UTC" if issued.expires_at else "never"
    if as_json:
        typer.echo(json.dumps({"name": issued.name, "principal": issued.principal,
                               "flows": issued.flows, "token": issued.token,
                               "callback_secret": issued.callback_secret,
                               "expires_at": issued.expires_at.isoformat()
                               if issued.expires_at else None}))
        return
    typer.echo(f"token {issued.name} acts as {issued.principal} for {', '.join(issued.flows)}; "
               f"expires {expires_text}\n"
               f"  token            {issued.token}\n"
               f"  callback secret  {issued.callback_secret}\n"
               "Both are shown this once: Baton keeps only the token's hash. Send the token as "
               "`Authorization: Bearer ...`; verify callbacks' Baton-Signature with the secret.")


@tokens_app.command("list")
def tokens_list() -> None:
    """The tokens: name, principal, flows, state (never the tokens themselves)."""
    from orchestrator import tokens

    eng = engine(echo=False)
    now = eng.clock.now()
    found = tokens.listing(eng.db)
    if not found:
        typer.echo("no tokens; `baton tokens create NAME --as PRINCIPAL --flows F` makes one")
    for info in found:
        expires = f"expires {info.expires_at:%Y-%m-%d}" if info.expires_at else "no expiry"
        typer.echo(f"{info.name:20} {info.hint}...  {info.principal:24} {info.state(now):8} "
                   f"{expires:18} {','.join(info.flows)}")


@tokens_app.command("revoke")
def tokens_revoke(name: Annotated[str, typer.Argument(help="the token's name")]) -> None:
    """Revoke a token: its next request is refused (401)."""
    from orchestrator import tokens

    eng = engine(echo=False)
    try:
        changed = tokens.revoke(eng.db, name, eng.clock.now())
    except BatonError as exc:
        fail(str(exc))
    typer.echo(f"token {name} revoked" if changed else f"token {name} was revoked already")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending schema migrations."""
    from storage.engine import Database
    from storage.migrate import upgrade

    config = settings()
    db = Database(config.database_url)
    revision = upgrade(db)
    typer.echo(f"database at revision {revision}")


def main() -> None:
    try:
        app()
    except BatonError as exc:  # anything not caught closer to the command
        _exit(exc)
    except Exception as exc:
        from storage.unreachable import DatabaseUnreachable  # not imported before it is needed

        if not isinstance(exc, DatabaseUnreachable):
            raise
        _exit(exc)  # any command, the database it cannot open: one line, not a traceback


def _exit(problem: BatonError | Exception) -> NoReturn:
    try:
        fail(problem if isinstance(problem, BatonError) else str(problem))
    except typer.Exit as done:
        sys.exit(done.exit_code)
