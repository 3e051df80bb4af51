"""What is private stays private (issue 24, item 5; issue 21, item 11), through the real
endpoint: `/baton stats` and its chart go to the asker alone unless `--share`; a full trace
goes to the asker by DM, and into a channel only with `--share` from the run's requester,
its approvers or an admin; `/metrics` answers only the bearer of BATON_METRICS_TOKEN when
one is set."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.bot.conftest import ALICE, BOB, PAYMENTS, Baton
from tests.figures import Figures

pytestmark = pytest.mark.reliability(
    item="13", promise="What is private stays private: stats and full traces go to the asker "
                          "alone unless shared on purpose; /metrics can require a bearer token")

GRACE = "U0GRACE01"  # the release manager: no part in a vendor payment


@pytest.fixture(name="baton")
def examples_baton(make_baton) -> Baton:  # type: ignore[no-untyped-def]
    """Baton over the shipped flows and org file."""
    return make_baton()


def approved_run(baton: Baton) -> None:
    baton.driver.slash_command("run vendor-payment vendor=ACME amount=20000", user=ALICE,
                               channel=PAYMENTS)
    baton.settle()
    gate = baton.gate_message()
    baton.driver.click(user=BOB, action_id="gate.decide.approve", channel=PAYMENTS, ts=gate.ts)
    baton.submit(BOB, {"reason": "Invoice matches PO 4471"})
    baton.settle()


def files_in(baton: Baton, channel: str) -> list[str]:
    """Names of the files shared in `channel` (messages and thread replies)."""
    found = []
    for message in baton.slack.workspace.messages(channel):
        found += [f.get("name") for f in message.files if isinstance(f, dict)]
    return sorted(found)


def dm_of(baton: Baton, user: str) -> str:
    channel = baton.slack.workspace.dm_of(user)
    assert channel is not None, f"no DM with {user}"
    return channel.id


def test_stats_answer_privately_chart_included_unless_shared(baton: Baton, figures: Figures) -> None:
    approved_run(baton)
    reply = baton.driver.slash_command("stats", user=ALICE, channel=PAYMENTS)
    figures.add("requests_sent")
    assert reply.json()["response_type"] == "ephemeral"
    assert "For you alone" in json.dumps(reply.json())
    baton.settle()
    assert files_in(baton, PAYMENTS) == []  # the chart did not go to the channel
    assert files_in(baton, dm_of(baton, ALICE)) == ["baton-stats.png"]
    shared = baton.driver.slash_command("stats vendor-payment --share", user=ALICE, channel=PAYMENTS)
    figures.add("requests_sent")
    assert shared.json()["response_type"] == "in_channel"
    baton.settle()
    assert files_in(baton, PAYMENTS) == ["baton-stats.png"]
    mention = baton.driver.mention("stats", user=BOB, channel=PAYMENTS)
    figures.add("requests_sent")
    assert mention.status == 200
    baton.settle()
    assert files_in(baton, PAYMENTS) == ["baton-stats.png"]  # Bob's chart went to Bob
    assert files_in(baton, dm_of(baton, BOB)) == ["baton-stats.png"]
    bad = baton.driver.slash_command("stats --share=no", user=ALICE, channel=PAYMENTS)
    assert "--share takes no value" in bad.body


def test_a_full_trace_goes_to_the_asker_unless_shared_by_someone_it_concerns(
        baton: Baton, figures: Figures) -> None:
    approved_run(baton)
    traced = baton.driver.slash_command("trace R-1 full", user=GRACE, channel=PAYMENTS)
    figures.add("requests_sent")
    assert traced.json()["response_type"] == "ephemeral"
    assert "comes to you alone, by DM" in json.dumps(traced.json())
    baton.settle()
    assert files_in(baton, PAYMENTS) == []
    assert files_in(baton, dm_of(baton, GRACE)) == ["R-1-trace.json", "R-1-trace.md"]
    # Grace is neither R-1's requester, nor one who could decide it, nor an admin
    refused = baton.driver.slash_command("trace R-1 full --share", user=GRACE, channel=PAYMENTS)
    figures.add("requests_sent")
    figures.add("refusals")
    assert "only R-1's requester, its approvers or an admin" in refused.body
    baton.settle()
    assert files_in(baton, PAYMENTS) == []
    shared = baton.driver.slash_command("trace R-1 full --share", user=ALICE, channel=PAYMENTS)
    figures.add("requests_sent")
    assert shared.json()["response_type"] == "in_channel"
    baton.settle()
    assert files_in(baton, PAYMENTS) == ["R-1-trace.json", "R-1-trace.md"]
    assert "--share goes with a full trace" in baton.driver.slash_command(
        "trace R-1 --share", user=ALICE, channel=PAYMENTS).body


def test_metrics_answer_only_the_bearer_of_the_token(make_baton, figures: Figures) -> None:  # type: ignore[no-untyped-def]
    token = "metrics-token-0123456789abcdef"
    baton: Baton = make_baton(BATON_METRICS_TOKEN=token)
    url = f"{baton.url}/metrics"
    with httpx.Client(trust_env=False) as http:
        for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"},
                        {"Authorization": f"Basic {token}"}, {"Authorization": token},
                        {"Authorization": f"Bearer {token}x"}, {"Authorization": "Bearer"}):
            refused = http.get(url, headers=headers)
            figures.add("requests_sent")
            assert refused.status_code == 401 and "baton_" not in refused.text, headers
            assert refused.headers["www-authenticate"].startswith("Bearer")
            figures.add("refusals")
        allowed = http.get(url, headers={"Authorization": f"Bearer {token}"})
        assert allowed.status_code == 200 and "baton_runs" in allowed.text
        assert http.get(f"{baton.url}/healthz").status_code == 200  # health stays open


def test_a_short_metrics_token_is_refused_at_start() -> None:
    from pydantic import ValidationError

    from orchestrator.settings import Settings

    with pytest.raises(ValidationError, match="at least 16"):
        Settings(BATON_METRICS_TOKEN="short")


@pytest.mark.parametrize("url", [
    "postgresql+psycopg://baton_owner:hunter2-db-password@127.0.0.1:1/baton_prod",
    "sqlite:///{tmp}/private-folder/baton.db",
])
def test_health_says_only_whether_the_database_answers(url: str, tmp_path, figures: Figures) -> None:  # type: ignore[no-untyped-def]
    """/healthz is open to anyone who can reach the port; it answered with the driver's
    error, naming the database's host, port and user (or its file)."""
    from slack_bolt import App
    from structlog.testing import capture_logs

    from bot.http import http_app
    from sandbox import LoopbackServer
    from storage.engine import Database

    db = Database(url.format(tmp=tmp_path))
    app = App(signing_secret="s" * 32, token="xoxb-0", token_verification_enabled=False)
    server = LoopbackServer(http_app(app, db)).start()
    try:
        with capture_logs() as logs, httpx.Client(trust_env=False) as http:
            answer = http.get(f"{server.url}/healthz")
    finally:
        server.stop()
        db.dispose()
    figures.add("requests_sent")
    assert answer.status_code == 503 and answer.json()["ok"] is False
    for secret in ("127.0.0.1", "baton_owner", "baton_prod", "hunter2", "psycopg", "sqlite",
                   "private-folder", str(tmp_path), "port"):
        assert secret not in answer.text, (secret, answer.text)
    assert "the server's log says why" in answer.json()["database"]
    (logged,) = [e for e in logs if e["event"] == "healthz_database_unreachable"]
    assert logged["error"]  # the operator still learns what is wrong


