"""Click to ack: `baton serve --http` on loopback against the Slack emulator, 50 people
clicking gate buttons, after a cold burst of 100 clicks sent at the same moment.

Three processes share the 2 cores: the server (the real `baton serve --http`, with its
engine, timers, event pump, outbox and bolt app under uvicorn), this one (the Slack Web
API emulator the server posts to and updates, plus the preparation), and the clickers
(bench/clickers.py). The gates are prepared first and every Slack message they imply is
delivered before the clicking starts; then the time to each HTTP 200 is measured.

The server's database is a SQLite file, or, given a PostgreSQL server's URL, a database
of its own created on that server for the run and dropped after it.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import psutil
import sqlalchemy as sa

from bench import clickers
from bench.common import FLOWS, REQUESTER, Row, env, fresh, in_child, percentile, quiet_logs, settings
from orchestrator.bootstrap import open_engine
from orchestrator.loader import load_org
from sandbox import Driver, EmulatorServer, workspace_from_org

TEAMS = 10
PER_TEAM = 5
CLICKERS = TEAMS * PER_TEAM
THINK = (1.0, 3.0)  # seconds between a clicker's answer and their next click (uniform)
BURST = 2  # the cold burst takes this many gates of each clicker: 100 clicks at the same moment


def click_flows(workdir: Path) -> Path:
    """bench-click once per team (bench-click-01 decided by role:team01, ...)."""
    target = workdir / "click-flows"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    template = (FLOWS / "bench-click.yaml").read_text()
    for team in range(1, TEAMS + 1):
        text = template.replace("name: bench-click", f"name: bench-click-{team:02d}")
        text = text.replace("role:team01", f"role:team{team:02d}")
        (target / f"bench-click-{team:02d}.yaml").write_text(text)
    for name in ("org.yaml", "bench_actions.py"):
        shutil.copy(FLOWS / name, target / name)
    return target


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _baton_command() -> list[str]:
    script = Path(sys.executable).with_name("baton")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from bot.cli import main; sys.argv[0] = 'baton'; main()"]


class Server:
    """`baton serve --http` in a child process."""

    def __init__(self, workdir: Path, db: Store, flows: Path, slack: EmulatorServer) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        app = slack.workspace.app
        variables = env(db.url, BATON_FLOWS=str(flows), BATON_ORG=str(flows / "org.yaml"),
                        SLACK_BOT_TOKEN=app.bot_token, SLACK_SIGNING_SECRET=app.signing_secret,
                        SLACK_API_URL=slack.api_url, BATON_LOG_LEVEL="info")  # serve's default level
        self.log = (workdir / "baton-serve.log").open("w")
        self.process = subprocess.Popen(
            [*_baton_command(), "serve", "--http", "--host", "127.0.0.1", "--port", str(self.port)],
            env=variables, cwd=workdir, stdout=self.log, stderr=subprocess.STDOUT)
        self.ps = psutil.Process(self.process.pid)

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(trust_env=False, timeout=2) as http:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"baton serve exited with {self.process.returncode}; "
                                       f"see {self.log.name}")
                try:
                    if http.get(f"{self.url}/healthz").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        raise RuntimeError("baton serve did not answer /healthz")

    def figures(self) -> dict[str, float]:
        cpu = self.ps.cpu_times()
        return {"rss_mb": self.ps.memory_info().rss / 2**20, "threads": self.ps.num_threads(),
                "cpu_s": cpu.user + cpu.system}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.log.close()


class Store:
    """The server's database as this process reads it: a SQLite file in the work folder, or
    a database created for this run on the PostgreSQL server `server_url` names (dropped
    by `drop`)."""

    def __init__(self, workdir: Path, server_url: str | None = None) -> None:
        self.path: Path | None = None
        self.server_url = server_url
        if server_url is None:
            self.path = fresh(workdir / "baton-click.db")
            self.url = f"sqlite:///{self.path}"
        else:
            self.name = f"baton_bench_click_{uuid.uuid4().hex[:8]}"
            with self._admin() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{self.name}"')
            self.url = sa.make_url(server_url).set(database=self.name).render_as_string(hide_password=False)
        self.engine = sa.create_engine(self.url, poolclass=sa.pool.NullPool)

    def _admin(self) -> sa.Connection:
        assert self.server_url is not None
        return sa.create_engine(self.server_url, isolation_level="AUTOCOMMIT",
                                poolclass=sa.pool.NullPool).connect()

    @property
    def on_postgres(self) -> bool:
        return self.path is None

    def describe(self) -> str:
        """What the server wrote to, and with what durability."""
        with self.engine.connect() as conn:
            if not self.on_postgres:
                return f"SQLite file, journal_mode={conn.exec_driver_sql('PRAGMA journal_mode').scalar()}"
            version = conn.exec_driver_sql("SHOW server_version").scalar()
            durability = ", ".join(f"{name}={conn.exec_driver_sql(f'SHOW {name}').scalar()}"
                                   for name in ("fsync", "synchronous_commit"))
        where = sa.make_url(self.url)
        return f"PostgreSQL {version} at {where.host}:{where.port or 5432} ({durability})"

    def all(self, sql: str, **params: Any) -> list[sa.Row[Any]]:
        statement = sa.text(sql)
        for name, value in params.items():
            if isinstance(value, list):
                statement = statement.bindparams(sa.bindparam(name, expanding=True))
        with self.engine.connect() as conn:
            return list(conn.execute(statement, params))

    def one(self, sql: str, **params: Any) -> Any:
        return self.all(sql, **params)[0]

    def drop(self) -> None:
        self.engine.dispose()
        if self.on_postgres:
            with self._admin() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def _backlog(db: Store) -> tuple[int, int]:
    """Events not yet turned into Slack calls, and Slack calls not yet made."""
    events, calls = db.one("SELECT (SELECT count(*) FROM event WHERE delivered_at IS NULL), "
                           "(SELECT count(*) FROM slack_outbox WHERE status IN "
                           "('pending', 'sending', 'unsure'))")
    return events, calls


def wait_delivered(db: Store, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if _backlog(db) == (0, 0):
            return time.monotonic() - started
        time.sleep(0.25)
    raise RuntimeError(f"Slack deliveries did not catch up within {timeout:.0f}s: "
                       f"{_backlog(db)} (events, calls) left")


def prepare(db: Store, flows: Path, per_team: int) -> list[tuple[int, int, int]]:
    """Start runs that wait at their gate, `per_team` for each team: (team, run id, gate id)."""
    engine = open_engine(settings(db.url, BATON_FLOWS=flows, BATON_ORG=flows / "org.yaml"))
    made: list[tuple[int, int]] = []
    try:
        for i in range(per_team):
            for team in range(1, TEAMS + 1):
                run = engine.start_run(f"bench-click-{team:02d}",
                                       {"vendor": f"Vendor {i}", "amount": 1000 + i}, REQUESTER)
                assert run.id is not None
                made.append((team, run.id))
    finally:
        engine.shutdown()
        engine.db.dispose()
    gates = dict(db.all("SELECT run_id, id FROM gate WHERE status = 'open'"))
    return [(team, run_id, gates[run_id]) for team, run_id in made]


class _Capture(Driver):
    """The sandbox's driver, building the exact signed-request body Slack would send, but
    not sending it: the clickers do, from their own process."""

    def _interaction(self, payload: Any, signing: Any) -> Any:  # type: ignore[override]
        return payload


def bodies(slack: EmulatorServer, db: Store, gates: list[tuple[int, int, int]]) -> list[list[bytes]]:
    """One list of `block_actions` bodies per clicker; each gate is clicked by one person,
    of the team that may decide it, on the gate message in the run's thread."""
    org = load_org(FLOWS / "org.yaml")
    driver = _Capture(slack.workspace, "http://unused", emulator_url=slack.url)
    where = {key: (channel, ts) for key, channel, ts in db.all("SELECT key, channel, ts FROM slack_ref")}
    mine: list[list[bytes]] = [[] for _ in range(CLICKERS)]
    seen: dict[int, int] = {}
    for team, run_id, gate_id in gates:
        k = seen.get(team, 0)
        seen[team] = k + 1
        clicker = (team - 1) * PER_TEAM + k % PER_TEAM
        user = org.slack_id(f"approver{clicker + 1:02d}")
        assert user is not None
        channel, ts = where[f"R-{run_id}:gate:{gate_id}"]
        payload = driver.click(user=user, action_id="gate.decide.approve", channel=channel, ts=ts)
        mine[clicker].append(urlencode({"payload": json.dumps(payload)}).encode())
    return mine


