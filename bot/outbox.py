"""Everything the bot tells Slack goes through this outbox.

Rows are written inside the transaction that made the change they report, and sent after
commit by `OutboxSender`, never inside a transaction. Delivery keeps order per lane (a
run's thread): a row waits while an earlier row of its lane is unsent. Lanes are sent side
by side (`lanes_at_once`), so one slow call or one busy thread does not hold up every other
run's messages; a message refers only to messages of its own lane. Slack's 429 is
retried after its `Retry-After`; 5xx, timeouts and dropped connections with exponential
backoff; a restart picks up where delivery stopped.

A row is marked `sending` before its HTTP call. If the process dies during the call, or
the call times out or loses its connection, Slack may or may not have taken it: the row
is *in doubt* (`sending` after a restart, `unsure` after a transport error). Before posting
such a message again, the sender looks in the channel or thread for the `metadata` it
attached (`baton_outbox` with the row id), so neither a crash nor a timeout posts twice.

A payload `{"render": NAME, ...}` is built just before it is sent, by the renderer
registered under NAME, from the database as it is then (App Home views: see
`SlackSink.refresh_home`).

Retries are bounded, so a call that can never succeed ends in `failed` (counted in
`/metrics`, logged as `slack_call_failed`, listed by `baton status`) and its lane moves on:
an error Slack does not call transient is tried `UNKNOWN_ERROR_ATTEMPTS` times, and nothing
is retried past `give_up_after` (a day: longer than Slack's outages). A reply to one person
(`bot.replies.Replies.tell`) says where it may go instead (`fallback`): a `response_url`
that expired (404, 410), is not Slack's, or keeps failing is answered by
`chat.postEphemeral`, and one that cannot be posted there by a DM. The row is rewritten in
place, keeping its place in its lane.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import httpx
import structlog
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import response_urls
from bot.pace import HOME_EVERY, Pace
from bot.response_urls import ResponseUrls
from bot.slack_calls import PERMANENT, RetryLater, SlackCalls, Transient, Undeliverable
from orchestrator.failpoints import crash_point
from orchestrator.owners import Owners
from orchestrator.wording import count, seconds
from orchestrator.workers import BackgroundLoop
from storage import slack
from storage.engine import Database
from storage.slack import OPEN, OutboxCall, Ref

log = structlog.get_logger("baton.outbox")

__all__ = ["OPEN", "OutboxSender", "Ref", "enqueue"]


class Made(NamedTuple):
    """A call Slack took, not yet marked sent."""

    row: OutboxCall
    response: dict[str, Any]

# An error code Slack answers that is neither known to be transient nor permanent: tried a
# few times, in case it is new and transient, then given up.
UNKNOWN_ERROR_ATTEMPTS = 5
# A response_url that answers 5xx or not at all: this many tries, then the reply goes by
# chat.postEphemeral or DM (the person is waiting; the URL dies after 30 minutes anyway).
RESPONSE_URL_ATTEMPTS = 3
GIVE_UP_AFTER = timedelta(days=1)
CLAIM = timedelta(seconds=60)  # longer than any Web API call's timeout


def enqueue(tx: Any, *, lane: str, method: str, payload: dict[str, Any],
            at: datetime, run_id: int | None = None, ref: str | None = None,
            thread_ref: str | None = None, target_ref: str | None = None,
            supersede: str | None = None) -> None:
    """Queue one Web API call in the caller's write transaction (`storage.slack.queue_call`)."""
    slack.queue_call(tx, {
        "run_id": run_id, "lane": lane, "method": method, "payload": payload, "ref": ref,
        "thread_ref": thread_ref, "target_ref": target_ref, "supersede": supersede,
        "created_at": at})


