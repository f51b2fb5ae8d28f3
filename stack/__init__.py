"""The embedded stack: PostgreSQL, Temporal dev server, simulator, worker and API on one machine."""
