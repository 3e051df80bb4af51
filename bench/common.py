"""What every benchmark shares: Baton's settings for the bench flows, timing statistics,
process figures (RSS, threads), SQLite file sizes, and the rows of the result table."""

from __future__ import annotations

import math
import multiprocessing
import os
import sqlite3
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import psutil

from orchestrator.logs import configure_logging
from orchestrator.settings import Settings

BENCH = Path(__file__).resolve().parent
FLOWS = BENCH / "flows"
ORG = FLOWS / "org.yaml"
REQUESTER = "requester"
REVIEWER = "approver01"  # in role:reviewer, the approvers of bench-approval's gate
INPUTS = {"vendor": "Acme Supplies", "amount": 1200.0}
SYNCHRONOUS = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


def quiet_logs() -> None:
    """What the CLI does for one-shot commands: JSON logs, warnings and up only."""
    configure_logging("json", "warning")


def database_url(db: Path | str) -> str:
    """A SQLite file's path, or a database URL as is."""
    return db if isinstance(db, str) else f"sqlite:///{db}"


def settings(db: Path | str, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "DATABASE_URL": database_url(db),
        "BATON_FLOWS": FLOWS,
        "BATON_ORG": ORG,
        "BATON_PYTHON_MODULES": ["bench_actions"],
        "BATON_LOG_LEVEL": "warning",
    }
    values.update(extra)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def env(db: Path | str, **extra: str) -> dict[str, str]:
    """The same configuration as environment variables, for a `baton` subprocess."""
    values = {**os.environ, "DATABASE_URL": database_url(db), "BATON_FLOWS": str(FLOWS),
              "BATON_ORG": str(ORG), "BATON_PYTHON_MODULES": "bench_actions",
              "BATON_LOG_LEVEL": "warning", "BATON_LOG_FORMAT": "json"}
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        values.pop(var, None)
    values["NO_PROXY"] = values["no_proxy"] = "127.0.0.1,localhost"
    values.update(extra)
    return values


def fresh(path: Path) -> Path:
    """`path` with no database (nor WAL files) left from an earlier run."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return path


# What the child processes import, once: multiprocessing's fork server imports these modules
# when it starts, then forks each child from itself, so a child does not spend 1.5 s
# importing Baton, SQLAlchemy and httpx again. The fork server has no threads and has run
# nothing of the benchmarks: a child starts with these modules loaded and nothing else.
_CHILD_PRELOAD = ["bench.baton_side", "bench.clickers", "orchestrator.bootstrap", "orchestrator.timers"]


@cache
def _children() -> multiprocessing.context.BaseContext:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_CHILD_PRELOAD)
    return context


def in_child(fn: Callable[..., Any], *args: Any) -> Any:
    """Run `fn` in a process of its own: nothing allocated by this one, and no thread of it."""
    with ProcessPoolExecutor(1, mp_context=_children()) as pool:
        return pool.submit(fn, *args).result()


# -- statistics ------------------------------------------------------------------------------
def percentile(values: Sequence[float], p: float) -> float:
    """Nearest rank, as orchestrator.readers.stats does."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


@dataclass(frozen=True)
class Timing:
    """Per-operation times in milliseconds."""

    n: int
    median: float
    p95: float
    p99: float
    mean: float
    total_s: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Timing:
        ms = [s * 1000 for s in seconds]
        return cls(len(ms), statistics.median(ms), percentile(ms, 95), percentile(ms, 99),
                   statistics.fmean(ms), sum(seconds))

    @property
    def per_second(self) -> float:
        return self.n / self.total_s if self.total_s else 0.0


@dataclass
class PhaseTimes:
    """Each suspend's and each resume's wall-clock and process CPU time, in seconds."""

    suspend_wall: list[float] = field(default_factory=list)
    suspend_cpu: list[float] = field(default_factory=list)
    resume_wall: list[float] = field(default_factory=list)
    resume_cpu: list[float] = field(default_factory=list)

    def timed(self, phase: str, fn: Callable[[], Any]) -> Any:
        """Run `fn` as one `phase` ("suspend" or "resume") operation, timed on its own."""
        c0, t0 = time.process_time(), time.perf_counter()
        result = fn()
        t1, c1 = time.perf_counter(), time.process_time()
        getattr(self, f"{phase}_wall").append(t1 - t0)
        getattr(self, f"{phase}_cpu").append(c1 - c0)
        return result

    def timings(self) -> dict[str, Timing]:
        return {"suspend": Timing.of(self.suspend_wall), "resume": Timing.of(self.resume_wall),
                "suspend_cpu": Timing.of(self.suspend_cpu), "resume_cpu": Timing.of(self.resume_cpu)}


# -- the process -----------------------------------------------------------------------------
def rss_mb(pid: int | None = None) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


def os_threads(pid: int | None = None) -> int:
    return psutil.Process(pid).num_threads()


def py_threads() -> int:
    return threading.active_count()


def db_bytes(path: Path) -> int:
    """Bytes the database occupies once its WAL is folded in (pages in use, free pages not)."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
    return (pages - free) * size


def pragma(conn: sqlite3.Connection, name: str) -> str:
    value = conn.execute(f"PRAGMA {name}").fetchone()[0]
    if name == "synchronous":
        return SYNCHRONOUS.get(value, str(value))
    return str(value)


# -- results ---------------------------------------------------------------------------------
@dataclass
class Row:
    """One line of the result table."""

    section: str
    metric: str
    value: str
    target: str = ""
    met: bool | None = None  # None: no target

    @property
    def verdict(self) -> str:
        return "" if self.met is None else ("met" if self.met else "MISSED")

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "verdict": self.verdict}


def table(rows: Sequence[Row]) -> str:
    heads = ("benchmark", "metric", "value", "target", "")
    cells = [heads] + [(r.section, r.metric, r.value, r.target, r.verdict) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(heads))]
    lines = []
    for i, cell in enumerate(cells):
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(cell, widths, strict=True)) + " |")
        if i == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def ms(value: float) -> str:
    return f"{value:.2f} ms" if value < 100 else f"{value:.0f} ms"
