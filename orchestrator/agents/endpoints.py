"""Where an llm agent's calls go and with which key, and what stands in the way before any
call is made (kept apart from llm.py so that checking a flow's setup never imports openai).

The same checks run at three moments: when a run is asked for (`setup_problems`: a missing
key is known before anyone is paged), when `baton serve` starts and `baton flows validate`
runs (told to the operator), and before every call (`api_key`: a flow version stored
before the settings changed is held to today's settings).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlparse

from orchestrator.agents.base import SetupFailure
from orchestrator.reach import OPENAI_KEY_ENV, Reach
from orchestrator.spec import Flow, LlmAgent, LlmDefaults

OPENAI_HOSTS = ("api.openai.com",)
# Local servers (Ollama, llama.cpp) accept any key, but the openai client insists on one.
LOCAL_PLACEHOLDER_KEY = "no-key-needed"
DEFAULT_KEY_ENV = OPENAI_KEY_ENV


@dataclass(frozen=True)
class Endpoint:
    model: str
    base_url: str | None  # None: the openai client's default (api.openai.com)
    key_env: str
    response_format: str  # auto | json_schema | json_object

    @property
    def label(self) -> str:
        return self.base_url or "https://api.openai.com/v1"


def endpoint(spec: LlmAgent, flow: LlmDefaults, default_model: str) -> Endpoint:
    """Agent settings win over the flow's `llm:` section, which wins over the environment."""
    base_url = spec.base_url or flow.base_url or os.environ.get("OPENAI_BASE_URL") or None
    return Endpoint(model=spec.model or flow.model or default_model,
                    base_url=base_url.rstrip("/") if base_url else None,
                    key_env=spec.api_key_env or flow.api_key_env or DEFAULT_KEY_ENV,
                    response_format=spec.response_format or flow.response_format)


def api_key(where: Endpoint, reach: Reach) -> str:
    """The key to send to `where`, once the operator's settings allow it; SetupFailure
    (never retried: the operator must act) otherwise."""
    problem = reach.host_problem(where.label) or reach.key_problem(where.key_env)
    if problem:
        raise SetupFailure(problem)
    key = os.environ.get(where.key_env)
    if key:
        problem = reach.value_problem(where.key_env, key)
        if problem:
            raise SetupFailure(problem)
        return key
    host = urlparse(where.base_url).hostname if where.base_url else None
    if where.key_env == DEFAULT_KEY_ENV and host and host not in OPENAI_HOSTS:
        return LOCAL_PLACEHOLDER_KEY
    hint = (" (for a local server such as Ollama, set OPENAI_BASE_URL and any value will do)"
            if where.key_env == DEFAULT_KEY_ENV else "")
    raise SetupFailure(f"no API key for {where.label}: set {where.key_env}{hint}")


@dataclass(frozen=True)
class SetupProblem:
    """Why an llm agent of a flow cannot work on this server as it is configured."""

    agent: str
    problem: str

    def __str__(self) -> str:
        return f"agent {self.agent}: {self.problem}"


def setup_problems(flow: Flow, default_model: str, reach: Reach) -> list[SetupProblem]:
    """What stands in the way of `flow`'s llm agents before any call: a server or key the
    settings do not allow, a key that is not set. Nothing is sent anywhere."""
    found = []
    for name, spec in flow.agents.items():
        if isinstance(spec, LlmAgent):
            try:
                api_key(endpoint(spec, flow.llm, default_model), reach)
            except SetupFailure as exc:
                found.append(SetupProblem(name, str(exc)))
    return found


def explain(flow: str, problems: Iterable[SetupProblem]) -> str:
    """One message for the requester and the operator: what is missing, and how to fix it."""
    by_problem: dict[str, list[str]] = {}
    for item in problems:
        by_problem.setdefault(item.problem, []).append(item.agent)
    lines = [f"{flow} cannot run on this Baton server: it is not set up for the flow's llm agents."]
    for problem, agents in by_problem.items():
        lines.append(f"- {', '.join(agents)}: {problem}")
    lines.append("This is for the Baton operator to fix (see docs/llm.md, \"Setup checks\"); "
                 "nothing was started and nobody was asked to decide.")
    return "\n".join(lines)
