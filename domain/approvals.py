"""Signed approval tokens: an operator's decision reaches a workflow only with the API's signature.

Anyone who can reach Temporal can send a workflow update. So every decision update (approve,
reject, cancel a withdrawal; approve or reject a held deposit) carries a token the API signs,
after it has authenticated the operator, with HMAC-SHA256 under `PAY_APPROVAL_TOKEN_SECRET`:

    v1.<claims, base64url JSON>.<HMAC-SHA256 of "v1." + the claims part, base64url>

The claims bind the token to one workflow (the payment), one decision, one operator, the
review's own words (a digest of the operator's name and reason, so they cannot be swapped) and
an expiry a couple of minutes ahead. The update's validator (`workflows/approval_gate.py`)
recomputes the HMAC and compares every claim with the update it came with and with
`workflow.now()`; anything else is refused before the update is written to history.

The token is in the history (the update's input) once accepted, but it names its payment,
decision and operator: it cannot be replayed for another payment or the other decision, and
the same decision again by the same operator is harmless (approving twice counts once).

The workers get the secret from `configure_worker_secret`, called by `worker.build_worker`
before the worker starts, keyed by task queue. This module is passed through the workflow
sandbox (`domain` is in `worker.PASSTHROUGH_MODULES`), so the validator reads the same
registry; the secret is never a workflow input, so it never appears in a history.

Plain Python: the API signs and the workflows verify with the same functions.
"""

import base64
import hashlib
import hmac
import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

VERSION = "v1"
Decision = Literal["approve", "reject", "cancel"]
DECISIONS: frozenset[str] = frozenset({"approve", "reject", "cancel"})
# However the API is configured, no token is accepted for longer than this ahead.
MAX_LIFETIME = timedelta(hours=1)
MAX_TOKEN_LENGTH = 2048

RefusalReason = Literal[
    "missing",
    "malformed",
    "bad_signature",
    "expired",
    "too_long_lived",
    "wrong_payment",
    "wrong_decision",
    "wrong_operator",
    "wrong_details",
    "not_configured",
]


class ApprovalRefused(ValueError):
    """The decision's token does not authorize it (the workflow refuses the update)."""

    def __init__(self, reason: RefusalReason, detail: str) -> None:
        super().__init__(f"approval token refused ({reason}): {detail}")
        self.reason = reason


@dataclass(frozen=True)
class Claims:
    workflow_id: str
    decision: str
    operator_id: str
    details: str  # details_digest(operator name, reason)
    expires_at: int  # Unix seconds


def details_digest(actor_name: str, reason: str | None) -> str:
    """What the operator signs along with the decision: their shown name and their reason."""
    material = json.dumps([actor_name, reason], ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(material.encode()).hexdigest()[:32]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, signed: str) -> bytes:
    return hmac.new(secret, signed.encode("ascii"), hashlib.sha256).digest()


def sign(
    secret: bytes,
    *,
    workflow_id: str,
    decision: Decision,
    operator_id: str,
    actor_name: str,
    reason: str | None,
    expires_at: datetime,
) -> str:
    """A token for exactly this decision, valid until `expires_at` (workflow time)."""
    if not secret:
        raise ValueError("no approval token secret")
    claims = {
        "wf": workflow_id,
        "d": decision,
        "op": operator_id,
        "h": details_digest(actor_name, reason),
        "exp": math.ceil(expires_at.timestamp()),
    }
    body = _b64(json.dumps(claims, ensure_ascii=True, separators=(",", ":")).encode())
    signed = f"{VERSION}.{body}"
    return f"{signed}.{_b64(_mac(secret, signed))}"


def read(secret: bytes, token: str | None) -> Claims:
    """The claims of a token this secret signed; raises ApprovalRefused otherwise."""
    if not token:
        raise ApprovalRefused("missing", "the decision carries no approval token")
    if len(token) > MAX_TOKEN_LENGTH or not token.isascii():
        raise ApprovalRefused("malformed", "not an approval token")
    version, _, rest = token.partition(".")
    body, _, mac = rest.partition(".")
    if version != VERSION or not body or not mac:
        raise ApprovalRefused("malformed", "not an approval token")
    try:
        given = _unb64(mac)
    except ValueError as exc:
        raise ApprovalRefused("malformed", "the signature is not base64url") from exc
    if not hmac.compare_digest(given, _mac(secret, f"{version}.{body}")):
        raise ApprovalRefused("bad_signature", "the token was not signed by this platform's API")
    try:
        raw = json.loads(_unb64(body))
        claims = Claims(
            workflow_id=str(raw["wf"]),
            decision=str(raw["d"]),
            operator_id=str(raw["op"]),
            details=str(raw["h"]),
            expires_at=int(raw["exp"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ApprovalRefused("malformed", "the token's claims are unreadable") from exc
    return claims


def verify(
    secret: bytes,
    token: str | None,
    *,
    workflow_id: str,
    decision: str,
    operator_id: str,
    actor_name: str,
    reason: str | None,
    now: datetime,
) -> Claims:
    """Raises ApprovalRefused unless the token was signed with `secret` for exactly this
    workflow, decision, operator, name and reason, and has not expired at `now`."""
    claims = read(secret, token)
    at = now.timestamp()
    if claims.expires_at <= at:
        raise ApprovalRefused("expired", "the approval token has expired: decide again")
    if claims.expires_at > at + MAX_LIFETIME.total_seconds():
        raise ApprovalRefused("too_long_lived", "the approval token lives too long")
    if not hmac.compare_digest(claims.workflow_id.encode(), workflow_id.encode()):
        raise ApprovalRefused("wrong_payment", "the approval token is for another payment")
    if claims.decision != decision:
        raise ApprovalRefused(
            "wrong_decision", f"the approval token is for {claims.decision!r}, not {decision!r}"
        )
    if not hmac.compare_digest(claims.operator_id.encode(), operator_id.encode()):
        raise ApprovalRefused("wrong_operator", "the approval token is another operator's")
    if not hmac.compare_digest(claims.details, details_digest(actor_name, reason)):
        raise ApprovalRefused(
            "wrong_details", "the operator's name or reason is not the one the token was signed for"
        )
    return claims


# -- the workers' secrets ---------------------------------------------------------------------

_WORKER_SECRETS: dict[str, bytes] = {}


def configure_worker_secret(task_queue: str, secret: str) -> None:
    """Set by the worker before it polls `task_queue` (worker.build_worker)."""
    if not secret:
        raise ValueError("PAY_APPROVAL_TOKEN_SECRET is empty")
    _WORKER_SECRETS[task_queue] = secret.encode()


def worker_secret(task_queue: str) -> bytes:
    """The secret a workflow on `task_queue` verifies with; refused when none was set."""
    secret = _WORKER_SECRETS.get(task_queue)
    if secret is None:
        raise ApprovalRefused(
            "not_configured", f"no approval token secret is configured for {task_queue!r}"
        )
    return secret
