"""Runs that start by themselves: on a schedule (a flow's `triggers.schedule`).

Every replica schedules every flow's crontab; when one fires, each replica tries to start
the run under the same request key (the flow, the schedule and the minute), and the run
table's unique key lets exactly one succeed. Webhooks, the other event-driven start, are
served by the HTTP adapter (bot/webhooks.py).
"""

from __future__ import annotations

from datetime import UTC, datetime

import structlog
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.cron import CronTrigger

from orchestrator.engine import Engine
from orchestrator.errors import BatonError

log = structlog.get_logger("baton.triggers")


def schedule_key(flow: str, index: int, at: datetime) -> str:
    """The same for every replica firing the same schedule in the same minute."""
    return f"schedule:{flow}:{index}:{at.astimezone(UTC):%Y-%m-%dT%H:%M}"


class Schedules:
    def __init__(self, engine: Engine, scheduler: BaseScheduler) -> None:
        self.engine = engine
        self.scheduler = scheduler
        self._jobs: dict[str, str] = {}  # job id -> the crontab it was added with

    def sync(self) -> None:
        """Add, change and remove cron jobs to match the flow files (also after edits)."""
        flows, _ = self.engine.flows.load_all()
        wanted: dict[str, tuple[str, int, str, str]] = {}
        for name, program in flows.items():
            for index, schedule in enumerate(program.flow.triggers.schedule):
                job_id = f"schedule:{name}:{index}"
                wanted[job_id] = (name, index, schedule.cron, schedule.timezone)
        for job_id in set(self._jobs) - set(wanted):
            self.scheduler.remove_job(job_id)
            del self._jobs[job_id]
        for job_id, (name, index, cron, zone) in wanted.items():
            signature = f"{cron}@{zone}"
            if self._jobs.get(job_id) == signature:
                continue
            self.scheduler.add_job(self._fire, CronTrigger.from_crontab(cron, timezone=zone),
                                   args=[name, index], id=job_id, replace_existing=True)
            self._jobs[job_id] = signature
            log.info("schedule_armed", flow=name, cron=cron, timezone=zone)

    def _fire(self, flow: str, index: int) -> None:
        self.fire(flow, index, self.engine.clock.now())

    def fire(self, flow: str, index: int, at: datetime) -> str | None:
        """Start the scheduled run for `at`; returns its id, or None if it could not start."""
        try:
            program = self.engine.flows.get(flow)
            schedule = program.flow.triggers.schedule[index]
            requester = self.engine.org.principal(schedule.requester)
            run = self.engine.start_run(
                flow, schedule.inputs, requester,
                origin={"kind": "schedule", "cron": schedule.cron, "timezone": schedule.timezone},
                request_key=schedule_key(flow, index, at))
        except (BatonError, IndexError, ValueError) as exc:
            log.warning("schedule_failed", flow=flow, error=str(exc))
            return None
        return run.ref
