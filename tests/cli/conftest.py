"""Run the real `baton` command in child processes on a shared SQLite file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE_FLOWS, TEST_FLOWS


class Baton:
    def __init__(self, tmp_path: Path, flows: Path, database_url: str) -> None:
        self.ledger = tmp_path / "ledger.jsonl"
        self.database_url = database_url
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("BATON_", "DATABASE_"))},
            "DATABASE_URL": database_url,
            "BATON_FLOWS": str(flows),
            "BATON_ORG": str(EXAMPLE_FLOWS / "org.yaml"),
            "BATON_PYTHON_MODULES": "examples,testagents",
            "BATON_EXAMPLE_LEDGER": str(self.ledger),
        }
        self.cwd = tmp_path

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-c", "from bot.cli import main; main()", *args]

    def __call__(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(*args), capture_output=True, text=True, timeout=60,
                              env={**self.env, **env}, cwd=self.cwd)

    def spawn(self, *args: str, **env: str) -> subprocess.Popen[str]:
        return subprocess.Popen(self.command(*args), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env={**self.env, **env},
                                cwd=self.cwd)

    def entries(self) -> list[dict]:
        if not self.ledger.exists():
            return []
        return [json.loads(line) for line in self.ledger.read_text().splitlines() if line]


@pytest.fixture
def baton(tmp_path: Path, database_url: str) -> Baton:
    return Baton(tmp_path, EXAMPLE_FLOWS, database_url)


@pytest.fixture
def baton_tests(tmp_path: Path, database_url: str) -> Baton:
    return Baton(tmp_path, TEST_FLOWS, database_url)


@pytest.fixture
def wait_for() -> Callable[[Callable[[], bool], float], None]:
    import time

    def wait(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("condition not met in time")
            time.sleep(0.05)

    return wait


class InProcess(Baton):
    """The same commands through Typer's runner, in this process (faster; for tests that
    do not need separate processes)."""

    def __call__(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        from typer.testing import CliRunner

        from bot.cli import app

        result = CliRunner().invoke(app, list(args), env={**self.env, **env})
        return subprocess.CompletedProcess(list(args), result.exit_code, result.stdout,
                                           result.stderr)


@pytest.fixture
def cli(tmp_path: Path, database_url: str) -> InProcess:
    return InProcess(tmp_path, EXAMPLE_FLOWS, database_url)
