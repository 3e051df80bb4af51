"""Fakes for the edges Baton does not own, each a real HTTP server on loopback."""

from tests.fakes.openai_server import FakeOpenAI, Recorded, Reply, agent, point_baton_at, signal

__all__ = ["FakeOpenAI", "Recorded", "Reply", "agent", "point_baton_at", "signal"]
