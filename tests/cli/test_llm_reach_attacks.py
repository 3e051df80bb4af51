"""A hostile flow author after the server's credentials (issue 21, item 2), through `baton run`
with the real openai client against loopback servers that record what reaches them: the
operator's own model server, and a second server the operator allowed for some flows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import InProcess
from tests.fakes import FakeOpenAI, Reply, signal
from tests.fakes.openai_server import Recorded

FLOW = """\
name: reach
agents:
  risk:
    kind: llm
    instructions: "You assess risk."
    base_url: {base_url}
    {key_line}
steps:
  - agent: risk
"""
# The openai client's own variables, as an operator sets them for OPENAI_BASE_URL's server
# (a gateway's credentials, the OpenAI organisation and project).
AMBIENT = {"OPENAI_ORG_ID": "org-operators", "OPENAI_PROJECT_ID": "proj-operators",
           "OPENAI_CUSTOM_HEADERS": "X-Gateway-Key: gw-secret\nAuthorization: Bearer gw-token"}


@pytest.fixture
def own() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        server.script(Reply(signal()))
        yield server


@pytest.fixture
def other() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        server.script(Reply(signal()))
        yield server


def host_of(server: FakeOpenAI) -> str:
    return server.base_url.split("//")[1].split("/")[0]


def run_flow(cli: InProcess, tmp_path: Path, base_url: str, key_env: str | None,
             **env: str) -> str:
    folder = tmp_path / "flows"
    folder.mkdir(exist_ok=True)
    key_line = f"api_key_env: {key_env}" if key_env else ""
    (folder / "reach.yaml").write_text(FLOW.format(base_url=base_url, key_line=key_line))
    result = cli("run", "reach", "--as", "alice", BATON_FLOWS=str(folder), **env)
    return result.stdout + result.stderr


def test_the_openai_clients_own_headers_go_only_to_its_own_server(
        cli: InProcess, tmp_path: Path, own: FakeOpenAI, other: FakeOpenAI) -> None:
    """OPENAI_ORG_ID, OPENAI_PROJECT_ID and OPENAI_CUSTOM_HEADERS are read by the openai client
    for every server: a flow naming another allowed server got the gateway's key, the
    organisation, and an Authorization that replaced the key Baton had checked."""
    env = {**AMBIENT, "OPENAI_BASE_URL": own.base_url, "OPENAI_API_KEY": "sk-operators",
           "BATON_LLM_HOSTS": host_of(other), "BATON_LLM_KEY_ENVS": "TEAM_KEY",
           "TEAM_KEY": "team-key-for-the-other-server"}
    output = run_flow(cli, tmp_path, other.base_url, "TEAM_KEY", **env)
    assert "R-1 succeeded" in output, output
    (call,) = other.requests
    assert call.headers["authorization"] == "Bearer team-key-for-the-other-server"
    sent = " ".join(f"{k}: {v}" for k, v in call.headers.items()).lower()
    for leaked in ("gw-secret", "gw-token", "org-operators", "proj-operators", "x-gateway-key",
                   "openai-organization", "openai-project"):
        assert leaked not in sent

    # The operator's own server still gets what the operator configured for it.
    output = run_flow(cli, tmp_path, own.base_url, None, **env)
    assert "R-2 succeeded" in output and own.requests, output
    headers = own.requests[0].headers
    assert headers["x-gateway-key"] == "gw-secret"
    assert headers["openai-organization"] == "org-operators"


def test_a_listed_variable_holding_the_database_password_is_not_sent(
        cli: InProcess, tmp_path: Path, own: FakeOpenAI) -> None:
    """Only a variable equal to a whole secret was refused: the password inside
    DATABASE_URL (or any DATABASE_*, PG*, SLACK_*, BATON_* URL) went out as a key."""
    password = "pg-Secret-Passw0rd"
    output = run_flow(cli, tmp_path, own.base_url, "TEAM_KEY",
                      OPENAI_BASE_URL=own.base_url, BATON_LLM_KEY_ENVS="TEAM_KEY",
                      TEAM_KEY=password,
                      DATABASE_REPLICA_URL=f"postgresql://reader:{password}@db.internal/baton")
    assert "the value of TEAM_KEY is also the value of one of Baton's own secrets" in output
    assert "or the password in one" in output
    assert own.requests == []


def test_a_step_cannot_call_more_agents_at_once_than_the_operator_allows(
        cli: InProcess, tmp_path: Path) -> None:
    """`max_concurrency: 50` on a step used to win over BATON_AGENT_CONCURRENCY: a flow could
    point fifty calls at once at the operator's model server."""
    with FakeOpenAI() as own:
        own.script(Reply(signal(), delay=0.5))
        calls = run_wide(cli, tmp_path, own)
    spans = [(r.started, r.finished or r.started) for r in calls]
    in_flight = max(sum(1 for s, f in spans if s <= at < f) for at, _ in spans)
    assert in_flight <= 2


def run_wide(cli: InProcess, tmp_path: Path, own: FakeOpenAI) -> list[Recorded]:
    agents = "\n".join(f"  a{i}: {{kind: llm, instructions: \"You assess risk.\"}}" for i in range(4))
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "wide.yaml").write_text(f"""\
name: wide
agents:
{agents}
steps:
  - parallel: {{agents: [a0, a1, a2, a3], max_concurrency: 50}}
""")
    result = cli("run", "wide", "--as", "alice", BATON_FLOWS=str(folder),
                   OPENAI_BASE_URL=own.base_url, OPENAI_API_KEY="sk-operators",
                   BATON_AGENT_CONCURRENCY="2")
    assert "R-1 succeeded" in result.stdout, result.stdout + result.stderr
    assert len(own.requests) == 4
    return own.requests
