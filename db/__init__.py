"""PostgreSQL: the schema, its migrations, and keyword-only data functions over it."""