def _decided(db: Store, gate_ids: list[int]) -> tuple[int, datetime | None]:
    count, last = db.one("SELECT count(*), max(decided_at) FROM gate WHERE status = 'decided' "
                         "AND id IN :ids", ids=sorted(set(gate_ids)) or [0])
    if isinstance(last, str):  # SQLite hands back the stored text
        last = datetime.fromisoformat(last)
    return count, last


def _window(db: Store, server: Server, url: str, secret: str, mine: list[list[bytes]],
            duration: float, gates_of: dict[bytes, int],
            think: tuple[float, float] = (0.0, 0.0)) -> dict[str, Any]:
    """Click for `duration` seconds; then wait until every acknowledged click is a recorded
    decision and Slack has been told."""
    before = server.figures()
    result = in_child(clickers.click, url, secret, mine, duration, think)
    after = server.figures()
    clicks = [c for per in result["clicks"] for c in per]
    ok = [c for c in clicks if c[2] == 200]
    sent = [gates_of[body] for bodies_, done in zip(mine, result["clicks"], strict=True)
            for body in bodies_[:len(done)]]
    waited = time.perf_counter()
    decided, last = _decided(db, sent)
    while decided < len(ok) and time.perf_counter() - waited < 120:
        time.sleep(0.1)
        decided, last = _decided(db, sent)
    decide_lag = time.perf_counter() - waited
    slack_lag = wait_delivered(db, timeout=900)
    settled = server.figures()
    start = datetime.fromtimestamp(result["wall_started"], UTC).replace(tzinfo=None)
    last_at = last.replace(tzinfo=None) if last else start
    statuses: dict[str, int] = {}
    for c in clicks:
        statuses[str(c[2])] = statuses.get(str(c[2]), 0) + 1
    return {"clicks": len(clicks), "ok": len(ok), "statuses": statuses, "sent": len(sent),
            "latencies_ms": [c[1] * 1000 for c in ok], "decided": decided,
            "decisions_s": max(1e-9, (last_at - start).total_seconds()),
            "ran_out": sum(1 for per, bodies_ in zip(result["clicks"], mine, strict=True)
                           if len(per) == len(bodies_) and bodies_),
            "decide_lag_s": decide_lag, "slack_lag_s": slack_lag, "duration": duration, "think": think,
            "server_before": before, "server_after": after, "server_settled": settled}


