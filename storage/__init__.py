"""Storage: SQLModel tables, the engine, the trace chain and migrations."""
