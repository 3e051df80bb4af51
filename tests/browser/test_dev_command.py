"""`baton dev` as people run it: a real process, real signals, a real browser, a real port."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.conftest import EXAMPLE_FLOWS

BATON = Path(sys.executable).with_name("baton")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def refused(url: str) -> bool:
    host, port = re.match(r"http://([\d.]+):(\d+)", url).groups()  # type: ignore[union-attr]
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return False
    except ConnectionRefusedError:
        return True


@dataclass
class Dev:
    process: subprocess.Popen[str]
    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    out: list[str] = field(default_factory=list)

    def until(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        """The first line of output matching `pattern`, waiting for it if need be."""
        for line in self.out:
            found = re.search(pattern, line)
            if found:
                return found
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                if self.process.poll() is not None and self.lines.empty():
                    break
                continue
            self.out.append(line)
            found = re.search(pattern, line)
            if found:
                return found
        raise AssertionError(f"no {pattern!r} in the output of baton dev:\n{''.join(self.out)}"
                             f"\n{self.process.stderr.read() if self.process.poll() is not None else ''}")

    def rest(self, timeout: float = 15.0) -> tuple[int, str, str]:
        code = self.process.wait(timeout)
        while not self.lines.empty():
            self.out.append(self.lines.get())
        return code, "".join(self.out), self.process.stderr.read()  # type: ignore[union-attr]


@pytest.fixture
def run_baton(tmp_path: Path) -> Iterator:
    started: list[subprocess.Popen[str]] = []

    def start(*args: str) -> Dev:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "BATON_", "DATABASE_"))}
        env.update(DATABASE_URL=f"sqlite:///{tmp_path / 'dev.db'}", BATON_FLOWS=str(EXAMPLE_FLOWS),
                   BATON_LOG_FORMAT="json", PYTHONUNBUFFERED="1")
        command = [str(BATON)] if BATON.exists() else \
            [sys.executable, "-c", "from bot.cli import main; main()"]
        # its own process group, as a terminal runs it: Ctrl-C goes to the whole group
        process = subprocess.Popen([*command, *args], cwd=tmp_path, env=env, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        started.append(process)
        dev = Dev(process)

        def pump() -> None:
            for line in process.stdout:  # type: ignore[union-attr]
                dev.lines.put(line)

        threading.Thread(target=pump, daemon=True).start()
        return dev

    yield start
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def test_baton_dev_serves_the_sandbox_refuses_a_taken_port_and_stops_on_ctrl_c(
        run_baton, browser: Browser, tmp_path: Path) -> None:
    port = free_port()
    started = time.monotonic()
    dev = run_baton("dev", "--port", str(port))
    url = dev.until(r"Open\s+(http://\S+)").group(1)
    assert time.monotonic() - started < 60  # the README promises under a minute
    assert url == f"http://127.0.0.1:{port}/"
    bot = dev.until(r"bot\s+(http://\S+)/slack/events").group(1)
    database = dev.until(r"database\s+(.+)").group(1)
    assert str(tmp_path / "dev.db") in database

    # the example flows run, end to end, in a browser
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{url}?as=alice&in=payments")
    page.locator("#compose").fill("/baton run vendor-payment vendor=ACME amount=20000")
    page.locator("#compose").press("Enter")
    card = page.locator("#messages .msg", has_text="R-1 · Vendor payment")
    expect(card).to_contain_text("Requested by @Alice Ng")
    context.close()

    # a second `baton dev` on the same port says why it cannot start, and changes nothing
    second = run_baton("dev", "--port", str(port))
    code, _, errors = second.rest(30)
    assert code == 2
    assert f"port {port} is in use: is another `baton dev` running? Use --port" in errors

    os.killpg(dev.process.pid, signal.SIGINT)  # Ctrl-C
    code, out, errors = dev.rest(15)
    assert code == 0, errors
    assert "Stopped." in out
    assert refused(url) and refused(bot)  # nothing is left listening


def test_baton_serve_without_slack_settings_says_so_and_runs_the_sandbox_until_sigterm(run_baton) -> None:
    port = free_port()
    dev = run_baton("serve", "--port", str(port))
    url = dev.until(r"Open\s+(http://\S+)").group(1)
    bot = dev.until(r"bot\s+(http://\S+)/slack/events").group(1)
    os.kill(dev.process.pid, signal.SIGTERM)
    code, _, errors = dev.rest(15)
    assert code == 0, errors
    assert "no Slack credentials" in errors and "Starting `baton dev` instead" in errors
    assert refused(url) and refused(bot)
