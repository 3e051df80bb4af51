"""The Baton side of the comparison, through its public engine API: `start_run` to the
waiting state, `decide` to completion, with the engine in inline mode (what the CLI uses:
the run is advanced on the caller's thread before the call returns) or in background mode
(what `baton serve` uses: a pool of run workers)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlmodel import func, select

from bench.common import INPUTS, REQUESTER, REVIEWER, settings
from orchestrator.bootstrap import open_engine
from orchestrator.engine import Engine
from storage.models import Run

FLOW = "bench-approval"


class BatonSide:
    def __init__(self, path: Path, *, background: bool = False, flow: str = FLOW) -> None:
        self.path = path
        self.flow = flow
        self.engine: Engine = open_engine(settings(path), background=background)

    def suspend(self, inputs: dict[str, Any] | None = None) -> int:
        run = self.engine.start_run(self.flow, inputs or INPUTS, REQUESTER)
        assert run.id is not None
        return run.id

    def resume(self, run_id: int, user: str = REVIEWER, option: str = "approve") -> None:
        report = self.engine.decide(run_id, user, option)
        if report.status != "recorded" or report.outcome != "approve":
            raise AssertionError(f"R-{run_id}: the decision was not recorded: {report}")

    def statuses(self) -> dict[str, int]:
        with self.engine.db.read() as s:
            return dict(s.exec(select(Run.status, func.count()).group_by(Run.status)).all())

    def wait_idle(self, status: str, count: int, timeout: float = 600.0) -> None:
        """Background mode: wait until `count` runs are in `status` and no worker is busy."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.engine.busy and self.statuses().get(status, 0) >= count:
                return
            time.sleep(0.005)
        raise AssertionError(f"runs did not reach {status}: {self.statuses()}")

    def close(self) -> None:
        self.engine.shutdown()
        self.engine.db.dispose()
