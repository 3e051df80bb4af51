"""Serving ASGI apps on loopback from a background thread: the emulator, or a bot under test."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn

from sandbox.app import Emulator
from sandbox.calls import Call, CallLog
from sandbox.driver import Driver
from sandbox.faults import FaultPlan
from sandbox.transport import DroppableH11Protocol
from sandbox.workspace import Workspace


class _Server(uvicorn.Server):
    """uvicorn's server, told to stop by an event instead of noticing on its next 0.1 s tick."""

    _wake: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    async def main_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.1)

    def exit(self) -> None:
        self.should_exit = True
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed already
                loop.call_soon_threadsafe(wake.set)


class LoopbackServer:
    """uvicorn serving `app` on 127.0.0.1 in a daemon thread; port 0 picks a free port."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0,
                 log_level: str = "warning") -> None:
        self.app = app
        self.host = host
        self._port = port
        self._log_level = log_level
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def port(self) -> int:
        if self._socket is None:
            raise RuntimeError("the server is not running")
        return int(self._socket.getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 5.0) -> LoopbackServer:
        if self._thread is not None:
            raise RuntimeError("the server is running already")
        # Bind first, so the real port is known before uvicorn starts.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._port))
        sock.set_inheritable(True)
        self._socket = sock
        config = uvicorn.Config(self.app, log_level=self._log_level, http=DroppableH11Protocol, ws="none",
                                lifespan="auto", access_log=False, timeout_graceful_shutdown=1)
        self._server = _Server(config)
        server = self._server
        self._thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                                        name=f"loopback-server-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.002)
        if not server.started:
            self.stop()
            raise RuntimeError(f"the server did not start on {self.host}:{self._port} within {timeout}s")
        return self

    def stop(self, timeout: float = 5.0) -> None:
        if self._server is not None:
            self._server.exit()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive() and self._server is not None:
                self._server.force_exit = True
                self._thread.join(timeout)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = None
        self._socket = None

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()


class EmulatorServer:
    """The Slack emulator, served on loopback.

        with EmulatorServer() as slack:
            client = WebClient(token=slack.workspace.app.bot_token, base_url=slack.api_url)
    """

    def __init__(self, workspace: Workspace | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.emulator = Emulator(workspace)
        self._server = LoopbackServer(self.emulator, host=host, port=port)

    @property
    def workspace(self) -> Workspace:
        return self.emulator.workspace

    @property
    def calls(self) -> CallLog:
        return self.emulator.calls

    @property
    def faults(self) -> FaultPlan:
        return self.emulator.faults

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def api_url(self) -> str:
        """The value for SLACK_API_URL / WebClient(base_url=...)."""
        return f"{self.url}/api/"

    def calls_to(self, method: str, *, ok: bool | None = None) -> list[Call]:
        return self.calls.calls_to(method, ok=ok)

    @property
    def page_url(self) -> str:
        """The sandbox page, for a browser."""
        return f"{self.url}/"

    def connect(self, request_url: str | None) -> None:
        """Let the sandbox page act towards the bot at `request_url` (its `/slack/events`)."""
        self.emulator.connect(request_url)

    def driver(self, request_url: str, *, timeout: float = 10.0) -> Driver:
        """Slack's side of the conversation with the bot served at `request_url`."""
        return Driver(self.workspace, request_url, emulator_url=self.url, timeout=timeout)

    def reset(self, workspace: Workspace | None = None) -> Workspace:
        """A fresh workspace, call log and fault plan on the running server (tests reuse one)."""
        return self.emulator.reset(workspace)

    def start(self) -> EmulatorServer:
        self.emulator.closing.clear()
        self._server.start()
        self.emulator.base_url = self._server.url
        return self

    def stop(self) -> None:
        self.emulator.closing.set()  # open pages' event streams end now, not at a timeout
        self._server.stop()
        self.emulator.page.close()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()
