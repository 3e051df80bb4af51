"""API tokens: made, listed and revoked with `baton tokens`, shown once, stored as a hash,
scoped to their flows and their own runs, never deciding a gate."""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Any

import httpx
import pytest
import structlog
from baton_client import Forbidden, NotFound, Unauthorized
from sqlmodel import select

from storage.models import ApiToken
from tests.api.conftest import Api
from tests.bot.conftest import BOB, CAROL, PAYMENTS


def test_tokens_are_shown_once_and_kept_as_a_hash(api: Api) -> None:
    made = api.cli("tokens", "create", "billing-bot", "--as", "service:billing-agent",
                   "--flows", "vendor-payment-api", "--expires", "90d")
    assert made.returncode == 0, made.stderr
    secret = next(w for w in made.stdout.split() if w.startswith("bt_"))
    callback = next(w for w in made.stdout.split() if w.startswith("whsec_"))
    assert "shown this once" in made.stdout
    with api.baton.engine.db.read() as s:
        row = s.exec(select(ApiToken)).one()
    assert row.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in repr(row.model_dump()) and row.callback_secret == callback
    listed = api.cli("tokens", "list")
    assert "billing-bot" in listed.stdout and "service:billing-agent" in listed.stdout
    assert "active" in listed.stdout and secret not in listed.stdout
    assert secret[:9] in listed.stdout  # enough to tell tokens apart, never the token

    for args, problem in [
        (("billing-bot", "--as", "service:billing-agent", "--flows", "vendor-payment-api"),
         "exists already"),
        (("x", "--as", "service:ghost", "--flows", "vendor-payment-api"), "unknown service"),
        (("x", "--as", "bob", "--flows", "vendor-payment-api"), "may never start"),
        (("x", "--as", "service:billing-agent", "--flows", "nope"), "unknown flow 'nope'"),
        (("Bad Name", "--as", "service:billing-agent", "--flows", "vendor-payment-api"),
         "token name"),
        (("x", "--as", "service:billing-agent", "--flows", "vendor-payment-api", "--expires",
          "soon"), "--expires"),
    ]:
        refused = api.cli("tokens", "create", *args)
        assert refused.returncode == 2 and problem in refused.stderr, refused.stderr
    assert api.cli("tokens", "revoke", "nope").returncode == 2


def test_a_revoked_or_expired_token_gets_401(api: Api) -> None:
    token = api.token("billing-bot", "service:billing-agent", "vendor-payment-api")
    brief = api.token("brief", "service:billing-agent", "vendor-payment-api", "--expires", "1s")
    with api.client(token) as client:
        client.start("vendor-payment-api", {"vendor": "ACME", "amount": 20000})
        assert api.cli("tokens", "revoke", "billing-bot").returncode == 0
        with pytest.raises(Unauthorized, match="revoked"):
            client.get("R-1")
        with pytest.raises(Unauthorized, match="revoked"):
            client.start("vendor-payment-api", {"vendor": "ACME", "amount": 1})
    assert "revoked" in api.cli("tokens", "list").stdout
    time.sleep(1.1)
    with api.client(brief) as client, pytest.raises(Unauthorized, match="expired"):
        client.flows()


def test_a_token_starts_only_its_flows_and_sees_only_its_runs(test_api: Api) -> None:
    api = test_api
    refunds = api.token("refunds", "service:billing-agent", "agent-refund")
    other = api.token("other", "service:billing-agent", "agent-refund")
    with api.client(refunds) as mine, api.client(other) as theirs:
        assert [f["name"] for f in mine.flows()] == ["agent-refund"]
        assert mine.flows()[0]["tools"] == ["refund_customer"]
        with pytest.raises(Forbidden, match="may not start 'agent-quick'"):
            mine.start("agent-quick", {"command": "ls"})
        run = mine.start("agent-refund", {"customer": "C-1", "amount": 30})
        for attempt in (lambda: theirs.get(run), lambda: theirs.trace(run),
                        lambda: theirs.cancel(run), lambda: theirs.wait(run, timeout=0),
                        lambda: theirs.signal(run, "fraud", "ok"),
                        lambda: theirs.report(run, approval="ap_x", arguments={})):
            with pytest.raises(NotFound, match="started with token 'other'"):
                attempt()
        assert mine.get(run).status == "waiting"


