"""Suspend and resume, Baton beside LangGraph in one process.

N runs on each side are started to their gate (suspend), then each is decided to
completion (resume). The two sides take turns in blocks whose order alternates, so that
whatever else the machine is doing falls on both alike. Each operation is timed on its
own (wall clock and process CPU time); medians are what the ratio uses.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench import floor
from bench.baton_side import BatonSide
from bench.common import (
    INPUTS,
    REVIEWER,
    SYNCHRONOUS,
    PhaseTimes,
    Row,
    Timing,
    db_bytes,
    fresh,
    ms,
    pragma,
    rss_mb,
)
from bench.langgraph_side import EQUIVALENT_DURABILITY, LangGraphSide

WARMUP = 20
BLOCK = 25


@dataclass
class Side:
    name: str
    suspend: Callable[[int], object]
    resume: Callable[[int, object], None]
    path: Path
    handles: list[object] = field(default_factory=list)
    times: PhaseTimes = field(default_factory=PhaseTimes)
    bytes_per_run: float = 0.0

    def timings(self) -> dict[str, Timing]:
        return self.times.timings()


def _baton(path: Path) -> tuple[Side, BatonSide]:
    baton = BatonSide(fresh(path))

    def resume(_i: int, run_id: object) -> None:
        baton.resume(int(run_id))  # type: ignore[call-overload]

    return Side("baton", lambda _i: baton.suspend(), resume, path), baton


def _langgraph(path: Path, durability: str) -> tuple[Side, LangGraphSide]:
    graph = LangGraphSide(fresh(path), durability)

    def suspend(i: int) -> str:
        thread = f"run-{i}"
        graph.suspend(thread, INPUTS)
        return thread

    def resume(_i: int, thread: object) -> None:
        graph.resume(str(thread), REVIEWER, "approve")

    return Side(f"langgraph ({durability})", suspend, resume, path), graph


def _interleaved(sides: list[Side], n: int, phase: str) -> None:
    for block, start in enumerate(range(0, n, BLOCK)):
        shift = block % len(sides)
        for side in sides[shift:] + sides[:shift]:
            for i in range(start, min(n, start + BLOCK)):
                if phase == "suspend":
                    side.handles.append(side.times.timed("suspend", lambda s=side, i=i: s.suspend(i)))
                else:
                    side.times.timed("resume", lambda s=side, i=i: s.resume(i, s.handles[i]))


@dataclass
class Result:
    n: int
    sides: list[Side]
    rss_before: float
    rss_after: float
    durability: dict[str, str] = field(default_factory=dict)
    floor: floor.Result | None = None  # Baton's statements replayed with the bare driver
    floor_built: floor.Result | None = None  # the same, its values built as Baton does

    @property
    def floors(self) -> list[floor.Result]:
        """The storage floor's replays that ran, each named as the table names it."""
        return [f for f in (self.floor, self.floor_built) if f is not None]

    def side(self, name: str) -> Side:
        return next(s for s in self.sides if s.name == name)

    @property
    def ratios(self) -> tuple[float, float]:
        """LangGraph's median time per run divided by Baton's (equivalent durability)."""
        baton = self.side("baton").timings()
        graph = self.side(f"langgraph ({EQUIVALENT_DURABILITY})").timings()
        return graph["suspend"].median / baton["suspend"].median, \
            graph["resume"].median / baton["resume"].median


def _settings_in_use(baton: BatonSide, graphs: list[LangGraphSide]) -> dict[str, str]:
    """The durability each side runs with, read back from its own connections."""
    with baton.engine.db.engine.connect() as conn:
        found = {"baton": f"journal_mode={conn.exec_driver_sql('PRAGMA journal_mode').scalar()}, "
                          f"synchronous={SYNCHRONOUS[conn.exec_driver_sql('PRAGMA synchronous').scalar()]}, "
                          "committed before any agent call or action runs and before the run "
                          "waits; the steps that settle at once (rules agents, a gate, an "
                          "action's start) share the transaction that started or resumed the "
                          "run (inline engine)"}
    for graph in graphs:
        found[f"langgraph ({graph.durability})"] = (
            f"journal_mode={pragma(graph.conn, 'journal_mode')}, "
            f"synchronous={pragma(graph.conn, 'synchronous')}, SqliteSaver, durability={graph.durability!r}")
    return found


