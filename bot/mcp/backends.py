"""Where the MCP tools get their answers: one interface, two backends.

- `LocalApprovals`: the approval service itself, on the database this process opened
  (`baton mcp` by default, and `/mcp` inside `baton serve`);
- `RemoteApprovals`: a `baton serve` elsewhere, through the Python client
  (`baton mcp` with `BATON_URL`).

Both act for one API token, speak the service's models (`RunView`, `FlowView`), and raise
the errors of `orchestrator.errors`, so the tools cannot tell them apart: the same call
gives the same answer, and the same refusal, either way.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from gates.access import Caller, Through
from orchestrator.approval_views import FlowView, ReportResult, RunView, StartRun
from orchestrator.errors import (
    BatonError,
    Conflict,
    Forbidden,
    InputError,
    NotFound,
    Unauthorized,
    Unavailable,
)

if TYPE_CHECKING:
    from baton_client import AsyncBaton

    from orchestrator.approvals import ApprovalService

T = TypeVar("T")


class Approvals(Protocol):
    """What the tools ask of Baton, as one token's caller."""

    async def flows(self) -> list[FlowView]: ...

    async def start(self, request: StartRun, idempotency_key: str | None) -> RunView: ...

    async def read(self, run: str) -> RunView: ...

    async def wait(self, run: str, timeout: float) -> RunView: ...

    async def report(self, run: str, request: ReportResult) -> RunView: ...

    async def trace(self, run: str) -> dict[str, Any]: ...


class LocalApprovals:
    """The approval service in this process. The token is checked on every call (a revoked
    token is refused at its next call), unless the caller was just authenticated (`/mcp`:
    the bearer check of this very request). `through` is the door this server is (stdio or
    HTTP), which the runs it starts remember; nothing a client sends changes it."""

    def __init__(self, service: ApprovalService, token: str | None, through: Through,
                 caller: Caller | None = None) -> None:
        self.service = service
        self.token = token
        self.through = through
        self._caller = caller

    async def caller(self) -> Caller:
        caller = self._caller
        if caller is None:
            caller = await self.service.call(self.service.authenticate, self.token)
        return replace(caller, through=self.through)

    async def flows(self) -> list[FlowView]:
        return await self.service.call(self.service.flows, await self.caller())

    async def start(self, request: StartRun, idempotency_key: str | None) -> RunView:
        view, _ = await self.service.call(self.service.start_run, await self.caller(), request,
                                          idempotency_key)
        return view

    async def read(self, run: str) -> RunView:
        return await self.service.call(self.service.read, await self.caller(), run)

    async def wait(self, run: str, timeout: float) -> RunView:
        return await self.service.wait(await self.caller(), run, timeout)

    async def report(self, run: str, request: ReportResult) -> RunView:
        return await self.service.call(self.service.report, await self.caller(), run, request)

    async def trace(self, run: str) -> dict[str, Any]:
        return await self.service.call(self.service.trace, await self.caller(), run)


class RemoteApprovals:
    """A `baton serve` at `url`, through the Python client: its answers are the same models
    as JSON, its refusals (problem+json) become the same errors."""

    def __init__(self, client: AsyncBaton, url: str) -> None:
        self.client = client
        self.url = url

    async def _ask(self, call: Awaitable[T]) -> T:
        import httpx
        from baton_client import ApiError

        try:
            return await call
        except ApiError as exc:
            raise refusal(exc.status, exc.detail, exc.errors) from None
        except httpx.TransportError as exc:
            raise Unavailable(f"Baton at {self.url} did not answer ({type(exc).__name__}: "
                              f"{exc})") from None

    async def flows(self) -> list[FlowView]:
        return [FlowView.model_validate(f) for f in await self._ask(self.client.flows())]

    async def start(self, request: StartRun, idempotency_key: str | None) -> RunView:
        run = await self._ask(self.client.start(
            request.flow, request.inputs, tool=request.tool, summary=request.summary,
            idempotency_key=idempotency_key))
        return RunView.model_validate(run.data)

    async def read(self, run: str) -> RunView:
        return RunView.model_validate((await self._ask(self.client.get(run))).data)

    async def wait(self, run: str, timeout: float) -> RunView:
        return RunView.model_validate((await self._ask(self.client.wait(run, timeout))).data)

    async def report(self, run: str, request: ReportResult) -> RunView:
        done = await self._ask(self.client.report(
            run, result=request.result, error=request.error, status=request.status,
            approval=request.approval, arguments=request.arguments))
        return RunView.model_validate(done.data)

    async def trace(self, run: str) -> dict[str, Any]:
        return await self._ask(self.client.trace(run))

    async def close(self) -> None:
        await self.client.aclose()


# The API's statuses, back to the errors the service raised (bot/api/problems.py).
_BY_STATUS: dict[int, type[BatonError]] = {401: Unauthorized, 403: Forbidden, 404: NotFound,
                                           409: Conflict, 503: Unavailable}


def refusal(status: int, detail: str, errors: list[dict[str, str]] | None = None) -> BatonError:
    """The error a problem+json answer stands for."""
    if status in (400, 413, 415, 422):
        fields = [(e.get("field", "body"), e.get("detail", "")) for e in errors or []]
        return InputError(detail, fields=fields)
    kind = _BY_STATUS.get(status)
    if kind is not None:
        return kind(detail)
    return Unavailable(f"Baton failed to answer (HTTP {status}): {detail}")


def remote(url: str, token: str) -> RemoteApprovals:
    """A backend talking to `baton serve` at `url` with `token`."""
    try:
        from baton_client import AsyncBaton
    except ImportError:
        raise BatonError("BATON_URL needs Baton's Python client: pip install -e clients/python "
                         "(from a Baton checkout), or unset BATON_URL to use the local "
                         "database") from None
    return RemoteApprovals(AsyncBaton(url, token, timeout=15.0), url)
