"""Webhook signatures: HMAC-SHA256 over `{timestamp}.{raw body}` with the provider's secret.

The timestamp is signed with the body, so a captured callback cannot be re-sent with a fresh
timestamp; one older than the tolerance is refused as a replay. Providers with an API of their
own sign their way (below: KazBank, TengeWallet, BankApp, KZQR, PayHub). Each way is a
`SignatureScheme` (its verify function and the headers its arguments come from) that the
provider's connector spec names (`providers.connector.Connector.signature`).
"""

import base64
import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

SIGNATURE_HEADER = "X-Signature"
TIMESTAMP_HEADER = "X-Signature-Timestamp"


class SignatureError(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class SignatureScheme:
    """How one provider signs its callbacks: `verify` raises SignatureError unless the body is
    signed; `headers` names the header each of its keyword arguments comes from."""

    verify: Callable[..., None]
    headers: Mapping[str, str]

    def check(
        self,
        secret: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        now: float,
        tolerance_seconds: int,
    ) -> None:
        arguments = {name: headers.get(header) for name, header in self.headers.items()}
        self.verify(secret, body=body, now=now, tolerance_seconds=tolerance_seconds, **arguments)


def _hmac(secret: str, message: bytes, digest: str = "sha256") -> bytes:
    return hmac.new(secret.encode(), message, digest).digest()


def _missing(*headers: str) -> SignatureError:
    return SignatureError("signature_missing", f"{' and '.join(headers)} required")


def _digits(text: str, *, longest: int, detail: str) -> int:
    """A unix timestamp written as at most `longest` digits."""
    if not text.isdigit() or len(text) > longest:
        raise SignatureError("invalid_timestamp", detail)
    return int(text)


def _check(
    expected: str, signature: str, *, stamp: float, now: float, tolerance_seconds: int
) -> None:
    """The signature matches and its timestamp is within the tolerance."""
    if not hmac.compare_digest(expected, signature.strip()):
        raise SignatureError("invalid_signature", "signature does not match the body")
    if abs(now - stamp) > tolerance_seconds:
        raise SignatureError("stale_timestamp", "timestamp is outside the allowed window")


def _check_fields(
    signature: str | None,
    *,
    header: str,
    separator: str,
    stamp_key: str,
    digest_key: str,
    expected: Callable[[int], str],
    now: float,
    tolerance_seconds: int,
) -> None:
    """A one-header signature `<stamp_key>=<unix s><separator><digest_key>=<digest>` (BankApp's
    and PayHub's); `expected` is the digest for a timestamp."""
    if not signature:
        raise _missing(header)
    parts = dict(part.strip().split("=", 1) for part in signature.split(separator) if "=" in part)
    digest = parts.get(digest_key)
    if not digest:
        raise SignatureError("signature_missing", f"{header} has no {digest_key}")
    stamp = _digits(parts.get(stamp_key, ""), longest=12, detail=f"{stamp_key} is not unix seconds")
    _check(expected(stamp), digest, stamp=stamp, now=now, tolerance_seconds=tolerance_seconds)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return "v1=" + _hmac(secret, message).hex()


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
        raise _missing(SIGNATURE_HEADER, TIMESTAMP_HEADER)
    try:
        stamp = int(timestamp)
    except ValueError as exc:
        raise SignatureError("invalid_timestamp", "timestamp is not unix seconds") from exc
    _check(
        sign(secret, stamp, body),
        signature,
        stamp=stamp,
        now=now,
        tolerance_seconds=tolerance_seconds,
    )


COMMON_SCHEME = SignatureScheme(
    verify, {"signature": SIGNATURE_HEADER, "timestamp": TIMESTAMP_HEADER}
)


# -- provider dialects: each bank or wallet signs its callbacks its own way ---------------------

KAZBANK_SIGNATURE_HEADER = "X-KazBank-Signature"
KAZBANK_TIMESTAMP_HEADER = "X-KazBank-Timestamp"  # unix milliseconds


def sign_kazbank(secret: str, timestamp_ms: int, body: bytes) -> str:
    """KazBank: `sha256=<hex>` of HMAC-SHA256 over `{unix ms}:{raw body}`."""
    message = str(timestamp_ms).encode() + b":" + body
    return "sha256=" + _hmac(secret, message).hex()


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
        raise _missing(KAZBANK_SIGNATURE_HEADER, KAZBANK_TIMESTAMP_HEADER)
    stamp_ms = _digits(timestamp, longest=16, detail="timestamp is not unix milliseconds")
    _check(
        sign_kazbank(secret, stamp_ms, body),
        signature,
        stamp=stamp_ms / 1000,
        now=now,
        tolerance_seconds=tolerance_seconds,
    )


KAZBANK_SCHEME = SignatureScheme(
    verify_kazbank,
    {"signature": KAZBANK_SIGNATURE_HEADER, "timestamp": KAZBANK_TIMESTAMP_HEADER},
)


TENGEWALLET_SIGNATURE_HEADER = "X-TW-Signature"
TENGEWALLET_TIMESTAMP_HEADER = "X-TW-Timestamp"  # ISO 8601 UTC, e.g. 2026-11-25T14:13:50Z


def tengewallet_timestamp(at: float) -> str:
    return datetime.fromtimestamp(int(at), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sign_tengewallet(secret: str, timestamp: str, body: bytes) -> str:
    """TengeWallet: base64 of HMAC-SHA256 over `{ISO timestamp}\\n{raw body}`."""
    message = timestamp.encode() + b"\n" + body
    return base64.b64encode(_hmac(secret, message)).decode()


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
        raise _missing(TENGEWALLET_SIGNATURE_HEADER, TENGEWALLET_TIMESTAMP_HEADER)
    try:
        stamp = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError as exc:
        raise SignatureError("invalid_timestamp", "timestamp is not ISO 8601 UTC") from exc
    _check(
        sign_tengewallet(secret, timestamp, body),
        signature,
        stamp=stamp.timestamp(),
        now=now,
        tolerance_seconds=tolerance_seconds,
    )


TENGEWALLET_SCHEME = SignatureScheme(
    verify_tengewallet,
    {"signature": TENGEWALLET_SIGNATURE_HEADER, "timestamp": TENGEWALLET_TIMESTAMP_HEADER},
)


BANKAPP_SIGNATURE_HEADER = "X-BankApp-Signature"  # t=<unix seconds>,v1=<hex>


def sign_bankapp(secret: str, timestamp: int, body: bytes) -> str:
    """BankApp: `t=<unix s>,v1=<hex>` of HMAC-SHA256 over `{t}.{raw body}`, in one header."""
    message = str(timestamp).encode() + b"." + body
    return f"t={timestamp},v1={_hmac(secret, message).hex()}"


def verify_bankapp(
    secret: str,
    *,
    body: bytes,
    signature: str | None,
    now: float,
    tolerance_seconds: int,
) -> None:
    _check_fields(
        signature,
        header=BANKAPP_SIGNATURE_HEADER,
        separator=",",
        stamp_key="t",
        digest_key="v1",
        expected=lambda stamp: sign_bankapp(secret, stamp, body).rsplit("v1=", 1)[1],
        now=now,
        tolerance_seconds=tolerance_seconds,
    )


BANKAPP_SCHEME = SignatureScheme(verify_bankapp, {"signature": BANKAPP_SIGNATURE_HEADER})


KZQR_SIGNATURE_HEADER = "X-KZQR-Signature"  # hex HMAC-SHA512
KZQR_NONCE_HEADER = "X-KZQR-Nonce"
KZQR_TIMESTAMP_HEADER = "X-KZQR-Timestamp"  # unix seconds


def sign_kzqr(secret: str, nonce: str, timestamp: int, body: bytes) -> str:
    """KZQR: hex of HMAC-SHA512 over `{nonce}|{unix s}|{raw body}`."""
    message = f"{nonce}|{timestamp}|".encode() + body
    return _hmac(secret, message, "sha512").hex()


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
    stamp = _digits(timestamp, longest=12, detail="timestamp is not unix seconds")
    _check(
        sign_kzqr(secret, nonce, stamp, body),
        signature.lower(),
        stamp=stamp,
        now=now,
        tolerance_seconds=tolerance_seconds,
    )


KZQR_SCHEME = SignatureScheme(
    verify_kzqr,
    {
        "signature": KZQR_SIGNATURE_HEADER,
        "nonce": KZQR_NONCE_HEADER,
        "timestamp": KZQR_TIMESTAMP_HEADER,
    },
)


PAYHUB_SIGNATURE_HEADER = "X-PayHub-Signature"  # ts=<unix s>;sig=<base64>


def sign_payhub(secret: str, timestamp: int, body: bytes) -> str:
    """PayHub: `ts=<unix s>;sig=<base64>` of HMAC-SHA256 over `{ts}:{hex SHA-256 of the body}`."""
    message = f"{timestamp}:{hashlib.sha256(body).hexdigest()}".encode()
    return f"ts={timestamp};sig={base64.b64encode(_hmac(secret, message)).decode()}"


def verify_payhub(
    secret: str,
    *,
    body: bytes,
    signature: str | None,
    now: float,
    tolerance_seconds: int,
) -> None:
    _check_fields(
        signature,
        header=PAYHUB_SIGNATURE_HEADER,
        separator=";",
        stamp_key="ts",
        digest_key="sig",
        expected=lambda stamp: sign_payhub(secret, stamp, body).split(";sig=", 1)[1],
        now=now,
        tolerance_seconds=tolerance_seconds,
    )


PAYHUB_SCHEME = SignatureScheme(verify_payhub, {"signature": PAYHUB_SIGNATURE_HEADER})
