"""Temporal activities: every piece of I/O a workflow needs, each idempotent on business ids."""
