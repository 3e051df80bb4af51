"""At the edge: forged or stale requests, Slack misbehaving, every shape of typed argument."""

import json
import time

import pytest
from sqlmodel import col, select

from bot.arguments import ArgumentError, parse, split_words, unslack
from sandbox import Signing
from storage.models import Run, SlackOutbox
from tests.bot.conftest import ALICE, BOB, PAYMENTS, Baton


def runs(baton: Baton) -> list[Run]:
    with baton.engine.db.read() as s:
        return list(s.exec(select(Run)))


def test_bad_or_stale_signatures_get_401_and_change_nothing(baton: Baton) -> None:
    wrong = baton.driver.slash_command("run vendor-payment vendor=ACME amount=5000", user=ALICE,
                                       channel=PAYMENTS, signing=Signing(secret="not-the-secret"))
    stale = baton.driver.slash_command("run vendor-payment vendor=ACME amount=5000", user=ALICE,
                                       channel=PAYMENTS,
                                       signing=Signing(timestamp=int(time.time()) - 6 * 60))
    assert (wrong.status, stale.status) == (401, 401)
    baton.settle()
    assert runs(baton) == [] and baton.slack.calls_to("chat.postMessage") == []


def test_slack_rate_limiting_and_a_500_lose_nothing_and_keep_thread_order(baton: Baton) -> None:
    baton.slack.faults.next("chat.postMessage", status=429, retry_after=1)
    baton.slack.faults.next("chat.postMessage", status=500)
    reply = baton.driver.slash_command("run vendor-payment vendor=ACME amount=20000", user=ALICE,
                                       channel=PAYMENTS)
    # Acknowledged while Slack misbehaves: no post has got through yet when the answer comes
    # (the first retry waits for Retry-After), so the answer did not wait for one.
    assert reply.status == 200
    assert baton.slack.calls_to("chat.postMessage", ok=True) == []
    baton.settle(timeout=20)
    posts = baton.slack.calls_to("chat.postMessage")
    assert [c.status for c in posts][:2] == [429, 500]
    card = baton.run_card()
    replies = baton.thread(card)
    assert len(replies) == 1 and "Approve vendor payment?" in json.dumps(replies[0].blocks)
    assert len(baton.channel()) == 1  # the card once, no duplicates
    with baton.engine.db.read() as s:
        statuses = [o.status for o in s.exec(select(SlackOutbox).order_by(col(SlackOutbox.id)))]
    assert set(statuses) <= {"sent", "superseded"}


def test_a_dropped_connection_is_retried(make_baton) -> None:  # type: ignore[no-untyped-def]
    # a dropped call is in doubt for three client timeouts before the sender looks for it
    baton: Baton = make_baton(slack_timeout=2.0)
    baton.slack.faults.next("chat.postMessage", drop=True)
    baton.driver.slash_command("run vendor-payment vendor=ACME amount=5000", user=ALICE,
                               channel=PAYMENTS)
    baton.settle(timeout=20)
    assert next(c.status for c in baton.slack.calls_to("chat.postMessage")) == 0  # dropped
    assert len([m for m in baton.channel() if m.text.startswith("R-1")]) == 1


def test_a_timeout_after_slack_took_the_message_does_not_post_twice(make_baton) -> None:  # type: ignore[no-untyped-def]
    """Slack stored the card but answered too late: before posting again the sender looks
    for the message it may already have posted (its metadata carries the outbox row id)."""
    baton: Baton = make_baton(slack_timeout=0.3)
    baton.slack.faults.next("chat.postMessage", delay=0.8)  # slow, then succeeds
    baton.driver.slash_command("run vendor-payment vendor=ACME amount=5000", user=ALICE,
                               channel=PAYMENTS)
    baton.settle(timeout=20)
    cards = [m for m in baton.channel() if m.text.startswith("R-1")]
    assert len(cards) == 1
    assert baton.slack.calls_to("conversations.history")  # it looked before posting again
    replies = baton.thread(cards[0])
    assert len(replies) == 1 and "Done" in json.dumps(replies[0].blocks)


def test_requests_that_are_not_slacks_are_refused(baton: Baton) -> None:
    import httpx

    with httpx.Client(trust_env=False) as http:
        big = http.post(f"{baton.url}/slack/events", content=b"x" * 2_000_000,
                        headers={"content-type": "application/x-www-form-urlencoded"})
        typed = http.post(f"{baton.url}/slack/events", content=b"<xml/>",
                          headers={"content-type": "application/xml"})
        health = http.get(f"{baton.url}/healthz")
    assert (big.status_code, typed.status_code, health.status_code) == (413, 415, 200)


