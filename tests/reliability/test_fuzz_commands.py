"""Slash-command arguments fuzzed (issue 8, item 6): any text after `/baton` (quotes of
every style, `=`, options, Slack's entities and mentions, any Unicode) gets an answer that
fits in Slack, a refusal says what was wrong, and a refused command changes nothing.
In process through `Commands.handle` for many inputs, and through the real HTTP endpoint
for a sample."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func
from sqlmodel import select

from bot.commands import Commands, Invocation, Reply
from orchestrator.bootstrap import open_engine
from orchestrator.clock import FakeClock
from orchestrator.engine import Engine
from sandbox.blockkit import block_errors
from storage.models import TraceEntry
from tests.bot.conftest import Baton
from tests.conftest import make_settings
from tests.figures import Figures
from tests.reliability.conftest import (
    ALICE,
    FLOWS,
    FUZZ,
    MODULES,
    ORG_FILE,
    PAYMENTS,
    TABLES,
    footprint,
)

pytestmark = pytest.mark.reliability(
    item="6", promise="Bad input (unknown flow, wrong arguments) gets a clear error naming the "
                      "problem, and changes nothing")

TOKENS = ["run", "status", "trace", "stats", "stop", "halt", "resume", "flows", "help", "RUN",
          "one-approval", "two-approvals", "hostile-text", "allowlist", "vendor-payment", "R-1",
          "R-2", "r-1", "R-0", "R-99999999999999999999", "R-", "R--1", "full", "amount=100",
          "amount=", "amount=-1", "amount=1e999", "amount=NaN", "amount=0x10", "amount=1,000",
          "note=", "note=x", "=x", "a=b=c", "--since", "--since=7d", "--flow", "--decided-by",
          "--bogus", "--", "7d", "0s", "-1d", "banana", "99999999999999999999d", "1e400d", "inf",
          "nan", "@bob", "@nobody", "<@U0BOB0001|bob>", "<@U0BOB0001>", "<!channel>", "<!here>",
          "<!subteam^S0X|@team>", "<#C0PAYMENTS1|payments>", "<http://evil.example|x>", "&lt;",
          "&gt;", "&amp;", "&amp;lt;", "payload", "payload=x", '"', "'", "\u201c", "\u201d",
          "\u2018", "\u2019", "\u201e", "\u00ab", "\u00bb", "\\", '\\"', "*b*", "`c`", "\u202e",
          "\u200b", "\x00", "\x1b", "\ufffd", "\ud7ff", "日本", "ℝ", "𝔘", "🙂", " ", "\t", "\n"]
SEPARATORS = st.sampled_from([" ", "  ", "\t", "\n", "", "=", '"', "'"])


@st.composite
def typed(draw: st.DrawFn) -> str:
    """What someone might type after /baton."""
    parts = draw(st.lists(st.one_of(st.sampled_from(TOKENS), st.text(max_size=8)), max_size=8))
    text = ""
    for part in parts:
        text += part + draw(SEPARATORS)
    return text


# -- the grammar: every sub-command with its arguments and options, right and wrong --------
REFS = st.sampled_from(["R-1", "R-2", "r-1", "R-0", "R-", "R-x", "R--1", "R-99999999999999999999",
                        "1", "#1", "R-1.5"])
SINCE = st.sampled_from(["7d", "12h", "30m", "0s", "1w", "-1d", "banana", "1e400d", "nan", "",
                         "99999999999999999999d", "7 d", "P7D"])
PEOPLE = st.sampled_from(["@bob", "bob", "<@U0BOB0001>", "<@U0BOB0001|bob>", "U0BOB0001", "nobody",
                          "@nobody", "<@U0NOBODY1>", "user:bob", "role:approver", "<!channel>",
                          "@", ""])
FLOW_NAMES = st.sampled_from(["one-approval", "two-approvals", "hostile-text", "allowlist",
                              "vendor-payment", "nope", "ONE-APPROVAL", "../org", "org", ""])
VALUES = st.one_of(st.sampled_from(["100", "0", "-1", "1e999", "NaN", "inf", "12345.678", "1,000",
                                    "0x10", "", "abc", '"two words"', "<!channel>", "\u202e"]),
                   st.text(max_size=12))
ASSIGNMENTS = st.lists(st.builds(lambda k, v: f"{k}={v}",
                                 st.sampled_from(["amount", "note", "vendor", "x", "Amount", "_"]),
                                 VALUES), max_size=4)


def option(name: str, value: st.SearchStrategy[str]) -> st.SearchStrategy[list[str]]:
    """`--name value`, `--name=value`, or the option without its value."""
    return st.one_of(st.builds(lambda v: [f"--{name}", v], value),
                     st.builds(lambda v: [f"--{name}={v}"], value), st.just([f"--{name}"]))


def words(*parts: st.SearchStrategy[list[str]]) -> st.SearchStrategy[list[str]]:
    """Some of `parts`, in any order, each maybe twice."""
    return st.lists(st.one_of(*parts), max_size=4).map(lambda found: [w for p in found for w in p])


ONE = st.just
SUB_COMMANDS: dict[str, st.SearchStrategy[list[str]]] = {
    "run": st.builds(lambda f, a: [f, *a], FLOW_NAMES, ASSIGNMENTS),
    "status": words(REFS.map(lambda r: [r])),
    "trace": words(REFS.map(lambda r: [r]), ONE(["full"]), ONE(["--share"]), option("flow", FLOW_NAMES),
                   option("since", SINCE), option("decided-by", PEOPLE), option("bogus", VALUES)),
    "stats": words(FLOW_NAMES.map(lambda f: [f]), option("since", SINCE), ONE(["--share"]),
                   option("flow", FLOW_NAMES)),
    "stop": st.builds(lambda r, why: [r, *why], REFS, st.lists(VALUES, max_size=2)),
    "halt": st.lists(VALUES, max_size=3),
    "resume": st.lists(VALUES, max_size=1),
    "flows": st.lists(VALUES, max_size=1),
    "help": st.lists(st.sampled_from(list(TOKENS[:10])), max_size=1),
}


@st.composite
def grammar(draw: st.DrawFn) -> str:
    """A sub-command with arguments shaped like its own, sometimes mistyped."""
    verb = draw(st.sampled_from(sorted(SUB_COMMANDS)))
    args = draw(SUB_COMMANDS[verb])
    spelled = draw(st.sampled_from([verb, verb.upper(), verb.capitalize(), verb + "s"]))
    parts = [spelled, *args]
    if draw(st.booleans()):  # and one stray token somewhere
        parts.insert(draw(st.integers(0, len(parts))), draw(st.sampled_from(TOKENS)))
    return " ".join(f'"{p}"' if " " in p else p for p in parts)


COMMANDS = st.one_of(typed(), st.text(max_size=60), grammar())
REFUSED = ("Error:", "Unknown command")
# Commands that may change something when they are not refused.
CHANGING = ("stop", "halt", "resume", "run")


# An absolute path with two parts at least (what hide_paths shortens); `/baton` is fine.
ABSOLUTE_PATH = re.compile(r"(?<![\w:/.~-])(?:/[\w.@+-]+){2,}")


def refused(reply: Reply) -> bool:
    return reply.text.startswith(REFUSED)


# What Baton says when a command hits a bug on its side: no input may lead there.
BUG = "error on its side"


def check_reply(reply: Reply) -> None:
    body = reply.payload()
    shown = json.dumps(body, ensure_ascii=False)
    assert BUG not in shown, body
    assert not ABSOLUTE_PATH.search(shown), ABSOLUTE_PATH.search(shown)
    assert isinstance(body["text"], str) and body["text"].strip(), body
    assert len(body["text"]) <= 3000
    assert block_errors(body.get("blocks", [])) == [], body
    if refused(reply):
        # the refusal says what is wrong: a message beyond the generic heading
        said = " ".join(str(b) for b in body.get("blocks", []))
        assert len(said) > 80, said


def rows(engine: Engine) -> dict[str, int]:
    """Rows per table; refusals the trace records for the audit (a non-admin's `halt`) are
    not changes, they are the record that nothing changed."""
    with engine.db.read() as s:
        found = {name: int(s.exec(select(func.count()).select_from(model)).one())
                 for name, model in TABLES.items()}
        found["trace_entry"] -= int(s.exec(select(func.count()).select_from(TraceEntry)
                                           .where(TraceEntry.kind == "refused")).one())
    return found


@pytest.fixture
def commands(database_url: str, ledger: Callable) -> Iterator[tuple[Engine, Commands, list[Any]]]:
    engine = open_engine(make_settings(database_url, FLOWS, BATON_ORG=ORG_FILE,
                                       BATON_PYTHON_MODULES=MODULES), clock=FakeClock())
    engine.start_run("one-approval", {"amount": 100}, "alice")
    uploads: list[Any] = []
    try:
        yield engine, Commands(engine, upload=lambda *a, **kw: uploads.append(a)), uploads
    finally:
        engine.shutdown()
        engine.db.dispose()


@settings(FUZZ, max_examples=400)
@given(text=COMMANDS, source=st.sampled_from(["command", "dm", "mention"]))
@example(text="stats --since 99999999999999999999d", source="command")
@example(text="stats --since banana", source="command")
@example(text="trace --since 1e400d", source="command")
@example(text="trace --since -1d --flow nope", source="command")
@example(text="trace --decided-by <@U0NOBODY1>", source="command")
@example(text="status R-99999999999999999999", source="command")
@example(text="trace R-99999999999999999999", source="command")
@example(text="stop R-99999999999999999999", source="command")
@example(text='run one-approval amount="1e999"', source="dm")
@example(text="run \x00 payload", source="command")
@example(text="status R-" + "1" * 5000, source="command")  # more digits than int() reads
@example(text="trace R-" + "0" * 30 + "7", source="dm")
@example(text="stop " + "9" * 4400, source="mention")
def test_any_command_text_is_answered_and_a_refusal_changes_nothing(
        commands: tuple[Engine, Commands, list[Any]], text: str, source: str,
        figures: Figures) -> None:
    engine, handler, _ = commands
    who = Invocation(user="alice", slack_user=ALICE, channel=PAYMENTS, source=source,
                     now=engine.clock.now())
    before = rows(engine)
    reply, follow = handler.handle(text, who)
    figures.add("requests_sent")
    figures.add("examples")
    check_reply(reply)
    if refused(reply):
        figures.add("refusals")
        assert follow is None
        assert rows(engine) == before, text
        return
    verb = text.split()[0].lower() if text.split() else ""
    if follow is not None and verb != "stats":  # stats' follow-up draws a chart: slow, no state
        problem = follow(f"fuzz:{figures.counts['examples']}")
        if problem is not None:
            check_reply(problem)
            assert refused(problem)
            figures.add("refusals")
    if not verb.startswith(CHANGING):
        assert rows(engine) == before, text


@settings(FUZZ, max_examples=40)
@given(text=typed())
@example(text="run one-approval note=payload amount=100")
@example(text="stats --since 99999999999999999999d")
@example(text='run one-approval amount=100 note="<!channel> *b*"')
def test_command_text_over_http_is_answered_and_a_refusal_changes_nothing(
        reliable: Baton, text: str, figures: Figures) -> None:
    reliable.settle()
    before = footprint(reliable)
    reply = reliable.driver.slash_command(text, user=ALICE, channel=PAYMENTS)  # validates blocks
    figures.add("requests_sent")
    figures.add("examples")
    assert reply.status == 200, (reply.status, reply.body)
    body = reply.json()
    assert isinstance(body, dict) and body.get("text"), reply.body
    reliable.settle()
    if str(body["text"]).startswith(REFUSED):
        figures.add("refusals")
        after = footprint(reliable)
        # only the ephemeral answer itself was added (the driver shows it, as Slack does), and
        # the request recorded in the inbox as handled (how a replay of it is recognised)
        kept = ("ephemerals", "slack_inbox")
        assert {k: v for k, v in after.items() if k not in kept} == \
            {k: v for k, v in before.items() if k not in kept}, text


@settings(FUZZ, max_examples=150)
@given(text=grammar())
@example(text="trace --decided-by nobody")
@example(text="trace --decided-by @nobody --since 7d --flow one-approval")
@example(text="stats one-approval --since banana --share")
@example(text="run ../org amount=1")
@example(text="stop R-1 because")
@example(text="halt drill")
@example(text="resume")
@example(text="status R-" + "1" * 5000)
def test_every_sub_command_and_option_over_http_is_answered_never_a_5xx(
        reliable: Baton, text: str, figures: Figures) -> None:
    """The grammar of `/baton`, every sub-command and option, signed and posted to the real
    endpoint: always a 200 with an answer that fits Slack and shows no server path."""
    figures.add("requests_sent")
    figures.add("examples")
    figures.add("fuzzed_requests")
    figures.add("server_errors", 0)  # recorded as 0 unless one happens
    reply = reliable.driver.slash_command(text, user=ALICE, channel=PAYMENTS)
    if reply.status >= 500:
        figures.add("server_errors")
    assert reply.status == 200, (text, reply.status, reply.body[:300])
    body = reply.json()
    assert isinstance(body, dict) and str(body.get("text", "")).strip(), reply.body
    assert not ABSOLUTE_PATH.search(reply.body), (text, ABSOLUTE_PATH.search(reply.body))
    assert BUG not in reply.body, (text, reply.body[:300])
    if str(body["text"]).startswith(REFUSED):
        figures.add("refusals")
    reliable.settle()
    for said in [c.args for c in reliable.slack.calls if c.method in (
            "response_url", "chat.postEphemeral", "chat.postMessage")]:
        assert not ABSOLUTE_PATH.search(json.dumps(said, ensure_ascii=False)), said
