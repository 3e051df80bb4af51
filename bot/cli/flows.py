"""`baton flows`: check flow files, list the flows; and what this server lacks for a flow
to run (`baton serve` says it too)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bot.cli.baton import app, engine, fail, settings
from orchestrator.errors import FlowError

if TYPE_CHECKING:
    from orchestrator.program import Program
    from orchestrator.settings import Settings

flows_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                        help="Inspect and validate flow files.")
app.add_typer(flows_app, name="flows")


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
