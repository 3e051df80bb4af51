"""Hostile text from the approval API (issue 21 item 6; the API of SPEC section 7): what an
agent outside Baton sends (a run's inputs and summary, an action's result or error, the
reason it cancels, an external signal's summary, rationale and evidence) reaches Slack
literally, like text people type: no mention, broadcast, link or formatting, no invisible
character, within Block Kit's limits. Every message, update, modal and view the bot sends
over the whole life of the runs is checked, and the answers to `/baton trace` and
`/baton status` about them."""

from __future__ import annotations

import pytest

from tests.api.conftest import Api, api, make_api, test_api  # noqa: F401  (fixtures)
from tests.bot.conftest import CAROL, PAYMENTS
from tests.figures import Figures
from tests.reliability.conftest import surface_problems
from tests.reliability.test_hostile_text import HOSTILE, everything_said, literal, problems_in

pytestmark = pytest.mark.reliability(
    item="5", promise="Text from agents or users cannot ping @channel or break a message")

# Within the API's own limits (an input of at most 200 characters, and so on)
SHORT = HOSTILE[:190]
FRANK = "U0FRANK01"


def test_what_an_api_caller_sends_reaches_slack_as_text(api: Api,  # noqa: F811
                                                        figures: Figures) -> None:
    billing = api.token("billing-bot", "service:billing-agent", "vendor-payment-api")
    answers = []
    with api.client(billing) as client:
        client.start("vendor-payment-api", {"vendor": SHORT, "amount": 20000,
                                            "invoice": HOSTILE[:100]}, summary=HOSTILE)
        gate = api.gate_message("R-1")
        api.baton.driver.click(user=CAROL, action_id="gate.decide.approve", channel=PAYMENTS,
                               ts=gate.ts)
        api.submit(CAROL, {"reason": "checked with the vendor"})
        run = client.wait("R-1", timeout=30)
        client.report(run, error=HOSTILE)  # the action failed, saying so in hostile words
        client.start("vendor-payment-api", {"vendor": SHORT, "amount": 30000}, summary=HOSTILE)
        api.gate_message("R-2")
        client.cancel("R-2", reason=HOSTILE)
        figures.add("requests_sent", 6)
    api.baton.settle()
    for text in ("trace R-1", "trace R-2", "status R-1", "status R-2"):
        answers.append(api.baton.driver.slash_command(text, user=CAROL, channel=PAYMENTS))
    api.baton.settle()
    said = everything_said(api.baton, answers)
    figures.add("messages_checked", len(said))
    problems = [p for method, body in said for p in problems_in(method, body)]
    assert problems == [], "\n".join(problems[:20])
    assert surface_problems(api.baton) == []
    assert literal(said, "&lt;!channel&gt; &lt;!here&gt;")  # shown, not dropped


def test_an_external_signal_reaches_slack_as_text(test_api: Api,  # noqa: F811
                                                  figures: Figures) -> None:
    frank = test_api.token("frank-analyst", "frank", "external-signals")
    answers = []
    with test_api.client(frank) as client:
        run = client.start("external-signals", {})
        client.signal(run, "analyst", "block", severity="high", summary=HOSTILE,
                      rationale=HOSTILE * 3, evidence=[HOSTILE, SHORT])
        client.signal(run, "bureau", "warn", summary=HOSTILE, evidence=[HOSTILE])
        figures.add("requests_sent", 3)
    baton = test_api.baton
    baton.settle()
    for text in ("trace R-1", "status R-1"):
        answers.append(baton.driver.slash_command(text, user=FRANK, channel=PAYMENTS))
    baton.settle()
    said = everything_said(baton, answers)
    figures.add("messages_checked", len(said))
    problems = [p for method, body in said for p in problems_in(method, body)]
    assert problems == [], "\n".join(problems[:20])
    assert surface_problems(baton) == []
