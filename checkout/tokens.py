"""The session token in a page's URL, and the CSRF token of each form.

The token is `ckt_` + 43 base64url characters, an HMAC of the session id: replaying the
casino's `POST /v1/checkout/sessions` answers the same URL without the token ever being stored.
The database keeps its SHA-256 only, to find the session; the prefix lets the log redaction
(config/logging.py) mask it wherever it appears.

A form's CSRF token is `nonce.mac`, the MAC binding the nonce to the session and the form; the
nonce doubles as the submission's identity (its Idempotency-Key), so a double click or a
refreshed POST creates nothing twice. No cookie is involved: the page works inside a casino's
iframe where third-party cookies are blocked.
"""

import base64
import hashlib
import hmac
import re
import secrets

from config import Settings

TOKEN_PREFIX = "ckt_"  # noqa: S105 - a prefix, not a secret
TOKEN_PATTERN = re.compile(r"^ckt_[A-Za-z0-9_-]{43}$")
_NONCE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def _key(settings: Settings) -> bytes:
    if settings.checkout_secret is not None:
        return settings.checkout_secret.get_secret_value().encode()
    base = settings.idempotency_secret.get_secret_value().encode()
    return hmac.new(base, b"kzpay checkout key v1", hashlib.sha256).digest()


def _mac(settings: Settings, message: str) -> bytes:
    return hmac.new(_key(settings), message.encode(), hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def session_token(settings: Settings, session_id: str) -> str:
    return TOKEN_PREFIX + _b64(_mac(settings, f"token:{session_id}"))


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def well_formed(token: str) -> bool:
    return bool(TOKEN_PATTERN.match(token))


def csrf_token(settings: Settings, session_id: str, form: str) -> str:
    nonce = secrets.token_urlsafe(18)
    return f"{nonce}.{_b64(_mac(settings, f'csrf:{session_id}:{form}:{nonce}'))[:32]}"


def check_csrf(settings: Settings, session_id: str, form: str, value: str | None) -> str | None:
    """The form's nonce when `value` is this session's token for this form, else None."""
    if not value or len(value) > 128:
        return None
    nonce, _, mac = value.partition(".")
    if not _NONCE.match(nonce):
        return None
    expected = _b64(_mac(settings, f"csrf:{session_id}:{form}:{nonce}"))[:32]
    return nonce if hmac.compare_digest(mac, expected) else None


def return_mac(settings: Settings, session_id: str) -> str:
    """The capability of the page a provider sends the player back to: it only says "you can
    close this tab" and links to the casino, so it is a different key from the session's."""
    return _b64(_mac(settings, f"return:{session_id}"))[:22]


def check_return(settings: Settings, session_id: str, mac: str) -> bool:
    return hmac.compare_digest(mac.encode(), return_mac(settings, session_id).encode())
