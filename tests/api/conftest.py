"""The approval API end to end: the real Baton service (engine, timers, event pump, Slack
outbox, bolt app, and the API under /api/v1) served over HTTP on loopback against the Slack
emulator; tokens made with the `baton tokens` command; agents calling through the Python
client as a user installs it; callbacks received by a loopback HTTP server."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox import LoopbackServer
from tests.bot.conftest import PAYMENTS, Baton, emulator, make_baton  # noqa: F401  (fixtures)
from tests.cli.conftest import InProcess
from tests.conftest import EXAMPLE_FLOWS, TEST_FLOWS


@dataclass
class Token:
    name: str
    token: str
    callback_secret: str


@dataclass
class Api:
    baton: Baton
    cli: InProcess

    @property
    def url(self) -> str:
        return self.baton.url

    def token(self, name: str, principal: str, flows: str, *extra: str) -> Token:
        made = self.cli("tokens", "create", name, "--as", principal, "--flows", flows, "--json",
                        *extra)
        assert made.returncode == 0, made.stderr
        data = json.loads(made.stdout)
        return Token(data["name"], data["token"], data["callback_secret"])

    def gate_message(self, ref: str = "R-1", timeout: float = 30.0) -> Any:
        """The run's gate request in its card's thread, once Slack has it. Agents start runs
        from other threads, so this allows for a busy machine more than tests/bot does."""
        def find(ws: Any) -> Any:
            card = next((m for m in ws.messages(PAYMENTS, include_replies=False)
                         if m.text.startswith(ref)), None)
            if card is None:
                return None
            return next((m for m in ws.replies(card.channel, card.ts)[1:]
                         if any("gate `" in json.dumps(b) for b in m.blocks)), None)

        return self.baton.slack.workspace.wait_for(find, timeout=timeout)

    def submit(self, user: str, values: dict[str, Any]) -> Any:
        """Submit the modal `user` has open, once the bot has opened it."""
        self.baton.slack.workspace.wait_for(lambda ws: ws.modal_stack(user), timeout=30)
        return self.baton.driver.submit_view(user=user, values=values)

    def client(self, token: Token | str) -> Any:
        from baton_client import Baton as Client

        return Client(self.url, token.token if isinstance(token, Token) else token)


@pytest.fixture
def make_api(make_baton: Callable[..., Baton], tmp_path: Path, database_url: str,  # noqa: F811
             ) -> Callable[..., Api]:
    def build(flows: Path = EXAMPLE_FLOWS, **extra: object) -> Api:
        baton = make_baton(flows, **extra)
        cli = InProcess(tmp_path, flows, database_url)
        return Api(baton, cli)

    return build


@pytest.fixture
def api(make_api: Callable[..., Api]) -> Api:
    return make_api()


@pytest.fixture
def test_api(make_api: Callable[..., Api]) -> Api:
    """The API over tests/flows."""
    return make_api(TEST_FLOWS)


@dataclass
class Receiver:
    """A service receiving Baton's callbacks on loopback: it records each POST, and answers
    503 while `down` is set."""

    url: str = ""
    posts: list[dict[str, Any]] = field(default_factory=list)
    down: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def received(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.posts)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()

    async def hook(request: Request) -> Response:
        body = await request.body()
        if found.down:
            return JSONResponse({"error": "down"}, status_code=503)
        with found.lock:
            found.posts.append({"headers": dict(request.headers), "body": body,
                                "json": json.loads(body)})
        return JSONResponse({"ok": True})

    async def elsewhere(request: Request) -> Response:
        return Response(status_code=307, headers={"Location": "http://127.0.0.1:1/stolen"})

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"]),
                            Route("/redirect", elsewhere, methods=["POST"])])
    with LoopbackServer(app) as server:
        found.url = server.url
        yield found