def run(workdir: Path, n: int, durabilities: tuple[str, ...] = (EQUIVALENT_DURABILITY,),
        log: Callable[[str], None] = print, warmup: int = WARMUP, built_floor: bool = True) -> Result:
    """`built_floor`: also replay the runs with their values built as Baton builds them
    (`--quick` leaves it out)."""
    baton_side, baton = _baton(workdir / "baton-suspend.db")
    pairs = [(baton_side, baton)]
    for durability in durabilities:
        pairs.append(_langgraph(workdir / f"langgraph-{durability}.db", durability))
    sides = [side for side, _ in pairs]
    try:
        durability = _settings_in_use(baton, [graph for _, graph in pairs[1:]])  # type: ignore[misc]
        for side in sides:  # warm caches, compile statements, import lazily loaded modules
            for i in range(warmup):
                side.resume(-1 - i, side.suspend(-1 - i))
        baselines = {side.name: db_bytes(side.path) for side in sides}
        gc.collect()
        rss_before = rss_mb()
        log(f"  suspend: {n} runs per side, interleaved in blocks of {BLOCK}")
        _interleaved(sides, n, "suspend")
        statuses = baton.statuses()
        if statuses.get("waiting", 0) != n:
            raise AssertionError(f"Baton runs are not all waiting at their gate: {statuses}")
        log("  resume: deciding each run to completion")
        _interleaved(sides, n, "resume")
        statuses = baton.statuses()
        if statuses.get("succeeded", 0) != n + warmup:
            raise AssertionError(f"Baton runs did not all finish: {statuses}")
        rss_after = rss_mb()
        for side in sides:
            side.bytes_per_run = (db_bytes(side.path) - baselines[side.name]) / n
    finally:
        for _, handle in pairs:
            handle.close()
    log("  floor: Baton's statements of these runs through the bare sqlite3 driver, as stored"
        + (", then built" if built_floor else ""))
    replayed = floor.run(baton_side.path, workdir / "floor.db", warmup)
    built = (floor.run(baton_side.path, workdir / "floor-built.db", warmup, build=True)
             if built_floor else None)
    return Result(n, sides, rss_before, rss_after, durability, replayed, built)


def rows(result: Result) -> list[Row]:
    out: list[Row] = []
    section = "suspend/resume"
    baton = result.side("baton")
    bt = baton.timings()
    equivalent = result.side(f"langgraph ({EQUIVALENT_DURABILITY})")
    for side in result.sides:
        t = side.timings()
        total = t["suspend"].total_s + t["resume"].total_s
        out += [
            Row(section, f"{side.name} suspend median / p95 (cpu median)",
                f"{ms(t['suspend'].median)} / {ms(t['suspend'].p95)} ({ms(t['suspend_cpu'].median)})"),
            Row(section, f"{side.name} resume median / p95 (cpu median)",
                f"{ms(t['resume'].median)} / {ms(t['resume'].p95)} ({ms(t['resume_cpu'].median)})"),
            Row(section, f"{side.name} runs per second (suspend + resume)", f"{result.n / total:.0f}"),
            Row(section, f"{side.name} database bytes per finished run", f"{side.bytes_per_run:,.0f}"),
        ]
    et = equivalent.timings()
    s_ratio, r_ratio = result.ratios
    out += [
        Row(section, f"suspend: langgraph ({EQUIVALENT_DURABILITY}) / baton, median", f"{s_ratio:.2f}x",
            ">= 5x", s_ratio >= 5),
        Row(section, f"resume: langgraph ({EQUIVALENT_DURABILITY}) / baton, median", f"{r_ratio:.2f}x",
            ">= 5x", r_ratio >= 5),
        Row(section, "bytes per run: baton / langgraph",
            f"{baton.bytes_per_run / equivalent.bytes_per_run:.2f}", "<= 0.20",
            baton.bytes_per_run <= equivalent.bytes_per_run / 5),
        Row(section, "cpu ratio: langgraph / baton (suspend, resume)",
            f"{et['suspend_cpu'].median / bt['suspend_cpu'].median:.2f}x, "
            f"{et['resume_cpu'].median / bt['resume_cpu'].median:.2f}x"),
        Row(section, "process RSS before -> after (both sides)",
            f"{result.rss_before:.0f} -> {result.rss_after:.0f} MB"),
    ]
    if result.floor is not None:
        out += _floor_rows(result.floor, result.floor_built, bt, et)
    return out


