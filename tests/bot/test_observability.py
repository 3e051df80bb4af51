"""Logs and metrics: what an operator sees of Baton in production."""

import io
import json

import httpx
import structlog
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from orchestrator.logs import configure_logging
from tests.bot.conftest import ALICE, BOB, PAYMENTS, Baton


def test_metrics_endpoint_serves_the_kpis_in_prometheus_format(baton: Baton) -> None:
    baton.driver.slash_command("run vendor-payment vendor=ACME amount=20000", user=ALICE, channel=PAYMENTS)
    baton.driver.slash_command("run vendor-payment vendor=ACME amount=5000", user=ALICE, channel=PAYMENTS)
    baton.settle()
    with httpx.Client(trust_env=False) as http:
        response = http.get(f"{baton.url}/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(response.text) for s in family.samples}
    assert samples[("baton_runs", (("status", "succeeded"), ("window", "7d")))] == 1
    assert samples[("baton_runs", (("status", "waiting"), ("window", "7d")))] == 1
    assert samples[("baton_gates_open", ())] == 1
    assert samples[("baton_human_intervention_ratio", (("window", "7d"),))] == 0.5


def test_log_lines_carry_run_gate_and_slack_request(baton: Baton) -> None:
    baton.driver.slash_command("run vendor-payment vendor=ACME amount=20000", user=ALICE, channel=PAYMENTS)
    baton.settle()
    gate = baton.gate_message()
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        baton.driver.click(user=BOB, action_id="gate.decide.reject", channel=PAYMENTS, ts=gate.ts)
        baton.submit(BOB, {"reason": "duplicate"})
        baton.settle()
    decision = next(e for e in logs if e["event"] == "decision")
    assert (decision["run"], decision["gate"], decision["by"]) == ("R-1", "approve", "bob")
    assert decision["slack_user"] == BOB and decision["slack_kind"] == "view_submission"
    finished = next(e for e in logs if e["event"] == "run_finished")
    assert finished["run"] == "R-1" and finished["status"] == "rejected"


def test_json_logs_never_contain_secrets() -> None:
    stream = io.StringIO()
    configure_logging("json", "info", stream=stream)
    try:
        log = structlog.get_logger("test")
        log.info("connecting", slack_bot_token="xoxb-secret", signing_secret="s3cret",
                 api_key="sk-123", run="R-1")
        line = json.loads(stream.getvalue().splitlines()[-1])
    finally:
        configure_logging("console", "warning")
    assert line["run"] == "R-1" and line["event"] == "connecting" and line["level"] == "info"
    assert "xoxb-secret" not in stream.getvalue() and "s3cret" not in stream.getvalue()
    assert line["slack_bot_token"] == "[redacted]"
