"""Bearer API keys with roles: 401 for a missing or wrong key, 403 for the wrong role.

Routers declare what they need with the aliases in `api.deps` (`MerchantDep`, `OperatorDep`,
`ReaderDep`); `payments_access` guards whole routers where reads and writes differ by role.
`operator_key_or_session` also accepts the operator session cookie of `api.session`, for the
browser-facing codec endpoint only: no endpoint that changes anything takes a cookie, so a
cross-site request cannot act with an operator's session.

`DeciderDep` (`deciding_operator`): decisions (approvals, rejections, case resolutions) are made
by people. The operator or admin key must belong to an active operator (`db/operators.py`);
admin keys do not bypass it. The decision is recorded under the person's id and name, so four
eyes are two people, not two keys of one.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api import session as operator_session
from api.errors import Problem
from api.hot_cache import CachedKey
from api.state import AppState
from db import api_keys, operators
from domain.roles import Role, allows

Principal = api_keys.KeyHolder

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="APIKey",
    description="An API key from `python -m api.keys create`, as `Authorization: Bearer <key>`",
)


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None:
        raise Problem(401, "unauthorized", "Send an API key as `Authorization: Bearer <key>`")
    cached = await _cached_key(request.app.state.payments, credentials.credentials.strip())
    if cached is None:
        raise Problem(401, "unauthorized", "This API key is not valid or has been revoked")
    request.state.principal = cached.holder
    request.state.merchant_id = cached.merchant_id
    return cached.holder


async def _cached_key(state: AppState, key: str) -> CachedKey | None:
    """The key's holder if it is usable: from the process's brief cache (api/hot_cache.py,
    emptied of a key the moment it changes), else one indexed lookup."""
    parts = api_keys.split_key(key)
    if parts is None:
        return None
    key_id, secret = parts
    hot = state.hot
    cached = hot.cached_key(key_id)
    if cached is None:
        generation = hot.generation
        async with state.lookups() as session:
            record = await api_keys.key_record(session, key_id=key_id)
        if record is None or record.revoked:
            return None
        cached = CachedKey(
            record.holder, record.secret_sha256, record.expires_at, record.merchant_id
        )
        if hot.listening and hot.generation == generation:
            hot.keys.put(key_id, cached)
    if cached.expires_at is not None and cached.expires_at <= datetime.now(UTC):
        return None
    if not api_keys.secret_matches(cached.secret_sha256, secret):
        return None
    return cached


def require_role(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency that lets through keys of these roles (and admin keys)."""
    required = frozenset(roles)

    async def check(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        return _check_role(principal, required)

    return check


def _check_role(principal: Principal, required: frozenset[Role]) -> Principal:
    if not allows(principal.role, required):
        names = ", ".join(sorted(role.value for role in required | {Role.ADMIN}))
        raise Problem(
            403, "forbidden", f"This needs a key with role {names}; yours is {principal.role}"
        )
    return principal


_OPERATOR = frozenset({Role.OPERATOR})


async def operator_key_or_session(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """An operator or admin key, or else a valid operator session cookie (`POST /v1/session`)."""
    if credentials is not None:
        return _check_role(await authenticate(request, credentials), _OPERATOR)
    token = request.cookies.get(operator_session.COOKIE_NAME)
    if token is None:
        raise Problem(
            401,
            "unauthorized",
            "Send an operator API key as `Authorization: Bearer <key>`, or sign in with one at "
            "POST /v1/session (browsers: the session cookie)",
        )
    state = request.app.state.payments
    claims = operator_session.verify(state.settings, token, now=datetime.now(UTC))
    if claims is None:
        raise Problem(
            401,
            "unauthorized",
            "The operator session is expired or not valid: sign in again at POST /v1/session",
        )
    async with state.sessions() as db:
        holder = await api_keys.active_holder(db, key_id=claims.key_id)
    if holder is None:
        raise Problem(401, "unauthorized", "The key this session was opened with is revoked")
    request.state.principal = holder
    return _check_role(holder, _OPERATOR)


_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_read = require_role(Role.MERCHANT, Role.OPERATOR)
_write = require_role(Role.MERCHANT)


async def payments_access(
    request: Request, principal: Annotated[Principal, Depends(authenticate)]
) -> Principal:
    """Merchants read and write players and payments; operators only read them."""
    check = _read if request.method in _READ_METHODS else _write
    return await check(principal)


@dataclass(frozen=True)
class Decider:
    """A person deciding, through one of their keys."""

    operator_id: str
    operator_name: str
    key_id: str
    role: Role


_decision_role = require_role(Role.OPERATOR)


async def deciding_operator(
    request: Request, principal: Annotated[Principal, Depends(_decision_role)]
) -> Decider:
    """The active operator the key belongs to (checked at each decision, not cached), or 403."""
    state: AppState = request.app.state.payments
    async with state.lookups() as session:
        operator = await operators.operator_of_key(session, key_id=principal.key_id)
    if operator is None:
        raise Problem(
            403,
            "operator_required",
            f"Decisions are made by people: key {principal.key_id} belongs to no active "
            "operator (admin keys too). Assign it: `python -m api.keys assign "
            f"{principal.key_id} --operator <operator id>`",
        )
    return Decider(operator.id, operator.name, principal.key_id, principal.role)
