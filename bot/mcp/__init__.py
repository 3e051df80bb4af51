"""Baton as an MCP server (docs/mcp.md): coding agents and any MCP client ask people in
Slack before a risky action, through the approval service's own rules.

- `tools`: the five tools, their schemas and descriptions, over one `Approvals` backend;
- `answers`: what a tool says back, written for a model to act on (pure);
- `backends`: the two backends, the local database (`ApprovalService`) and a remote
  `baton serve` (the Python client), with one interface;
- `stdio`: `baton mcp`; `endpoint`: `/mcp` (streamable HTTP) under `baton serve --http`
  and `baton dev`, authenticated with the API's tokens.
"""