def test_no_token_decides_a_gate(test_api: Api) -> None:
    """The API has no way to decide, claim or snooze; and a service principal is refused
    by every other door too."""
    api = test_api
    token = api.token("refunds", "service:billing-agent", "agent-refund")
    with api.client(token) as client:
        client.start("agent-refund", {"customer": "C-1", "amount": 30})
    for path in ("/runs/R-1/decide", "/runs/R-1/approve", "/runs/R-1/gates/approve",
                 "/runs/R-1/claim"):
        response = httpx.post(f"{api.url}/api/v1{path}", json={"option": "approve"},
                              headers={"Authorization": f"Bearer {token.token}"})
        assert response.status_code in (404, 405)
    refused = api.cli("decide", "R-1", "approve", "--as", "service:billing-agent")
    assert refused.returncode == 2 and "only people decide" in refused.stderr
    assert api.cli("claim", "R-1", "--as", "service:billing-agent").returncode == 2
    assert api.cli("reassign", "R-1", "--to", "service:billing-agent", "--as", "erin").returncode == 2
    assert api.baton.engine.get_run("R-1").status == "waiting"
    refusals = [e for e in api.baton.service.approvals.trace(_caller(api, token), "R-1")["entries"]
                if e["kind"] == "refused"]
    assert refusals and refusals[0]["actor"] == "service:billing-agent"


def _caller(api: Api, token: Any) -> Any:
    return api.baton.service.approvals.authenticate(token.token)


def test_a_token_acting_as_a_person_is_held_to_the_four_eyes_rule(test_api: Api) -> None:
    api = test_api
    token = api.token("bobs-agent", "bob", "agent-refund")
    with api.client(token) as client:
        run = client.start("agent-refund", {"customer": "C-1", "amount": 30})
        gate = api.gate_message("R-1")
        api.baton.driver.click(user=BOB, action_id="gate.decide.approve", channel=PAYMENTS,
                               ts=gate.ts)
        api.baton.settle()
        assert client.get(run).state == "pending"
        assert any("four-eyes" in str(e) for e in api.baton.ephemerals(BOB))
        api.baton.driver.click(user=CAROL, action_id="gate.decide.approve", channel=PAYMENTS,
                               ts=gate.ts)
        run = client.wait(run, timeout=20)
        assert run.approved and run.deciders == ["Carol Diaz"]


def test_the_same_idempotency_key_gives_one_run(test_api: Api) -> None:
    api = test_api
    token = api.token("refunds", "service:billing-agent", "agent-refund")
    other = api.token("other", "service:billing-agent", "agent-refund")
    request = {"customer": "C-1", "amount": 30}
    with api.client(token) as client, api.client(other) as second:
        runs = []
        threads = [threading.Thread(target=lambda: runs.append(
            client.start("agent-refund", request, idempotency_key="refund-77")))
            for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(runs) == 8 and len({r.id for r in runs}) == 1
        # keys are per token: another token's same key is another request
        assert second.start("agent-refund", request, idempotency_key="refund-77").id != runs[0].id
    with api.baton.engine.db.read() as s:
        from storage.models import Run
        assert len(s.exec(select(Run)).all()) == 2


def test_the_token_never_reaches_a_log_or_the_trace(api: Api) -> None:
    token = api.token("billing-bot", "service:billing-agent", "vendor-payment-api")
    structlog.reset_defaults()  # the command above set the level to warning
    with structlog.testing.capture_logs() as logs, api.client(token) as client:
        client.start("vendor-payment-api", {"vendor": "ACME", "amount": 20000})
        with pytest.raises(NotFound):
            client.get("R-9")
        bad = api.client(token.token[:-1] + "x")
        with pytest.raises(Unauthorized):
            bad.get("R-1")
        bad.close()
        trace = client.trace("R-1")
    assert logs and token.token not in repr(logs) and token.token[:-1] not in repr(logs)
    assert token.token not in repr(trace)
    assert any(entry["event"] == "api_refused" and "R-9" in entry["why"] for entry in logs)
