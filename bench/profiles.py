"""Where the time of a run goes: pyinstrument profiles of Baton's suspend and resume paths,
and of LangGraph's for comparison, plus the SQL statements one Baton run executes.

    python bench/profiles.py [--runs 300] [--out DIR]

Writes one text profile per path (and an HTML one, for a browser) to DIR and prints the
top of each, then the statements of one suspend and one resume.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script: take bench/ itself off the path (its modules would shadow others) and
    # put the repository after PYTHONPATH, which may point at another copy of Baton to measure.
    del sys.path[0]
    sys.path.append(str(Path(__file__).resolve().parent.parent))


def _profile(name: str, fn: Callable[[], None], out: Path, interval: float) -> str:
    from pyinstrument import Profiler

    profiler = Profiler(interval=interval)
    profiler.start()
    fn()
    profiler.stop()
    text = profiler.output_text(unicode=False, color=False, show_all=False)
    (out / f"{name}.txt").write_text(text)
    (out / f"{name}.html").write_text(profiler.output_html())
    return text


LIBRARIES = ("sqlalchemy", "sqlmodel", "pydantic", "pydantic_core", "structlog", "langgraph",
             "langchain_core", "ormsgpack")
BATON = ("orchestrator", "gates", "storage", "bot", "bench")


def library(filename: str, name: str) -> str:
    """Who owns a cProfile entry: a library, Baton's own code, the database, or Python."""
    if filename == "~":  # a built-in: "<method 'execute' of 'sqlite3.Cursor' objects>"
        if "sqlite3." in name:
            return "sqlite3 (the database itself)"
        if "cel." in name or "Program" in name:
            return "CEL (native)"
        return "python built-ins"
    parts = Path(filename).parts
    if "site-packages" in parts:
        package = parts[parts.index("site-packages") + 1]
        return package if package in LIBRARIES else "other libraries"
    if any(part in BATON for part in parts[-3:-1]):
        return "baton's own code"
    return "python standard library"


def by_library(fn: Callable[[], None]) -> list[tuple[str, float]]:
    """Share of the CPU time of `fn` per owner, from cProfile's own time per function (the
    profiler's overhead inflates many small Python calls: read the shares, not the seconds)."""
    import cProfile
    import pstats

    profile = cProfile.Profile()
    profile.runcall(fn)
    totals: dict[str, float] = {}
    for (filename, _, name), row in pstats.Stats(profile).stats.items():  # type: ignore[attr-defined]
        owner = library(filename, name)
        totals[owner] = totals.get(owner, 0.0) + row[2]
    everything = sum(totals.values()) or 1.0
    return sorted(((owner, t / everything) for owner, t in totals.items()), key=lambda x: -x[1])


def statements(workdir: Path) -> dict[str, list[str]]:
    """The SQL one Baton suspend and one resume execute (first line of each statement)."""
    from sqlalchemy import event

    from bench.baton_side import BatonSide
    from bench.common import fresh

    side = BatonSide(fresh(workdir / "statements.db"))
    for _ in range(3):
        side.resume(side.suspend())
    seen: list[str] = []

    # The engine runs its statements on the driver's cursor, past SQLAlchemy's events: have
    # SQLite itself report each one, on connections opened from now on.
    @event.listens_for(side.engine.db.engine, "connect")
    def _trace(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        dbapi_connection.set_trace_callback(lambda sql: seen.append(" ".join(sql.split())[:100]))

    side.engine.db.dispose()

    run_id = side.suspend()
    suspend = list(seen)
    seen.clear()
    side.resume(run_id)
    resume = list(seen)
    side.close()
    return {"suspend": suspend, "resume": resume}


def flush_cost(workdir: Path, runs: int) -> dict[str, tuple[float, float]]:
    """The ORM's flush (the unit of work writing the run's and the gate's changes, their
    UPDATEs included) per suspend and per resume: (ms per run, share of the run's time),
    timed with the session's own flush events, unprofiled."""
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    from bench.baton_side import BatonSide
    from bench.common import fresh

    side = BatonSide(fresh(workdir / "flush.db"))
    for _ in range(20):
        side.resume(side.suspend())
    started: list[float] = []
    spent: list[float] = []

    def before(session: Session, context: object, instances: object) -> None:
        started.append(time.perf_counter())

    def after(session: Session, context: object) -> None:
        spent.append(time.perf_counter() - started.pop())

    event.listen(Session, "before_flush", before)
    event.listen(Session, "after_flush_postexec", after)
    try:
        found = {}
        t0 = time.perf_counter()
        ids = [side.suspend() for _ in range(runs)]
        found["suspend"] = (sum(spent) / runs * 1000, sum(spent) / (time.perf_counter() - t0))
        spent.clear()
        t0 = time.perf_counter()
        for run_id in ids:
            side.resume(run_id)
        found["resume"] = (sum(spent) / runs * 1000, sum(spent) / (time.perf_counter() - t0))
    finally:
        event.remove(Session, "before_flush", before)
        event.remove(Session, "after_flush_postexec", after)
        side.close()
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--interval", type=float, default=0.0005, help="sampling interval, seconds")
    args = parser.parse_args(argv)

    from bench.baton_side import BatonSide
    from bench.common import INPUTS, REVIEWER, fresh, quiet_logs
    from bench.langgraph_side import LangGraphSide

    quiet_logs()
    out = args.out or Path(tempfile.mkdtemp(prefix="baton-profiles-"))
    out.mkdir(parents=True, exist_ok=True)
    baton = BatonSide(fresh(out / "baton.db"))
    graph = LangGraphSide(fresh(out / "langgraph.db"))
    for i in range(20):
        baton.resume(baton.suspend())
        graph.suspend(f"warm-{i}", INPUTS)
        graph.resume(f"warm-{i}", REVIEWER, "approve")
    ids: list[int] = []
    threads = [f"t-{i}" for i in range(args.runs)]
    def baton_suspend() -> None:
        ids.extend(baton.suspend() for _ in range(args.runs))

    def baton_resume() -> None:
        for run_id in ids:
            baton.resume(run_id)

    def graph_suspend() -> None:
        for thread in threads:
            graph.suspend(thread, INPUTS)

    def graph_resume() -> None:
        for thread in threads:
            graph.resume(thread, REVIEWER, "approve")

    texts = {name: _profile(name, fn, out, args.interval) for name, fn in (
        ("baton-suspend", baton_suspend), ("baton-resume", baton_resume),
        ("langgraph-suspend", graph_suspend), ("langgraph-resume", graph_resume))}
    ids.clear()
    threads = [f"c-{i}" for i in range(args.runs)]
    shares = {name: by_library(fn) for name, fn in (
        ("baton-suspend", baton_suspend), ("baton-resume", baton_resume),
        ("langgraph-suspend", graph_suspend), ("langgraph-resume", graph_resume))}
    baton.close()
    graph.close()
    for name, text in texts.items():
        print(f"==== {name} ({args.runs} runs) ====")
        print("\n".join(text.splitlines()[:60]))
    for name, owners in shares.items():
        print(f"==== {name}: share of CPU time by owner (cProfile) ====")
        print("\n".join(f"  {share:6.1%}  {owner}" for owner, share in owners if share >= 0.005))
    for phase, found in statements(out).items():
        print(f"==== SQL of one Baton {phase}: {len(found)} statements ====")
        print("\n".join(f"  {s}" for s in found))
    for phase, (ms, share) in flush_cost(out, args.runs).items():
        print(f"==== ORM flush per {phase}: {ms:.2f} ms, {share:.0%} of its time (unprofiled) ====")
    print(f"profiles written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
