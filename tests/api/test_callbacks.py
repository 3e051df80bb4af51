"""Signed callbacks: to allowed hosts only, signed with the token's secret, durable and
retried while the receiver is down, never following a redirect, every attempt traced."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from baton_client import InvalidRequest, verify_signature
from baton_client.signatures import sign

from tests.api.conftest import Api, Receiver, Token
from tests.bot.conftest import CAROL, PAYMENTS
from tests.bot.processes import eventually


def _approve(api: Api, amount: str | None = None) -> None:
    gate = api.gate_message("R-1")
    if amount is None:
        api.baton.driver.click(user=CAROL, action_id="gate.decide.approve", channel=PAYMENTS,
                               ts=gate.ts)
        api.submit(CAROL, {"reason": "Checked"})
    else:
        api.baton.driver.click(user=CAROL, action_id="gate.edit", channel=PAYMENTS, ts=gate.ts)
        api.submit(CAROL, {"edit:amount": amount, "reason": "Checked"})


def _setup(make_api: Any, receiver: Receiver) -> tuple[Api, Token]:
    host = receiver.url.removeprefix("http://")
    api = make_api(BATON_CALLBACK_HOSTS=f"http://{host}")
    return api, api.token("billing-bot", "service:billing-agent", "vendor-payment-api")


def test_callbacks_are_signed_and_say_what_happened(make_api: Any, receiver: Receiver) -> None:
    api, token = _setup(make_api, receiver)
    with api.client(token) as client:
        run = client.start("vendor-payment-api", {"vendor": "ACME", "amount": 20000},
                           callback_url=f"{receiver.url}/hook")
        _approve(api, amount="15000")
        eventually(lambda: len(receiver.received()) >= 2, timeout=20)
        run = client.wait(run, timeout=10)
        client.report(run, result={"paid": 15000})
        eventually(lambda: len(receiver.received()) >= 3, timeout=20)

    posts = receiver.received()
    kinds = [p["json"]["type"] for p in posts]
    assert kinds == ["gate.decided", "action.due", "run.finished"]
    for post in posts:
        signature = post["headers"]["baton-signature"]
        assert verify_signature(token.callback_secret, signature, post["body"])
        assert not verify_signature("whsec_other", signature, post["body"])
        assert not verify_signature(token.callback_secret, signature, post["body"] + b" ")
        assert post["headers"]["baton-event-id"] == post["json"]["id"]
        assert post["json"]["run"]["id"] == "R-1"
    decided, due, finished = (p["json"]["data"] for p in posts)
    assert decided["outcome"] == "approve"
    assert decided["decisions"][0]["by"] == "carol"
    assert decided["decisions"][0]["edits"] == {"amount": 15000.0}
    assert due["arguments"] == {"vendor": "ACME", "amount": 15000.0}
    assert due["approval"] == run.approval and due["tool"] == "pay_vendor"
    assert finished["status"] == "succeeded"
    assert len({p["json"]["id"] for p in posts}) == 3

    with api.client(token) as client:
        entries = client.trace("R-1")["entries"]
    delivered = [e["data"] for e in entries if e["kind"] == "callback_delivered"]
    assert sorted(d["type"] for d in delivered) == sorted(kinds)
    assert all(d["status"] == 200 and d["attempt"] == 1 for d in delivered)


def test_a_receiver_that_is_down_gets_every_event_once_it_is_back(make_api: Any,
                                                                  receiver: Receiver) -> None:
    api, token = _setup(make_api, receiver)
    receiver.down = True
    with api.client(token) as client:
        client.start("vendor-payment-api", {"vendor": "ACME", "amount": 20000},
                     callback_url=f"{receiver.url}/hook")
        _approve(api)

        def failed_once() -> bool:
            entries = client.trace("R-1")["entries"]
            return any(e["kind"] == "callback_failed" for e in entries)

        eventually(failed_once, timeout=20)
        receiver.down = False
        api.baton.service.callback_sender.wake()
        # the first retry comes within a few seconds (exponential backoff from 2 s)
        eventually(lambda: len(receiver.received()) >= 2, timeout=30)
        failed = [e["data"] for e in client.trace("R-1")["entries"]
                  if e["kind"] == "callback_failed"]
    assert [p["json"]["type"] for p in receiver.received()] == ["gate.decided", "action.due"]
    assert failed[0]["status"] == 503 and "retry_at" in failed[0]


def test_a_redirect_is_not_followed(make_api: Any, receiver: Receiver) -> None:
    api, token = _setup(make_api, receiver)
    with api.client(token) as client:
        client.start("vendor-payment-api", {"vendor": "ACME", "amount": 20000},
                     callback_url=f"{receiver.url}/redirect")
        _approve(api)

        def refused() -> list[dict[str, Any]]:
            return [e["data"] for e in client.trace("R-1")["entries"]
                    if e["kind"] == "callback_failed"]

        failed = eventually(refused, timeout=20)
    assert failed[0]["status"] == 307 and "redirect" in failed[0]["error"]
    assert receiver.received() == []  # and nothing reached where it pointed


@pytest.mark.parametrize("url", [
    "https://allowed.example.com.evil.example/hook",     # the allowed name as a prefix
    "https://allowed.example.com@evil.example/hook",     # user information
    "https://evil.example/allowed.example.com",           # the allowed name in the path
    "https://allowed.example.com\\@evil.example/",        # parsers read it differently
    "http://allowed.example.com/hook",                    # plain HTTP where HTTPS is allowed
    "https://allowed.example.com:8443/hook",              # another port
    "https://%61llowed.example.com/hook",                 # an escaped host
    "ftp://allowed.example.com/hook",
    "https://127.0.0.1/hook",
])
def test_a_callback_url_outside_the_allowlist_is_refused_at_start(make_api: Any, url: str) -> None:
    api = make_api(BATON_CALLBACK_HOSTS="allowed.example.com")
    token = api.token("billing-bot", "service:billing-agent", "vendor-payment-api")
    with api.client(token) as client, pytest.raises(InvalidRequest) as refused:
        client.start("vendor-payment-api", {"vendor": "ACME", "amount": 20000}, callback_url=url)
    assert refused.value.status == 422
    assert [e["field"] for e in refused.value.errors] == ["callback_url"]
    with api.baton.engine.db.read() as s:
        from sqlmodel import select

        from storage.models import Run
        assert s.exec(select(Run)).first() is None


def test_callbacks_are_off_without_an_allowlist(api: Api) -> None:
    token = api.token("billing-bot", "service:billing-agent", "vendor-payment-api")
    with api.client(token) as client, pytest.raises(InvalidRequest) as refused:
        client.start("vendor-payment-api", {"vendor": "ACME", "amount": 2},
                     callback_url="https://hooks.example.com/x")
    assert "BATON_CALLBACK_HOSTS" in refused.value.errors[0]["detail"]


class Dribbler:
    """A receiver that reads the POST and then answers a byte a second, for as long as it is
    let: every read finishes within any read timeout, the answer never does."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.release = threading.Event()
        self.asked = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.release.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            self.asked.set()
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100_000:
                if self.release.wait(1.0):
                    return
                try:
                    conn.send(bytes([byte]))
                except OSError:
                    return

    def close(self) -> None:
        self.release.set()
        self.sock.close()


