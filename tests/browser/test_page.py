"""The page itself: errors reach the person, hostile text stays text, DMs and mentions
reach the bot, and the call log shows what the bot did."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import expect

from tests.browser.conftest import Slack
from tests.conftest import TEST_FLOWS


def test_an_unknown_flow_shows_the_bots_ephemeral_error(slack: Callable[..., Slack]) -> None:
    s = slack()
    s.open("alice")
    s.type("/baton run no-such-flow amount=5")
    error = s.messages.locator(".msg.ephemeral").last
    expect(error).to_contain_text("That did not work")
    expect(error).to_contain_text("no-such-flow")
    expect(error).to_contain_text("Only visible to you")
    s.shot("unknown-flow")
    error.locator("[data-dismiss]").click()
    expect(s.messages.locator(".msg.ephemeral")).to_have_count(0)

    # a command Slack does not know never reaches the bot: the page says so
    s.page.locator("#compose").fill("/deploy now")
    s.page.locator("#compose").press("Enter")
    expect(s.page.locator("#toast")).to_contain_text("/deploy is not a valid command")
    assert s.errors == []


def test_hostile_text_is_shown_as_text_and_runs_no_script(slack: Callable[..., Slack]) -> None:
    s = slack(TEST_FLOWS)
    s.open("alice")
    s.type('/baton run hostile note="<img src=x onerror=window.pwned=1> <script>window.pwned=2</script> '
           '<!channel> \u202egnp.exe"')
    s.open_thread("R-1")
    gate = s.message("Check", s.thread)
    expect(gate).to_contain_text("<!channel> look at this <@U0ERIN001> <http://evil.example|click>")
    card = s.message("R-1")
    expect(card).to_contain_text("<img src=x onerror=window.pwned=1>")
    expect(card).to_contain_text("<script>window.pwned=2</script>")
    s.shot("hostile")
    assert s.page.evaluate("window.pwned") is None
    # nothing became markup: no image, no script, no link and no @channel mention in messages
    for selector in ("#messages img", "#thread-body img", "#messages script", "#thread-body a",
                     "#thread-body .mention.special", "#messages .mention.special"):
        expect(s.page.locator(selector)).to_have_count(0)
    assert s.errors == []


def test_a_dm_and_a_mention_reach_the_bot_and_the_call_log_shows_its_calls(
        slack: Callable[..., Slack]) -> None:
    s = slack()
    s.open("alice", "dm")
    s.type("flows")
    reply = s.message("vendor-payment")
    expect(reply).to_contain_text("baton")
    s.go("payments")
    s.type("@baton help")
    asked = s.message("help")
    expect(asked.locator(".mention")).to_have_text("@Baton")
    s.open_thread("help")  # the bot answers in the mention's thread
    expect(s.message("Baton commands", s.thread)).to_be_visible()
    s.shot("mention")

    calls = s.page.context.new_page()
    calls.goto(f"{s.dev.url}_calls")
    rows = calls.locator("#calls .call")
    expect(rows.filter(has_text="chat.postMessage").first).to_be_visible()
    expect(rows.filter(has_text="alice mentions the app").first).to_be_visible()
    calls.locator("#filter").fill("auth.test")
    expect(calls.locator("#calls .call:not([hidden])").first).to_contain_text("auth.test")
    rows.filter(has_text="auth.test").first.locator("summary").click()
    expect(rows.filter(has_text="auth.test").first.locator("pre").last).to_contain_text('"ok": true')
    calls.screenshot(path=str(s.shot("mention").with_name(f"{s.name}-calls.png")))
    assert s.errors == []


def test_stats_answer_privately_and_the_chart_shows_as_an_image_in_the_dm(
        slack: Callable[..., Slack]) -> None:
    s = slack()
    s.open("alice")
    s.type("/baton stats")
    expect(s.message("Baton stats")).to_contain_text("For you alone")
    expect(s.messages.locator("img")).to_have_count(0)  # nothing for the channel to see
    s.go("dm")
    chart = s.messages.locator("figure.file.image img")
    expect(chart).to_be_visible()
    # the image loaded: its bytes were served and decoded (a broken image has no width)
    s.page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=chart.element_handle())
    s.shot("stats-chart")
    s.go("payments")
    s.type("/baton stats --share")
    expect(s.messages.locator("figure.file.image img")).to_be_visible()
    assert s.errors == []
