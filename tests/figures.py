"""Figures for the reliability report (issue 8): a pytest plugin, loaded by tests/conftest.py.

A test marked `@pytest.mark.reliability(item=..., promise=...)` that takes the `figures`
fixture counts what it did (requests sent, faults injected, refusals, decisions lost ...).
At the end of the session the records are written to
`test-artifacts/reliability-<database>.json`, and `python -m tests.reliability.report`
puts them into docs/reliability.md, so the report quotes a real run.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
FORMAT = "baton-reliability/1"


def artifact(database: str) -> Path:
    return ARTIFACTS / f"reliability-{database}.json"


class Figures:
    """What one test did, for docs/reliability.md."""

    def __init__(self, test: str, item: str, promise: str) -> None:
        self.test = test
        self.item = item
        self.promise = promise
        self.counts: Counter[str] = Counter(requests_sent=0, faults_injected=0, refusals=0,
                                            decisions_lost=0)
        self.notes: dict[str, Any] = {}

    def add(self, name: str, n: int = 1) -> None:
        self.counts[name] += n

    def note(self, name: str, value: Any) -> None:
        self.notes[name] = value


_RECORDS: dict[str, dict[str, Any]] = {}
_STARTED = time.monotonic()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "reliability(item, promise): the issue 8 item a test proves "
                                       "and the promise (SPEC section 6) it stands for")


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Iterator[Figures]:
    marker = request.node.get_closest_marker("reliability")
    if marker is None:
        raise pytest.UsageError(f"{request.node.nodeid} takes `figures` but has no "
                                "@pytest.mark.reliability(item=..., promise=...)")
    found = Figures(request.node.nodeid, str(marker.kwargs.get("item", "")),
                    str(marker.kwargs.get("promise", "")))
    record: dict[str, Any] = {"test": found.test, "item": found.item, "promise": found.promise,
                              "outcome": "unknown"}
    _RECORDS[found.test] = record
    started = time.monotonic()
    yield found
    record.update(figures=dict(found.counts), notes=found.notes,
                  duration_s=round(time.monotonic() - started, 3))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    record = _RECORDS.get(item.nodeid)
    if record is None:
        return
    if report.when == "call" or (report.when == "setup" and report.failed):
        record["outcome"] = report.outcome
    elif report.when == "teardown" and report.failed:
        record["outcome"] = "failed"


def _commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, timeout=5, check=True).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _worker_output(config: pytest.Config) -> dict[str, Any] | None:
    """Where a pytest-xdist worker leaves data for the controller (None outside a worker)."""
    return getattr(config, "workeroutput", None)


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook; absent when it is not loaded
def pytest_testnodedown(node: Any, error: Any) -> None:
    """Controller side of pytest-xdist: a worker finished; keep the records it made."""
    _RECORDS.update(getattr(node, "workeroutput", {}).get("baton_figures", {}))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shipped = _worker_output(session.config)
    if shipped is not None:  # a worker: the controller writes the one document
        shipped["baton_figures"] = dict(_RECORDS)
        return
    if not _RECORDS:
        return
    database = "postgresql" if os.environ.get("DATABASE_URL", "").startswith("postgresql") else "sqlite"
    tests = sorted(_RECORDS.values(), key=lambda r: r["test"])
    totals: Counter[str] = Counter()
    for record in tests:
        totals.update(record.get("figures", {}))
    document = {
        "format": FORMAT,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": _commit(),
        "database": database,
        "python": platform.python_version(),
        "tests_s": round(sum(r.get("duration_s", 0) for r in tests), 1),
        "outcomes": dict(Counter(r["outcome"] for r in tests)),
        "totals": dict(sorted(totals.items())),
        "tests": tests,
    }
    path = artifact(database)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