def test_who_may_share_a_full_trace_is_decided_on_the_person_not_how_they_are_named(
        baton: Baton, figures: Figures) -> None:
    """Entitlement goes by the person the Slack id maps to: the approver and the admin may
    post R-1's full trace, a member of the approvers' Slack group who was not named on the
    gate may not, nor a Slack user the org file does not know, however `--share` is spelled."""
    from tests.bot.conftest import DAVE, ERIN

    approved_run(baton)
    stranger = "U0STRANGE1"
    baton.slack.workspace.add_user("stranger", id=stranger)
    for user, text in ((DAVE, "trace R-1 full --share"), (GRACE, "trace r-1 FULL --SHARE"),
                       (GRACE, "trace R-0001 full --share"), (stranger, "trace R-1 full --share")):
        refused = baton.driver.slash_command(text, user=user, channel=PAYMENTS)
        figures.add("requests_sent")
        figures.add("refusals")
        assert "only R-1's requester, its approvers or an admin" in refused.body, (user, refused.body)
    baton.settle()
    assert files_in(baton, PAYMENTS) == []
    for user in (BOB, ERIN):  # the approver who decided, the admin
        shared = baton.driver.slash_command("trace R-1 full --share", user=user, channel=PAYMENTS)
        figures.add("requests_sent")
        assert shared.json()["response_type"] == "in_channel", (user, shared.body)
    baton.settle()
    assert files_in(baton, PAYMENTS) == ["R-1-trace.json", "R-1-trace.json", "R-1-trace.md",
                                         "R-1-trace.md"]
