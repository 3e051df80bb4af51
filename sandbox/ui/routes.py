"""The sandbox page's HTTP side: the page, its state, live updates, and what people do.

A person's actions become what Slack would send: the page posts `{"as": user, ...}` here
and the emulator's `Driver` builds the signed slash command, `block_actions`,
`view_submission` or event and delivers it to the bot's request URL. The bot cannot tell
the difference, because there is none on the wire.

Only the loopback page may use these routes: a request must name a loopback host (no DNS
rebinding), come from the page's own origin, and send JSON (so another site's form cannot
post here without a CORS preflight nobody answers).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import httpx
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from sandbox.driver import Delivery, Driver
from sandbox.errors import ApiError, SandboxError
from sandbox.records import Channel, User
from sandbox.ui import calllog, pages
from sandbox.ui.calllog import SentLog
from sandbox.workspace import Workspace

if TYPE_CHECKING:
    from sandbox.app import Emulator

STATIC = Path(__file__).parent / "static"
ASSETS = {"sandbox.js": "text/javascript", "sandbox.css": "text/css", "calls.js": "text/javascript"}
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
HTML_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
_TYPED_MENTION = re.compile(r"(?<![\w<@#&])([@#])([A-Za-z0-9][A-Za-z0-9._-]*)")


class Refused(Exception):
    """A request the page should not have sent (HTTP 400), or something Slack would refuse the
    person (HTTP 200, `ok: false`: the page shows why)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


Handler = Callable[[Request], Awaitable[Response]]

# How far the page may move the bot's clock in one step.
SKIPS = {"15m": timedelta(minutes=15), "30m": timedelta(minutes=30), "1h": timedelta(hours=1),
         "4h": timedelta(hours=4), "1d": timedelta(days=1)}


class BotClock(Protocol):
    """The bot's clock, which the page may move forward ("skip ahead") when the bot runs in
    this process (`baton dev`): what falls due meanwhile (escalations, reminders, snoozes
    ending) happens before `skip` returns."""

    def now(self) -> datetime: ...

    @property
    def ahead(self) -> timedelta: ...

    def skip(self, delta: timedelta) -> None: ...


