"""Opaque, prefixed identifiers (`pl_…`, `dep_…`) as the contract promises."""

import hashlib
import secrets


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def derived_id(prefix: str, *parts: str) -> str:
    """An id fixed by business inputs, so that a retried request names the same object."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:24]
    return f"{prefix}_{digest}"


def deposit_workflow_id(deposit_id: str) -> str:
    return f"deposit-{deposit_id}"
