"""Baton as separate `baton serve --http` processes, for tests about processes dying."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Replica:
    def __init__(self, env: dict[str, str], cwd: Path, name: str, port: int | None = None) -> None:
        self.port = port or free_port()  # a port of its own, or the one a restart takes again
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(cwd / f"{name}.log", "w")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from bot.cli import main; main()", "serve", "--http",
             "--host", "127.0.0.1", "--port", str(self.port)],
            env=env, cwd=cwd, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1, trust_env=False).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None:
                raise AssertionError(f"replica exited: {Path(self.log.name).read_text()}")
            time.sleep(0.1)
        raise AssertionError("replica did not start")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


def eventually(check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("not true in time")
        time.sleep(0.1)




def serve_env(database_url: str, flows: Path, org: Path, api_url: str, workspace: Any,
              ledger: Path, **extra: str) -> dict[str, str]:
    """The environment of a `baton serve --http` process talking to the Slack emulator."""
    import os

    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("BATON_", "DATABASE_", "SLACK_"))},
        "DATABASE_URL": database_url, "BATON_FLOWS": str(flows), "BATON_ORG": str(org),
        "BATON_PYTHON_MODULES": "examples,testagents", "BATON_EXAMPLE_LEDGER": str(ledger),
        "BATON_TIMER_SWEEP": "0.5", "BATON_LOG_LEVEL": "warning",
        "SLACK_BOT_TOKEN": workspace.app.bot_token,
        "SLACK_SIGNING_SECRET": workspace.app.signing_secret, "SLACK_API_URL": api_url,
        **extra,
    }
