"""Every refusal is `application/problem+json` naming the problem (and each bad field),
with its status, and writes nothing; bad input never gets a 500."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy import func
from sqlmodel import select

from storage.models import Event, Run, TraceEntry
from tests.api.conftest import Api, Token

START = {"flow": "vendor-payment-api", "inputs": {"vendor": "ACME", "amount": 20000}}


def _counts(api: Api) -> tuple[int, int, int]:
    with api.baton.engine.db.read() as s:
        return tuple(s.exec(select(func.count()).select_from(model)).one()  # type: ignore[return-value]
                     for model in (Run, Event, TraceEntry))


def _call(api: Api, method: str, path: str, token: Token | str | None = None, **kw: Any
          ) -> httpx.Response:
    headers = dict(kw.pop("headers", {}))
    if token is not None:
        headers["Authorization"] = f"Bearer {token.token if isinstance(token, Token) else token}"
    return httpx.request(method, f"{api.url}/api/v1{path}", headers=headers, timeout=30, **kw)


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body


@pytest.fixture
def token(api: Api) -> Token:
    return api.token("billing-bot", "service:billing-agent", "vendor-payment-api")


def test_refusals_before_a_run_exists_write_nothing(api: Api, token: Token) -> None:
    before = _counts(api)
    missing = _problem(_call(api, "POST", "/runs", json=START), 401)
    assert "Authorization: Bearer" in missing["detail"]
    assert _call(api, "POST", "/runs", json=START).headers["www-authenticate"].startswith("Bearer")
    assert "unknown API token" in _problem(_call(api, "POST", "/runs", "bt_" + "x" * 43,
                                                 json=START), 401)["detail"]
    assert "not a Baton API token" in _problem(_call(api, "GET", "/flows", "xoxb-123"), 401)["detail"]

    unknown = _problem(_call(api, "POST", "/runs", token, json={**START, "flow": "vendor-paymnt"}), 404)
    assert "unknown flow 'vendor-paymnt'" in unknown["detail"] and "vendor-payment" in unknown["detail"]
    other = _problem(_call(api, "POST", "/runs", token, json={**START, "flow": "vendor-payment"}), 403)
    assert "may not start 'vendor-payment'" in other["detail"]

    bad = _problem(_call(api, "POST", "/runs", token, json={
        "flow": "vendor-payment-api", "inputs": {"amount": "lots", "colour": "red"},
        "tool": "delete_everything"}), 422)
    fields = {e["field"]: e["detail"] for e in bad["errors"]}
    assert set(fields) == {"inputs.amount", "inputs.colour", "inputs.vendor", "tool"}
    assert "expected a number" in fields["inputs.amount"]
    assert "unknown input 'colour'" in fields["inputs.colour"]
    assert "missing required input 'vendor'" in fields["inputs.vendor"]
    assert "approves pay_vendor" in fields["tool"]

    shape = _problem(_call(api, "POST", "/runs", token, json={"flow": 42, "inputz": {}}), 422)
    assert {e["field"] for e in shape["errors"]} == {"flow", "inputz"}
    too_long = _problem(_call(api, "POST", "/runs", token, json={**START, "summary": "x" * 2001}), 422)
    assert too_long["errors"][0]["field"] == "summary"

    big = _problem(_call(api, "POST", "/runs", token, content=b"{" + b" " * 1_000_001 + b"}",
                         headers={"Content-Type": "application/json"}), 413)
    assert "1,000,000 bytes" in big["detail"]
    _problem(_call(api, "POST", "/runs", token, content=b"{not json",
                   headers={"Content-Type": "application/json"}), 400)
    deep = _problem(_call(api, "POST", "/runs", token, content=b"[" * 100_000 + b"]" * 100_000,
                          headers={"Content-Type": "application/json"}), 400)
    assert "64 deep" in deep["detail"]
    _problem(_call(api, "POST", "/runs", token, content=json.dumps(START).encode(),
                   headers={"Content-Type": "text/plain"}), 415)
    huge_number = b'{"flow": "x", "inputs": {"a": 1' + b"1" * 5000 + b"}}"
    _problem(_call(api, "POST", "/runs", token, content=huge_number,
                   headers={"Content-Type": "application/json"}), 400)
    key = _problem(_call(api, "POST", "/runs", token, json=START,
                         headers={"Idempotency-Key": "clé".encode()}), 422)
    assert key["errors"][0]["field"] == "Idempotency-Key"
    _problem(_call(api, "GET", "/nowhere", token), 404)
    _problem(_call(api, "DELETE", "/flows", token), 405)
    assert _counts(api) == before


def test_refusals_about_a_run(api: Api, token: Token) -> None:
    run = _call(api, "POST", "/runs", token, json=START, headers={"Idempotency-Key": "inv-1"})
    assert run.status_code == 201 and run.headers["location"] == "/api/v1/runs/R-1"
    other = api.token("other-bot", "service:billing-agent", "vendor-payment-api")
    before = _counts(api)
    for method, path in (("GET", "/runs/R-1"), ("GET", "/runs/R-1/wait?timeout=0"),
                         ("GET", "/runs/R-1/trace"), ("POST", "/runs/R-1/cancel"),
                         ("POST", "/runs/R-2"), ("GET", "/runs/R-99"), ("GET", "/runs/banana"),
                         ("GET", "/runs/R-99999999999999999999999")):
        response = _call(api, method, path, other, json={} if method == "POST" else None)
        assert response.status_code in (404, 405), (path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    report = _problem(_call(api, "POST", "/runs/R-1/result", other, json={
        "approval": "ap_x", "arguments": {}, "status": "succeeded"}), 404)
    assert "no run R-1 started with token 'other-bot'" in report["detail"]
    wait = _problem(_call(api, "GET", "/runs/R-1/wait?timeout=100", token), 422)
    assert wait["errors"][0]["field"] == "timeout"
    reused = _problem(_call(api, "POST", "/runs", token, headers={"Idempotency-Key": "inv-1"},
                            json={**START, "inputs": {"vendor": "ACME", "amount": 1}}), 409)
    assert "Idempotency-Key already started R-1" in reused["detail"]
    bad_status = _problem(_call(api, "POST", "/runs/R-1/result", token, json={
        "approval": "ap_x", "arguments": {}, "status": "maybe"}), 422)
    assert bad_status["errors"][0]["field"] == "status"
    assert _counts(api) == before
    early = _problem(_call(api, "POST", "/runs/R-1/result", token, json={
        "approval": "ap_x", "arguments": {}, "status": "succeeded"}), 409)
    assert "has not approved an action yet" in early["detail"]


def test_the_openapi_document_describes_the_api(api: Api) -> None:
    response = httpx.get(f"{api.url}/api/v1/openapi.json", timeout=10)
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) >= {"/flows", "/runs", "/runs/{run}", "/runs/{run}/wait",
                                      "/runs/{run}/result", "/runs/{run}/signals",
                                      "/runs/{run}/cancel", "/runs/{run}/trace"}
    start = document["paths"]["/runs"]["post"]
    assert "application/problem+json" in start["responses"]["409"]["content"]
    assert any(p["name"] == "Idempotency-Key" for p in start["parameters"])
    schemas = document["components"]["schemas"]
    assert {"StartRun", "RunView", "ReportResult", "Problem"} <= set(schemas)
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_a_halted_baton_answers_503_and_starts_nothing(api: Api, token: Token) -> None:
    assert api.cli("halt", "--as", "erin", "--reason", "incident").returncode == 0
    before = _counts(api)
    halted = _problem(_call(api, "POST", "/runs", token, json=START), 503)
    assert "Baton is halted" in halted["detail"] and "resume" in halted["detail"]
    assert _counts(api) == before