# -- what people type -------------------------------------------------------------------------
@pytest.mark.parametrize(("typed", "words"), [
    ('run vendor-payment vendor=ACME amount=20000', ["run", "vendor-payment", "vendor=ACME", "amount=20000"]),
    ('run f note="two words"', ["run", "f", "note=two words"]),
    ("run f note='single quoted'", ["run", "f", "note=single quoted"]),
    ("run f note=“curly quotes”", ["run", "f", "note=curly quotes"]),
    ("run f note=‘curly single’", ["run", "f", "note=curly single"]),
    ('run f expr=a=b=c', ["run", "f", "expr=a=b=c"]),
    ('run f note=', ["run", "f", "note="]),
    ('run f note=""', ["run", "f", "note="]),
    ('run f vendor=Müller-Lüdenscheidt ✓ 日本', ["run", "f", "vendor=Müller-Lüdenscheidt", "✓", "日本"]),
    ('run   f\tnote="a \\"quoted\\" word"', ["run", "f", 'note=a "quoted" word']),
])
def test_splitting(typed: str, words: list[str]) -> None:
    assert split_words(typed) == words


def test_unterminated_quote_is_refused_with_a_message() -> None:
    with pytest.raises(ArgumentError, match="missing closing quote"):
        split_words('run f note="oops')


def test_slack_entities_and_mentions_come_back_as_typed() -> None:
    assert unslack("a &lt;b&gt; &amp;amp; <@U0BOB0001|bob> <#C0PAY|payments>") == \
        "a <b> &amp; @U0BOB0001 #C0PAY"


def test_assignments_options_and_words() -> None:
    parsed = parse(["--since", "7d", "vendor=ACME", "extra"], options=("since",))
    assert (parsed.assignments, parsed.words, parsed.options) == (
        {"vendor": "ACME"}, ["extra"], {"since": "7d"})
    with pytest.raises(ArgumentError, match="unknown option --bogus"):
        parse(["--bogus", "x"])
    with pytest.raises(ArgumentError, match="'amount' is given twice"):
        parse(["amount=1", "amount=2"])
    with pytest.raises(ArgumentError, match="not a valid input name"):
        parse(["a-b=1"])


@pytest.mark.parametrize(("text", "message"), [
    ("run", "say which flow to run; flows: agent-action, release-review, support-triage, vendor-payment"),
    ("run vendor-paymnt vendor=ACME", "unknown flow 'vendor-paymnt'. Did you mean 'vendor-payment'?"),
    ("run vendor-payment vendor=ACME", "missing required input 'amount'"),
    ("run vendor-payment vendor=ACME amount=lots", "amount: expected a number"),
    ("run vendor-payment vendor=ACME amount=20000 colour=red", "unknown input 'colour'"),
    ("run vendor-payment vendor=ACME amount=1 please", "'please' is not key=value"),
    ('run vendor-payment vendor="ACME amount=1', "missing closing quote"),
    ("frobnicate", "\u201cfrobnicate\u201d is not a Baton command"),
])
def test_bad_commands_get_an_ephemeral_naming_the_problem(baton: Baton, text: str, message: str) -> None:
    reply = baton.driver.slash_command(text, user=ALICE, channel=PAYMENTS)
    assert reply.status == 200
    body = reply.json()
    assert body["response_type"] == "ephemeral"
    assert message in json.dumps(body, ensure_ascii=False)
    assert runs(baton) == []


def test_odd_but_valid_arguments_reach_the_run(baton: Baton) -> None:
    baton.driver.slash_command('run vendor-payment vendor=“Café & Co <Ltd>” amount=5000 note=',
                               user=BOB, channel=PAYMENTS)
    baton.settle()
    (run,) = runs(baton)
    assert run.inputs == {"vendor": "Café & Co <Ltd>", "amount": 5000.0, "note": ""}


def test_a_listener_that_raises_answers_slack_without_a_500() -> None:
    """The last line of defence (bot.app.on_listener_error), under a bolt app of its own with
    a listener that fails the way a bug would: a slash command is told, anything else gets
    an empty 200, never bolt's 500."""
    from slack_bolt import App, BoltRequest
    from slack_bolt.authorization import AuthorizeResult

    from bot.app import on_listener_error

    app = App(signing_secret="", request_verification_enabled=False,
              authorize=lambda **_: AuthorizeResult(enterprise_id=None, team_id="T1",
                                                    bot_token="xoxb-1", bot_user_id="U0BOT"),
              process_before_response=True)
    app.error(on_listener_error)

    @app.command("/baton")
    def fails(ack: object, body: dict) -> None:
        raise RuntimeError("a bug")

    @app.action("gate.claim")
    def fails_too(ack: object, body: dict) -> None:
        raise RuntimeError("another bug")

    command = app.dispatch(BoltRequest(body={"command": "/baton", "text": "status",
                                             "user_id": ALICE, "team_id": "T1"},
                                       mode="socket_mode"))
    assert command.status == 200
    answer = json.loads(command.body)
    assert answer["response_type"] == "ephemeral" and "error on its side" in json.dumps(answer)
    click = app.dispatch(BoltRequest(body={"type": "block_actions", "user": {"id": ALICE},
                                           "team": {"id": "T1"},
                                           "actions": [{"action_id": "gate.claim"}]},
                                     mode="socket_mode"))
    assert click.status == 200 and click.body == ""
