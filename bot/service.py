"""Baton as a long-running Slack service: the engine, its timers, the event pump that
turns domain events into Slack messages, the outbox sender, and the bolt app."""

from __future__ import annotations

import contextvars
import functools
import threading
from datetime import timedelta
from typing import Any

import httpx
import structlog
from slack_sdk import WebClient

from bot.app import BotIdentity, SlackBot, build_app
from bot.callbacks import CallbackSender, CallbackSink
from bot.directory import SlackDirectory
from bot.notifier import HOME, SlackSink
from bot.outbox import OutboxSender
from bot.pace import HOME_EVERY
from bot.response_urls import ResponseUrls
from bot.retention import Retention
from gates.callbacks import parse_allowlist
from orchestrator.approvals import ApprovalService
from orchestrator.bootstrap import open_engine
from orchestrator.clock import Clock, SystemClock
from orchestrator.events import Dispatcher, DomainEvent, Sinks
from orchestrator.settings import Settings
from orchestrator.timers import TimerService
from orchestrator.triggers import Schedules
from orchestrator.workers import BackgroundLoop, TrackingExecutor

log = structlog.get_logger("baton.service")


class EventPump:
    """Runs the dispatcher in its own thread; the engine wakes it after each commit (as an
    observer), and it polls for events other processes wrote."""

    def __init__(self, dispatcher: Dispatcher, poll: float = 1.0) -> None:
        self.dispatcher = dispatcher
        self._loop = BackgroundLoop("baton-events", self._drain, poll)
        self.start, self.stop = self._loop.start, self._loop.stop

    def _drain(self) -> None:
        while self.dispatcher.deliver_pending():
            pass

    def notify(self, event: DomainEvent) -> None:
        self._loop.wake()


def _post_json(url: str, payload: dict[str, Any]) -> httpx.Response:
    """POST a reply to a response_url (the outbox checked it is Slack's; no redirects)."""
    with httpx.Client(timeout=10, trust_env=False, follow_redirects=False) as http:
        return http.post(url, json=payload)


