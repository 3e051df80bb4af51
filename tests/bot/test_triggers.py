"""Event-driven starts (SPEC 2): a signed webhook POST, and a schedule."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from bot.webhooks import sign, sign_v2
from orchestrator.errors import FlowError
from orchestrator.loader import load_flow, load_org
from orchestrator.triggers import Schedules
from storage.models import Run
from tests.bot.conftest import Baton
from tests.conftest import EXAMPLE_FLOWS, TEST_FLOWS

SECRET = "hook-secret-for-tests-32-bytes-long-at-least"


def post(baton: Baton, flow: str, body: dict, *, secret: str = SECRET, ts: int | None = None,
         key: str | None = None, content_type: str = "application/json") -> httpx.Response:
    raw = json.dumps(body).encode()
    ts = int(time.time()) if ts is None else ts
    headers = {"content-type": content_type, "x-baton-timestamp": str(ts),
               "x-baton-signature": sign(secret, ts, raw)}
    if key:  # a key counts only when the signature covers it: v2
        headers["idempotency-key"] = key
        headers["x-baton-signature"] = sign_v2(secret, ts, flow, raw, key)
    with httpx.Client(trust_env=False) as http:
        return http.post(f"{baton.url}/hooks/{flow}", content=raw, headers=headers)


def runs(baton: Baton) -> list[Run]:
    with baton.engine.db.read() as s:
        return list(s.exec(select(Run)))


def test_a_signed_webhook_starts_a_run_and_a_retry_with_its_key_does_not(
        make_baton, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("BATON_HOOK_SECRET_TEST", SECRET)
    baton: Baton = make_baton(TEST_FLOWS)
    body = {"inputs": {"service": "payments-api", "version": "2.4.1"}}
    first = post(baton, "hooked", body, key="pipeline-981")
    assert first.status_code == 202 and first.json()["run"] == "R-1"
    again = post(baton, "hooked", body, key="pipeline-981")  # the CI system retried
    assert again.status_code == 202 and again.json()["run"] == "R-1"
    baton.settle()
    (run,) = runs(baton)
    assert run.requester == "grace" and run.origin == {"kind": "webhook", "flow": "hooked"}
    assert baton.run_card().text.startswith("R-1")  # it shows up in Slack like any run


def test_webhooks_refuse_what_is_not_signed_or_not_valid(
        make_baton, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    baton: Baton = make_baton(TEST_FLOWS)
    body = {"inputs": {"service": "api", "version": "1"}}
    not_configured = post(baton, "hooked", body)
    assert not_configured.status_code == 503
    assert "BATON_HOOK_SECRET_TEST is not set on the Baton server" in not_configured.json()["error"]
    monkeypatch.setenv("BATON_HOOK_SECRET_TEST", SECRET)
    assert post(baton, "hooked", body, secret="wrong").status_code == 401
    assert post(baton, "hooked", body, ts=int(time.time()) - 600).status_code == 401
    assert post(baton, "hooked", body, content_type="text/plain").status_code == 415
    assert post(baton, "escalating", body).status_code == 404  # no webhook trigger there
    assert post(baton, "nope", body).status_code == 404
    bad = post(baton, "hooked", {"inputs": {"service": "api"}})
    assert bad.status_code == 400 and "missing required input 'version'" in bad.json()["error"]
    assert runs(baton) == []


def test_a_schedule_starts_one_run_per_firing_however_many_replicas_fire(
        make_baton) -> None:  # type: ignore[no-untyped-def]
    baton: Baton = make_baton(TEST_FLOWS)
    schedules = baton.service.schedules
    (job,) = [j for j in schedules.scheduler.get_jobs() if j.id == "schedule:hooked:0"]
    assert "day_of_week='mon'" in str(job.trigger) and str(job.trigger.timezone) == "Europe/Paris"
    monday = datetime(2026, 1, 5, 8, 0, 12, tzinfo=UTC)
    other_replica = Schedules(baton.engine, schedules.scheduler)
    refs = [schedules.fire("hooked", 0, monday),
            other_replica.fire("hooked", 0, monday + timedelta(seconds=20))]  # the same minute
    assert refs == ["R-1", "R-1"]
    assert schedules.fire("hooked", 0, monday + timedelta(days=7)) == "R-2"
    first = min(runs(baton), key=lambda r: r.id or 0)
    assert first.inputs == {"service": "weekly-report", "version": "1"}
    assert first.origin["kind"] == "schedule" and first.requester == "grace"


@pytest.mark.parametrize(("trigger", "message"), [
    ('schedule: [{cron: "61 * * * *", requester: grace}]', "is not a crontab schedule"),
    ('schedule: [{cron: "0 9 * * *", timezone: Mars/Base, requester: grace}]', "unknown time zone"),
    ('schedule: [{cron: "0 9 * * *", requester: "role:on-call"}]', "a run is started by one person"),
    ('schedule: [{cron: "0 9 * * *", requester: grace, inputs: {colour: red}}]', "unknown input 'colour'"),
    ("webhook: {secret_env: lowercase, requester: grace}", "expected an environment variable name"),
    ("webhook: {secret_env: HOME, requester: grace}", "named BATON_HOOK_SECRET or "
                                                      "BATON_HOOK_SECRET_<NAME>"),
])
def test_triggers_are_validated(tmp_path: Path, trigger: str, message: str) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("name: t\nsteps: [{agent: a}]\n"
                    "agents: {a: {kind: rules, rules: [{when: 'true', verdict: ok}]}}\n"
                    f"triggers:\n  {trigger}\n")
    with pytest.raises(FlowError, match=message):
        load_flow(path, load_org(EXAMPLE_FLOWS / "org.yaml"))
