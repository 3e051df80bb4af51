"""Baton's benchmarks: `python bench/run.py` (full sizes) or `python bench/run.py --quick`.

Prints what it does, then one table, then the comparison with LangGraph as its last line:

    ratio vs langgraph: suspend <X>x resume <Y>x

(LangGraph's median time per run divided by Baton's, measured in this same process run.)
docs/benchmarks.md says what each figure means and what dominated the cost.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as a script: take bench/ itself off the path (its modules would shadow others) and
    # put the repository after PYTHONPATH, which may point at another copy of Baton to measure.
    del sys.path[0]
    sys.path.append(str(Path(__file__).resolve().parent.parent))


@dataclass(frozen=True)
class Sizes:
    runs: int  # suspend/resume, per side
    durabilities: tuple[str, ...]  # LangGraph durability modes; the first is the equivalent one
    modes_runs: int  # inline vs background engine
    waiting: int
    click_seconds: float
    click_per_team: int  # gates prepared per team of five
    year_runs: int  # trace at size
    trace_samples: int
    trace_processes: int  # `baton trace` started as a process, start-up included
    thorough: bool  # the cold burst of clicks, the restart with every timer armed, the built floor
    cli_runs: int  # CLI start-up: timed runs of each command, per side


FULL = Sizes(10_000, ("sync", "async"), 1_000, 10_000, 20.0, 80, 100_000, 200, 3, True, 15)
# 15 = 3 a person: at most 3 clicks in 2 s (each waits 1-3 s after an answer)
QUICK = Sizes(600, ("sync",), 0, 200, 2.0, 15, 2_000, 50, 0, False, 1)
SECTIONS = ("suspend", "modes", "waiting", "click", "trace", "api", "cli")
# the approval API (bench/api.py): runs timed one after another, long polls held at once
API_SIZES = {"full": (200, 1_000), "quick": (20, 100)}


def machine() -> dict[str, Any]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import psutil

    import orchestrator

    code = Path(orchestrator.__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(code), "rev-parse", "--short", "HEAD"], check=True,
                                capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(code), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        commit += " (with uncommitted changes)" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        commit = "not a git checkout"
    return {"baton": f"{code} at {commit}", "cpu": cpu, "cores": os.cpu_count(),
            "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
            "os": platform.platform(), "load_avg": os.getloadavg(),
            "packages": {p: version(p) for p in ("langgraph", "langgraph-checkpoint-sqlite", "sqlalchemy",
                                                  "sqlmodel", "slack-bolt", "uvicorn")}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="reduced sizes (under a minute on 2 cores)")
    parser.add_argument("--only", action="append", choices=SECTIONS,
                        help="run only this benchmark (repeatable); the ratio line needs `suspend`")
    parser.add_argument("--runs", type=int, help="suspend/resume: runs per side")
    parser.add_argument("--waiting", type=int, help="waiting at scale: runs waiting at once")
    parser.add_argument("--click-seconds", type=float, help="click to ack: how long 50 people click")
    parser.add_argument("--click-gates", type=int, help="click to ack: gates prepared per team (10 teams)")
    parser.add_argument("--year-runs", type=int, help="trace at size: runs in the generated database")
    parser.add_argument("--click-postgres", metavar="URL",
                        help="click to ack against this PostgreSQL server (e.g. "
                             "postgresql+psycopg://postgres@127.0.0.1:5432/postgres): a database of its "
                             "own is created there and dropped afterwards; the other benchmarks use SQLite")
    parser.add_argument("--workdir", type=Path, help="where the databases go (default: a temporary folder)")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    args = parser.parse_args(argv)

    from bench import api, cli_start, click_ack, suspend_resume, trace_size, waiting
    from bench.common import Row, quiet_logs, table

    base = QUICK if args.quick else FULL
    sizes = Sizes(args.runs or base.runs, base.durabilities, base.modes_runs, args.waiting or base.waiting,
                  args.click_seconds or base.click_seconds, args.click_gates or base.click_per_team,
                  args.year_runs or base.year_runs, base.trace_samples, base.trace_processes,
                  base.thorough, base.cli_runs)
    sections = args.only or list(SECTIONS)
    quiet_logs()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="baton-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    about = machine()
    print(f"Baton benchmarks ({'quick' if args.quick else 'full'}) in {workdir}")
    print(f"machine: {about['cpu']}, {about['cores']} cores, {about['ram_gb']} GB; Python {about['python']}, "
          f"SQLite {about['sqlite']}; load average {about['load_avg'][0]:.2f}")
    print(f"baton: {about['baton']}")
    started = time.perf_counter()
    rows: list[Row] = []
    figures: dict[str, Any] = {"machine": about, "sizes": sizes.__dict__}
    ratios: tuple[float, float] | None = None
    durability: dict[str, str] = {}

    def step(name: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f}s] {name}", flush=True)

    if "suspend" in sections:
        step(f"suspend and resume: Baton and LangGraph, {sizes.runs:,} runs each")
        result = suspend_resume.run(workdir, sizes.runs, sizes.durabilities, built_floor=sizes.thorough)
        rows += suspend_resume.rows(result)
        ratios = result.ratios
        durability = result.durability
        figures["suspend_resume"] = {s.name: {k: v.__dict__ for k, v in s.timings().items()}
                                     | {"bytes_per_run": s.bytes_per_run}
                                     for s in [*result.sides, *result.floors]}
    if "modes" in sections and sizes.modes_runs:
        step(f"engine modes: inline and background, {sizes.modes_runs:,} runs each")
        modes = suspend_resume.background(workdir, sizes.modes_runs)
        rows += suspend_resume.background_rows(modes)
        figures["modes"] = modes.__dict__
    if "waiting" in sections:
        step(f"waiting at scale: {sizes.waiting:,} runs")
        found = waiting.run(workdir, sizes.waiting, all_armed=sizes.thorough)
        rows += waiting.rows(found)
        figures["waiting"] = found
    if "click" in sections:
        step(f"click to ack: {click_ack.CLICKERS} clickers, {sizes.click_seconds:g}s")
        clicked = click_ack.run(workdir, sizes.click_seconds, sizes.click_per_team,
                                cold=sizes.thorough, postgres=args.click_postgres)
        rows += click_ack.rows(clicked)
        figures["click"] = clicked
    if "trace" in sections:
        step(f"trace at size: {sizes.year_runs:,} runs")
        traced = trace_size.run(workdir, sizes.year_runs, sizes.trace_samples,
                                processes=sizes.trace_processes)
        rows += trace_size.rows(traced)
        figures["trace"] = {k: (v.__dict__ if hasattr(v, "__dict__") else v) for k, v in traced.items()}
    if "api" in sections:
        samples, waiters = API_SIZES["quick" if args.quick else "full"]
        step(f"approval API: {samples} runs, {waiters:,} waiters")
        found = api.run(workdir, samples, waiters, log=print)
        rows += api.rows(found)
        figures["api"] = found
    if "cli" in sections:
        # --quick times the commands with a target only
        commands = tuple(cli_start.COMMANDS) if sizes.thorough else cli_start.TARGETED
        step(f"CLI start-up: {', '.join(commands)}, before and after, {sizes.cli_runs} runs each")
        started_cli = cli_start.run(workdir, sizes.cli_runs, commands=commands)
        rows += cli_start.rows(started_cli)
        figures["cli"] = {name: {"wall_ms": {c: side.median(c) for c in side.wall},
                                 "cpu_ms": {c: side.median_cpu(c) for c in side.cpu}}
                          for name, side in started_cli.items()}
    step("done")
    about["load_avg_end"] = os.getloadavg()
    print()
    print(table(rows))
    print()
    for side, settings_ in durability.items():
        print(f"durability, {side}: {settings_}")
    print(f"load average at the start / end: {about['load_avg'][0]:.2f} / {about['load_avg_end'][0]:.2f} "
          f"(other work on the machine shows up in wall times; the cpu columns are this process's own)")
    figures["rows"] = [r.as_dict() for r in rows]
    figures["durability"] = durability
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str))
    if ratios is not None:
        print(f"ratio vs langgraph: suspend {ratios[0]:.2f}x resume {ratios[1]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
