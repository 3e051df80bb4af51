"""One problem, one message, written for the surface it is read on: every refusal `/baton`
gives (through signed requests, as Slack sends them) states its problem once, offers at most
one usage line and that one with the slash, names no command-line command, and shows no
literal backticks in plain text."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.bot.conftest import ALICE, BOB, PAYMENTS, Baton

BAD = [
    "run",
    "run vendor-paymnt vendor=ACME",
    "run vendor-payment vendor=ACME",
    "run vendor-payment vendor=ACME amount=abc",
    "run vendor-payment amount=abc",
    "run vendor-payment vendor=ACME amount=20000 colour=red",
    "run vendor-payment vendor=ACME amount=1 please",
    'run vendor-payment vendor="ACME amount=1',
    "run vendor-payment vendor=ACME amount=1 amount=2",
    "run vendor-payment vendor=ACME amount=1 --bogus x",
    "run support-triage service=api severity=sev9",
    "status R-99",
    "status R-99999999999999999999999",
    "status banana",
    "trace R-99",
    "trace --since forever",
    "trace --decided-by @nobody-here",
    "trace --flow nope",
    "stats nope",
    "stats --since 3 weeks",
    "stop",
    "stop R-99",
    "halt",
    "resume",
    "frobnicate",
]
# a command of the `baton` program, which a person in Slack cannot run
CLI_COMMAND = re.compile(r"(?<![/\w@-])baton (run|status|trace|stats|stop|halt|resume|flows|decide|claim|"
                         r"snooze|reassign|signal|tick|serve|dev|db)\b")


def _texts(blocks: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Every text object in the blocks, as (type, text)."""
    found: list[tuple[str, str]] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if value.get("type") in ("plain_text", "mrkdwn") and isinstance(value.get("text"), str):
                found.append((value["type"], value["text"]))
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(blocks)
    return found


@pytest.mark.parametrize("typed", BAD)
def test_each_refusal_says_its_problem_once_and_for_slack(baton: Baton, typed: str) -> None:
    reply = baton.driver.slash_command(typed, user=BOB, channel=PAYMENTS)
    body = reply.json()
    assert reply.status == 200 and body["response_type"] == "ephemeral"
    texts = _texts(body.get("blocks", []))
    assert texts, body
    everything = "\n".join(text for _, text in texts) + "\n" + body["text"]
    for kind, text in texts:
        assert not (kind == "plain_text" and "`" in text), f"literal backticks: {text!r}"
        assert not CLI_COMMAND.search(text), f"a command-line command in Slack: {text!r}"
    usages = re.findall(r"(?im)^.*\busage\b.*$", "\n".join(text for _, text in texts))
    assert len(usages) <= 1, usages
    assert all("/baton " in line for line in usages), usages
    lines = [line.strip() for _, text in texts for line in text.split("\n") if line.strip()]
    assert len(lines) == len(set(lines)), f"said twice: {lines}"
    assert "runs" not in json.dumps(body) or "R-" not in typed or "/baton status" in everything


def test_a_value_of_the_wrong_type_is_not_also_reported_missing(baton: Baton) -> None:
    body = json.dumps(baton.driver.slash_command("run vendor-payment vendor=ACME amount=abc",
                                                 user=ALICE, channel=PAYMENTS).json(), ensure_ascii=False)
    assert "amount: expected a number" in body
    assert "missing required input 'amount'" not in body
    assert "Usage: `/baton run vendor-payment vendor=TEXT amount=NUMBER [note=TEXT]`" in body