@pytest.fixture
def dribbler() -> Iterator[Dribbler]:
    slow = Dribbler()
    yield slow
    slow.close()


def test_a_receiver_answering_a_byte_at_a_time_holds_no_one_elses_callbacks(
        make_api: Any, receiver: Receiver, dribbler: Dribbler) -> None:
    """An attempt ends within its timeout in all, not per read: a receiver trickling its
    answer used to hold its sender for good, and the round with it, so no other run's
    callback went out while it trickled."""
    host = receiver.url.removeprefix("http://")
    slow_host = dribbler.url.removeprefix("http://")
    api = make_api(BATON_CALLBACK_HOSTS=f"http://{host},http://{slow_host}")
    token = api.token("billing-bot", "service:billing-agent", "vendor-payment-api")
    with api.client(token) as client:
        client.start("vendor-payment-api", {"vendor": "Slow", "amount": 20000},
                     callback_url=f"{dribbler.url}/hook")
        _approve(api)
        assert dribbler.asked.wait(30)
        client.start("vendor-payment-api", {"vendor": "ACME", "amount": 20000},
                     callback_url=f"{receiver.url}/hook")
        gate = api.gate_message("R-2")
        api.baton.driver.click(user=CAROL, action_id="gate.decide.approve", channel=PAYMENTS,
                               ts=gate.ts)
        api.submit(CAROL, {"reason": "Checked"})
        eventually(lambda: len(receiver.received()) >= 2, timeout=60)
        assert not dribbler.release.is_set()  # it trickles still; nobody waited for it

        def cut_off() -> Any:
            trace = client.trace("R-1")
            return next((e for e in trace["entries"] if e["kind"] == "callback_failed"), None)

        failed = eventually(cut_off, timeout=60)
    assert "no answer within" in failed["data"]["error"]
    assert failed["data"]["retry_at"]


@pytest.mark.parametrize("header", [
    "t=" + "9" * 5000 + ",v1=ab",        # int() refuses past 4,300 digits
    "t=\u0661\u0662\u0663,v1=ab",       # digits, to str.isdigit(), but not ASCII
    "t=,v1=", ",,,", "t=1", "=,=", "v1=ab", "t=1,v1=" + "0" * 64,
])
def test_a_receiver_checking_a_forged_header_gets_false_not_an_exception(header: str) -> None:
    """The header is the sender's to write: `verify_signature` used to raise on a timestamp
    of 5,000 digits, and a receiver answered its caller with a 500."""
    assert verify_signature("whsec_x", header, b"{}") is False
    good = sign("whsec_x", int(time.time()), b'{"id": "evt_1"}')
    assert verify_signature("whsec_x", good, b'{"id": "evt_1"}')
    assert not verify_signature("whsec_x", good, b'{"id": "evt_2"}')  # the id is signed
