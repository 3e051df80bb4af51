"""A few seconds' check that the benchmark harness still runs against today's Baton:
both sides of the comparison on a handful of runs, and a small generated year whose
trace chains verify. It times nothing. Not collected by the test suite (testpaths is
tests/); run it with `pytest bench/test_smoke.py`."""

from __future__ import annotations

import json
import re
from pathlib import Path

from bench import api, run, suspend_resume, trace_size
from bench.common import table


def test_suspend_resume_on_both_sides(tmp_path: Path) -> None:
    result = suspend_resume.run(tmp_path, 4, log=lambda _: None, warmup=1)
    rows = suspend_resume.rows(result)
    assert {s.name for s in result.sides} == {"baton", "langgraph (sync)"}
    assert all(s.bytes_per_run > 0 for s in result.sides)
    assert "synchronous=NORMAL" in result.durability["baton"]
    assert "synchronous=NORMAL" in result.durability["langgraph (sync)"]
    assert re.search(r"suspend: langgraph \(sync\) / baton", table(rows))
    # the floor replays Baton's own rows: the same bytes, every run timed
    assert result.floor is not None and result.floor.n == 4
    assert abs(result.floor.bytes_per_run - result.side("baton").bytes_per_run) < 2048
    assert "floor: langgraph (sync) / floor" in table(rows)
    # building the values, it recomputes every trace hash and checks it equals Baton's
    assert result.floor_built is not None and result.floor_built.n == 4


def test_the_json_holds_each_side_and_the_floor(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    assert run.main(["--quick", "--only", "suspend", "--runs", "4", "--json", str(out),
                     "--workdir", str(tmp_path)]) == 0
    figures = json.loads(out.read_text())["suspend_resume"]
    assert set(figures) == {"baton", "langgraph (sync)", "floor"}  # --quick: the stored floor only
    for name, side in figures.items():
        assert side["bytes_per_run"] > 0, name
        assert side["suspend"]["median"] > 0 and side["resume_cpu"]["median"] > 0, name


def test_generated_year_verifies(tmp_path: Path) -> None:
    # trace_size.run checks that generated chains verify with `baton trace verify`'s code
    result = trace_size.run(tmp_path, 60, samples=3, log=lambda _: None, processes=0)
    assert result["counts"]["runs"] == 60 and result["counts"]["entries"] > 400
    assert "trace at size" in table(trace_size.rows(result))


def test_the_api_benchmark_runs(tmp_path: Path) -> None:
    found = api.run(tmp_path, samples=2, waiters=20, log=lambda _: None)
    assert found["approved"] == 20 and len(found["start_to_gate_ms"]) == 2
    assert "decision to signed callback" in table(api.rows(found))


def test_cli_start_times_each_command(tmp_path: Path) -> None:
    from bench import cli_start

    sides = cli_start.run(tmp_path, runs=1, before=None, log=lambda _: None)
    assert set(sides) == {"after"} and set(sides["after"].wall) == set(cli_start.COMMANDS)
    assert "baton status R-1: median wall (cpu)" in table(cli_start.rows(sides))
    # the children wrote their bytecode caches, as an installed copy has them, under the work
    # folder: the timed rounds do not compile Baton from source
    assert any((tmp_path / "pycache").rglob("bot/cli/__init__.cpython-*.pyc"))
