"""`GET /metrics`: the same KPIs as `baton stats`, in Prometheus' text format.

Figures are computed by the database on each scrape (over the last 7 days, like the
default `baton stats`), cached for a few seconds so several scrapers cost one query set.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from orchestrator.readers.stats import Stats, compute
from storage.engine import Database
from storage.slack import failed_by_method
from storage.stats import backlog as backlog_now

if TYPE_CHECKING:
    from orchestrator.engine import Engine

WINDOW = timedelta(days=7)


class BatonCollector:
    def __init__(self, db: Database, clock: Any, cache_s: float = 10.0,
                 engine: Engine | None = None) -> None:
        self.db = db
        self.clock = clock
        self.cache_s = cache_s
        self.engine = engine  # with it, the flows' setup problems are reported too
        self._cached: tuple[float, Stats, dict[str, int], dict[str, int]] | None = None
        self._lock = threading.Lock()

    def _figures(self) -> tuple[Stats, dict[str, int], dict[str, int]]:
        with self._lock:
            if self._cached and time.monotonic() - self._cached[0] < self.cache_s:
                return self._cached[1], self._cached[2], self._cached[3]
            stats = compute(self.db, now=self.clock.now(), since=WINDOW)
            with self.db.read() as s:
                backlog = backlog_now(s)
                failed = failed_by_method(s)
            self._cached = (time.monotonic(), stats, backlog, failed)
            return stats, backlog, failed

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stats, backlog, failed = self._figures()
        window = {"window": "7d"}

        def gauge(name: str, doc: str, value: float | None, labels: dict[str, str] | None = None
                  ) -> GaugeMetricFamily:
            labels = {**window, **(labels or {})}
            family = GaugeMetricFamily(name, doc, labels=list(labels))
            family.add_metric(list(labels.values()), float("nan") if value is None else value)
            return family

        runs = GaugeMetricFamily("baton_runs", "Runs started in the window, by status",
                                 labels=["window", "status"])
        for status, count in stats.by_status.items():
            runs.add_metric(["7d", status], count)
        yield runs
        decided = GaugeMetricFamily("baton_gates_decided", "Gates decided in the window, by effect",
                                    labels=["window", "effect"])
        for effect, count in stats.decided.items():
            decided.add_metric(["7d", effect], count)
        yield decided
        yield gauge("baton_human_intervention_ratio", "Share of runs that needed a person",
                    stats.intervention_rate)
        yield gauge("baton_approval_ratio", "Share of decided gates approved", stats.rate("approve"))
        yield gauge("baton_rejection_ratio", "Share of decided gates rejected", stats.rate("reject"))
        yield gauge("baton_escalation_ratio", "Share of gates that escalated", stats.escalation_rate)
        ttd = GaugeMetricFamily("baton_time_to_decision_seconds",
                                "Time from a gate opening to a person's decision",
                                labels=["window", "quantile"])
        for quantile, value in (("0.5", stats.median_decision_s), ("0.9", stats.p90_decision_s)):
            ttd.add_metric(["7d", quantile], float("nan") if value is None else value)
        yield ttd
        yield gauge("baton_agent_error_ratio", "Share of agent calls that failed",
                    stats.agent_error_rate)
        yield gauge("baton_agent_retry_ratio", "Share of agent calls that needed a retry",
                    stats.agent_retry_rate)
        yield gauge("baton_runs_failed_setup",
                    "Runs stopped because an llm agent could not reach its model (a setup problem)",
                    stats.setup_failures)
        if self.engine is not None:
            setup = GaugeMetricFamily(
                "baton_llm_setup_problems",
                "llm agents that cannot work as the server is set up now, by flow",
                labels=["flow"])
            for flow, problems in sorted(self.engine.setup_report().items()):
                setup.add_metric([flow], len(problems))
            yield setup
        yield gauge("baton_agent_tokens", "Tokens used by agents", stats.tokens)
        yield gauge("baton_agent_cost_dollars", "Estimated agent cost", stats.cost)
        for name, value in backlog.items():
            family = GaugeMetricFamily(f"baton_{name}", name.replace("_", " ").capitalize())
            family.add_metric([], value)
            yield family
        # Calls retried to their limit, or refused for good (an expired response_url whose
        # reply also failed by postEphemeral and DM, a channel that is gone): all time.
        gave_up = GaugeMetricFamily("baton_slack_calls_failed",
                                    "Slack calls Baton gave up on, by method", labels=["method"])
        for method, count in sorted(failed.items()):
            gave_up.add_metric([method], count)
        yield gave_up


def metrics_text(collector: BatonCollector) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)  # type: ignore[arg-type]
    return generate_latest(registry)