def run(workdir: Path, duration: float, per_team: int, log: Callable[[str], None] = print,
        think: tuple[float, float] = THINK, cold: bool = True,
        postgres: str | None = None) -> dict[str, Any]:
    """`cold`: first, on the freshly started server, each clicker clicks `BURST` gates at
    the same moment (`--quick` leaves this out). `postgres`: the URL of a PostgreSQL server
    to run against instead of a SQLite file."""
    quiet_logs()
    db = Store(workdir, postgres)
    try:
        return _run(db, workdir, duration, per_team, log, think, cold)
    finally:
        db.drop()


def _run(db: Store, workdir: Path, duration: float, per_team: int, log: Callable[[str], None],
         think: tuple[float, float], cold: bool) -> dict[str, Any]:
    flows = click_flows(workdir)
    org = load_org(flows / "org.yaml")
    log(f"  preparing {per_team * TEAMS:,} waiting gates ({TEAMS} teams of {PER_TEAM}) and their "
        "Slack messages")
    t0 = time.perf_counter()
    gates = prepare(db, flows, per_team)  # before the server starts: it delivers the backlog
    started_s = time.perf_counter() - t0
    log(f"  the server's database: {db.describe()}")
    slack = EmulatorServer(workspace_from_org(org)).start()
    server = Server(workdir, db, flows, slack)
    url, secret = f"{server.url}/slack/events", slack.workspace.app.signing_secret
    try:
        server.wait_ready()
        delivered_s = wait_delivered(db, timeout=max(900.0, 1.0 * len(gates)))
        mine = bodies(slack, db, gates)
        gates_of = {body: gate for body, gate in zip(
            [b for per in mine for b in per], _gate_ids(mine), strict=True)}
        refused_before = _refusals(db)
        burst = None
        if cold:  # each click of the burst from a connection of its own
            at_once = [[body] for per in mine for body in per[:BURST]]
            log(f"  cold server: {len(at_once)} clicks at once")
            burst = _window(db, server, url, secret, at_once, 60.0, gates_of)
            mine = [per[BURST:] for per in mine]
        log(f"  {CLICKERS} clickers for {duration:g}s, each clicking again after {think[0]:g}-{think[1]:g}s")
        calls_before = _slack_calls(slack)
        steady = _window(db, server, url, secret, mine, duration, gates_of, think)
        steady["slack_calls"] = {k: v - calls_before[k] for k, v in _slack_calls(slack).items()}
        refusals = _refusals(db) - refused_before
    finally:
        server.stop()
        slack.stop()
    return {"clickers": CLICKERS, "gates": len(gates), "start_runs_s": started_s,
            "deliver_s": delivered_s, "refusals": refusals, "cold": burst, "steady": steady,
            "database": db.describe(),
            "footprint": footprint(db.path) if db.path is not None else None}


