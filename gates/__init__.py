"""Policy: CEL conditions, who may decide, quorum, conflicts, escalation chains and
boundaries. Pure and deterministic: no Slack, no database, no clock of its own."""
