"""The adapters are optional extras of `baton-client`: the base client depends on httpx only,
imports no framework, and an adapter without its framework says which extra to install."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

CLIENT = Path(__file__).resolve().parents[2] / "clients" / "python"
FRAMEWORKS = ("agents", "langgraph", "langchain_core", "langchain_openai", "openai")


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=CLIENT)


def test_the_client_depends_on_httpx_only_and_offers_each_framework_as_an_extra() -> None:
    project = tomllib.loads((CLIENT / "pyproject.toml").read_text())["project"]
    assert project["dependencies"] == ["httpx>=0.27"]
    extras = project["optional-dependencies"]
    assert set(extras) == {"openai-agents", "langgraph"}
    assert any(r.startswith("openai-agents") for r in extras["openai-agents"])
    assert any(r.startswith("langgraph") for r in extras["langgraph"])


def test_importing_the_client_imports_no_framework() -> None:
    done = _python("import sys, baton_client, baton_client.approval, baton_client.gated\n"
                   f"print(sorted(m for m in {FRAMEWORKS!r} if m in sys.modules))")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(("module", "framework", "extra"), [
    ("baton_client.openai_agents", "agents", "openai-agents"),
    ("baton_client.langgraph", "langgraph", "langgraph"),
])
def test_an_adapter_without_its_framework_names_the_extra_to_install(module: str, framework: str,
                                                                     extra: str) -> None:
    # A None entry in sys.modules makes `import framework` fail as if it were not installed.
    done = _python(f"import sys; sys.modules[{framework!r}] = None; import {module}")
    assert done.returncode != 0
    assert f"pip install 'baton-client[{extra}]'" in done.stderr