def footprint(db: Path) -> dict[str, float]:
    """Bytes in use per run in the server's SQLite database, Slack's rows included, now and
    once the window of BATON_KEEP_DELIVERED_DAYS has passed (its sweep run on a copy, with
    the clock moved past the window)."""
    from datetime import timedelta

    from bot.retention import Retention
    from orchestrator.clock import FakeClock
    from storage.engine import Database

    def per_run(path: Path) -> float:
        with sqlite3.connect(path, timeout=30) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            runs = conn.execute("SELECT count(*) FROM run").fetchone()[0]
            used = conn.execute("SELECT sum(pgsize - unused) FROM dbstat").fetchone()[0]
        return used / max(1, runs)

    now = per_run(db)
    later = db.with_name("baton-click-week-later.db")
    shutil.copyfile(db, later)
    window = timedelta(days=settings(later).keep_delivered_days)
    copy = Database(f"sqlite:///{later}")
    try:
        Retention(copy, FakeClock(datetime.now(UTC) + window + timedelta(hours=1)), window,
                  batches_per_sweep=10**9).sweep()
    finally:
        copy.dispose()
    return {"now": now, "later": per_run(later), "window_days": window / timedelta(days=1)}


def _gate_ids(mine: list[list[bytes]]) -> list[int]:
    from urllib.parse import parse_qsl

    ids = []
    for per in mine:
        for body in per:
            payload = json.loads(dict(parse_qsl(body.decode()))["payload"])
            ids.append(int(json.loads(payload["actions"][0]["value"])["g"]))
    return ids


def _refusals(db: Store) -> int:
    return int(db.one("SELECT count(*) FROM trace_entry WHERE kind IN ('decision_refused', 'refused')")[0])


def _errors(window: dict[str, Any]) -> int:
    return (window["clicks"] - window["ok"]) + max(0, window["ok"] - window["decided"])