class BatonService:
    def __init__(self, settings: Settings, *, clock: Clock | None = None,
                 poll: float = 1.0, lease_ttl: timedelta | None = None,
                 slack_timeout: float = 10.0, home_every: float = HOME_EVERY) -> None:
        if not settings.slack_bot_token:
            raise ValueError("SLACK_BOT_TOKEN is not set")
        self.settings = settings
        self.clock = clock or SystemClock()
        self.engine = open_engine(settings, clock=self.clock, background=True, lease_ttl=lease_ttl)
        api = settings.slack_api_url or WebClient.BASE_URL
        token = settings.slack_bot_token
        self.client = WebClient(token=token, base_url=api, timeout=10)
        # Replies go to Slack's own response URLs only (and the emulator's, in the sandbox).
        self.response_urls = ResponseUrls(settings.slack_api_url)
        # The outbox does its own retrying (and checks before re-posting): no SDK retries.
        self.outbox = OutboxSender(self.engine.db, WebClient(token=token, base_url=api,
                                                             timeout=slack_timeout,
                                                             retry_handlers=[]),
                                   self.clock, http_post=_post_json,
                                   response_urls=self.response_urls, poll=poll,
                                   home_every=home_every)
        self.sink = SlackSink(self.engine.org, on_queued=self.outbox.wake)
        self.outbox.renderers[HOME] = self.sink.home_payload
        # Signed callbacks to API callers: queued beside the Slack messages, in the same
        # transaction as the event they report.
        hosts = parse_allowlist(settings.callback_hosts)
        self.callback_sender = CallbackSender(self.engine.db, self.clock, hosts, poll=poll)
        self.callbacks = CallbackSink(self.clock, on_queued=self.callback_sender.wake)
        self.pump = EventPump(Dispatcher(self.engine.db, Sinks(self.sink, self.callbacks),
                                         self.clock), poll=poll)
        self.engine.observers.append(self.pump)
        self.identity = BotIdentity(token)
        self.directory = SlackDirectory(self.engine.org, self.client)
        # Listeners only store and acknowledge; what a request asks for is done on this pool, so
        # a burst of clicks never queues acknowledgements behind decisions being recorded.
        self.work = TrackingExecutor(8, thread_name_prefix="baton-work")
        # Opening a modal after a click: a Web API call that must be made within the three
        # seconds the click's trigger lasts, so never queued behind the work above.
        self.prompt = TrackingExecutor(8, thread_name_prefix="baton-modal")
        self.bot = SlackBot(self.engine, self.sink, self.identity, self.outbox.wake,
                            self.response_urls,
                            later=functools.partial(self._hand, self.work),
                            soon=functools.partial(self._hand, self.prompt))
        self.retention = Retention(
            self.engine.db, self.clock,
            timedelta(days=settings.keep_delivered_days) if settings.keep_delivered_days else None)
        self.timers = TimerService(self.engine,
                                   sweep_every=timedelta(seconds=settings.timer_sweep_s),
                                   also=[self.bot.finish_abandoned])
        self.schedules = Schedules(self.engine, self.timers.scheduler)
        self.timers.also.append(self.schedules.sync)  # flow files may change while we run
        self.timers.also.append(self.retention.sweep)  # housekeeping last
        self.app = build_app(self.bot, self.client, settings.slack_signing_secret)
        # External agents' approvals (HTTP mode serves them under /api/v1).
        self.approvals = ApprovalService(self.engine, callback_hosts=hosts)
        self._learning: threading.Thread | None = None

    def log_setup(self) -> None:
        """Tell the operator, at start-up, which flows cannot run as the server is set up."""
        _, errors = self.engine.flows.load_all()
        for error in errors:
            log.warning("flow_invalid", error=str(error))
        for flow, problems in self.engine.setup_report().items():
            for problem in problems:
                log.warning("llm_setup_problem", flow=flow, agent=problem.agent,
                            problem=problem.problem)

    def start(self) -> None:
        self.log_setup()

        def learn() -> None:
            delay = 1.0
            while not self.identity.learn(self.client):
                threading.Event().wait(delay)
                delay = min(delay * 2, 60)

        self._learning = threading.Thread(target=learn, daemon=True, name="baton-auth")
        self._learning.start()
        self.directory.start()
        self.outbox.start()
        self.callback_sender.start()
        self.pump.start()
        self.timers.start()
        self.approvals.start()
        self.schedules.sync()
        self.engine.recover()
        self.bot.finish_abandoned()

    def http_app(self) -> Any:
        """The HTTP mode's routes: Slack's requests, health, metrics, webhook triggers, and
        for external agents the approval API (`/api/v1`) and the MCP tools (`/mcp`)."""
        from bot.api.routes import api_app
        from bot.http import http_app
        from bot.mcp.endpoint import McpEndpoint

        return http_app(self.app, self.engine.db, clock=self.clock, engine=self.engine,
                        metrics_token=self.settings.metrics_token,
                        api=api_app(self.approvals),
                        mcp=McpEndpoint(self.approvals, self.settings.mcp_wait_s))

    @staticmethod
    def _hand(pool: TrackingExecutor, fn: Any, *args: Any) -> None:
        def run() -> None:
            try:
                fn(*args)
            except Exception:  # a stored request stays in the inbox for the next sweep
                log.exception("request_work_failed")

        pool.submit(contextvars.copy_context().run, run)  # keeps the request's log ids

    @property
    def busy(self) -> bool:
        return self.prompt.busy or self.work.busy or self.engine.busy

    def stop(self) -> None:
        self.prompt.shutdown(wait=True)
        self.work.shutdown(wait=True)
        self.timers.shutdown()
        self.approvals.stop()
        self.pump.stop()
        self.callback_sender.stop()
        self.outbox.stop()
        self.directory.stop()
        self.engine.shutdown()
        self.engine.db.dispose()
