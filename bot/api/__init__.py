"""The HTTP API for external agents, under `/api/v1` (docs/api.md)."""
