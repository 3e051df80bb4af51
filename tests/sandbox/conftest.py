"""Fixtures for the Slack emulator's tests: a served emulator peopled from a small org, a
real slack_sdk WebClient pointed at it, and a way to serve a real slack_bolt App over HTTP."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from urllib.parse import parse_qsl

import pytest
from slack_bolt import App
from slack_bolt.adapter.starlette import SlackRequestHandler
from slack_sdk import WebClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gates.org import Org, OrgFile
from sandbox import Driver, EmulatorServer, LoopbackServer, Workspace, workspace_from_org

# Loopback servers must never be reached through a proxy.
for _var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
    os.environ.pop(_var, None)
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"

ALICE, BOB, CAROL = "U0ALICE01", "U0BOB0001", "U0CAROL01"
PAYMENTS = "C0PAYMENTS1"


def eventually(check: Callable[[], object], timeout: float = 2.0) -> None:
    """Wait for something outside the workspace (which has `wait_for`) to become true."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s")
        time.sleep(0.005)


class Clock:
    """A settable wall clock (epoch seconds) for the workspace: expiry without sleeping."""

    def __init__(self, now: float = 1_767_600_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def org() -> Org:
    return Org(OrgFile.from_data({
        "users": {"alice": {"name": "Alice Ng", "slack_id": ALICE, "email": "alice@example.com"},
                  "bob": {"name": "Bob Ortiz", "slack_id": BOB},
                  "carol": {"name": "Carol Diaz", "slack_id": CAROL},
                  "nobody": {"name": "No Slack"}},
        "roles": {"finance-approver": ["bob", "carol"]},
        "groups": {"finance-team": {"slack_id": "S0FINANCE1", "members": ["bob", "carol"]}},
        "channels": {"payments": {"slack_id": PAYMENTS}, "finance-escalations": {}},
        "admins": ["alice"],
        "default_channel": "payments",
    }))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def workspace(org: Org, clock: Clock) -> Workspace:
    return workspace_from_org(org, clock=clock)


@pytest.fixture(scope="session")
def emulator_server() -> Iterator[EmulatorServer]:
    """One served emulator for the whole run: starting and stopping uvicorn costs more than a test."""
    with EmulatorServer() as server:
        yield server


@pytest.fixture
def slack(emulator_server: EmulatorServer, workspace: Workspace) -> EmulatorServer:
    """The emulator, reset to this test's own workspace, call log and fault plan."""
    emulator_server.reset(workspace)
    return emulator_server


@pytest.fixture
def client(slack: EmulatorServer) -> WebClient:
    """A real WebClient with slack_sdk's default retry handlers (one retry on connection errors)."""
    return WebClient(token=slack.workspace.app.bot_token, base_url=slack.api_url, timeout=5)


class BoltEndpoint:
    """The bot's Request URL, served once; each test plugs in its own bolt App."""

    def __init__(self) -> None:
        self.handler: SlackRequestHandler | None = None
        self.asgi = Starlette(routes=[Route("/slack/events", self.events, methods=["POST"])])

    async def events(self, request: Request) -> Response:
        if self.handler is None:
            return Response("no app", status_code=503)
        return await self.handler.handle(request)


@pytest.fixture(scope="session")
def bolt_endpoint() -> Iterator[tuple[BoltEndpoint, str]]:
    endpoint = BoltEndpoint()
    with LoopbackServer(endpoint.asgi) as server:
        yield endpoint, f"{server.url}/slack/events"


@pytest.fixture
def serve_bolt(bolt_endpoint: tuple[BoltEndpoint, str]) -> Iterator[Callable[[App], str]]:
    """Serve a bolt App over HTTP on loopback; returns its Request URL (…/slack/events)."""
    endpoint, url = bolt_endpoint

    def serve(app: App) -> str:
        endpoint.handler = SlackRequestHandler(app)
        return url

    yield serve
    endpoint.handler = None


class RecordingBot:
    """A bare HTTP endpoint standing in for an app: records what Slack sent, answers as scripted."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.answers: list[Response] = []
        self.asgi = Starlette(routes=[Route("/slack/events", self.events, methods=["POST"])])

    async def events(self, request: Request) -> Response:
        self.received.append((dict(request.headers), await request.body()))
        return self.answers.pop(0) if self.answers else Response(status_code=200)

    def answer_json(self, body: dict) -> None:
        self.answers.append(JSONResponse(body))

    def payload(self, index: int = -1) -> dict:
        """An interaction's decoded `payload` field, or an event's JSON body."""
        headers, body = self.received[index]
        if headers.get("content-type", "").startswith("application/json"):
            return json.loads(body)
        fields = dict(parse_qsl(body.decode()))
        return json.loads(fields["payload"]) if "payload" in fields else fields


@pytest.fixture(scope="session")
def recording_endpoint() -> Iterator[tuple[RecordingBot, str]]:
    bot = RecordingBot()
    with LoopbackServer(bot.asgi) as server:
        yield bot, f"{server.url}/slack/events"


@pytest.fixture
def recording_bot(recording_endpoint: tuple[RecordingBot, str],
                  slack: EmulatorServer) -> Iterator[RecordingBot]:
    bot, _ = recording_endpoint
    bot.received.clear()
    bot.answers.clear()
    yield bot


@pytest.fixture
def raw_driver(recording_endpoint: tuple[RecordingBot, str], slack: EmulatorServer) -> Iterator[Driver]:
    """The driver pointed at the recording bot."""
    with slack.driver(recording_endpoint[1]) as driver:
        yield driver


@pytest.fixture
def bolt_app(slack: EmulatorServer) -> App:
    """A real bolt App whose Web API calls go to the emulator (auth.test included)."""
    ws = slack.workspace
    return App(client=WebClient(token=ws.app.bot_token, base_url=slack.api_url, timeout=5),
               signing_secret=ws.app.signing_secret)


@pytest.fixture
def driver_for(slack: EmulatorServer, serve_bolt: Callable[[App], str]) -> Iterator[Callable[[App], Driver]]:
    drivers: list[Driver] = []

    def build(app: App) -> Driver:
        driver = slack.driver(serve_bolt(app))
        drivers.append(driver)
        return driver

    yield build
    for driver in drivers:
        driver.close()