def _slack_calls(slack: EmulatorServer) -> dict[str, int]:
    """The Web API calls the server made so far: all of them, and its App Home publishes."""
    return {"all": len(slack.calls), "homes": len(slack.calls_to("views.publish"))}


def rows(result: dict[str, Any]) -> list[Row]:
    section = "click to ack"
    steady, cold = result["steady"], result["cold"]
    lat = steady["latencies_ms"] or [float("nan")]
    p99 = percentile(lat, 99)
    errors = _errors(steady) + result["refusals"]
    before, after = steady["server_before"], steady["server_after"]
    cpu = (after["cpu_s"] - before["cpu_s"]) / steady["duration"]
    per_decision = (steady["server_settled"]["cpu_s"] - before["cpu_s"]) / max(1, steady["decided"])
    out = [
        Row(section, "the server's database", result["database"]),
        Row(section, f"clicks by {result['clickers']} clickers in {steady['duration']:g}s, each clicking "
            f"again {steady['think'][0]:g}-{steady['think'][1]:g}s after an answer "
            f"({result['gates']:,} gates waiting at the start)", f"{steady['clicks']:,}"),
        Row(section, "time to HTTP 200: p50 / p95",
            f"{percentile(lat, 50):.1f} / {percentile(lat, 95):.1f} ms"),
        Row(section, "time to HTTP 200: p99", f"{p99:.1f} ms", "< 100 ms", p99 < 100),
        Row(section, "decisions per second (acked, then recorded)",
            f"{steady['decided'] / steady['decisions_s']:.1f}"),
        Row(section, "errors (non-200, refused, or acked but never decided)", str(errors), "0",
            errors == 0),
        Row(section, "HTTP statuses", ", ".join(f"{k}: {v}" for k, v in sorted(steady["statuses"].items()))),
        Row(section, "after the last click: decisions recorded / Slack caught up",
            f"{steady['decide_lag_s']:.1f} s / {steady['slack_lag_s']:.1f} s"),
        Row(section, "server during the clicks: CPU / RSS / threads",
            f"{cpu:.0%} of a core / {before['rss_mb']:.0f} -> {after['rss_mb']:.0f} MB / "
            f"{before['threads']} -> {after['threads']}"),
        Row(section, "server CPU per decision, its Slack calls included (until caught up)",
            f"{1000 * per_decision:.1f} ms"),
    ]
    calls, decided = steady.get("slack_calls"), max(1, steady["decided"])
    if calls is not None:
        out.append(Row(section, "Slack Web API calls per decision: all / App Home publishes",
                       f"{calls['all'] / decided:.1f} / {calls['homes'] / decided:.1f}"))
    if cold is not None:
        cold_lat = cold["latencies_ms"] or [float("nan")]
        slowest = max(cold_lat)
        out.append(Row(
            section, f"cold server, {cold['clicks']} clicks at once: p50 / slowest, errors",
            f"{percentile(cold_lat, 50):.0f} / {slowest:.0f} ms, {_errors(cold)} "
            f"({', '.join(f'{k}: {v}' for k, v in sorted(cold['statuses'].items()))}); all decided "
            f"after {cold['decide_lag_s']:.1f} s", "< 3,000 ms (Slack's limit), 0 errors",
            _errors(cold) == 0 and slowest < 3000))
    out.append(Row(section, "preparing the gates: runs started / Slack messages delivered",
                   f"{result['start_runs_s']:.0f} s / {result['deliver_s']:.0f} s"))
    if result["footprint"] is not None:  # SQLite's dbstat; a PostgreSQL run leaves it out
        out.append(Row(section, "database bytes per run, Slack's rows included: now / once "
                       f"BATON_KEEP_DELIVERED_DAYS ({result['footprint']['window_days']:g}) have passed",
                       f"{result['footprint']['now']:,.0f} / {result['footprint']['later']:,.0f}"))
    if steady["ran_out"]:
        out.append(Row(section, "clickers that ran out of gates before the end",
                       str(steady["ran_out"]), "0", False))
    return out
