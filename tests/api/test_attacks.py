"""Attacks on the approval API through the real HTTP endpoint: each test is a hole an
attacker found (numbers JSON has no words for, arguments a parser would clean up into the
approved ones, an action begun under the emergency stop, a long poll outliving its token),
kept so that it stays closed."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import select

from orchestrator.clock import FakeClock
from storage.models import ApiToken
from tests.api.conftest import Api, Token
from tests.api.test_problems import _call, _counts, _problem
from tests.bot.conftest import CAROL, PAYMENTS

START = {"flow": "vendor-payment-api", "inputs": {"vendor": "Café ACME", "amount": 20000}}


@pytest.fixture
def token(api: Api) -> Token:
    return api.token("billing-bot", "service:billing-agent", "vendor-payment-api")


def _approved(api: Api, token: Token, ref: str = "R-1") -> Any:
    """Start a run, have Carol approve it in Slack, and wait until its action is due."""
    with api.client(token) as client:
        client.start("vendor-payment-api", START["inputs"])
        gate = api.gate_message(ref)
        api.baton.driver.click(user=CAROL, action_id="gate.decide.approve", channel=PAYMENTS,
                               ts=gate.ts)
        api.submit(CAROL, {"reason": "Checked"})
        run = client.wait(ref, timeout=30)
    assert run.state == "approved", run
    return run


def _raw(api: Api, path: str, token: Token, body: bytes) -> httpx.Response:
    return _call(api, "POST", path, token, content=body,
                 headers={"Content-Type": "application/json"})


@pytest.mark.parametrize("number", [b"NaN", b"-Infinity", b"1e400", b"1" + b"0" * 400])
def test_a_number_json_cannot_hold_is_refused_in_every_body_and_writes_nothing(
        api: Api, token: Token, number: bytes) -> None:
    """Python's JSON parser reads NaN, Infinity, 1e400 (infinity) and integers of any size;
    none is a number the trace can hash or PostgreSQL store, and a 400-digit amount made the
    engine fail with a 500. Every field of every body is refused, before anything is read."""
    before = _counts(api)
    starts = [b'{"flow": "vendor-payment-api", "inputs": {"vendor": "A", "amount": %s}}',
              b'{"flow": "vendor-payment-api", "inputs": {"vendor": "A", "amount": 5,'
              b' "invoice": %s}}']
    for body in starts:
        problem = _problem(_raw(api, "/runs", token, body % number), 400)
        assert "not valid JSON" in problem["detail"] and "number" in problem["detail"]
    assert _counts(api) == before

    run = _approved(api, token)
    reports = [b'{"approval": "%s", "arguments": {"vendor": "Caf\\u00e9 ACME", "amount": %s},'
               b' "status": "started"}',
               b'{"approval": "%s", "arguments": {"vendor": "Caf\\u00e9 ACME", "amount": 20000},'
               b' "status": "succeeded", "result": {"paid": [%s]}}']
    for body in reports:
        _problem(_raw(api, "/runs/R-1/result", token,
                      body.replace(b"%s", run.approval.encode(), 1) % number), 400)
    _problem(_raw(api, "/runs/R-1/signals", token,
                  b'{"agent": "fraud", "verdict": "ok", "confidence": %s}' % number), 400)
    # Still due, and the exact arguments are still accepted: nothing was consumed.
    with api.client(token) as client:
        due = client.get("R-1")
        assert due.state == "approved"
        assert client.report(due, status="started").action["status"] == "started"


@pytest.mark.parametrize("arguments", [
    {"vendor": "Café ACME", "amount": "20000"},          # text, not the amount
    {"vendor": "Café ACME", "amount": " 2e4 "},          # text a parser would read as 20000
    {"vendor": "Café ACME", "amount": True},             # a boolean is no amount
    {"vendor": "Cafe\u0301 ACME", "amount": 20000},      # another Unicode form of the name
    {"vendor": "Café\u0007 ACME", "amount": 20000},      # a control character Baton drops
    {"vendor": " Café ACME ", "amount": 20000},          # spaces around it
    {"vendor": "Café ACME", "amount": 20000.5},
    {"vendor": "Café ACME", "amount": 20000, "note": "x"},
], ids=["text-amount", "spaced-exponent", "boolean", "nfd", "bell", "spaces", "other", "extra"])
def test_a_report_must_carry_exactly_the_approved_arguments(
        api: Api, token: Token, arguments: dict[str, Any]) -> None:
    """The approval is bound to the arguments people saw. They used to be compared after
    the flow's input parsing, which strips spaces and control characters and reads text as
    numbers: an agent could act on `" Café ACME "` or `"20000"` and have it accepted."""
    run = _approved(api, token)
    refused = _problem(_call(api, "POST", "/runs/R-1/result", token, json={
        "approval": run.approval, "arguments": arguments, "status": "started"}), 409)
    assert "report exactly the approved arguments" in refused["detail"] or \
        "not approved" in refused["detail"] or "unexpected" in refused["detail"], refused
    with api.client(token) as client:
        assert client.get("R-1").action["status"] == "due"
    # The same amount as another JSON number, and the keys in another order, are the same.
    accepted = _call(api, "POST", "/runs/R-1/result", token, json={
        "approval": run.approval, "arguments": {"amount": 20000.0, "vendor": "Café ACME"},
        "status": "started"})
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["action"]["status"] == "started"


def test_the_emergency_stop_holds_an_approved_action_the_caller_has_not_begun(
        api: Api, token: Token) -> None:
    """An admin halts Baton after a gate approved an external action: the caller is told to
    wait (`pending`, the halt named), a `started` report is refused with 503 and changes
    nothing, and a waiter is woken when Baton resumes."""
    _approved(api, token)
    assert api.cli("halt", "--as", "erin", "--reason", "incident").returncode == 0
    with api.client(token) as client:
        held = client.get("R-1")
        assert held.state == "pending" and "halted" in held.reason and "incident" in held.reason
        run = client.wait("R-1", timeout=0)
        assert run.state == "pending"
    refused = _problem(_call(api, "POST", "/runs/R-1/result", token, json={
        "approval": held.action["approval"], "arguments": held.action["arguments"],
        "status": "started"}), 503)
    assert "halted" in refused["detail"] and "resume" in refused["detail"]

    answer: dict[str, Any] = {}

    def wait() -> None:
        answer["run"] = _call(api, "GET", "/runs/R-1/wait?timeout=60", token)

    waiter = threading.Thread(target=wait)
    waiter.start()
    assert api.cli("resume", "--as", "erin").returncode == 0
    waiter.join(90)
    assert answer["run"].json()["decision"]["state"] == "approved"
    with api.client(token) as client:
        assert client.report(client.get("R-1"), status="started").action["status"] == "started"


def test_a_long_poll_that_outlives_its_token_gets_401(api: Api, token: Token) -> None:
    """A wait authenticated at its start used to answer with the run after its token was
    revoked; it now answers 401 like any request made at that moment."""
    with api.client(token) as client:
        client.start("vendor-payment-api", START["inputs"])
    answer: dict[str, httpx.Response] = {}

    def wait() -> None:
        answer["wait"] = _call(api, "GET", "/runs/R-1/wait?timeout=60", token)

    waiter = threading.Thread(target=wait)
    waiter.start()
    assert api.cli("tokens", "revoke", "billing-bot").returncode == 0
    gate = api.gate_message("R-1")  # the run changes only now: the waiter is still waiting
    api.baton.driver.click(user=CAROL, action_id="gate.decide.approve", channel=PAYMENTS,
                           ts=gate.ts)
    api.submit(CAROL, {"reason": "Checked"})
    waiter.join(90)
    assert "revoked" in _problem(answer["wait"], 401)["detail"]


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_an_approval_ends_at_its_deadline_exactly_not_when_the_timer_gets_to_it(
        make_api: Callable[..., Api]) -> None:
    """Past the external step's timeout the outcome is unknown and a person's: a `started`
    report there used to be accepted until the timer ran (later on a busy or halted server),
    and the run still read `approved`."""
    clock = FakeClock(datetime.now(UTC))
    api = make_api(clock=clock)
    token = api.token("billing-bot", "service:billing-agent", "vendor-payment-api")
    run = _approved(api, token)
    deadline = _at(run.action["deadline"])
    clock.advance(deadline - clock.now() - timedelta(seconds=1))
    with api.client(token) as client:
        assert client.get("R-1").state == "approved"
        clock.advance(timedelta(seconds=1))  # the deadline, to the microsecond
        late = client.get("R-1")
    assert late.state == "pending" and "timeout ran out" in late.reason
    refused = _problem(_call(api, "POST", "/runs/R-1/result", token, json={
        "approval": run.approval, "arguments": run.arguments, "status": "started"}), 409)
    assert "timeout ran out" in refused["detail"] or "declared unknown" in refused["detail"]


def test_a_token_expires_at_its_expiry_time_exactly(make_api: Callable[..., Api]) -> None:
    clock = FakeClock(datetime.now(UTC))
    api = make_api(clock=clock)
    token = api.token("brief", "service:billing-agent", "vendor-payment-api", "--expires", "1h")
    with api.baton.engine.db.read() as s:
        stored = s.exec(select(ApiToken).where(ApiToken.name == "brief")).one()
        expires = stored.expires_at
    assert expires is not None
    expires = expires if expires.tzinfo else expires.replace(tzinfo=UTC)
    clock.advance(expires - clock.now() - timedelta(microseconds=1))
    assert _call(api, "GET", "/flows", token).status_code == 200
    clock.advance(timedelta(microseconds=1))
    assert "expired" in _problem(_call(api, "GET", "/flows", token), 401)["detail"]


def test_reports_sent_at_once_consume_the_approval_once(api: Api, token: Token) -> None:
    """Twelve results for one approval, at once, each with another result: one is taken,
    eleven get 409, and the run and its trace hold the one taken. A report before the
    approval, or with another run's approval, is refused too."""
    with api.client(token) as client:
        client.start("vendor-payment-api", {"vendor": "Other", "amount": 20000})
    before = _problem(_call(api, "POST", "/runs/R-1/result", token, json={
        "approval": "ap_" + "0" * 40, "arguments": {"vendor": "Other", "amount": 20000},
        "status": "started"}), 409)
    assert "has not approved an action yet" in before["detail"]
    run = _approved(api, token, "R-2")
    other_run = _problem(_call(api, "POST", "/runs/R-1/result", token, json={
        "approval": run.approval, "arguments": run.arguments, "status": "started"}), 409)
    assert "has not approved" in other_run["detail"]

    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def report(n: int) -> None:
        answer = _call(api, "POST", "/runs/R-2/result", token, json={
            "approval": run.approval, "arguments": run.arguments, "status": "succeeded",
            "result": {"payment": n}})
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=report, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] + [409] * 11, statuses
    taken = next(a for a in answers if a.status_code == 200).json()
    with api.client(token) as client:
        trace = client.trace("R-2")
    done = [e for e in trace["entries"] if e["kind"] == "action_done"]
    assert len(done) == 1 and done[0]["data"]["result"] == taken["action"]["result"]
    refused = [e for e in trace["entries"] if e["kind"] == "action_report_refused"]
    assert len(refused) == 11