@dataclass
class Outcome:
    sent: int = 0
    failed: int = 0
    deferred: int = 0
    superseded: int = 0
    rerouted: int = 0  # sent another way at once (a dead response_url: postEphemeral, DM)

    @property
    def progressed(self) -> bool:
        """Rows left the queue (or changed course): there may be more behind them at once."""
        return bool(self.sent or self.failed or self.superseded or self.rerouted)

    def add(self, other: Outcome) -> None:
        for name in ("sent", "failed", "deferred", "superseded", "rerouted"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


class OutboxSender:
    """Delivers queued calls. `wake()` after a commit makes it look at once; it also polls,
    so rows written by other processes are sent too."""

    def __init__(self, db: Database, client: WebClient, clock: Any, *,
                 http_post: Callable[[str, dict[str, Any]], httpx.Response] | None = None,
                 response_urls: ResponseUrls | None = None,
                 poll: float = 1.0, max_backoff: float = 30.0, batch: int = 100,
                 doubt_wait: float | None = None, lanes_at_once: int = 4,
                 give_up_after: timedelta = GIVE_UP_AFTER,
                 home_every: float = HOME_EVERY) -> None:
        self.db = db
        self.client = client
        self.clock = clock
        self.calls = SlackCalls(db, client, http_post, response_urls)
        self.renderers = self.calls.renderers  # payloads built when sent, by name
        self.give_up_after = give_up_after
        self.max_backoff = max_backoff
        self.batch = batch
        # A call that timed out may still be running at Slack: look for its message only once
        # Slack has surely finished with it, or the look may come too early and post twice.
        self.doubt_wait = doubt_wait if doubt_wait is not None else max(
            5.0, 3 * float(getattr(client, "timeout", 10) or 10))
        self._loop = BackgroundLoop("baton-outbox", self._drain, poll)
        self._rng = random.Random()
        self._lock = threading.Lock()
        self.owners = Owners()
        self.owner = self.owners.take()  # replicas tell their claims apart by this
        # Slack answers a call in 100-300 ms: one lane after another, a burst of new gates
        # would reach Slack at a few messages a second.
        self.lanes_at_once = lanes_at_once
        self._senders: ThreadPoolExecutor | None = None
        self.homes = Pace(home_every)  # App Homes: at most one publish per person so often

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()
        if self._senders is not None:
            self._senders.shutdown(wait=True)
            self._senders = None

    def wake(self) -> None:
        self._loop.wake()

    # -- delivery -----------------------------------------------------------------------------
    def _drain(self) -> None:
        """One wake-up: rounds until a round moves nothing (a backlog bigger than a batch is
        sent at once, not one batch per poll)."""
        while self.deliver().progressed:
            pass

    def deliver(self) -> Outcome:
        """Send what is due, in order per lane. Safe to call from several threads."""
        with self._lock:
            return self._deliver()

    def _deliver(self) -> Outcome:
        outcome = Outcome()
        now = self.clock.now()
        with self.db.read() as s:
            rows = slack.open_calls(s, self.batch)
        replaced = self._supersede_within(rows)
        outcome.superseded = len(replaced)
        lanes: dict[str, list[OutboxCall]] = {}
        for row in rows:
            if row.id not in replaced:
                lanes.setdefault(row.lane, []).append(row)
        ended: list[tuple[Outcome, Made | None]] = []
        error: BaseException | None = None
        if len(lanes) <= 1 or self.lanes_at_once <= 1:
            for lane in lanes.values():
                ended.append(self._send_lane(lane, now))
        else:
            if self._senders is None:
                self._senders = ThreadPoolExecutor(self.lanes_at_once,
                                                   thread_name_prefix="baton-send")
            for future in [self._senders.submit(self._send_lane, lane, now)
                           for lane in lanes.values()]:
                try:
                    ended.append(future.result())
                except BaseException as exc:  # the other lanes' calls are still marked
                    error = error or exc
        # Each lane's last call Slack took, marked sent together: one transaction per round,
        # not one per lane. Until then it stays `sending` (in doubt after a crash, never
        # lost), and the next round reads the rows only after this.
        made = [last for _, last in ended if last is not None]
        if made:
            with self.db.writer() as w:
                for call in made:
                    slack.record_sent(w, call.row, call.response, self.clock.now())
        if error is not None:
            raise error
        for done, _ in ended:
            outcome.add(done)
        return outcome

    def _deliver_lane(self, rows: list[OutboxCall], now: datetime) -> Outcome:
        """One lane's rows, its last call Slack took marked sent too."""
        outcome, made = self._send_lane(rows, now)
        if made is not None:
            with self.db.writer() as w:
                slack.record_sent(w, made.row, made.response, self.clock.now())
        return outcome

    def _send_lane(self, rows: list[OutboxCall], now: datetime) -> tuple[Outcome, Made | None]:
        """One lane's rows, in order, until one of them has to wait. A call Slack took is
        marked sent in the transaction that claims the lane's next row (one transaction per
        call, not two); the lane's last is returned, for the round to mark with the other
        lanes' (it is marked here if the lane ends in an error). Until then it is
        `sending`, as it is during the call: a crash in between leaves it in doubt, never
        lost."""
        outcome = Outcome()
        made: Made | None = None
        try:
            for row in rows:
                if row.next_attempt_at is not None and row.next_attempt_at > now:
                    outcome.deferred += 1
                    break
                if row.method == "views.publish" and (wait := self.homes.wait(row.lane)) > 0:
                    self._loop.wake_after(wait)  # back when it may go, not at the next poll
                    outcome.deferred += 1  # still pending: later changes join it unqueued
                    break
                result, made = self._send_one(row, made)
                if result == "sent":
                    outcome.sent += 1
                    if row.method == "views.publish":
                        self.homes.went(row.lane)
                elif result == "failed":
                    outcome.failed += 1
                elif result == "superseded":
                    outcome.superseded += 1
                elif result == "rerouted":  # the same row, to be sent another way: next round
                    outcome.rerouted += 1
                    break
                elif result != "done":  # deferred, or another sender has it: the lane waits
                    outcome.deferred += 1
                    break
        except BaseException:
            if made is not None:
                with self.db.writer() as w:
                    slack.record_sent(w, made.row, made.response, self.clock.now())
            raise
        return outcome, made

    def _supersede_within(self, rows: list[OutboxCall]) -> set[int]:
        """Mark, in one statement, the rows of this batch that a newer row of the same batch
        replaces (a burst of App Home publishes for one person: only the newest is sent)."""
        newest: dict[str, int] = {}
        for row in rows:
            if row.supersede and row.id is not None:
                newest[row.supersede] = max(row.id, newest.get(row.supersede, row.id))
        replaced = {row.id for row in rows
                    if row.supersede and row.id is not None and row.id != newest[row.supersede]}
        if replaced:
            with self.db.writer() as w:
                slack.supersede_calls(w, replaced, self.clock.now())
        return replaced

    def _claimed_elsewhere(self, row: Any, now: datetime) -> bool:
        """Another live sender is making this call right now."""
        if row.status != "sending" or not row.claimed_by or row.claimed_by == self.owner:
            return False
        if row.claim_until is not None and row.claim_until <= now:
            return False
        return not self.owners.dead(row.claimed_by)

    def _send_one(self, row: OutboxCall, made: Made | None) -> tuple[str, Made | None]:
        """Claim `row` and make its call; first mark `made`, the lane's call before it, sent
        (in the same transaction). Returns what became of the row (sent | failed | deferred
        | superseded | busy: another sender has it | done: already sent) and the call made,
        which is not yet marked sent."""
        now = self.clock.now()
        with self.db.writer() as w:
            if made is not None:
                slack.record_sent(w, made.row, made.response, now)
            fresh = slack.lock_call(w, row.id)
            if fresh is None:
                return "busy", None
            if fresh.status not in OPEN:
                return "done", None
            if self._claimed_elsewhere(fresh, now):
                return "busy", None
            if row.supersede and slack.supersede_if_newer(w, row, now):
                return "superseded", None
            in_doubt = fresh.status in ("sending", "unsure")
            row.payload = fresh.payload  # a queued post may have been rewritten since the batch was read
            slack.claim_call(w, row.id, self.owner, now + CLAIM)
            refs = slack.refs_of(w, row)
        if refs is None:
            return self._defer(row, 1.0, "waiting for the message it refers to"), None
        if row.target_ref is not None and "target" not in refs:
            return self._fail(row, "the message to update was never sent"), None
        try:
            if in_doubt and row.method == "chat.postMessage":
                found = self.calls.find_sent(row, refs)
                if found is not None:
                    return "sent", Made(row, found)
            response = self.calls.make(row, refs)
            crash_point("message.sent")
        except Undeliverable as exc:
            return self._fall_back(row, str(exc)), None
        except RetryLater as exc:
            return self._retry(row, exc.delay, str(exc), exact=True), None
        except Transient as exc:
            return self._retry(row, self._backoff(row), str(exc)), None
        except SlackApiError as exc:
            error = str(exc.response.get("error", "")) if exc.response is not None else ""
            status = exc.response.status_code if exc.response is not None else 0
            if status == 429:
                retry_after = float(exc.response.headers.get("Retry-After", 1) or 1)
                return self._retry(row, retry_after, "rate limited (429)", exact=True), None
            if status >= 500 or error in ("fatal_error", "internal_error", "service_unavailable",
                                          "request_timeout", "ratelimited"):
                return self._retry(row, self._backoff(row), f"Slack {status} {error}"), None
            if error in PERMANENT or status in (400, 403, 404):
                return self._fall_back(row, f"{error or status}"), None
            return self._retry(row, self._backoff(row), f"Slack error {error or status}",
                               attempts=UNKNOWN_ERROR_ATTEMPTS), None
        except Exception as exc:  # timeouts, refused or dropped connections: maybe sent
            return self._retry(row, self._backoff(row), f"{type(exc).__name__}: {exc}",
                               unsure=True), None
        return "sent", Made(row, response)

    def _retry(self, row: OutboxCall, delay: float, reason: str, *, exact: bool = False,
               unsure: bool = False, attempts: int | None = None) -> str:
        """Try again after `delay`, unless the row has had its share of tries: a reply to a
        response_url then goes another way; anything else fails for good."""
        tried = row.attempts + 1  # this attempt's count was added in the database, not here
        age = self.clock.now() - row.created_at
        if row.method == "response_url" and (
                tried >= RESPONSE_URL_ATTEMPTS or age >= response_urls.LIFETIME):
            return self._fall_back(row, f"{reason} ({count(tried, 'attempt')})")
        if attempts is not None and tried >= attempts:
            return self._fail(row, f"{reason} ({count(tried, 'attempt')})")
        if age >= self.give_up_after:
            return self._fail(row, f"{reason} (still failing after {count(tried, 'attempt')} in "
                                   f"{seconds(age.total_seconds())})")
        return self._defer(row, delay, reason, exact=exact, unsure=unsure)

    def _fall_back(self, row: OutboxCall, reason: str) -> str:
        """A call that cannot succeed: sent the way its `fallback` says (a response_url's
        reply by postEphemeral, an ephemeral by DM), or failed for good if it has none."""
        payload = dict(row.payload)
        to = payload.pop("fallback", None)
        if not isinstance(to, dict) or not to.get("user"):
            return self._fail(row, reason)
        for key in ("url", "response_type", "replace_original", "delete_original", "channel",
                    "user"):
            payload.pop(key, None)
        if row.method == "response_url" and to.get("channel"):
            method = "chat.postEphemeral"
            payload.update(channel=to["channel"], user=to["user"], fallback={"user": to["user"]})
        else:
            method = "chat.postMessage"  # a DM: the channel named by the person's id
            payload.update(channel=to["user"])
        with self.db.writer() as w:
            if not slack.reroute_call(w, row.id, method, payload, f"{row.method}: {reason}"):
                return "done"
        log.warning("slack_call_rerouted", method=row.method, instead=method, lane=row.lane,
                    why=reason)
        return "rerouted"

    def _backoff(self, row: OutboxCall) -> float:
        base = min(self.max_backoff, 0.5 * 2 ** max(0, row.attempts))
        return base / 2 + self._rng.uniform(0, base / 2)

    def _defer(self, row: OutboxCall, delay: float, reason: str, *, exact: bool = False,
               unsure: bool = False) -> str:
        # once unsure, a row stays unsure until it is found or sent
        unsure = unsure or row.status == "unsure"
        if unsure:
            delay = max(delay, self.doubt_wait)
        with self.db.writer() as w:
            slack.defer_call(w, row.id, unsure=unsure,
                             until=self.clock.now() + timedelta(seconds=delay), reason=reason)
        log.info("slack_call_deferred", method=row.method, lane=row.lane, delay_s=round(delay, 3),
                 why=reason)
        return "deferred"

    def _fail(self, row: OutboxCall, reason: str) -> str:
        with self.db.writer() as w:
            slack.fail_call(w, row.id, reason, self.clock.now())
        log.warning("slack_call_failed", method=row.method, lane=row.lane, error=reason)
        return "failed"

    def drain(self, timeout: float = 10.0) -> bool:
        """Deliver until nothing is pending (for tests and shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.deliver()
            with self.db.read() as s:
                if not slack.any_open_call(s):
                    return True
            time.sleep(0.02)
        return False
