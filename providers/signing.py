"""Webhook signatures: HMAC-SHA256 over `{timestamp}.{raw body}` with the provider's secret.

The timestamp is signed with the body, so a captured callback cannot be re-sent with a fresh
timestamp; one older than the tolerance is refused as a replay. Providers with an API of their
own sign their way (below: KazBank; the real providers in their connector modules). Each way is a
`SignatureScheme` (its verify function and the headers its arguments come from) that the
provider's connector spec names (`providers.connector.Connector.signature`).
"""

import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass

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
    if not (text.isascii() and text.isdigit()) or len(text) > longest:
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
