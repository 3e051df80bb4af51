"""A replayed webhook starts no second run, and an `Idempotency-Key` counts only when the
signature covers it (issue 21, item 3). Tried as someone holding one captured request
would, against the real `POST /hooks/FLOW` of the real service: the same bytes again, the
same bytes with a new or removed key, the same bytes sent to another flow that shares the
secret."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from bot.webhooks import sign, sign_v2
from orchestrator.loader import load_flow
from storage.models import Run
from tests.bot.conftest import Baton
from tests.conftest import TEST_FLOWS
from tests.figures import Figures

pytestmark = pytest.mark.reliability(
    item="8", promise="A replayed webhook starts no second run; an Idempotency-Key counts only "
                         "when the signature covers it")

SECRET = "a-webhook-secret-of-forty-bytes-or-more-0123"
BODY = json.dumps({"inputs": {"service": "payments-api", "version": "2.4.1"}}).encode()


@pytest.fixture
def hooks(make_baton, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Baton]:  # type: ignore[no-untyped-def]
    """The test flows, plus `hooked-too`: a second webhook flow sharing hooked's secret."""
    flows = tmp_path / "flows"
    shutil.copytree(TEST_FLOWS, flows)
    text = (flows / "hooked.yaml").read_text()
    (flows / "hooked-too.yaml").write_text(text.replace("name: hooked", "name: hooked-too", 1))
    variable = load_flow(flows / "hooked.yaml").flow.triggers.webhook.secret_env  # type: ignore[union-attr]
    monkeypatch.setenv(variable, SECRET)
    yield make_baton(flows)


def send(baton: Baton, flow: str, headers: dict[str, str], body: bytes = BODY) -> httpx.Response:
    with httpx.Client(trust_env=False, timeout=10) as http:
        return http.post(f"{baton.url}/hooks/{flow}", content=body,
                         headers={"content-type": "application/json", **headers})


def v1(body: bytes = BODY, ts: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if ts is None else ts
    return {"x-baton-timestamp": str(ts), "x-baton-signature": sign(SECRET, ts, body)}


def v2(flow: str, key: str = "", body: bytes = BODY, ts: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if ts is None else ts
    found = {"x-baton-timestamp": str(ts), "x-baton-signature": sign_v2(SECRET, ts, flow, body, key)}
    if key:
        found["idempotency-key"] = key
    return found


def runs(baton: Baton) -> list[Run]:
    with baton.engine.db.read() as s:
        return list(s.exec(select(Run)))


def test_the_same_signed_bytes_again_start_no_second_run(hooks: Baton, figures: Figures) -> None:
    now = int(time.time())
    for headers in (v1(ts=now - 30), v2("hooked", ts=now - 20), v2("hooked", key="pipeline-981")):
        first = send(hooks, "hooked", headers)
        assert first.status_code == 202, first.text
        again = [send(hooks, "hooked", headers) for _ in range(3)]
        figures.add("requests_sent", 4)
        figures.add("faults_injected", 3)
        assert {r.json()["run"] for r in again} == {first.json()["run"]}
    assert len(runs(hooks)) == 3  # one per request, none per copy


def test_a_key_the_signature_does_not_cover_starts_nothing(hooks: Baton, figures: Figures) -> None:
    """The attack: a captured request sent again with an Idempotency-Key of one's choosing
    (a new one to start a second run, or the key of a job to come, to pre-empt it)."""
    captured = v1()
    assert send(hooks, "hooked", captured).status_code == 202
    figures.add("requests_sent")
    tries = {
        "v1 + a new key": {**captured, "idempotency-key": "attacker-1"},
        "v1 + another new key": {**captured, "idempotency-key": "attacker-2"},
        "v2 without a key, then a key added": {**v2("hooked"), "idempotency-key": "attacker-3"},
        "v2 with a key, the key changed": {**v2("hooked", key="job-1"), "idempotency-key": "job-2"},
        "v2 with a key, the key removed": {k: v for k, v in v2("hooked", key="job-4").items()
                                            if k != "idempotency-key"},
    }
    for name, headers in tries.items():
        reply = send(hooks, "hooked", headers)
        figures.add("requests_sent")
        figures.add("faults_injected")
        assert reply.status_code in (400, 401), (name, reply.status_code, reply.text)
        figures.add("refusals")
    told = send(hooks, "hooked", tries["v1 + a new key"]).json()["error"]
    assert "v2" in told and "Idempotency-Key" in told  # names the problem and the fix
    assert len(runs(hooks)) == 1
    # the keys above were never taken: a real job using one starts its run
    assert send(hooks, "hooked", v2("hooked", key="job-2")).status_code == 202
    assert len(runs(hooks)) == 2


def test_a_signed_retry_with_the_same_key_finds_the_run(hooks: Baton, figures: Figures) -> None:
    first = send(hooks, "hooked", v2("hooked", key="deploy-77", ts=int(time.time()) - 100))
    retry = send(hooks, "hooked", v2("hooked", key="deploy-77"))  # signed afresh, later
    figures.add("requests_sent", 2)
    assert first.status_code == retry.status_code == 202
    assert first.json()["run"] == retry.json()["run"]
    # without a key, two requests signed at different moments are two requests (documented)
    assert send(hooks, "hooked", v1(ts=int(time.time()) - 50)).json()["run"] != \
        send(hooks, "hooked", v1()).json()["run"]
    assert len(runs(hooks)) == 3


def test_a_v2_request_cannot_be_sent_to_another_flow(hooks: Baton, figures: Figures) -> None:
    headers = v2("hooked", key="job-9")
    moved = send(hooks, "hooked-too", headers)
    figures.add("requests_sent")
    figures.add("faults_injected")
    assert moved.status_code == 401 and runs(hooks) == []
    figures.add("refusals")
    assert send(hooks, "hooked", headers).status_code == 202


def test_malformed_keys_are_refused_with_the_rule(hooks: Baton, figures: Figures) -> None:
    for key in ("x" * 256, "tab\there"):
        headers = v2("hooked", key=key)
        reply = send(hooks, "hooked", headers)
        figures.add("requests_sent")
        assert reply.status_code == 400 and "Idempotency-Key must be" in reply.json()["error"]
        figures.add("refusals")
    assert runs(hooks) == []
