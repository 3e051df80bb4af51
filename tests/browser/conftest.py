"""Browser tests of the sandbox: Debian's Chromium driven by Playwright, against the real
bot and the sandbox started in-process per test (a fresh database each time), exactly as
`baton dev` wires them. One browser serves the whole session; screenshots go to
`test-artifacts/browser/`.

Chromium is the system one (`/usr/bin/chromium`, or BATON_CHROMIUM); nothing is
downloaded. Without it these tests are skipped, unless BATON_BROWSER_REQUIRED=1 (CI).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from orchestrator.loader import load_org
from sandbox import workspace_from_org
from sandbox.dev import DevSandbox, sandbox_app
from tests.conftest import EXAMPLE_FLOWS, ROOT, WALL_TRIGGER_TTL, make_settings

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

CHROMIUM = os.environ.get("BATON_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags Chromium dials out at start, which a closed
# network refuses (and which a test has no business doing anyway).
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
DOCS_IMAGES = ROOT / "docs" / "images"
ORG = load_org(EXAMPLE_FLOWS / "org.yaml")
ALICE, BOB, CAROL, DAVE, FRANK = "U0ALICE01", "U0BOB0001", "U0CAROL01", "U0DAVE001", "U0FRANK01"

expect.set_options(timeout=10_000)


# Package scope, not session: Playwright's sync API keeps an event loop running on this
# thread while it is open, and any later test on the same xdist worker that calls
# asyncio.run() (the API and adapter tests) would fail. It closes when the worker leaves
# tests/browser/, and opens again if it comes back.
@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        message = f"no Chromium at {CHROMIUM}: apt-get install chromium (or set BATON_CHROMIUM)"
        if os.environ.get("BATON_BROWSER_REQUIRED") == "1":
            pytest.fail(message)
        pytest.skip(message)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        os.environ.pop(name, None)
    with sync_playwright() as playwright:
        # Playwright gives each launch a fresh, temporary user data dir.
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def make_sandbox(tmp_path: Path, ledger: Callable) -> Iterator[Callable[..., DevSandbox]]:
    started: list[DevSandbox] = []

    def build(flows: Path = EXAMPLE_FLOWS) -> DevSandbox:
        workspace = workspace_from_org(ORG, app=sandbox_app(), trigger_ttl=WALL_TRIGGER_TTL)
        settings = make_settings(tmp_path / "baton.db", flows)
        dev = DevSandbox(settings, workspace, poll=0.05, home_every=0.05).start()
        started.append(dev)
        return dev

    yield build
    for dev in started:
        dev.stop()


@dataclass
class Slack:
    """The sandbox page, as a person uses it."""

    page: Page
    dev: DevSandbox
    name: str
    shots: list[Path] = field(default_factory=list)
    # Script errors on the page: a test ends by checking there were none.
    errors: list[str] = field(default_factory=list)

    def open(self, user: str, place: str = "payments") -> Slack:
        self.page.goto(f"{self.dev.url}?as={user}&in={place}")
        expect(self.page.locator("#sidebar .place.active")).to_be_visible()
        return self

    def be(self, user_id: str) -> None:
        """Switch user with the "You are" select."""
        self.page.select_option("#as", user_id)
        expect(self.page.locator("body")).to_have_attribute("data-viewer", re.compile(".+"))
        expect(self.page.locator("#as")).to_have_value(user_id)

    def type(self, text: str, *, thread: bool = False) -> None:
        box = self.page.locator("#thread-compose" if thread else "#compose")
        box.fill(text)
        box.press("Enter")
        expect(box).to_have_value("")

    def go(self, place: str) -> None:
        """Open a channel (by name), the app's Home tab (`home`) or its Messages tab (`dm`)."""
        if place not in ("home", "dm"):
            channel = self.dev.workspace.find_channel(place)
            assert channel is not None, f"no channel {place}"
            place = channel.id
        self.page.locator(f'#sidebar [data-place="{place}"]').click()
        expect(self.page.locator(f'#sidebar [data-place="{place}"]')).to_have_class(re.compile("active"))

    @property
    def messages(self) -> Locator:
        return self.page.locator("#messages")

    @property
    def thread(self) -> Locator:
        return self.page.locator("#thread-body")

    @property
    def modal(self) -> Locator:
        return self.page.locator("#modal-root .modal")

    def message(self, text: str, where: Locator | None = None) -> Locator:
        return (where or self.messages).locator(".msg", has_text=text).last

    def open_thread(self, card_text: str) -> None:
        self.message(card_text).locator("[data-thread]").click()
        expect(self.thread).to_be_visible()

    def shot(self, step: str, *, docs: str | None = None) -> Path:
        """A screenshot in test-artifacts/; with BATON_DOCS_IMAGES=1, also the README's `docs` image."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{self.name}-{len(self.shots) + 1:02d}-{step}.png"
        self.page.screenshot(path=str(path))
        self.shots.append(path)
        if docs and os.environ.get("BATON_DOCS_IMAGES") == "1":
            DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, DOCS_IMAGES / docs)
        return path


@pytest.fixture
def slack(browser: Browser, make_sandbox: Callable[..., DevSandbox],
          request: pytest.FixtureRequest) -> Iterator[Callable[..., Slack]]:
    contexts = []

    def open_page(flows: Path = EXAMPLE_FLOWS) -> Slack:
        dev = make_sandbox(flows)
        context = browser.new_context(viewport={"width": 1360, "height": 820})
        contexts.append(context)
        page = context.new_page()
        shown = Slack(page, dev, request.node.name)
        page.on("pageerror", lambda error: shown.errors.append(str(error)))
        page.on("console", lambda message: shown.errors.append(message.text)
                if message.type == "error" else None)
        return shown

    yield open_page
    for context in contexts:
        context.close()
