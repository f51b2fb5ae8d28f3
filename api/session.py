"""Operator sessions: a short-lived, HMAC-signed cookie for browsers that cannot send API keys.

The Temporal Web UI calls our codec endpoint from the operator's browser and can only send
cookies (`TEMPORAL_CODEC_INCLUDE_CREDENTIALS=true`), not our `Authorization: Bearer` keys. An
operator therefore exchanges an operator (or admin) key at `POST /v1/session` for the cookie
below; the codec endpoint accepts it instead of a key.

The cookie is `v1.<claims>.<signature>`: base64url JSON claims `{kid, role, iat, exp}` and an
HMAC-SHA256 over them keyed with `PAY_OPERATOR_SESSION_SECRET`. Nothing secret is inside it
(the key id is not the key). It is refused once expired, when the signature does not match, and
when the key it was issued for has since been revoked or is no longer an operator key: every
use looks the key up again, so revoking the key ends its sessions too.
"""

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from config import Settings
from domain.roles import Role

COOKIE_NAME = "kzpay_operator_session"
_VERSION = "v1"
_CONTEXT = b"kzpay operator session v1\x00"
SESSION_ROLES = frozenset({Role.OPERATOR, Role.ADMIN})


@dataclass(frozen=True)
class SessionClaims:
    key_id: str
    role: Role
    issued_at: datetime
    expires_at: datetime


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(settings: Settings, body: str) -> str:
    secret = settings.operator_session_secret.get_secret_value().encode()
    return _b64(hmac.new(secret, _CONTEXT + body.encode(), hashlib.sha256).digest())


def issue(
    settings: Settings, *, key_id: str, role: Role, now: datetime
) -> tuple[str, SessionClaims]:
    """A signed session token for this key, valid for `operator_session_ttl_seconds`."""
    if role not in SESSION_ROLES:
        raise ValueError(f"sessions are for operator and admin keys, not {role}")
    issued = now.replace(microsecond=0)
    claims = SessionClaims(
        key_id=key_id,
        role=role,
        issued_at=issued,
        expires_at=issued + timedelta(seconds=settings.operator_session_ttl_seconds),
    )
    body = _b64(
        json.dumps(
            {
                "kid": key_id,
                "role": role.value,
                "iat": int(claims.issued_at.timestamp()),
                "exp": int(claims.expires_at.timestamp()),
            },
            separators=(",", ":"),
        ).encode()
    )
    return f"{_VERSION}.{body}.{_signature(settings, body)}", claims


def verify(settings: Settings, token: str, *, now: datetime) -> SessionClaims | None:
    """The claims of a genuine, unexpired token; None for anything else."""
    version, _, rest = token.strip().partition(".")
    body, _, signature = rest.partition(".")
    if version != _VERSION or not body or not signature:
        return None
    if not hmac.compare_digest(signature.encode(), _signature(settings, body).encode()):
        return None
    try:
        data = json.loads(_unb64(body))
        claims = SessionClaims(
            key_id=str(data["kid"]),
            role=Role(data["role"]),
            issued_at=datetime.fromtimestamp(int(data["iat"]), UTC),
            expires_at=datetime.fromtimestamp(int(data["exp"]), UTC),
        )
    except (binascii.Error, ValueError, KeyError, TypeError):
        return None
    if claims.expires_at <= now or claims.role not in SESSION_ROLES:
        return None
    return claims


def cookie_attributes(settings: Settings) -> tuple[bool, Literal["none", "lax"]]:
    """(Secure, SameSite). SameSite=None lets the Web UI on another site send the cookie, and
    browsers only accept it with Secure; over plain HTTP in development, Lax (the UI and the API
    on one host but different ports are the same site)."""
    secure = settings.operator_session_cookie_secure
    return secure, "none" if secure else "lax"
