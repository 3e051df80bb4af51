"""Trace at size: the questions people ask, on a database of a company's year.

The database (bench/generate.py) holds 100,000 runs and about 1,000,000 trace entries.
Timed here, in-process, with Baton's own code paths: `baton trace R-n` (the run, its
chain, `summarize`, `report.plain`), the same answer in Slack (`Commands.cmd_trace`),
`baton stats --since 30d` (`orchestrator.readers.stats.compute` and its lines) and `/baton status`
for an approver with many gates waiting (`Commands.cmd_status`). The `baton trace` command
line is also timed once as a process, start-up included.
"""

from __future__ import annotations

import itertools
import random
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.common import Row, Timing, db_bytes, env, ms, quiet_logs, settings
from bench.generate import generate

BUSY_APPROVER = "approver01"


def _timed(fn: Callable[[], Any], times: int) -> Timing:
    fn()  # warm: imports, statement cache, pages
    seconds = []
    for _ in range(times):
        t0 = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - t0)
    return Timing.of(seconds)


def run(workdir: Path, runs: int, samples: int = 200, log: Callable[[str], None] = print,
        processes: int = 3) -> dict[str, Any]:
    from bot.commands import Commands, Invocation
    from orchestrator.bootstrap import open_engine
    from orchestrator.readers import report
    from orchestrator.readers.export import verify_run
    from orchestrator.readers.stats import compute
    from orchestrator.readers.summary import summarize
    from storage.trace import chain_entries

    quiet_logs()
    path = workdir / "baton-year.db"
    log(f"  generating {runs:,} runs with their trace")
    t0 = time.perf_counter()
    counts = generate(path, runs)
    generated_s = time.perf_counter() - t0
    engine = open_engine(settings(path))
    org = engine.org
    rng = random.Random(7)
    refs = [f"R-{rng.randint(1, runs)}" for _ in range(samples)]
    for ref in refs[:5]:  # the generated chains are valid chains
        problem = verify_run(engine.db, engine.get_run(ref))
        if problem is not None:
            raise AssertionError(f"generated trace does not verify: {problem}")
    pending = itertools.cycle(refs)

    def trace_cli() -> str:
        run_ = engine.get_run(next(pending))
        with engine.db.read() as s:
            entries = chain_entries(s, run_.ref)
        return report.plain(summarize(run_, entries, org), org)

    commands = Commands(engine)
    now = engine.clock.now()
    slack_id = org.slack_id(BUSY_APPROVER) or BUSY_APPROVER
    who = Invocation(user=BUSY_APPROVER, slack_user=slack_id, channel=None, source="command", now=now)

    def trace_slack() -> Any:
        return commands.cmd_trace([next(pending)], who)

    def stats(days: int) -> Callable[[], Any]:
        return lambda: report.stats_lines(compute(engine.db, now=now, since=timedelta(days=days)), org)

    def status() -> Any:
        return commands.cmd_status([], who)

    log("  timing trace, stats and status")
    result: dict[str, Any] = {
        "counts": counts, "generated_s": generated_s, "db_mb": db_bytes(path) / 2**20,
        "trace": _timed(trace_cli, samples), "trace_slack": _timed(trace_slack, min(samples, 100)),
        "stats_30d": _timed(stats(30), 5), "stats_365d": _timed(stats(365), 3),
        "status": _timed(status, 20),
    }
    reply, _ = status()
    result["status_reply"] = reply.text
    engine.db.dispose()
    took = []
    for ref in refs[:processes]:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import sys; from bot.cli import main; "
                        "sys.argv[0] = 'baton'; main()", "trace", ref, "--plain"],
                       env=env(path), check=True, capture_output=True, cwd=workdir)
        took.append(time.perf_counter() - t0)
    result["trace_process"] = Timing.of(took) if took else None
    return result


def rows(result: dict[str, Any]) -> list[Row]:
    section = "trace at size"
    c = result["counts"]
    trace, stats30, status = result["trace"], result["stats_30d"], result["status"]
    return [
        Row(section, "database: runs / trace entries / open gates / size",
            f"{c['runs']:,} / {c['entries']:,} / {c['open_gates']:,} / {result['db_mb']:,.0f} MB "
            f"(generated in {result['generated_s']:.0f} s)"),
        Row(section, "baton trace R-n (in-process): p50", ms(trace.median)),
        Row(section, "baton trace R-n (in-process): p95", ms(trace.p95), "< 50 ms", trace.p95 < 50),
        Row(section, "/baton trace R-n (Slack blocks): p50 / p95",
            f"{ms(result['trace_slack'].median)} / {ms(result['trace_slack'].p95)}"),
        Row(section, "baton trace R-n as a process, start-up included: median",
            ms(result["trace_process"].median) if result["trace_process"] else "not run"),
        Row(section, "baton stats --since 30d: median (max)", f"{ms(stats30.median)} ({ms(max_(stats30))})",
            "< 500 ms", max_(stats30) < 500),
        Row(section, "baton stats --since 365d: median", ms(result["stats_365d"].median)),
        Row(section, f"/baton status for a busy approver ({result['status_reply']}): p50 / p95",
            f"{ms(status.median)} / {ms(status.p95)}"),
    ]


def max_(timing: Timing) -> float:
    return timing.p99  # nearest rank over a handful of samples: the largest
