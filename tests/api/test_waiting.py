"""A long poll holds no thread, returns as soon as the run needs its caller, and learns of
decisions made by another process from the database."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor

from tests.api.conftest import Api
from tests.bot.conftest import CAROL, PAYMENTS
from tests.bot.processes import eventually

WAITERS = 200


def test_a_wait_returns_the_approval_when_a_person_decides(api: Api) -> None:
    token = api.token("billing-bot", "service:billing-agent", "vendor-payment-api")
    with api.client(token) as client:
        run = client.start("vendor-payment-api", {"vendor": "ACME", "amount": 20000})
        assert client.wait(run, timeout=0.2).state == "pending"  # nothing yet: pending
        answers: list = []
        waiting = threading.Thread(target=lambda: answers.append(client.wait(run, timeout=60)))
        waiting.start()
        eventually(lambda: api.baton.service.approvals.watch.waiting == 1, timeout=30)
        gate = api.gate_message("R-1")
        api.baton.driver.click(user=CAROL, action_id="gate.decide.approve", channel=PAYMENTS,
                               ts=gate.ts)
        api.submit(CAROL, {"reason": "Fine"})
        waiting.join(60)
        (answer,) = answers
        assert answer.approved and answer.arguments == {"vendor": "ACME", "amount": 20000.0}
        assert answer.action["deadline"] and answer.approval.startswith("ap_")
        assert answer["gates"][0]["status"] == "decided"
        assert answer["decisions"][0]["by"]["name"] == "Carol Diaz"
        assert answer["decisions"][0]["reason"] == "Fine"
    assert api.baton.service.approvals.watch.waiting == 0


def test_a_decision_made_in_another_process_wakes_the_wait(api: Api) -> None:
    """`baton decide` on the command line commits through an engine of its own: the
    server's waiters hear of it from the event table, not from an in-process observer."""
    token = api.token("billing-bot", "service:billing-agent", "vendor-payment-api")
    with api.client(token) as client:
        run = client.start("vendor-payment-api", {"vendor": "ACME", "amount": 20000})
        api.gate_message("R-1")
        answers: list = []
        waiting = threading.Thread(target=lambda: answers.append(client.wait(run, timeout=60)))
        waiting.start()
        eventually(lambda: api.baton.service.approvals.watch.waiting == 1, timeout=30)
        decided = api.cli("decide", "R-1", "approve", "--as", "bob", "--reason", "From my terminal",
                          "--edit", "amount=12000")
        assert decided.returncode == 0, decided.stderr
        waiting.join(60)
        assert answers[0].approved and answers[0].arguments["amount"] == 12000.0


def test_two_hundred_waiters_hold_no_thread(api: Api) -> None:
    """Waiters from another process (so only the server's threads are counted here)."""
    token = api.token("billing-bot", "service:billing-agent", "vendor-payment-api")
    with api.client(token) as client:
        client.start("vendor-payment-api", {"vendor": "ACME", "amount": 20000})
        api.gate_message("R-1")
        # Warm the API's fixed pool up to its size (its threads start as load first needs
        # them, whatever the load); these client threads are gone before the count.
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda _: client.get("R-1"), range(64)))
    before = threading.active_count()
    script = textwrap.dedent(f"""
        import asyncio, json, httpx
        from baton_client import AsyncBaton

        async def main():
            limits = httpx.Limits(max_connections={WAITERS}, max_keepalive_connections={WAITERS})
            async with AsyncBaton({api.url!r}, {token.token!r},
                                  http=httpx.AsyncClient(limits=limits, timeout=90)) as baton:
                runs = await asyncio.gather(*(baton.wait("R-1", timeout=60)
                                              for _ in range({WAITERS})))
            print(json.dumps([r.state for r in runs]))

        asyncio.run(main())
    """)
    waiters = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        eventually(lambda: api.baton.service.approvals.watch.waiting == WAITERS, timeout=60)
        during = threading.active_count()
        decided = api.cli("decide", "R-1", "approve", "--as", "bob", "--reason", "ok")
        assert decided.returncode == 0, decided.stderr
        out, err = waiters.communicate(timeout=90)
    finally:
        if waiters.poll() is None:
            waiters.kill()
    assert waiters.returncode == 0, err
    assert json.loads(out) == ["approved"] * WAITERS
    assert during <= before + 2, f"{before} threads before, {during} with {WAITERS} waiters"
