"""Fakes for the edges Baton does not own, each a real HTTP server on loopback."""

from tests.fakes.openai_server import (
    LLAMA_CPP_PYTHON_500,
    OPENAI_STYLE_400,
    FakeOpenAI,
    Recorded,
    Reply,
    agent,
    point_baton_at,
    signal,
)

__all__ = ["LLAMA_CPP_PYTHON_500", "OPENAI_STYLE_400", "FakeOpenAI", "Recorded", "Reply", "agent",
           "point_baton_at", "signal"]