def test_a_chunked_body_over_1_mb_is_cut_off_and_writes_nothing(api: Api, token: Token) -> None:
    """Without a Content-Length nothing says the size up front: the body is counted as it
    arrives and refused at the first byte past 1 MB."""
    before = _counts(api)

    def chunks() -> Any:
        yield b'{"flow": "vendor-payment-api", "inputs": {"vendor": "A", "amount": 5}, "x": "'
        for _ in range(11):
            yield b"x" * 100_000
        yield b'"}'

    big = _call(api, "POST", "/runs", token, content=chunks(),
                headers={"Content-Type": "application/json"})
    assert "1,000,000 bytes" in _problem(big, 413)["detail"]
    assert _counts(api) == before

    def small() -> Any:
        yield b'{"flow": "vendor-payment-api", '
        yield b'"inputs": {"vendor": "A", "amount": 5}}'

    assert _call(api, "POST", "/runs", token, content=small(),
                 headers={"Content-Type": "application/json"}).status_code == 201


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_the_api_root_itself_answers_problem_json_not_a_redirect(
        api: Api, token: Token, method: str) -> None:
    """`/api/v1` without a slash fell outside the API's mount, and the outer app redirected
    it (307, no body): the one path under /api/v1 that was not problem+json."""
    _problem(_call(api, method, "", token), 404)
    _problem(_call(api, method, "/", token), 404)
