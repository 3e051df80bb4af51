"""Waking the engine up on time, with APScheduler 3.

The `timer` table is the truth; the scheduler only holds wake-ups for timers due soon
(within `horizon`), so a process with ten thousand gates waiting for days holds a
handful of jobs, not ten thousand. A periodic sweep arms the next horizon's timers, fires
anything overdue (timers written by another process, such as `baton snooze` from the
command line, or missed while the process was down) and continues interrupted runs.
Firing is idempotent: a timer that is no longer current does nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import structlog
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler

from orchestrator.engine import Engine

log = structlog.get_logger("baton.timers")


class TimerService:
    def __init__(self, engine: Engine, *, horizon: timedelta = timedelta(minutes=10),
                 sweep_every: timedelta = timedelta(seconds=15),
                 scheduler: BaseScheduler | None = None,
                 also: list[Callable[[], object]] | None = None) -> None:
        self.engine = engine
        self.also = list(also or [])  # more recovery to do on each sweep (the Slack inbox)
        self.horizon = horizon
        self.sweep_every = sweep_every
        self.scheduler = scheduler or BackgroundScheduler(
            timezone=UTC,
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1})

    def start(self, *, paused: bool = False) -> None:
        self.engine.timer_hook = self.arm
        self.scheduler.start(paused=paused)
        armed = self.rebuild()
        self.scheduler.add_job(self.sweep, "interval", seconds=self.sweep_every.total_seconds(),
                               id="baton-sweep", replace_existing=True)
        log.info("timers_started", armed=armed, horizon_s=self.horizon.total_seconds())

    def shutdown(self) -> None:
        self.engine.timer_hook = None
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    def arm(self, timer_id: int, due: datetime) -> None:
        """Called after the transaction that wrote the timer committed, and by each sweep for
        every timer due within the horizon. A timer armed already for that time is left
        alone: replacing its job cost as much as adding it (about 0.1 ms), two seconds of
        every sweep with 20,000 timers inside the horizon."""
        if due > self.engine.clock.now() + self.horizon:
            return  # the sweep arms it when it comes within the horizon
        job_id = f"timer-{timer_id}"
        job = self.scheduler.get_job(job_id)
        if job is not None and job.next_run_time == (due if due.tzinfo else due.replace(tzinfo=UTC)):
            return
        self.scheduler.add_job(self._fire, "date", run_date=due, args=[timer_id],
                               id=job_id, replace_existing=True)

    def rebuild(self) -> int:
        """Arm every pending timer due within the horizon (on start, and each sweep)."""
        limit = self.engine.clock.now() + self.horizon
        armed = 0
        for timer_id, due in self.engine.pending_timers(until=limit):
            self.arm(timer_id, due)
            armed += 1
        return armed

    def sweep(self) -> None:
        try:
            self.engine.fire_due_timers()
            self.rebuild()
            self.engine.recover()
            for more in self.also:
                more()
        except Exception:
            log.exception("sweep_failed")

    def _fire(self, timer_id: int) -> None:
        try:
            self.engine.fire_timer(timer_id)
        except Exception:
            log.exception("timer_failed", timer=timer_id)
