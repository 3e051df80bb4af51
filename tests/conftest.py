"""Shared fixtures: a real SQLite file per test, the repository's example flows, an
injected clock. Nothing of Baton's own is patched."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orchestrator.bootstrap import open_engine
from orchestrator.clock import FakeClock
from orchestrator.engine import Engine
from orchestrator.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_FLOWS = ROOT / "flows"
TEST_FLOWS = Path(__file__).resolve().parent / "flows"

# Loopback servers in these tests must never be reached through a proxy.
for _var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
    os.environ.pop(_var, None)
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"


def make_settings(db_path: Path, flows: Path = EXAMPLE_FLOWS, **extra: object) -> Settings:
    values: dict[str, object] = {
        "DATABASE_URL": f"sqlite:///{db_path}",
        "BATON_FLOWS": flows,
        "BATON_ORG": EXAMPLE_FLOWS / "org.yaml",
        "BATON_PYTHON_MODULES": ["examples", "testagents"],
    }
    values.update(extra)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture(autouse=True)
def _fresh_test_agents() -> None:
    """tests/flows/testagents.py keeps counters per run id; runs restart at R-1 per test."""
    import sys

    module = sys.modules.get("testagents")
    if module is not None:
        module.calls.clear()
        module.spans.clear()


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[], list[dict]]:
    """The example actions' ledger: what actions really ran."""
    path = tmp_path / "ledger.jsonl"
    monkeypatch.setenv("BATON_EXAMPLE_LEDGER", str(path))

    def read() -> list[dict]:
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line]

    return read


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "baton.db"


@pytest.fixture
def make_engine(db_path: Path, clock: FakeClock, ledger: Callable) -> Iterator[Callable[..., Engine]]:
    engines: list[Engine] = []

    def build(flows: Path = EXAMPLE_FLOWS, **kw: object) -> Engine:
        settings = make_settings(db_path, flows)
        engine = open_engine(settings, clock=kw.pop("clock", clock), **kw)  # type: ignore[arg-type]
        engines.append(engine)
        return engine

    yield build
    for engine in engines:
        engine.shutdown()
        engine.db.dispose()


@pytest.fixture
def engine(make_engine: Callable[..., Engine]) -> Engine:
    return make_engine()


@pytest.fixture
def test_engine(make_engine: Callable[..., Engine]) -> Engine:
    """An engine over tests/flows (flows made to exercise one feature each)."""
    return make_engine(TEST_FLOWS)


@pytest.fixture
def testagents(test_engine: Engine):  # type: ignore[no-untyped-def]
    """tests/flows/testagents.py as the engine imported it (module state is shared)."""
    import sys

    test_engine.callables.load("testagents:slow")
    return sys.modules["testagents"]
