"""`baton dev`: the whole product against a local Slack sandbox, no Slack workspace needed.

One process runs, on loopback only: the sandbox (the Slack emulator and its page) on the
port asked for, and the real bot in HTTP mode on a free port, its `SLACK_API_URL` pointed
at the sandbox and its requests signed with a secret made up for this run. People come
from the org file, flows from `BATON_FLOWS`, runs are kept in `DATABASE_URL`. SIGINT or
SIGTERM stops everything, and nothing is left listening.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import secrets
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType, TracebackType
from typing import TextIO

import yaml
from sqlalchemy.engine import make_url

from bot.pace import HOME_EVERY
from bot.service import BatonService
from gates.org import Org
from orchestrator.clock import Clock, ShiftedClock
from orchestrator.errors import FlowError
from orchestrator.logs import configure_logging
from orchestrator.orgfile import load_org
from orchestrator.settings import Settings
from sandbox import EmulatorServer, LoopbackServer, SlackApp, Workspace, workspace_from_org
from sandbox.snapshot import SnapshotFile
from storage.trace import latest_recorded_at

EXIT_USAGE = 2


class _BoltTokenNotice(logging.Filter):
    """bolt says, once per start, that the bot token is unused because an authorizer is set
    (as Baton's app does on purpose); a newcomer's first terminal should not show it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`installation_store` or `authorize` has been used" not in record.getMessage()


class PortInUse(RuntimeError):
    def __init__(self, port: int) -> None:
        super().__init__(f"port {port} is in use: is another `baton dev` running? Use --port")
        self.port = port


class SkipAhead:
    """The sandbox page's "skip ahead" control over the bot's clock: the clock moves, then
    the timers that fell due fire at once (as the next sweep would have fired them), so an
    escalation 30 minutes away is seen now. Slack's side (message times) moves with it."""

    def __init__(self, clock: ShiftedClock, service: BatonService) -> None:
        self.clock = clock
        self.service = service

    def now(self) -> datetime:
        return self.clock.now()

    @property
    def ahead(self) -> timedelta:
        return self.clock.ahead

    def skip(self, delta: timedelta) -> None:
        self.clock.advance(delta)
        self.service.timers.sweep()


def sandbox_app() -> SlackApp:
    """The Slack app as the sandbox knows it, with a bot token and signing secret made up now."""
    return SlackApp(bot_token=f"xoxb-sandbox-{secrets.token_hex(12)}",
                    signing_secret=secrets.token_hex(32))


class DevSandbox:
    """The sandbox and the real Baton service, wired together on loopback.

    The sandbox starts first, so a port that is taken is reported before anything else
    happens (the database is not even opened).
    """

    def __init__(self, settings: Settings, workspace: Workspace, *, port: int = 0, poll: float = 1.0,
                 clock: Clock | None = None, keep: Path | None = None, bot_port: int = 0,
                 home_every: float = HOME_EVERY) -> None:
        self.settings = settings
        self.workspace = workspace
        self.port = port
        # The bot (and the approval API under /api/v1) listens here; when it is taken, on
        # any free port (the banner says which).
        self.bot_port = bot_port
        self.poll = poll
        self.home_every = home_every
        self.clock = clock
        # Where the workspace is kept between runs (None: it lives as long as the process).
        self.keep = SnapshotFile(keep, workspace) if keep is not None else None
        self.restored = 0
        self.slack: EmulatorServer | None = None
        self.service: BatonService | None = None
        self.bot: LoopbackServer | None = None

    @property
    def url(self) -> str:
        """The sandbox page."""
        assert self.slack is not None, "the sandbox is not running"
        return self.slack.page_url

    @property
    def request_url(self) -> str:
        assert self.bot is not None, "the bot is not running"
        return f"{self.bot.url}/slack/events"

    @property
    def mcp_url(self) -> str:
        assert self.bot is not None, "the bot is not running"
        return f"{self.bot.url}/mcp"

    @property
    def api_url(self) -> str:
        assert self.bot is not None, "the bot is not running"
        return f"{self.bot.url}/api/v1"

    @property
    def bot_settings(self) -> Settings:
        assert self.slack is not None, "the sandbox is not running"
        app = self.workspace.app
        return self.settings.model_copy(update={
            "slack_bot_token": app.bot_token, "slack_signing_secret": app.signing_secret,
            "slack_api_url": self.slack.api_url, "slack_app_token": None})

    def start(self) -> DevSandbox:
        slack = EmulatorServer(self.workspace, port=self.port)
        try:
            slack.start()
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise PortInUse(self.port) from None
            raise
        self.slack = slack
        try:
            if self.keep is not None:
                self.restored = self.keep.load()
                self.keep.start()
            clock = self.clock or ShiftedClock()
            self.service = BatonService(self.bot_settings, clock=clock, poll=self.poll,
                                        home_every=self.home_every)
            if isinstance(clock, ShiftedClock):
                _catch_up(clock, self.service)
                self.workspace.clock = lambda: clock.now().timestamp()
                slack.emulator.page.clock = SkipAhead(clock, self.service)
            self.service.start()
            app = self.service.http_app()
            try:
                self.bot = LoopbackServer(app, port=self.bot_port).start()
            except OSError:
                if not self.bot_port:
                    raise
                self.bot = LoopbackServer(app).start()
        except BaseException:
            self.stop()
            raise
        slack.connect(self.request_url)
        return self

    def stop(self) -> None:
        """Stop taking requests, let the bot finish what it is sending, then stop the sandbox."""
        if self.slack is not None:
            self.slack.connect(None)
            self.slack.emulator.closing.set()
        if self.bot is not None:
            self.bot.stop()
            self.bot = None
        if self.service is not None:
            self.service.stop()
            self.service = None
        if self.keep is not None:
            self.keep.stop()
        if self.slack is not None:
            self.slack.stop()
            self.slack = None

    def __enter__(self) -> DevSandbox:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()


def _catch_up(clock: ShiftedClock, service: BatonService) -> None:
    """A sandbox whose clock was moved ahead before a restart starts where it was, or later:
    time in a run's trace never goes back."""
    with service.engine.db.read() as session:
        latest = latest_recorded_at(session)
    if latest is None:
        return
    behind = (latest if latest.tzinfo else latest.replace(tzinfo=UTC)) - clock.now()
    if behind > timedelta(0):
        clock.advance(behind)


def sandbox_org(org: Org, workspace: Workspace, folder: Path) -> Path | None:
    """An org file the bot can map every sandbox user back to: the given one with the Slack
    ids the sandbox made up for people who have none. None when nobody lacks one."""
    missing = [key for key, user in org.data.users.items() if not user.slack_id]
    if not missing:
        return None
    data = org.data.to_data()
    for key in missing:
        found = workspace.find_user(key)
        if found is not None:
            data["users"][key]["slack_id"] = found.id
    path = folder / "org.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def snapshot_path(database_url: str, folder: Path | None = None) -> tuple[Path, bool]:
    """Where `baton dev` keeps the sandbox's messages, and whether what is there belongs to
    this database: beside a SQLite file (and only while that file exists), else in `folder`."""
    try:
        parsed = make_url(database_url)
    except Exception:
        parsed = None
    if parsed is not None and parsed.get_backend_name() == "sqlite" and parsed.database \
            and parsed.database != ":memory:":
        database = Path(parsed.database)
        return database.with_name(f"{database.stem}.sandbox.json"), database.exists()
    return (folder or Path.cwd()) / "baton-sandbox.json", True


def describe_database(url: str) -> str:
    try:
        parsed = make_url(url)
    except Exception:
        return url
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        return f"{shown} ({Path(parsed.database).resolve()})"
    return shown


def _banner(dev: DevSandbox, settings: Settings, org_source: str, out: TextIO) -> None:
    assert dev.service is not None
    flows, errors = dev.service.engine.flows.load_all()
    people = [u.name for u in dev.workspace.users() if not u.is_bot]
    flow_line = ", ".join(sorted(flows)) or f"none found in {settings.flows}/ (set BATON_FLOWS)"
    lines = [
        "Baton sandbox: Baton against a local Slack in your browser (nothing leaves this machine).",
        "",
        f"  Open      {dev.url}",
        "",
        f"  flows     {settings.flows}/: {flow_line}",
        f"  people    {org_source}: {', '.join(people)} (switch with \u201cYou are\u201d)",
        f"  database  {describe_database(settings.database_url)}",
        f"  slack     {dev.keep.path if dev.keep else '(in memory)'}: channels and messages, kept across "
        f"restarts{f' ({dev.restored} messages restored)' if dev.restored else ''}",
        f"  bot       {dev.request_url} (HTTP mode, requests signed with a secret made up for this run)",
        f"  api       {dev.api_url} (for agents: `baton tokens create`, docs/api.md)",
        f"  mcp       {dev.mcp_url} (MCP for coding agents: docs/mcp.md)",
        f"  calls     {dev.url}_calls (every Web API call the bot makes)",
    ]
    if errors:
        invalid = "1 flow file is" if len(errors) == 1 else f"{len(errors)} flow files are"
        lines.append(f"  warning   {invalid} invalid: `baton flows validate` shows why")
    if settings.slack_bot_token or settings.slack_app_token:
        lines.append("  note      your SLACK_* settings are not used: the sandbox is its own Slack")
    lines += ["", "Try it: as alice, type  /baton run vendor-payment vendor=ACME amount=20000",
              "then switch to bob and approve it in the thread. Ctrl-C stops everything.", ""]
    out.write("\n".join(lines) + "\n")
    out.flush()


def run_dev(settings: Settings, *, port: int = 3000, stop: threading.Event | None = None,
            out: TextIO | None = None, api_port: int | None = None) -> int:
    """Serve the sandbox on 127.0.0.1:`port` with the real bot behind it (and the approval
    API, on `api_port`, by default the next port), until SIGINT or SIGTERM (or `stop`, for a
    caller that is not the main thread). Returns the exit code."""
    out = out or sys.stdout
    err = sys.stderr
    configure_logging(settings.log_format, settings.log_level)
    logging.getLogger("slack_bolt.App").addFilter(_BoltTokenNotice())
    try:
        org = load_org(settings.org_path)
    except FlowError as error:
        err.write(f"error: {error}\n")
        return EXIT_USAGE
    app = sandbox_app()
    workspace = workspace_from_org(org, app=app)
    org_source = str(settings.org_path)
    if not org.data.users:
        workspace.add_user("you", real_name="You (no org file)")
        org_source = f"no org file at {settings.org_path}, so only `you`"
    with _stopping(stop) as stopped, tempfile.TemporaryDirectory(prefix="baton-dev-") as scratch:
        derived = sandbox_org(org, workspace, Path(scratch))
        if derived is not None:
            settings = settings.model_copy(update={"org": derived})
        keep, belongs = snapshot_path(settings.database_url)
        if not belongs:
            keep.unlink(missing_ok=True)  # a new database: the old sandbox's messages would mislead
        bot_port = api_port if api_port is not None else (port + 1 if 0 < port < 65535 else 0)
        dev = DevSandbox(settings, workspace, port=port, keep=keep, bot_port=bot_port)
        try:
            dev.start()
        except PortInUse as error:
            err.write(f"error: {error}\n")
            return EXIT_USAGE
        except PermissionError:
            err.write(f"error: not allowed to listen on port {port}: use --port with a number above 1023\n")
            return EXIT_USAGE
        except FlowError as error:
            err.write(f"error: {error}\n")
            return EXIT_USAGE
        try:
            _banner(dev, settings, org_source, out)
            while not stopped.wait(0.5):
                pass
            out.write("Stopping the bot and the sandbox…\n")
            out.flush()
        finally:
            dev.stop()
    out.write("Stopped.\n")
    out.flush()
    return 0


@contextlib.contextmanager
def _stopping(stop: threading.Event | None) -> Iterator[threading.Event]:
    """An event set by SIGINT or SIGTERM (in the main thread), or the caller's `stop`.

    The handlers are in place before anything starts, so a signal during start-up also
    ends in a clean stop rather than a half-started process.
    """
    event = stop or threading.Event()
    if stop is not None or threading.current_thread() is not threading.main_thread():
        yield event
        return

    def on_signal(signum: int, frame: FrameType | None) -> None:
        event.set()
        # A second Ctrl-C while stopping interrupts at once.
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield event
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
