"""`baton mcp`: the MCP tools over stdio, for clients that start a local process (Claude
Code, Cursor, an MCP client of your own), acting as the principal of one API token
(`BATON_TOKEN`).

By default it works on the database of `DATABASE_URL`, like the other commands, through the
approval service itself; a `baton serve` (or `baton dev`) on the same database takes the
requests to Slack and continues the runs people decide. With `BATON_URL` it asks that
`baton serve` instead, through the Python client, and needs no database. Standard output
is the protocol's: everything else (logs, notices) goes to standard error.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

import anyio
import structlog

from bot.mcp.backends import Approvals, LocalApprovals, RemoteApprovals, remote
from bot.mcp.tools import Asker, build_server
from orchestrator.errors import BatonError
from orchestrator.settings import Settings

log = structlog.get_logger("baton.mcp")


async def _introduce(approvals: Approvals, where: str, err: TextIO) -> None:
    """One line on standard error: whom the token acts for, or why it cannot."""
    try:
        flows = await approvals.flows()
    except BatonError as exc:
        err.write(f"baton mcp: {where}: {exc}; every tool will answer so until it is fixed\n")
    else:
        names = ", ".join(f.name for f in flows) or "none"
        err.write(f"baton mcp: serving MCP on stdio ({where}); flows this token may start: "
                  f"{names}\n")
    err.flush()


def serve_stdio(settings: Settings, token: str, url: str | None = None,
                err: TextIO | None = None) -> None:
    """Serve until the client closes standard input."""
    err = err or sys.stderr
    service: Any = None
    if url:
        approvals: Approvals = remote(url, token)
        where = f"asking baton serve at {url}"
    else:
        from orchestrator.approvals import ApprovalService
        from orchestrator.bootstrap import open_engine

        service = ApprovalService(open_engine(settings))
        service.start()
        approvals = LocalApprovals(service, token, "mcp-stdio")
        where = "on the local database"
    asker = Asker("stdio", approvals)
    server = build_server(lambda ctx: asker, settings.mcp_wait_s)

    async def main() -> None:
        from mcp.server.stdio import stdio_server

        try:
            await _introduce(approvals, where, err)
            async with stdio_server() as (read, write):
                await server.run(read, write, server.create_initialization_options())
        finally:
            if isinstance(approvals, RemoteApprovals):
                await approvals.close()

    try:
        anyio.run(main)
    finally:
        if service is not None:
            service.stop()
            service.engine.shutdown()
            service.engine.db.dispose()
