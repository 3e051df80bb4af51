"""Shared fixtures: a real SQLite file per test, the repository's example flows, an
injected clock. Nothing of Baton's own is patched."""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings

from orchestrator.bootstrap import open_engine
from orchestrator.clock import FakeClock
from orchestrator.engine import Engine
from orchestrator.settings import Settings

pytest_plugins = ["tests.figures"]  # the reliability report's figures


def _import_anyio_up_front() -> None:
    """anyio imports its submodules lazily, and as a pytest plugin's package they are
    assertion-rewritten when first imported. A first import inside a server's thread while
    hypothesis has raised the recursion limit makes CPython's AST compiler fail ("AST
    constructor recursion depth mismatch"), and the request gets a 500. Import them now."""
    import importlib
    import pkgutil

    import anyio

    for module in pkgutil.walk_packages(anyio.__path__, "anyio."):
        if "trio" not in module.name and "interpreter" not in module.name:
            with contextlib.suppress(ImportError):
                importlib.import_module(module.name)


_import_anyio_up_front()

# Tests time nothing, property tests included: no per-example deadline, and no health check
# that fails a test because generating its inputs was slow (a loaded 2-core CI machine once
# stalled one draw for 1.4 s). Every @settings below inherits this profile.
settings.register_profile("baton", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("baton")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_FLOWS = ROOT / "flows"
# Tests time nothing: the emulated Slack runs on wall time, and a loaded CI machine may take
# longer than Slack's three seconds between a click and the modal it opens. The expiry itself
# is tested on a controlled clock (tests/sandbox/test_views.py, test_bolt.py).
WALL_TRIGGER_TTL = 60.0
TEST_FLOWS = Path(__file__).resolve().parent / "flows"

# Loopback servers in these tests must never be reached through a proxy.
for _var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
    os.environ.pop(_var, None)
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"


def make_settings(database: Path | str, flows: Path = EXAMPLE_FLOWS, **extra: object) -> Settings:
    """Settings for a test: `database` is a SQLite file path or a database URL."""
    values: dict[str, object] = {
        "DATABASE_URL": database if isinstance(database, str) else f"sqlite:///{database}",
        "BATON_FLOWS": flows,
        "BATON_ORG": EXAMPLE_FLOWS / "org.yaml",
        "BATON_PYTHON_MODULES": ["examples", "testagents"],
    }
    values.update(extra)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture(autouse=True)
def _default_logging() -> None:
    """Each test starts with structlog's defaults, whatever an earlier test configured."""
    import structlog

    structlog.reset_defaults()


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


# The suite runs on SQLite by default. With DATABASE_URL pointing at a PostgreSQL server
# (CI's second pass), every test gets a database of its own there, cloned from a template
# that was migrated once.
SERVER_URL = os.environ.get("DATABASE_URL", "")
ON_POSTGRES = SERVER_URL.startswith("postgresql")
# One template per pytest-xdist worker: workers create and drop theirs side by side.
TEMPLATE = "baton_test_template_" + os.environ.get("PYTEST_XDIST_WORKER", "main")


def _admin() -> sa.engine.Engine:
    return sa.create_engine(SERVER_URL, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)


def _url_of(database: str) -> str:
    return sa.engine.make_url(SERVER_URL).set(database=database).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str | None]:
    if not ON_POSTGRES:
        yield None
        return
    from storage.engine import Database
    from storage.migrate import upgrade

    with _admin().connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{TEMPLATE}"')
    db = Database(_url_of(TEMPLATE))
    upgrade(db)
    db.dispose()
    yield TEMPLATE
    with _admin().connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)')


@pytest.fixture
def database_url(tmp_path: Path, postgres_template: str | None) -> Iterator[str]:
    """A fresh, empty Baton database for one test."""
    if postgres_template is None:
        yield f"sqlite:///{tmp_path / 'baton.db'}"
        return
    name = f"baton_t{uuid.uuid4().hex[:12]}"
    with _admin().connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{postgres_template}"')
    yield _url_of(name)
    with _admin().connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def make_engine(database_url: str, clock: FakeClock, ledger: Callable) -> Iterator[Callable[..., Engine]]:
    engines: list[Engine] = []

    def build(flows: Path = EXAMPLE_FLOWS, settings_extra: dict[str, object] | None = None,
              **kw: object) -> Engine:
        settings = make_settings(database_url, flows, **(settings_extra or {}))
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
