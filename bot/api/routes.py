"""`/api/v1`: the approval service over HTTP, with FastAPI (the OpenAPI document is made
from the same pydantic models the service speaks, and served at `/api/v1/openapi.json`).

Every handler is a coroutine: the blocking work (a database read or write) runs on the
service's small pool, and a long poll (`GET /runs/{id}/wait`) waits on the event loop,
woken by the engine after commit. Errors are `application/problem+json` (bot.api.problems).
"""


from typing import Annotated, Any

import structlog
from fastapi import Depends, FastAPI, Header, Path, Query, Request, Response, Security
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from bot.api.limits import BodyLimits
from bot.api.problems import MEDIA_TYPE, from_error, problem
from gates.access import Caller
from orchestrator.approval_views import (
    CancelRun,
    FlowView,
    ReportResult,
    RunView,
    StartRun,
    SubmitSignal,
)
from orchestrator.approvals import MAX_WAIT_S, ApprovalService
from orchestrator.errors import BatonError

log = structlog.get_logger("baton.api")


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[dict[str, str]] | None = None


def _problem_doc(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": Problem, "content": {MEDIA_TYPE: {}}} for status in statuses}


RunId = Annotated[str, Path(description="the run's id, e.g. R-42", max_length=30)]


def _field(loc: tuple[Any, ...]) -> str:
    """A pydantic location as the caller wrote it: `inputs.amount`, `timeout`."""
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def api_app(service: ApprovalService) -> Any:
    """The API as an ASGI app, for `Mount("/api/v1", ...)`."""
    app = FastAPI(title="Baton API", version="1", openapi_url="/openapi.json", docs_url=None,
                  redoc_url=None, redirect_slashes=False,
                  summary="Ask people in Slack before an agent acts.",
                  description="Start a run of an operator's flow, wait for people to decide, "
                              "perform the approved action once and report its result. "
                              "See docs/api.md.")
    bearer = HTTPBearer(auto_error=False, description="an API token: `baton tokens create`")

    async def caller(credentials: Annotated[HTTPAuthorizationCredentials | None,
                                            Security(bearer)] = None) -> Caller:
        who = await service.call(service.authenticate,
                                 credentials.credentials if credentials else None)
        structlog.contextvars.bind_contextvars(caller=who.token)
        return who

    Who = Annotated[Caller, Depends(caller)]
    errors = _problem_doc(401, 404, 409, 413, 422)

    @app.exception_handler(BatonError)
    async def baton_error(request: Request, exc: BatonError) -> JSONResponse:
        log.info("api_refused", path=request.url.path, error=type(exc).__name__, why=str(exc))
        return from_error(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        found = [{"field": _field(tuple(e["loc"])), "detail": e["msg"]} for e in exc.errors()]
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            return problem(400, "the body is not valid JSON")
        return problem(422, "; ".join(f"{e['field']}: {e['detail']}" for e in found[:10]),
                       errors=found)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(exc.status_code, str(exc.detail), headers=dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        log.exception("api_failed", path=request.url.path)
        return problem(500, "Baton failed to answer this request; the server's log says why")

    @app.get("/flows", response_model=list[FlowView], responses=_problem_doc(401),
             summary="The flows this token may start, with their inputs and tools")
    async def list_flows(who: Who) -> list[FlowView]:
        return await service.call(service.flows, who)

    @app.post("/runs", response_model=RunView, status_code=201, responses={
                  200: {"model": RunView, "description": "the run this Idempotency-Key "
                                                         "started before"},
                  **_problem_doc(401, 403, 404, 409, 413, 422, 503)},
              summary="Start a run: ask for approval")
    async def start_run(body: StartRun, who: Who, request: Request, response: Response,
                        idempotency_key: Annotated[str | None, Header(
                            alias="Idempotency-Key", max_length=255,
                            description="the same key (for this token) starts one run")] = None,
                        ) -> RunView:
        view, created = await service.call(service.start_run, who, body, idempotency_key)
        response.status_code = 201 if created else 200
        response.headers["Location"] = f"{request.scope.get('root_path', '')}/runs/{view.id}"
        return view

    @app.get("/runs/{run}", response_model=RunView, responses=_problem_doc(401, 404),
             summary="A run: status, gates, decisions, the approved action, the outcome")
    async def read_run(run: RunId, who: Who) -> RunView:
        return await service.call(service.read, who, run)

    @app.get("/runs/{run}/wait", response_model=RunView, responses=_problem_doc(401, 404, 422),
             summary="Long poll: the run once it needs you or has finished")
    async def wait_run(run: RunId, who: Who, timeout: Annotated[float, Query(
            ge=0, le=MAX_WAIT_S, description="seconds to wait at most")] = 30.0) -> RunView:
        return await service.wait(who, run, timeout)

    @app.post("/runs/{run}/result", response_model=RunView, responses=errors,
              summary="Report the approved action's result, once")
    async def report(run: RunId, body: ReportResult, who: Who) -> RunView:
        return await service.call(service.report, who, run, body)

    @app.post("/runs/{run}/signals", response_model=RunView,
              responses=_problem_doc(401, 403, 404, 409, 413, 422),
              summary="Submit an external agent's signal")
    async def signal(run: RunId, body: SubmitSignal, who: Who) -> RunView:
        return await service.call(service.signal, who, run, body)

    @app.post("/runs/{run}/cancel", response_model=RunView, responses=errors,
              summary="Cancel (stop) a run")
    async def cancel(run: RunId, who: Who, body: CancelRun | None = None) -> RunView:
        return await service.call(service.cancel, who, run, body or CancelRun())

    @app.get("/runs/{run}/trace", responses=_problem_doc(401, 404),
             summary="The run's decision trace (docs/trace-schema.json)")
    async def trace(run: RunId, who: Who) -> dict[str, Any]:
        return await service.call(service.trace, who, run)

    return BodyLimits(app)
