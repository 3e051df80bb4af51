"""The emulator as an ASGI app: Slack's Web API, its file upload URLs and its response URLs.

Every request is recorded in `calls`, and the fault plan is consulted before anything
happens, so a faulted request never changes the workspace.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.parser
import email.policy
import json
import threading
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from sandbox import responses, webapi
from sandbox.calls import Call, CallLog
from sandbox.errors import ApiError
from sandbox.faults import Fault, FaultPlan
from sandbox.transport import drop_connection
from sandbox.ui.calllog import SentLog
from sandbox.ui.routes import SandboxPage
from sandbox.workspace import Workspace

# Arguments that carry JSON in a form body; the call log keeps them decoded for tests.
_JSON_ARGS = ("blocks", "attachments", "metadata", "view", "files")


class Emulator:
    """The fake Slack: a workspace, the log of calls made to it, and a plan of faults; and
    the sandbox page, where people act on the workspace as they would in Slack."""

    def __init__(self, workspace: Workspace | None = None) -> None:
        self.workspace = workspace or Workspace()
        self.calls = CallLog()
        self.faults = FaultPlan()
        # Where the emulator is reachable; set by the server once it has bound its port.
        self.base_url = ""
        # The bot's request URL (`.../slack/events`): where the page sends what people do.
        self.request_url: str | None = None
        # Bumped by `reset`, so an open page knows the whole workspace was replaced.
        self.generation = 1
        # Set when the server stops, so long-lived streams to open pages end at once.
        self.closing = threading.Event()
        self.page = SandboxPage(self)
        self.asgi = Starlette(routes=[
            Route("/", self._index, methods=["GET"]),
            Route("/api/{method}", self._api, methods=["GET", "POST"]),
            Route("/upload/v1/{file_id}", self._upload, methods=["POST"]),
            Route("/response/{token:path}", self._response_url, methods=["POST"]),
            *self.page.routes(),
        ])

    def reset(self, workspace: Workspace | None = None) -> Workspace:
        """Start afresh, on the same address: a new workspace, an empty call log, no faults."""
        self.workspace = workspace or Workspace()
        self.calls = CallLog()
        self.faults.clear()
        self.page.sent = SentLog()
        self.generation += 1
        return self.workspace

    def connect(self, request_url: str | None) -> None:
        """Send what people do on the page to the bot at `request_url` (None: to nobody)."""
        self.request_url = request_url

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.asgi(scope, receive, send)

    def _base(self, request: Request) -> str:
        return self.base_url or str(request.base_url).rstrip("/")

    # -- endpoints --------------------------------------------------------------------
    async def _index(self, request: Request) -> Response:
        if "text/html" in request.headers.get("accept", ""):
            return await self.page.index(request)  # a browser: the sandbox page
        ws = self.workspace
        return JSONResponse({"ok": True, "emulator": "baton slack sandbox", "team_id": ws.team.id,
                             "api_url": f"{self._base(request)}/api/", "version": ws.version})

    async def _api(self, request: Request) -> Response:
        method = request.path_params["method"]
        raw = await request.body()
        values, warning, parse_error = _parse_args(request, raw)
        token = _bearer(request.headers.get("authorization")) or _str(values.get("token"))
        values.pop("token", None)
        faulted = await self._fault(request, method, values, token)
        if faulted is not None:
            return faulted
        if parse_error:
            body: dict[str, Any] = {"ok": False, "error": parse_error}
        else:
            body = webapi.call(self.workspace, method, values, token=token, base_url=self._base(request))
        if warning and body.get("ok"):
            body["warning"] = warning
            metadata = body.setdefault("response_metadata", {})
            metadata["warnings"] = [*metadata.get("warnings", []), warning]
        self._record(method, values, 200, body, token=token)
        return JSONResponse(body)

    async def _upload(self, request: Request) -> Response:
        file_id = request.path_params["file_id"]
        raw = _multipart_file(request, await request.body())
        args = {"file_id": file_id, "length": len(raw)}
        faulted = await self._fault(request, "upload_url", args, None)
        if faulted is not None:
            return faulted
        try:
            file = self.workspace.file(file_id)
            if file.completed:
                raise ApiError("file_uploads_already_completed")
            self.workspace.store_upload(file_id, raw)
        except ApiError as error:
            self._record("upload_url", args, 404, error.error)
            return PlainTextResponse(error.error, status_code=404)
        body = f"OK - {len(raw)}"
        self._record("upload_url", args, 200, body)
        return PlainTextResponse(body)

    async def _response_url(self, request: Request) -> Response:
        token = request.path_params["token"]
        raw = await request.body()
        try:
            payload = json.loads(raw) if raw.strip().startswith(b"{") else \
                json.loads(dict(parse_qsl(raw.decode()))["payload"])
        except (ValueError, KeyError):
            payload = None
        args = payload if isinstance(payload, dict) else {"raw": raw.decode(errors="replace")}
        faulted = await self._fault(request, "response_url", args, token)
        if faulted is not None:
            return faulted
        status, body = 200, {"ok": True}
        try:
            if not isinstance(payload, dict):
                raise ApiError("invalid_payload")
            responses.answer(self.workspace, token, payload)
        except ApiError as error:
            status = 404 if error.error in ("expired_url", "used_url") else 400
            body = error.to_api()
        self._record("response_url", args, status, body, token=token)
        return JSONResponse(body, status_code=status)

    # -- faults and the log -----------------------------------------------------------
    async def _fault(self, request: Request, method: str, args: dict[str, Any],
                     token: str | None) -> Response | None:
        fault = self.faults.take(method)
        if fault is None:
            return None
        if fault.delay:
            await asyncio.sleep(fault.delay)
        while fault.hang and self.faults.is_down:
            await asyncio.sleep(0.05)
        if not fault.fails:
            return None
        if fault.drop:
            # status 0: no answer at all
            self._record(method, args, 0, None, token=token, fault=fault)
            if not await drop_connection(request.scope):
                raise ConnectionAbortedError(f"fault: drop the connection of a {method} call")
            return Response(status_code=500)  # never sent: the connection is gone
        status = fault.status or 200
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        body = fault.body()
        self._record(method, args, status, body, token=token, fault=fault)
        return JSONResponse(body, status_code=status, headers=headers)

    def _record(self, method: str, args: dict[str, Any], status: int, response: dict[str, Any] | str | None,
                *, token: str | None = None, fault: Fault | None = None) -> None:
        decoded = dict(args)
        for key in _JSON_ARGS:
            if isinstance(decoded.get(key), str):
                with contextlib.suppress(ValueError):
                    decoded[key] = json.loads(decoded[key])
        self.calls.append(Call(method=method, args=decoded, at=self.workspace.clock(), status=status,
                               response=response, token=token, fault=fault))


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _bearer(header: str | None) -> str | None:
    if header and header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return None


def _parse_args(request: Request, raw: bytes) -> tuple[dict[str, Any], str | None, str | None]:
    """(arguments, a charset warning, a parse error), from query string and body as Slack reads them."""
    values: dict[str, Any] = dict(request.query_params)
    content_type = request.headers.get("content-type", "").lower()
    mime = content_type.split(";")[0].strip()
    has_charset = "charset=" in content_type
    warning: str | None = None
    if mime == "application/json":
        warning = None if has_charset else "missing_charset"
        if raw.strip():
            try:
                body = json.loads(raw)
            except ValueError:
                return values, warning, "invalid_json"
            if not isinstance(body, dict):
                return values, warning, "invalid_json"
            values.update(body)
    elif mime == "multipart/form-data":
        values.update(_multipart_fields(content_type, raw))
    elif raw:
        if has_charset:
            warning = "superfluous_charset"
        try:
            values.update(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            return values, warning, "invalid_form_data"
    return values, warning, None


def _multipart(content_type: str, raw: bytes) -> list[Any]:
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
    return list(message.iter_parts()) if message.is_multipart() else []


def _multipart_fields(content_type: str, raw: bytes) -> dict[str, str]:
    fields = {}
    for part in _multipart(content_type, raw):
        name = part.get_param("name", header="content-disposition")
        if name and not part.get_filename():
            fields[name] = part.get_content().strip() if part.get_content_maintype() == "text" else ""
    return fields


def _multipart_file(request: Request, raw: bytes) -> bytes:
    """The uploaded bytes: the body itself, or the file part of a multipart form."""
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        return raw
    for part in _multipart(content_type, raw):
        if part.get_filename() is not None:
            return part.get_payload(decode=True) or b""
    return b""
