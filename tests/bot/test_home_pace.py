"""A person's App Home is published at most once a second (bot.pace): changes that come
closer together wait for the next publish, which shows them all."""

import json
from itertools import pairwise

from bot.pace import HOME_EVERY
from tests.bot.conftest import ALICE, BOB, PAYMENTS, Baton


def publishes(baton: Baton, user: str) -> list:  # type: ignore[type-arg]
    return [c for c in baton.slack.calls_to("views.publish", ok=True) if c.args.get("user_id") == user]


def test_a_burst_of_changes_to_a_home_is_published_once_a_second_and_shows_them_all(
        make_baton) -> None:  # type: ignore[no-untyped-def]
    baton: Baton = make_baton(home_every=HOME_EVERY)  # the product's pace, not the tests'
    def start(amount: int) -> None:
        baton.driver.slash_command(f"run vendor-payment vendor=ACME amount={amount}", user=ALICE,
                                   channel=PAYMENTS)

    start(20001)  # a gate for Bob: his home is published
    baton.settle()
    assert len(publishes(baton, BOB)) == 1
    for amount in range(20002, 20007):  # five more at once, each opened by its own request
        start(amount)
    baton.settle()
    assert [baton.engine.get_run(f"R-{n}").status for n in range(1, 7)] == ["waiting"] * 6
    home = json.dumps(baton.slack.workspace.home(BOB).blocks)
    assert "Waiting for you (6)" in home and all(f"R-{n}" in home for n in range(1, 7))

    sent = publishes(baton, BOB)
    # each publish waited a second after the one before; changes in between went together
    assert len(sent) >= 2
    gaps = [later.at - earlier.at for earlier, later in pairwise(sent)]
    assert min(gaps) >= HOME_EVERY * 0.95, gaps  # the emulator's wall clock, not ours
    # the last publish rendered the state it went with: every change up to then
    assert json.dumps(sent[-1].args["view"]).count("gate.decide.approve") == 6

    baton.driver.slash_command("stop R-6", user=ALICE, channel=PAYMENTS)  # a later change
    baton.settle()
    assert len(publishes(baton, BOB)) == len(sent) + 1
    assert "Waiting for you (5)" in json.dumps(baton.slack.workspace.home(BOB).blocks)