class SandboxPage:
    """The routes of the page, over an emulator (whose workspace a test may swap)."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.sent = SentLog()
        self.clock: BotClock | None = None  # set by `baton dev`
        self._driver: tuple[int, str, Driver] | None = None
        self._lock = threading.Lock()

    def routes(self) -> list[Route]:
        guarded = self._guarded
        return [
            Route("/_calls", guarded(self._calls_page), methods=["GET"]),
            Route("/_calls.json", guarded(self._calls_json), methods=["GET"]),
            Route("/_ui/static/{name}", guarded(self._static), methods=["GET"]),
            Route("/_ui/files/{file_id}", guarded(self._file), methods=["GET"]),
            Route("/_ui/state", guarded(self._state), methods=["GET"]),
            Route("/_ui/events", guarded(self._events), methods=["GET"]),
            Route("/_ui/calls", guarded(self._calls_rows), methods=["GET"]),
            Route("/_ui/command", guarded(self._command), methods=["POST"]),
            Route("/_ui/message", guarded(self._message), methods=["POST"]),
            Route("/_ui/action", guarded(self._action), methods=["POST"]),
            Route("/_ui/submit", guarded(self._submit), methods=["POST"]),
            Route("/_ui/close", guarded(self._close), methods=["POST"]),
            Route("/_ui/home", guarded(self._home), methods=["POST"]),
            Route("/_ui/dismiss", guarded(self._dismiss), methods=["POST"]),
            Route("/_ui/clock", guarded(self._skip), methods=["POST"]),
        ]

    @property
    def workspace(self) -> Workspace:
        return self.emulator.workspace

    # -- guards ---------------------------------------------------------------------------
    def _guarded(self, handler: Handler) -> Handler:
        async def guarded(request: Request) -> Response:
            host = (request.url.hostname or "").lower()
            if host not in LOOPBACK:
                return JSONResponse({"ok": False, "error": "the sandbox answers on loopback only"},
                                    status_code=403)
            if request.method == "POST":
                origin = request.headers.get("origin")
                if origin is not None and urlsplit(origin).netloc != request.url.netloc:
                    return JSONResponse({"ok": False, "error": "cross-origin request refused"},
                                        status_code=403)
                if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
                    return JSONResponse({"ok": False, "error": "send JSON"}, status_code=415)
            try:
                return await handler(request)
            except Refused as refused:
                return JSONResponse({"ok": False, "error": str(refused)}, status_code=refused.status)

        return guarded

    async def index(self, request: Request) -> Response:
        if (request.url.hostname or "").lower() not in LOOPBACK:
            return JSONResponse({"ok": False, "error": "the sandbox answers on loopback only"},
                                status_code=403)
        return _page("index.html")

    # -- pages and state --------------------------------------------------------------------
    async def _calls_page(self, request: Request) -> Response:
        return _page("calls.html")

    async def _static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in ASSETS:
            return Response(status_code=404)
        return FileResponse(STATIC / name, media_type=ASSETS[name],
                            headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})

    async def _file(self, request: Request) -> Response:
        """An uploaded image, for the page to show as Slack does. Only the image types the
        bytes themselves say they are (never SVG, which can carry script)."""
        try:
            file = self.workspace.file(request.path_params["file_id"])
        except ApiError:
            return Response(status_code=404)
        media = pages.image_type(file.content) if file.completed else None
        if media is None:
            return Response(status_code=404)
        return Response(file.content, media_type=media, headers={
            "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'"})

    def _viewer(self, value: str | None) -> User:
        users = [u for u in self.workspace.users() if not u.is_bot]
        if not users:
            raise Refused("the workspace has nobody in it")
        if not value:
            return users[0]
        found = self.workspace.find_user(value)
        if found is None or found.is_bot:
            raise Refused(f"no user {value!r} in the sandbox")
        return found

    async def _state(self, request: Request) -> Response:
        query = request.query_params
        return JSONResponse(await run_in_threadpool(self.state, query.get("as"), query.get("in"),
                                                    query.get("thread")))

    def state(self, viewer_name: str | None, place: str | None, thread: str | None) -> dict[str, Any]:
        """Everything the page shows one person, as HTML fragments."""
        ws = self.workspace
        version = ws.version
        viewer = self._viewer(viewer_name)
        place, channel = pages.resolve_place(ws, viewer.id, place)
        thread_html = None
        if thread and channel is not None:
            thread_html = pages.thread_html(ws, channel, thread, viewer.id)
        if place == pages.HOME:
            main = pages.home_html(ws, viewer.id)
        else:
            main = pages.conversation_html(ws, channel, viewer.id)
        name = f"#{channel.name}" if channel is not None and not channel.is_dm else ws.app.bot_name
        return {
            "version": version,
            "generation": self.emulator.generation,
            "viewer": {"id": viewer.id, "name": viewer.name, "real_name": viewer.real_name or viewer.name},
            "people": pages.people(ws),
            "place": {"id": place, "channel": channel.id if channel else None,
                      "title": pages.place_title(ws, place, channel),
                      "composer": None if place == pages.HOME else f"Message {name}"},
            "sidebar": pages.sidebar_html(ws, viewer.id, place),
            "main": main,
            "thread": thread_html,
            "modal": pages.modal(ws, viewer.id),
            "bot": self.emulator.request_url,
            "clock": self._clock_state(),
        }

    def _clock_state(self) -> dict[str, Any] | None:
        if self.clock is None:
            return None
        ahead = self.clock.ahead
        return {"now": f"{self.clock.now():%a %H:%M} UTC",
                "ahead": pages.ahead_text(ahead) if ahead else None,
                "skips": list(SKIPS)}

    async def _events(self, request: Request) -> Response:
        return StreamingResponse(self._changes(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def _changes(self) -> AsyncIterator[str]:
        """Server-sent events: one each time the workspace or the call log changes."""
        emulator = self.emulator
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()

        def changed(_change: object) -> None:
            # Runs on whichever thread changed the workspace; it must never fail there.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wake.set)

        watched: Workspace | None = None
        unsubscribe: Callable[[], None] | None = None
        last: tuple[int, int, int, int] | None = None
        quiet = 0.0
        try:
            while not emulator.closing.is_set():
                if emulator.workspace is not watched:
                    if unsubscribe is not None:
                        unsubscribe()
                    watched = emulator.workspace
                    unsubscribe = watched.subscribe(changed)
                now = (emulator.generation, watched.version, len(emulator.calls), len(self.sent.items()))
                if now != last:
                    last, quiet = now, 0.0
                    yield "data: " + json.dumps({"generation": now[0], "version": now[1],
                                                 "calls": now[2] + now[3]}) + "\n\n"
                elif quiet >= 15:
                    quiet = 0.0
                    yield ": still here\n\n"
                wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), 0.25)
                quiet += 0.25
        finally:
            if unsubscribe is not None:
                unsubscribe()

    async def _calls_json(self, request: Request) -> Response:
        calls = [{"method": c.method, "at": c.at, "status": c.status, "ok": c.ok, "args": c.args,
                  "response": c.response, "fault": c.fault.describe() if c.fault else None}
                 for c in self.emulator.calls]
        sent = [{"what": s.what, "at": s.at, "status": s.status, "elapsed": s.elapsed, "payload": s.payload,
                 "answer": s.answer} for s in self.sent.items()]
        return Response(json.dumps({"calls": calls, "sent_to_bot": sent}, indent=2, default=str),
                        media_type="application/json")

    async def _calls_rows(self, request: Request) -> Response:
        try:
            since = max(0, int(request.query_params.get("since", "0")))
            sent_since = max(0, int(request.query_params.get("sent", "0")))
        except ValueError:
            raise Refused("since must be a number") from None
        calls = list(self.emulator.calls)
        sent = self.sent.items()
        rows = [(c.at, calllog.call_html(n, c)) for n, c in enumerate(calls[since:], since + 1)]
        rows += [(s.at, calllog.sent_html(n, s)) for n, s in enumerate(sent[sent_since:], sent_since + 1)]
        rows.sort(key=lambda row: row[0])
        return JSONResponse({"calls": len(calls), "sent": len(sent), "html": "".join(h for _, h in rows),
                             "bot": self.emulator.request_url})

    # -- what people do ---------------------------------------------------------------------
    def driver(self) -> Driver:
        url = self.emulator.request_url
        if not url:
            raise Refused("no bot is connected to this sandbox (start it with baton dev)", 409)
        with self._lock:
            ws = self.workspace
            if self._driver is None or self._driver[0] != id(ws) or self._driver[1] != url:
                if self._driver is not None:
                    self._driver[2].close()
                self._driver = (id(ws), url, Driver(ws, url, emulator_url=self.emulator.base_url))
            return self._driver[2]

    def close(self) -> None:
        with self._lock:
            if self._driver is not None:
                self._driver[2].close()
                self._driver = None

    async def _deliver(self, what: str, send: Callable[[Driver], Delivery | None]) -> Response:
        """Do what a person did, in a worker thread; say how the bot answered."""
        driver = self.driver()

        def run() -> Delivery | None:
            return send(driver)

        try:
            delivery = await run_in_threadpool(run)
        except SandboxError as error:
            return JSONResponse({"ok": False, "error": str(error)})
        except ApiError as error:
            return JSONResponse({"ok": False, "error": error.error})
        except httpx.HTTPError as error:
            return JSONResponse({"ok": False,
                                 "error": f"the bot did not answer at {driver.request_url}: {error}"})
        if delivery is None:
            return JSONResponse({"ok": True})
        self.sent.add(what, delivery)
        if not delivery.ok:
            return JSONResponse({"ok": False, "status": delivery.status,
                                 "error": f"the bot answered HTTP {delivery.status}: {delivery.body[:300]}"})
        if not delivery.acked_in_time:
            return JSONResponse({"ok": False, "status": delivery.status,
                                 "error": f"the bot took {delivery.elapsed:.1f}s to answer; Slack gives up "
                                          "after 3 s and shows the person an error"})
        return JSONResponse({"ok": True, "status": delivery.status})

    async def _body(self, request: Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise Refused("the body is not JSON") from None
        if not isinstance(body, dict):
            raise Refused("send a JSON object")
        return body

    def _place(self, viewer: User, value: Any) -> Channel:
        place, channel = pages.resolve_place(self.workspace, viewer.id, str(value or ""))
        if place == pages.DM and channel is None:
            channel = self.workspace.open_dm(viewer.id)
        if channel is None:
            raise Refused("say where: a channel, or the app's Messages tab")
        return channel

    async def _command(self, request: Request) -> Response:
        body = await self._body(request)
        viewer = self._viewer(body.get("as"))
        channel = self._place(viewer, body.get("in"))
        typed = str(body.get("text") or "").strip()
        command, _, text = typed.partition(" ")
        if command != "/baton":
            raise Refused(f"{command} is not a valid command. In Slack, messages that begin with “/” are "
                          "commands; this sandbox has one: /baton", status=200)
        # Slack sends a command's text with &, < and > escaped (should_escape is off: no mentions)
        escaped = text.strip().replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        return await self._deliver(f"{viewer.name}: {typed}", lambda d: d.slash_command(
            escaped, user=viewer.id, channel=channel.id, command=command))

    async def _message(self, request: Request) -> Response:
        body = await self._body(request)
        viewer = self._viewer(body.get("as"))
        channel = self._place(viewer, body.get("in"))
        typed = str(body.get("text") or "").strip()
        if not typed:
            raise Refused("type something first", status=200)
        thread = str(body.get("thread") or "") or None
        ws = self.workspace
        text = typed_to_slack(ws, typed)
        bot = f"<@{ws.app.bot_user_id}>"
        if channel.is_dm:
            return await self._deliver(f"{viewer.name} in a DM: {typed}", lambda d: d.direct_message(
                text, user=viewer.id, thread_ts=thread))
        if bot in text:
            return await self._deliver(f"{viewer.name} mentions the app: {typed}", lambda d: d.mention(
                text, user=viewer.id, channel=channel.id, thread_ts=thread))
        try:
            ws.post_message(channel.id, text=text, author=viewer.id, thread_ts=thread)
        except ApiError as error:
            raise Refused(error.error) from None
        return JSONResponse({"ok": True})

    async def _action(self, request: Request) -> Response:
        body = await self._body(request)
        viewer = self._viewer(body.get("as"))
        action_id = str(body.get("action_id") or "")
        if not action_id:
            raise Refused("which element? (action_id)")
        view_id = _text(body.get("view"))
        channel = _text(body.get("channel"))
        ts = _text(body.get("ts"))
        block_id = _text(body.get("block_id"))
        where = f"{viewer.name} {'clicks' if body.get('kind') == 'button' else 'picks in'} {action_id}"
        if body.get("kind") == "button":
            value = _text(body.get("value"))
            return await self._deliver(where, lambda d: d.click(
                user=viewer.id, action_id=action_id, channel=channel, ts=ts, view_id=view_id,
                block_id=block_id, value=value))
        chosen = body.get("chosen")
        return await self._deliver(where, lambda d: d.choose(
            chosen, user=viewer.id, action_id=action_id, channel=channel, ts=ts, view_id=view_id,
            block_id=block_id))

    async def _submit(self, request: Request) -> Response:
        body = await self._body(request)
        viewer = self._viewer(body.get("as"))
        values = body.get("values") or {}
        if not isinstance(values, dict):
            raise Refused("values must map block ids to what was typed or picked")
        view_id = _text(body.get("view"))
        return await self._deliver(f"{viewer.name} submits a modal", lambda d: d.submit_view(
            user=viewer.id, values=values, view_id=view_id))

    async def _close(self, request: Request) -> Response:
        body = await self._body(request)
        viewer = self._viewer(body.get("as"))
        view_id = _text(body.get("view"))
        return await self._deliver(f"{viewer.name} closes a modal", lambda d: d.close_view(
            user=viewer.id, view_id=view_id))

    async def _home(self, request: Request) -> Response:
        body = await self._body(request)
        viewer = self._viewer(body.get("as"))
        return await self._deliver(f"{viewer.name} opens the App Home", lambda d: d.open_home(user=viewer.id))

    async def _skip(self, request: Request) -> Response:
        body = await self._body(request)
        clock = self.clock
        if clock is None:
            raise Refused("this sandbox's bot keeps real time: skipping ahead needs baton dev", 409)
        wanted = str(body.get("skip") or "")
        if wanted not in SKIPS:
            raise Refused(f"skip ahead by one of: {', '.join(SKIPS)}")
        await run_in_threadpool(clock.skip, SKIPS[wanted])
        return JSONResponse({"ok": True, "clock": self._clock_state()})

    async def _dismiss(self, request: Request) -> Response:
        body = await self._body(request)
        viewer = self._viewer(body.get("as"))
        try:
            self.workspace.delete_ephemeral(viewer.id, str(body.get("ts") or ""))
        except ApiError as error:
            raise Refused(error.error) from None
        return JSONResponse({"ok": True})


def typed_to_slack(ws: Workspace, typed: str) -> str:
    """A message as Slack's client sends what a person typed: `&`, `<`, `>` escaped, and
    `@name` / `#channel` of people and channels it knows turned into mentions."""
    text = typed.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    def mention(match: re.Match[str]) -> str:
        sigil, name = match.group(1), match.group(2)
        if sigil == "@":
            if name in ("here", "channel", "everyone"):
                return f"<!{name}>"
            user = ws.find_user(name)
            if user is None and name.lower() == ws.app.bot_name.lower():
                user = ws.find_user(ws.app.bot_user_id)
            return f"<@{user.id}>" if user else match.group(0)
        channel = ws.find_channel(name)
        return f"<#{channel.id}|{channel.name}>" if channel and not channel.is_dm else match.group(0)

    return _TYPED_MENTION.sub(mention, text)


def _text(value: Any) -> str | None:
    return str(value) if isinstance(value, str | int) and str(value) else None


def _page(name: str) -> Response:
    return HTMLResponse((STATIC / name).read_text(encoding="utf-8"), headers=HTML_HEADERS)
