"""Whatever a caller sends, the API answers with a status it documents, refusals as
problem+json, and never a 500. Bodies are generated (reproducibly) around the real shapes."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.conftest import Api, Token

FUZZ = settings(derandomize=True, database=None, deadline=None, max_examples=120,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])
DOCUMENTED = {200, 201, 400, 401, 403, 404, 405, 409, 413, 415, 422, 503}
TEXT = st.text(st.characters(codec="utf-8"), max_size=40) | st.sampled_from(
    ["vendor-payment-api", "vendor-payment", "pay_vendor", "R-1", "ap_x", "<!channel>", "\x00",
     "../../etc", "1e400", "NaN", ""])
SCALAR = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | TEXT
JSON = st.recursive(SCALAR, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(TEXT, inner, max_size=4), max_leaves=12)
START = st.fixed_dictionaries({}, optional={
    "flow": JSON, "inputs": st.dictionaries(st.sampled_from(["vendor", "amount", "invoice", "x"])
                                            | TEXT, JSON, max_size=4) | JSON,
    "tool": JSON, "summary": JSON, "callback_url": JSON, "extra": JSON})
REPORT = st.fixed_dictionaries({}, optional={
    "approval": JSON, "arguments": st.dictionaries(TEXT, JSON, max_size=4) | JSON,
    "status": st.sampled_from(["started", "succeeded", "failed"]) | JSON, "result": JSON,
    "error": JSON})


def _check(response: httpx.Response) -> None:
    assert response.status_code in DOCUMENTED, (response.status_code, response.text[:500])
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json", response.text
        assert json.loads(response.text)["detail"]


def test_generated_requests_get_documented_answers(api: Api) -> None:
    token: Token = api.token("billing-bot", "service:billing-agent", "vendor-payment-api")
    headers = {"Authorization": f"Bearer {token.token}"}
    http = httpx.Client(base_url=f"{api.url}/api/v1", headers=headers, timeout=30)
    first = http.post("/runs", json={"flow": "vendor-payment-api",
                                     "inputs": {"vendor": "ACME", "amount": 20}})
    assert first.status_code == 201

    @FUZZ
    @given(body=START | JSON, key=st.none() | st.text(st.characters(codec="ascii"), max_size=300))
    def start(body: Any, key: str | None) -> None:
        extra = {"Idempotency-Key": key} if key is not None and key.isprintable() else {}
        _check(http.post("/runs", json=body, headers=extra))

    @FUZZ
    @given(body=REPORT | JSON, path=st.sampled_from(["/runs/R-1/result", "/runs/R-1/signals",
                                                     "/runs/R-1/cancel", "/runs/R-2/result"]))
    def act(body: Any, path: str) -> None:
        _check(http.post(path, json=body))

    @FUZZ
    @given(ref=TEXT.filter(lambda r: r.strip(".") != ""),
           timeout=st.text(max_size=8) | st.floats().map(str))
    def read(ref: str, timeout: str) -> None:
        path = "/runs/" + quote(ref, safe="")  # one path segment, whatever it holds
        _check(http.get(path + "/wait", params={"timeout": timeout}))
        _check(http.get(path))

    try:
        start()
        act()
        read()
    finally:
        http.close()
