"""Webhook signatures: HMAC-SHA256 over `{timestamp}.{raw body}` with the provider's secret.

The timestamp is signed with the body, so a captured callback cannot be re-sent with a fresh
timestamp; one older than the tolerance is refused as a replay. Providers with an API of their
own sign their way (below: KazBank, TengeWallet, BankApp, KZQR, PayHub), verified by their
adapters.
"""

import base64
import hashlib
import hmac
from datetime import UTC, datetime

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


# -- provider dialects: each bank or wallet signs its callbacks its own way ---------------------

KAZBANK_SIGNATURE_HEADER = "X-KazBank-Signature"
KAZBANK_TIMESTAMP_HEADER = "X-KazBank-Timestamp"  # unix milliseconds


def sign_kazbank(secret: str, timestamp_ms: int, body: bytes) -> str:
    """KazBank: `sha256=<hex>` of HMAC-SHA256 over `{unix ms}:{raw body}`."""
    message = str(timestamp_ms).encode() + b":" + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify_kazbank(
    secret: str,
    *,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    now: float,
    tolerance_seconds: int,
) -> None:
    if not signature or not timestamp:
        raise SignatureError(
            "signature_missing",
            f"{KAZBANK_SIGNATURE_HEADER} and {KAZBANK_TIMESTAMP_HEADER} required",
        )
    if not timestamp.isdigit() or len(timestamp) > 16:
        raise SignatureError("invalid_timestamp", "timestamp is not unix milliseconds")
    stamp_ms = int(timestamp)
    if not hmac.compare_digest(sign_kazbank(secret, stamp_ms, body), signature.strip()):
        raise SignatureError("invalid_signature", "signature does not match the body")
    if abs(now - stamp_ms / 1000) > tolerance_seconds:
        raise SignatureError("stale_timestamp", "timestamp is outside the allowed window")


TENGEWALLET_SIGNATURE_HEADER = "X-TW-Signature"
TENGEWALLET_TIMESTAMP_HEADER = "X-TW-Timestamp"  # ISO 8601 UTC, e.g. 2026-11-25T14:13:50Z


def tengewallet_timestamp(at: float) -> str:
    return datetime.fromtimestamp(int(at), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sign_tengewallet(secret: str, timestamp: str, body: bytes) -> str:
    """TengeWallet: base64 of HMAC-SHA256 over `{ISO timestamp}\\n{raw body}`."""
    message = timestamp.encode() + b"\n" + body
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def verify_tengewallet(
    secret: str,
    *,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    now: float,
    tolerance_seconds: int,
) -> None:
    if not signature or not timestamp:
        raise SignatureError(
            "signature_missing",
            f"{TENGEWALLET_SIGNATURE_HEADER} and {TENGEWALLET_TIMESTAMP_HEADER} required",
        )
    try:
        stamp = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError as exc:
        raise SignatureError("invalid_timestamp", "timestamp is not ISO 8601 UTC") from exc
    if not hmac.compare_digest(sign_tengewallet(secret, timestamp, body), signature.strip()):
        raise SignatureError("invalid_signature", "signature does not match the body")
    if abs(now - stamp.timestamp()) > tolerance_seconds:
        raise SignatureError("stale_timestamp", "timestamp is outside the allowed window")


BANKAPP_SIGNATURE_HEADER = "X-BankApp-Signature"  # t=<unix seconds>,v1=<hex>


def sign_bankapp(secret: str, timestamp: int, body: bytes) -> str:
    """BankApp: `t=<unix s>,v1=<hex>` of HMAC-SHA256 over `{t}.{raw body}`, in one header."""
    message = str(timestamp).encode() + b"." + body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_bankapp(
    secret: str,
    *,
    body: bytes,
    signature: str | None,
    now: float,
    tolerance_seconds: int,
) -> None:
    if not signature:
        raise SignatureError("signature_missing", f"{BANKAPP_SIGNATURE_HEADER} required")
    parts = dict(part.strip().split("=", 1) for part in signature.split(",") if "=" in part.strip())
    timestamp, digest = parts.get("t", ""), parts.get("v1")
    if not digest:
        raise SignatureError("signature_missing", f"{BANKAPP_SIGNATURE_HEADER} has no v1")
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise SignatureError("invalid_timestamp", "t is not unix seconds")
    stamp = int(timestamp)
    expected = sign_bankapp(secret, stamp, body).rsplit("v1=", 1)[1]
    if not hmac.compare_digest(expected, digest.strip()):
        raise SignatureError("invalid_signature", "signature does not match the body")
    if abs(now - stamp) > tolerance_seconds:
        raise SignatureError("stale_timestamp", "timestamp is outside the allowed window")


KZQR_SIGNATURE_HEADER = "X-KZQR-Signature"  # hex HMAC-SHA512
KZQR_NONCE_HEADER = "X-KZQR-Nonce"
KZQR_TIMESTAMP_HEADER = "X-KZQR-Timestamp"  # unix seconds


def sign_kzqr(secret: str, nonce: str, timestamp: int, body: bytes) -> str:
    """KZQR: hex of HMAC-SHA512 over `{nonce}|{unix s}|{raw body}`."""
    message = f"{nonce}|{timestamp}|".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha512).hexdigest()


def verify_kzqr(
    secret: str,
    *,
    body: bytes,
    signature: str | None,
    nonce: str | None,
    timestamp: str | None,
    now: float,
    tolerance_seconds: int,
) -> None:
    if not signature or not nonce or not timestamp:
        raise SignatureError(
            "signature_missing",
            f"{KZQR_SIGNATURE_HEADER}, {KZQR_NONCE_HEADER} and {KZQR_TIMESTAMP_HEADER} required",
        )
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise SignatureError("invalid_timestamp", "timestamp is not unix seconds")
    stamp = int(timestamp)
    if not hmac.compare_digest(sign_kzqr(secret, nonce, stamp, body), signature.strip().lower()):
        raise SignatureError("invalid_signature", "signature does not match the body")
    if abs(now - stamp) > tolerance_seconds:
        raise SignatureError("stale_timestamp", "timestamp is outside the allowed window")


PAYHUB_SIGNATURE_HEADER = "X-PayHub-Signature"  # ts=<unix s>;sig=<base64>


def sign_payhub(secret: str, timestamp: int, body: bytes) -> str:
    """PayHub: `ts=<unix s>;sig=<base64>` of HMAC-SHA256 over `{ts}:{hex SHA-256 of the body}`."""
    message = f"{timestamp}:{hashlib.sha256(body).hexdigest()}".encode()
    digest = base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest())
    return f"ts={timestamp};sig={digest.decode()}"


def verify_payhub(
    secret: str,
    *,
    body: bytes,
    signature: str | None,
    now: float,
    tolerance_seconds: int,
) -> None:
    if not signature:
        raise SignatureError("signature_missing", f"{PAYHUB_SIGNATURE_HEADER} required")
    parts = dict(part.strip().split("=", 1) for part in signature.split(";") if "=" in part)
    timestamp, digest = parts.get("ts", ""), parts.get("sig")
    if not digest:
        raise SignatureError("signature_missing", f"{PAYHUB_SIGNATURE_HEADER} has no sig")
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise SignatureError("invalid_timestamp", "ts is not unix seconds")
    stamp = int(timestamp)
    expected = sign_payhub(secret, stamp, body).split(";sig=", 1)[1]
    if not hmac.compare_digest(expected, digest.strip()):
        raise SignatureError("invalid_signature", "signature does not match the body")
    if abs(now - stamp) > tolerance_seconds:
        raise SignatureError("stale_timestamp", "timestamp is outside the allowed window")
