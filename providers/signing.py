"""Webhook signatures: HMAC-SHA256 over `{timestamp}.{raw body}` with the provider's secret.

The timestamp is signed with the body, so a captured callback cannot be re-sent with a fresh
timestamp; one older than the tolerance is refused as a replay.
"""

import hashlib
import hmac

SIGNATURE_HEADER = "X-Signature"
TIMESTAMP_HEADER = "X-Signature-Timestamp"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return "v1=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


class SignatureError(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def verify(
    secret: str,
    *,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    now: float,
    tolerance_seconds: int,
) -> None:
    """Raise SignatureError unless the body is signed with `secret` within the tolerance."""
    if not signature or not timestamp:
        raise SignatureError(
            "signature_missing", f"{SIGNATURE_HEADER} and {TIMESTAMP_HEADER} required"
        )
    try:
        stamp = int(timestamp)
    except ValueError as exc:
        raise SignatureError("invalid_timestamp", "timestamp is not unix seconds") from exc
    if not hmac.compare_digest(sign(secret, stamp, body), signature.strip()):
        raise SignatureError("invalid_signature", "signature does not match the body")
    if abs(now - stamp) > tolerance_seconds:
        raise SignatureError("stale_timestamp", "timestamp is outside the allowed window")
