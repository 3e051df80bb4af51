"""Waiting at scale: thousands of runs waiting at gates at once, in one server process.

Each benchmark step runs in a fresh process, so RSS starts from a clean baseline and a
restart is a real one. The server side is what `baton serve` runs minus Slack: the
engine in background mode (its pool of run workers) and the timer service. Runs of
bench-escalating wait at a gate with an escalation chain, so each holds two pending
timers (a reminder in 3 h, an escalation in 4 h).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.common import Row, fresh, in_child, os_threads, py_threads, quiet_logs, rss_mb

FLOW = "bench-escalating"
BATCH = 250


def _sample(label: int, timers: Any) -> dict[str, Any]:
    gc.collect()
    return {"waiting": label, "rss_mb": rss_mb(), "py_threads": py_threads(),
            "os_threads": os_threads(), "scheduler_jobs": len(timers.scheduler.get_jobs())}


WORKERS = 8  # the engine's run workers in background mode (Engine(workers=8))


def fill(path: str, n: int, samples: int = 10) -> dict[str, Any]:
    """(Child process.) Start `n` runs that wait at their gate; sample the process as they pile up."""
    from bench.baton_side import BatonSide
    from orchestrator.timers import TimerService

    quiet_logs()
    side = BatonSide(fresh(Path(path)), background=True, flow=FLOW)
    timers = TimerService(side.engine)
    timers.start()
    try:
        warm = [side.suspend() for _ in range(20)]  # the worker pool's threads exist from here
        side.wait_idle("waiting", len(warm))
        for run_id in warm:
            side.resume(run_id)
        side.wait_idle("succeeded", len(warm))
        points = [_sample(0, timers)]
        every = max(1, n // samples)
        started = time.perf_counter()
        made = 0
        while made < n:
            batch = min(BATCH, n - made)
            for _ in range(batch):
                side.suspend()
            made += batch
            side.wait_idle("waiting", made)
            if made % every == 0 or made == n:
                points.append(_sample(made, timers))
        elapsed = time.perf_counter() - started
        statuses = side.statuses()
    finally:
        timers.shutdown()
        side.close()
    return {"points": points, "fill_s": elapsed, "statuses": statuses}


def restart(path: str, horizon_days: float | None = None) -> dict[str, Any]:
    """(Child process.) What a restarted server does before it serves: open the engine,
    arm the timers due within the horizon, continue interrupted runs."""
    from bench.common import settings
    from orchestrator.bootstrap import open_engine
    from orchestrator.timers import TimerService

    quiet_logs()
    rss0 = rss_mb()
    t0 = time.perf_counter()
    engine = open_engine(settings(Path(path)), background=True)
    t1 = time.perf_counter()
    timers = (TimerService(engine, horizon=timedelta(days=horizon_days)) if horizon_days
              else TimerService(engine))
    timers.start()
    t2 = time.perf_counter()
    recovered = engine.recover()
    t3 = time.perf_counter()
    timers.sweep()  # what the server then does every 15 s: fire, re-arm, recover
    sweep_s = time.perf_counter() - t3
    pending = len(engine.pending_timers())
    jobs = len(timers.scheduler.get_jobs())
    result = {"open_s": t1 - t0, "timers_s": t2 - t1, "recover_s": t3 - t2, "total_s": t3 - t0,
              "sweep_s": sweep_s,
              "armed": jobs - 1, "pending_timers": pending, "recovered": len(recovered),
              "horizon_s": timers.horizon.total_seconds(), "rss_growth_mb": rss_mb() - rss0,
              "os_threads": os_threads()}
    timers.shutdown()
    engine.shutdown()
    engine.db.dispose()
    return result


def run(workdir: Path, n: int, log: Callable[[str], None] = print,
        all_armed: bool = True) -> dict[str, Any]:
    """`all_armed`: also restart with every timer inside the horizon (`--quick` does not)."""
    path = str(workdir / "baton-waiting.db")
    log(f"  starting {n} runs that wait at an escalating gate (server mode, timers on)")
    filled = in_child(fill, path, n)
    log("  restarting: default horizon" + (", then with every timer inside the horizon"
                                           if all_armed else ""))
    again = in_child(restart, path)
    worst = in_child(restart, path, 30.0) if all_armed else None
    return {"n": n, "fill": filled, "restart": again, "restart_all_armed": worst}


def rows(result: dict[str, Any]) -> list[Row]:
    section = "waiting at scale"
    points = result["fill"]["points"]
    base, middle, last = points[0], points[len(points) // 2], points[-1]
    growth = last["rss_mb"] - base["rss_mb"]
    # The engine's 8 run workers start as load first needs them (a thread pool), at any
    # point of the run when a burst first needs one more; what must not happen is a count
    # that grows with the runs waiting. Flat: never more than the 8 above the start.
    flat = all(p["os_threads"] - base["os_threads"] <= WORKERS for p in points)
    again, worst = result["restart"], result["restart_all_armed"]
    n = result["n"]
    return [
        Row(section, "runs waiting at a gate (2 pending timers each)",
            f"{result['fill']['statuses'].get('waiting', 0):,}"),
        Row(section, "RSS before -> after", f"{base['rss_mb']:.0f} -> {last['rss_mb']:.0f} MB"),
        Row(section, f"RSS growth for {n:,} waiting runs", f"{growth:.1f} MB", "< 50 MB", growth < 50),
        Row(section, f"OS threads at 0 / {middle['waiting']:,} / {last['waiting']:,} runs "
            f"(python threads at the end; the {WORKERS} run workers start as load needs them)",
            f"{base['os_threads']} / {middle['os_threads']} / {last['os_threads']} "
            f"({last['py_threads']})", "flat", flat),
        Row(section, "scheduler jobs held at the end", f"{last['scheduler_jobs']}"),
        Row(section, "restart: open + arm timers + recover (10 min horizon)",
            f"{again['total_s'] * 1000:.0f} ms ({again['armed']} armed of "
            f"{again['pending_timers']:,} pending; timers {again['timers_s'] * 1000:.0f} ms)"),
    ] + ([] if worst is None else [
        Row(section, "restart with every timer inside the horizon",
            f"{worst['total_s'] * 1000:.0f} ms ({worst['armed']:,} armed; timers "
            f"{worst['timers_s'] * 1000:.0f} ms)"),
        Row(section, "a sweep after it (every 15 s: fire due timers, arm the horizon's, recover)",
            f"{worst['sweep_s'] * 1000:.0f} ms"),
    ])
