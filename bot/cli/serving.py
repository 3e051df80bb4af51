"""The commands that serve: Baton for Slack (serve), against the local Slack sandbox (dev),
and its MCP tools on stdio (mcp)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated

import typer

from bot.cli.baton import app, fail, settings
from bot.cli.flows import setup_warnings
from orchestrator.errors import BatonError

if TYPE_CHECKING:
    from orchestrator.settings import Settings


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
