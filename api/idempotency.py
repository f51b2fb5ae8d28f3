"""Request fingerprints for Idempotency-Key: keyed (HMAC) so card data is never stored in clear."""

import hashlib
import hmac
import json
from typing import Any

from pydantic import BaseModel, SecretStr

from api.errors import Problem


def _reveal(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, dict):
        return {key: _reveal(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_reveal(item) for item in value]
    return value


def fingerprint(body: BaseModel, *, secret: str) -> str:
    canonical = json.dumps(
        _reveal(body.model_dump(mode="python")), sort_keys=True, default=str, separators=(",", ":")
    )
    return hmac.new(secret.encode(), canonical.encode(), hashlib.sha256).hexdigest()


def require_key(key: str | None) -> str:
    if key is None or not key.strip():
        raise Problem(
            400,
            "idempotency_key_required",
            "Send an Idempotency-Key header (a unique string per payment, reused on retries).",
        )
    if len(key) > 255:
        raise Problem(400, "invalid_idempotency_key", "Idempotency-Key is at most 255 characters.")
    return key