def _floor_rows(replayed: floor.Result, built: floor.Result | None, bt: dict[str, Timing],
                et: dict[str, Timing]) -> list[Row]:
    """The storage floor beside Baton (`bt`) and LangGraph (`et`)."""
    section = "suspend/resume"
    ft = replayed.timings()
    out = [
        Row(section, "floor: the same statements and rows through the bare sqlite3 driver, "
                     "suspend / resume median (cpu median)",
            f"{ms(ft['suspend'].median)} ({ms(ft['suspend_cpu'].median)}) / "
            f"{ms(ft['resume'].median)} ({ms(ft['resume_cpu'].median)})"),
        Row(section, f"floor: langgraph ({EQUIVALENT_DURABILITY}) / floor, median (suspend, resume)",
            f"{et['suspend'].median / ft['suspend'].median:.1f}x, "
            f"{et['resume'].median / ft['resume'].median:.1f}x"),
    ]
    if built is not None:
        bf = built.timings()
        out.append(Row(section, "floor, its values built as Baton builds them (JSON, times, the "
                                "SHA-256 chain): suspend / resume median; langgraph / it",
                       f"{ms(bf['suspend'].median)} / {ms(bf['resume'].median)}; "
                       f"{et['suspend'].median / bf['suspend'].median:.1f}x, "
                       f"{et['resume'].median / bf['resume'].median:.1f}x"))
    out += [
        Row(section, "floor: what Baton's Python adds, its median less the floor's "
                     "(suspend, resume)",
            f"{ms(bt['suspend'].median - ft['suspend'].median)}, "
            f"{ms(bt['resume'].median - ft['resume'].median)}"),
        Row(section, "floor: database bytes per finished run (the same rows)",
            f"{replayed.bytes_per_run:,.0f}"),
    ]
    return out


# -- background (server) mode ------------------------------------------------------------------
@dataclass
class BackgroundResult:
    n: int
    inline_suspend_ms: float  # wall time / n, one run after another on the caller's thread
    inline_resume_ms: float
    background_suspend_ms: float  # wall time / n, all submitted, the worker pool advancing them
    background_resume_ms: float


def background(workdir: Path, n: int) -> BackgroundResult:
    """Amortised time per run in both engine modes: the pool can overlap one run's Python
    with another's SQLite work, but every step still takes the one SQLite write lock."""
    figures: dict[str, float] = {}
    for mode in ("inline", "background"):
        side = BatonSide(fresh(workdir / f"baton-{mode}.db"), background=mode == "background")
        try:
            warm = [side.suspend() for _ in range(WARMUP)]
            side.wait_idle("waiting", WARMUP)
            for run_id in warm:
                side.resume(run_id)
            side.wait_idle("succeeded", WARMUP)
            t0 = time.perf_counter()
            ids = [side.suspend() for _ in range(n)]
            side.wait_idle("waiting", n)
            figures[f"{mode}_suspend"] = (time.perf_counter() - t0) / n * 1000
            t0 = time.perf_counter()
            for run_id in ids:
                side.resume(run_id)
            side.wait_idle("succeeded", n + WARMUP)
            figures[f"{mode}_resume"] = (time.perf_counter() - t0) / n * 1000
        finally:
            side.close()
    return BackgroundResult(n, figures["inline_suspend"], figures["inline_resume"],
                            figures["background_suspend"], figures["background_resume"])


def background_rows(result: BackgroundResult) -> list[Row]:
    section = "engine modes"
    return [
        Row(section, f"inline: wall time / run, {result.n} runs (suspend, resume)",
            f"{ms(result.inline_suspend_ms)}, {ms(result.inline_resume_ms)}"),
        Row(section, f"background (8 workers): wall time / run, {result.n} runs (suspend, resume)",
            f"{ms(result.background_suspend_ms)}, {ms(result.background_resume_ms)}"),
    ]
