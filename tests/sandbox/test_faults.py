"""Fault injection, seen through the real WebClient and its retry handlers.

A faulted call is recorded and changes nothing, so "delivered exactly once" is checked by
counting stored messages.
"""

from __future__ import annotations

import http.client
import socket
import time
from urllib.error import URLError

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator

from sandbox import EmulatorServer
from tests.sandbox.conftest import PAYMENTS

CONNECTION_ERRORS = (URLError, ConnectionError, http.client.HTTPException)
# slack_sdk's own handlers, without their default half-second backoff.
SOON = FixedValueRetryIntervalCalculator(fixed_internal=0.01)


def bare_client(slack: EmulatorServer, **kwargs: object) -> WebClient:
    """A WebClient that never retries, so each fault reaches the caller."""
    return WebClient(token=slack.workspace.app.bot_token, base_url=slack.api_url, retry_handlers=[],
                     **kwargs)  # type: ignore[arg-type]


def texts(slack: EmulatorServer) -> list[str]:
    return [m.text for m in slack.workspace.messages(PAYMENTS)]


def test_rate_limit_is_retried_after_the_advertised_delay(slack: EmulatorServer) -> None:
    slack.faults.next("chat.postMessage", status=429, retry_after=1)
    client = WebClient(token=slack.workspace.app.bot_token, base_url=slack.api_url,
                       retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)])
    started = time.monotonic()
    client.chat_postMessage(channel=PAYMENTS, text="Gate opened")
    assert time.monotonic() - started >= 1.0
    assert texts(slack) == ["Gate opened"]
    limited, delivered = slack.calls_to("chat.postMessage")
    assert (limited.status, limited.error, limited.fault.retry_after) == (429, "ratelimited", 1)  # type: ignore[union-attr]
    assert delivered.ok and delivered.fault is None


def test_rate_limit_reaches_a_client_that_does_not_retry(slack: EmulatorServer) -> None:
    slack.faults.next("chat.postMessage", status=429, retry_after=30)
    with pytest.raises(SlackApiError) as raised:
        bare_client(slack).chat_postMessage(channel=PAYMENTS, text="x")
    response = raised.value.response
    assert response.status_code == 429 and response["error"] == "ratelimited"
    assert {k.lower(): v for k, v in response.headers.items()}["retry-after"] in ("30", ["30"])
    assert texts(slack) == []


def test_server_errors_change_nothing_and_can_be_retried(slack: EmulatorServer) -> None:
    slack.faults.next("chat.postMessage", status=500)
    with pytest.raises(SlackApiError) as raised:
        bare_client(slack).chat_postMessage(channel=PAYMENTS, text="x")
    assert raised.value.response.status_code == 500
    assert texts(slack) == []

    slack.faults.next("chat.postMessage", status=503)
    client = WebClient(token=slack.workspace.app.bot_token, base_url=slack.api_url,
                       retry_handlers=[ServerErrorRetryHandler(max_retry_count=1, interval_calculator=SOON)])
    client.chat_postMessage(channel=PAYMENTS, text="once")
    assert texts(slack) == ["once"]
    assert [c.status for c in slack.calls_to("chat.postMessage")] == [500, 503, 200]


def test_a_dropped_connection_is_a_client_error_and_stores_nothing(slack: EmulatorServer) -> None:
    slack.faults.next("chat.postMessage", drop=True)
    with pytest.raises(CONNECTION_ERRORS):
        bare_client(slack).chat_postMessage(channel=PAYMENTS, text="lost")
    assert texts(slack) == []
    dropped = slack.calls_to("chat.postMessage")[0]
    assert dropped.status == 0 and dropped.response is None and dropped.fault is not None
    # The server is fine afterwards.
    bare_client(slack).chat_postMessage(channel=PAYMENTS, text="next")
    assert texts(slack) == ["next"]


def test_slack_sdks_connection_error_handler_retries_a_dropped_connection(slack: EmulatorServer) -> None:
    slack.faults.next("chat.postMessage", drop=True)
    client = WebClient(token=slack.workspace.app.bot_token, base_url=slack.api_url,
                       retry_handlers=[ConnectionErrorRetryHandler(interval_calculator=SOON)])
    client.chat_postMessage(channel=PAYMENTS, text="delivered once")
    assert texts(slack) == ["delivered once"]
    assert [c.status for c in slack.calls_to("chat.postMessage")] == [0, 200]


def test_down_until_up(slack: EmulatorServer) -> None:
    client = bare_client(slack)
    slack.faults.down()
    assert slack.faults.is_down
    for call in (lambda: client.chat_postMessage(channel=PAYMENTS, text="x"), client.auth_test,
                 lambda: client.conversations_open(users="U0BOB0001")):
        with pytest.raises(SlackApiError) as raised:
            call()
        assert raised.value.response.status_code == 503
    slack.faults.down(drop=True)
    with pytest.raises(CONNECTION_ERRORS):
        client.chat_postMessage(channel=PAYMENTS, text="x")
    slack.faults.up()
    client.chat_postMessage(channel=PAYMENTS, text="back")
    assert texts(slack) == ["back"]
    assert slack.workspace.dm_of("U0BOB0001") is None
    assert [c.status for c in slack.calls] == [503, 503, 503, 0, 200]


def test_a_slow_slack_still_stores_what_the_client_gave_up_on(slack: EmulatorServer) -> None:
    slack.faults.next("chat.postMessage", delay=0.2)
    with pytest.raises((TimeoutError, socket.timeout, URLError)):
        bare_client(slack, timeout=0.05).chat_postMessage(channel=PAYMENTS, text="slow")
    # The hazard a retrying bot must handle: Slack did post it.
    slack.workspace.wait_for(lambda ws: ws.messages(PAYMENTS), timeout=2)
    assert texts(slack) == ["slow"]


def test_faults_for_one_method_come_before_faults_for_all(slack: EmulatorServer) -> None:
    client = bare_client(slack)
    slack.faults.next("*", status=500)
    slack.faults.next("chat.update", error="message_not_found")
    posted = None
    with pytest.raises(SlackApiError):
        posted = client.chat_postMessage(channel=PAYMENTS, text="x")  # takes the "*" fault
    assert posted is None and slack.faults.pending("*") == 0
    posted = client.chat_postMessage(channel=PAYMENTS, text="x")
    with pytest.raises(SlackApiError) as raised:
        client.chat_update(channel=PAYMENTS, ts=posted["ts"], text="y")
    assert (raised.value.response.status_code, raised.value.response["error"]) == (200, "message_not_found")
    assert texts(slack) == ["x"]


def test_a_failed_upload_completes_no_file(slack: EmulatorServer) -> None:
    slack.faults.next("upload_url", status=500)
    with pytest.raises((SlackRequestError, URLError)):
        bare_client(slack).files_upload_v2(channel=PAYMENTS, content="data", filename="a.txt")
    assert slack.workspace.files() == [] and texts(slack) == []
    assert slack.calls.methods() == ["files.getUploadURLExternal", "upload_url"]


def test_a_fault_needs_something_to_do(slack: EmulatorServer) -> None:
    with pytest.raises(ValueError, match="needs a status"):
        slack.faults.next("chat.postMessage")
