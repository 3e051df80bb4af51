"""Hostile text (issue 8, item 5): what people type and what agents say reaches Slack
literally. Mentions, broadcasts, links and formatting stay text; control, invisible and
direction-override characters and invalid UTF-8 never reach a reader; 10,000 characters
never break a message. Checked in every message, modal and view the bot sends, and in
every answer to a slash command, over one run that goes through all of them."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from bot.blocks import MAX_FALLBACK
from orchestrator.clock import FakeClock
from sandbox.blockkit import block_errors
from sandbox.driver import Delivery
from tests.bot.conftest import Baton
from tests.figures import Figures
from tests.reliability.conftest import (
    ALICE,
    BOB,
    DAVE,
    GRACE,
    PAYMENTS,
    sent_surfaces,
    surface_problems,
    text_objects,
)

pytestmark = pytest.mark.reliability(
    item="5", promise="Text from agents or users cannot ping @channel or break a message")

# What a person (or a model) might write. ZQX marks it, to find where it is shown.
MENTIONS = ("<!channel> <!here> <!everyone> <@U0EVIL001> <@U0EVIL002|the boss> "
            "<!subteam^S0EVIL001|@finance> <#C0EVIL001|general> <http://evil.example|click> "
            "<https://evil.example> <mailto:ceo@evil.example|mail> <!date^1|x>")
FORMATTING = "*ZQX bold* _italic_ ~strike~ `code` ```pre``` \n> quote :skull: &amp; &lt;!channel&gt;"
INVISIBLE = ("\x00\x07\x1b[31mred\x1b[0m \x7f\x85 \u202eexe.txt\u202c \u2066iso\u2069 \u200e\u200f"
             " zero\u200bwidth\u200c\u2060\ufeff \ufff9")
HOSTILE = f"ZQX {MENTIONS} {FORMATTING} {INVISIBLE} ZQX"
# Invalid UTF-8 as Python carries it (surrogate escapes): it arrives in Slack's JSON as \udcff.
BROKEN = "ZQX bytes \udcff\udcfe\ud800 end"
LONG = (HOSTILE + " ") * (10_000 // (len(HOSTILE) + 1)) + "x" * (10_000 % (len(HOSTILE) + 1))
# Tokens that would notify, link or pretend to be a date if they reached Slack unescaped.
LIVE = ("<!channel", "<!here", "<!everyone", "<@U0EVIL", "<!subteam", "<#C0EVIL", "<http", "<mailto",
        "<!date")
BIDI = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C)}


def unreadable(text: str) -> list[str]:
    """Characters no reader should get: controls, invalid UTF-8, invisible and direction marks."""
    bad = []
    for ch in text:
        category = unicodedata.category(ch)
        if ch in BIDI or category in ("Cs", "Co", "Cn") or (category == "Cc" and ch not in "\n\t") \
                or (category == "Cf" and ch != "\u200d"):
            bad.append(f"U+{ord(ch):04X}")
    return bad


def problems_in(where: str, message: dict[str, Any]) -> Iterator[str]:
    """What is wrong with one message or view, as a reader would meet it."""
    blocks = message.get("blocks") or []
    if message.get("type") not in ("modal", "home"):
        yield from (f"{where}: {p}" for p in block_errors(blocks))
    texts = [(t["type"], t["text"]) for t in text_objects(blocks)]
    for name in ("title", "submit", "close"):
        if isinstance(message.get(name), dict):
            texts.append(("plain_text", message[name]["text"]))
    top = message.get("text")
    if isinstance(top, str):
        # Without blocks the top-level text is what is shown, as mrkdwn.
        texts.append(("mrkdwn" if not blocks else "fallback", top))
        if len(top) > MAX_FALLBACK:
            yield f"{where}: top-level text of {len(top)} characters"
    for kind, text in texts:
        live = [token for token in LIVE if token in text]
        if live:
            yield f"{where}: {kind} text carries {live}: {text[:120]!r}"
        bad = unreadable(text)
        if bad:
            yield f"{where}: {kind} text carries {sorted(set(bad))}: {text[:80]!r}"
        if kind == "mrkdwn" and "zqx" in text.lower():
            yield f"{where}: untrusted text formatted as mrkdwn: {text[:120]!r}"


def everything_said(baton: Baton, answers: list[Delivery]) -> list[tuple[str, dict[str, Any]]]:
    """Every message and view the bot sent, and every answer it gave to a slash command."""
    said = [(method, body) for method, body in sent_surfaces(baton)]
    for answer in answers:
        body = answer.json()
        if isinstance(body, dict):
            said.append(("slash command answer", body))
    return said


def literal(said: list[tuple[str, dict[str, Any]]], fragment: str) -> bool:
    """Whether `fragment` is shown somewhere, as text (escaped the way Slack shows it)."""
    return any(fragment in t["text"] for _, body in said for t in text_objects(body.get("blocks") or []))


def test_hostile_text_everywhere_is_shown_literally_and_fits(make_reliable: Any, figures: Figures,
                                                             ledger: Any) -> None:
    clock = FakeClock()
    baton: Baton = make_reliable(clock=clock)
    answers: list[Delivery] = []

    def command(text: str, user: str = ALICE) -> Delivery:
        answer = baton.driver.slash_command(text, user=user, channel=PAYMENTS)
        assert answer.status == 200, answer.body
        answers.append(answer)
        figures.add("requests_sent")
        return answer

    # 1. a run whose input (and so the echo agent's signal) is 10,000 hostile characters
    command(f'run hostile-text note="{LONG}"')
    baton.settle()
    # 2. the agents disagree: the conflict message; Dave follows the echo, with a hostile reason
    conflict = baton.gate_message()
    baton.driver.click(user=DAVE, action_id="gate.decide.follow_echo", channel=PAYMENTS, ts=conflict.ts)
    baton.submit(DAVE, {"reason": HOSTILE})
    baton.settle()
    # 3. the gate waits; 30 minutes later it escalates to Dave by DM
    clock.advance(timedelta(minutes=31))
    baton.engine.fire_due_timers()
    baton.settle()
    assert baton.dms(DAVE), "the escalation DM"
    # 4. someone who may not decide is refused; Bob rejects with 10,000 hostile characters
    gate = next(m for m in baton.thread(baton.run_card()) if "Check the note" in m.text)
    baton.driver.click(user=GRACE, action_id="gate.decide.approve", channel=PAYMENTS, ts=gate.ts)
    baton.driver.click(user=BOB, action_id="gate.decide.reject", channel=PAYMENTS, ts=gate.ts)
    baton.submit(BOB, {"reason": LONG})
    baton.settle()
    assert baton.engine.get_run("R-1").status == "rejected"
    assert ledger() == []
    # 5. a second run, asked for in a DM, carrying invalid UTF-8 in its input and its reasons
    baton.driver.direct_message(f'run hostile-text note="{BROKEN} {HOSTILE}"', user=ALICE)
    baton.settle()
    second = baton.engine.get_run("R-2")
    assert second.status == "waiting", second.reason
    assert "\ufffd" in second.inputs["note"]  # shown as a decoder shows bad bytes
    conflict = baton.gate_message("R-2", channel=baton.slack.workspace.dm_of(ALICE).id)
    baton.driver.click(user=DAVE, action_id="gate.decide.follow_calm", channel=conflict.channel,
                       ts=conflict.ts)
    baton.submit(DAVE, {"reason": BROKEN})
    baton.settle()
    assert "\ufffd" in json.dumps(baton.slack.workspace.message(conflict.channel, conflict.ts).blocks,
                                   ensure_ascii=False)
    # 6. R-2 is stopped with a hostile reason; then what people ask for: the trace, status,
    # stats, the App Home, and commands that are refused
    baton.driver.direct_message(f"stop R-2 {HOSTILE} {BROKEN}", user=ALICE)  # JSON: can carry it
    baton.settle()
    assert baton.engine.get_run("R-2").status == "stopped"
    for text in ("trace R-1", "trace R-2", "status R-1", "status", "stats", "stats hostile-text",
                 f"run hostile-text {HOSTILE}", f"run {MENTIONS}", f"trace {MENTIONS}",
                 f"status {FORMATTING}", f"stats {MENTIONS}", f"ZQX{FORMATTING}", "ZQX*bold*`x`",
                 f"run hostile-text note={HOSTILE} note=again"):
        command(text)
    baton.driver.open_home(user=BOB)
    baton.driver.open_home(user=ALICE)
    baton.driver.direct_message(f"ZQX*bold* {MENTIONS}", user=ALICE)
    baton.settle()

    said = everything_said(baton, answers)
    kinds = {method for method, _ in said}
    assert {"chat.postMessage", "chat.update", "views.open", "views.publish", "response_url",
            "slash command answer"} <= kinds, kinds
    figures.add("messages_checked", len(said))
    problems = [p for method, body in said for p in problems_in(method, body)]
    assert problems == [], "\n".join(problems[:20])
    assert surface_problems(baton) == []
    # Shown, not dropped: the input, the agent's summary and the reasons are there, escaped.
    for fragment in ("&lt;!channel&gt; &lt;!here&gt;", "&lt;@U0EVIL002|the boss&gt;",
                     "&lt;http://evil.example|click&gt;", "*ZQX bold* _italic_", "exe.txt"):
        assert literal(said, fragment), fragment
    card = json.dumps(baton.run_card().blocks, ensure_ascii=False)
    assert "note: ZQX &lt;!channel&gt;" in card and "…" in card  # clipped, visibly
    decided = json.dumps(baton.slack.workspace.message(PAYMENTS, gate.ts).blocks, ensure_ascii=False)
    assert "*Rejected* by <@U0BOB0001>" in decided and "“ZQX &lt;!channel&gt;" in decided


def test_what_baton_tells_a_late_click_shows_hostile_text_literally(reliable: Baton,
                                                                     figures: Figures) -> None:
    """Baton's answer to a click is its own sentence, but it may quote what someone else
    wrote: a click that arrives after the run was stopped is told why it was stopped, in the
    words of whoever stopped it. Those words reach the clicker as text, never as mrkdwn
    (formatting, a bare link or a channel name Slack would turn into one)."""
    driver = reliable.driver
    driver.slash_command("run one-approval amount=100", user=ALICE, channel=PAYMENTS)
    reliable.settle()
    gate = reliable.gate_message()
    # Bob's click leaves before the run is stopped, and arrives after (or he clicks on a copy
    # of the gate that Slack has not updated yet)
    late = driver.prepare_click(user=BOB, action_id="gate.decide.approve", channel=PAYMENTS,
                                ts=gate.ts)
    stop = f"stop R-1 {HOSTILE} see https://evil.example/login and #general"
    assert driver.slash_command(stop, user=ALICE, channel=PAYMENTS).status == 200
    reliable.settle()
    assert driver.send(late).status == 200
    figures.add("requests_sent", 3)
    figures.add("faults_injected")
    reliable.settle()
    told = [e for e in reliable.ephemerals(BOB) if "already finished" in json.dumps(e.blocks)]
    assert told, "Bob is told the run had finished"
    said = sent_surfaces(reliable)
    problems = [p for method, body in said for p in problems_in(method, body)]
    assert problems == [], "\n".join(problems[:20])
