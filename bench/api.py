"""The approval API: `baton serve --http` on loopback against the Slack emulator, called as an
agent calls it.

- start to gate: the time from `POST /api/v1/runs` to the gate message reaching Slack
  (the emulator's record of the `chat.postMessage` call), one run after another;
- decision to callback: the time from a reviewer's click (the signed Slack request) to the
  signed `gate.decided` callback reaching a receiver on loopback, one decision at a time;
- waiters: long polls held at once (`GET /runs/{id}/wait`, from a child process), and the
  server's thread count and RSS before, while they wait, and after they are answered.

Run with `python bench/run.py --only api` (or `--quick`), or `python -m bench.api`.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bench.common import FLOWS, Row, env, fresh, ms, percentile
from orchestrator.loader import load_org
from sandbox import EmulatorServer, LoopbackServer, workspace_from_org

FLOW = "bench-external"
REVIEWER = "U0BAPP0001"  # approver01, in role:reviewer
CHANNEL = "C0BAPPROVE1"
THREAD_SLACK = 0  # threads the server may add while the waiters wait
RSS_TARGET_MB = 50


class Server:
    """`baton serve --http` in a child process, callbacks allowed to the receiver."""

    def __init__(self, workdir: Path, db: Path, slack: EmulatorServer, callback_host: str) -> None:
        from bench.click_ack import _baton_command, _free_port

        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        app = slack.workspace.app
        self.env = env(db, SLACK_BOT_TOKEN=app.bot_token, SLACK_SIGNING_SECRET=app.signing_secret,
                       SLACK_API_URL=slack.api_url, BATON_CALLBACK_HOSTS=f"http://{callback_host}")
        self.command = _baton_command()
        self.log = (workdir / "baton-serve-api.log").open("w")
        self.process = subprocess.Popen(
            [*self.command, "serve", "--http", "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.env, cwd=workdir, stdout=self.log, stderr=subprocess.STDOUT)
        self.ps = psutil.Process(self.process.pid)

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(trust_env=False, timeout=2) as http:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"baton serve exited; see {self.log.name}")
                try:
                    if http.get(f"{self.url}/healthz").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        raise RuntimeError("baton serve did not answer /healthz")

    def token(self, workdir: Path) -> dict[str, Any]:
        made = subprocess.run([*self.command, "tokens", "create", "bench-agent", "--as",
                               "service:bench-agent", "--flows", FLOW, "--json"],
                              env=self.env, cwd=workdir, capture_output=True, text=True, check=True)
        return dict(json.loads(made.stdout))

    def figures(self) -> dict[str, float]:
        return {"threads": self.ps.num_threads(), "rss_mb": self.ps.memory_info().rss / 2**20}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.log.close()


class Receiver:
    """Records when each callback arrives (wall clock, as the emulator's calls are)."""

    def __init__(self) -> None:
        self.arrived: dict[tuple[str, str], float] = {}
        self.lock = threading.Lock()

        async def hook(request: Request) -> Response:
            body = json.loads(await request.body())
            with self.lock:
                self.arrived.setdefault((body["run"]["id"], body["type"]), time.time())
            return JSONResponse({"ok": True})

        self.server = LoopbackServer(Starlette(routes=[Route("/hook", hook, methods=["POST"])]))


def _wait(check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise RuntimeError("benchmark: not reached in time")
        time.sleep(0.002)


def _gate_call(slack: EmulatorServer, ref: str) -> Any:
    marker = f"*Run* {ref} · gate"
    for call in reversed(slack.calls.calls_to("chat.postMessage", ok=True)):
        if marker in json.dumps(call.args.get("blocks", []), ensure_ascii=False):
            return call
    return None


def _gate_ts(slack: EmulatorServer, ref: str) -> str:
    call = _wait(lambda: _gate_call(slack, ref))
    return str(call.response["ts"])


WAITERS_SCRIPT = """
import asyncio, json, sys, httpx
url, token, runs, each = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4])

async def main():
    limits = httpx.Limits(max_connections=len(runs) * each + 10)
    async with httpx.AsyncClient(limits=limits, timeout=120,
                                 headers={"Authorization": f"Bearer {token}"}) as http:
        async def one(ref):
            answer = await http.get(f"{url}/api/v1/runs/{ref}/wait", params={"timeout": 60})
            return answer.json()["decision"]["state"]
        tasks = [one(ref) for ref in runs for _ in range(each)]
        print("started", flush=True)
        states = await asyncio.gather(*tasks)
    print(json.dumps(states), flush=True)

asyncio.run(main())
"""


def run(workdir: Path, samples: int, waiters: int, log: Callable[[str], None] = print) -> dict[str, Any]:
    org = load_org(FLOWS / "org.yaml")
    receiver = Receiver()
    receiver.server.start()
    slack = EmulatorServer(workspace_from_org(org)).start()
    server = Server(workdir, fresh(workdir / "api.db"), slack,
                    receiver.server.url.removeprefix("http://"))
    driver = None
    try:
        server.wait_ready()
        token = server.token(workdir)
        driver = slack.driver(f"{server.url}/slack/events")
        http = httpx.Client(trust_env=False, timeout=30,
                            headers={"Authorization": f"Bearer {token['token']}"})
        callback = f"{receiver.server.url}/hook"

        def start(n: int) -> str:
            answer = http.post(f"{server.url}/api/v1/runs", json={
                "flow": FLOW, "inputs": {"vendor": f"Vendor {n}", "amount": 100 + n},
                "tool": "pay_vendor", "callback_url": callback})
            answer.raise_for_status()
            return str(answer.json()["id"])

        for n in range(3):  # warm up: imports, caches, connections
            ref = start(-n)
            driver.click(user=REVIEWER, action_id="gate.decide.approve", channel=CHANNEL,
                         ts=_gate_ts(slack, ref))
        log(f"  start to gate: {samples} runs, one after another")
        to_gate: list[float] = []
        refs: list[str] = []
        for n in range(samples):
            began = time.time()
            ref = start(n)
            call = _wait(lambda ref=ref: _gate_call(slack, ref))
            to_gate.append(call.at - began)
            refs.append(ref)

        log(f"  decision to callback: {samples} decisions, one after another")
        to_callback: list[float] = []
        for ref in refs:
            ts = _gate_ts(slack, ref)
            began = time.time()
            driver.click(user=REVIEWER, action_id="gate.decide.approve", channel=CHANNEL, ts=ts)
            arrived = _wait(lambda ref=ref: receiver.arrived.get((ref, "gate.decided")))
            to_callback.append(arrived - began)

        runs = max(1, waiters // 10)
        log(f"  waiters: {waiters} long polls on {runs} runs")
        waiting = [start(10_000 + n) for n in range(runs)]
        for ref in waiting:
            _gate_ts(slack, ref)
        # Warm the server's fixed pools up (the API's, the callback senders'), so that what
        # follows counts only what waiting adds.
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda ref: http.get(f"{server.url}/api/v1/runs/{ref}"), waiting * 4))
        time.sleep(1.0)  # the server settles: events delivered, messages sent
        before = server.figures()
        child = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(WAITERS_SCRIPT), server.url, token["token"],
             json.dumps(waiting), str(waiters // runs)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(workdir / "x"))
        assert child.stdout is not None
        child.stdout.readline()  # "started"
        peak = dict(before)
        established = 0
        for _ in range(40):  # while the polls are open: the highest thread count and RSS seen
            time.sleep(0.25)
            now = server.figures()
            peak = {k: max(peak[k], now[k]) for k in now}
            established = sum(1 for c in server.ps.net_connections("tcp")
                              if c.status == psutil.CONN_ESTABLISHED
                              and c.laddr and c.laddr.port == server.port)
            if established >= waiters:
                break
        during = server.figures()
        peak = {k: max(peak[k], during[k]) for k in during}
        for ref in waiting:
            driver.click(user=REVIEWER, action_id="gate.decide.approve", channel=CHANNEL,
                         ts=_gate_ts(slack, ref))
        out, err = child.communicate(timeout=120)
        if child.returncode != 0:
            raise RuntimeError(f"waiters failed: {err}")
        states = json.loads(out.strip().splitlines()[-1])
        after = server.figures()
        http.close()
    finally:
        if driver is not None:
            driver.close()
        server.stop()
        slack.stop()
        receiver.server.stop()
    return {"start_to_gate_ms": [t * 1000 for t in to_gate],
            "decision_to_callback_ms": [t * 1000 for t in to_callback],
            "waiters": waiters, "connections_open": established, "answered": len(states),
            "approved": states.count("approved"), "before": before, "peak": peak, "after": after}


def rows(found: dict[str, Any]) -> list[Row]:
    gate, callback = found["start_to_gate_ms"], found["decision_to_callback_ms"]
    before, peak = found["before"], found["peak"]
    grew = peak["rss_mb"] - before["rss_mb"]
    extra_threads = peak["threads"] - before["threads"]
    return [
        Row("api", "POST /runs to gate message in Slack, p50 / p99",
            f"{ms(percentile(gate, 50))} / {ms(percentile(gate, 99))} (n={len(gate)})"),
        Row("api", "decision to signed callback received, p50 / p99",
            f"{ms(percentile(callback, 50))} / {ms(percentile(callback, 99))} (n={len(callback)})"),
        Row("api", f"{found['waiters']:,} waiters: server threads before / while waiting",
            f"{before['threads']} / {peak['threads']} ({found['connections_open']:,} polls open)",
            "no more", extra_threads <= THREAD_SLACK),
        Row("api", f"{found['waiters']:,} waiters: server RSS growth", f"{grew:.1f} MB",
            f"< {RSS_TARGET_MB} MB", grew < RSS_TARGET_MB),
        Row("api", f"{found['waiters']:,} waiters answered approved",
            f"{found['approved']:,} of {found['answered']:,}", f"{found['waiters']:,}",
            found["approved"] == found["waiters"]),
    ]


def main() -> int:
    import tempfile

    from bench.common import quiet_logs, table

    quiet_logs()
    workdir = Path(tempfile.mkdtemp(prefix="baton-bench-api-"))
    found = run(workdir, samples=int(sys.argv[1]) if len(sys.argv) > 1 else 200,
                waiters=int(sys.argv[2]) if len(sys.argv) > 2 else 1000)
    print(table(rows(found)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
