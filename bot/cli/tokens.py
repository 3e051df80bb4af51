"""`baton tokens`: the API tokens external agents act with (docs/api.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from bot.cli.baton import app, engine, fail
from orchestrator.errors import BatonError

tokens_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                         help="API tokens for external agents (docs/api.md).")
app.add_typer(tokens_app, name="tokens")


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
