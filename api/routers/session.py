"""Operator sessions for the browser: `POST /v1/session` exchanges an operator or admin key for
a short-lived HttpOnly cookie, `GET` shows it, `DELETE` signs out (see `api.session`).

The cookie is what the Temporal Web UI sends to `/codec` (it cannot send API keys); the
dashboard opens a session when the operator enters a key and closes it on "forget".
"""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from api import session as operator_session
from api.auth import Principal, operator_key_or_session, require_role
from api.deps import SettingsDep
from domain.roles import Role

router = APIRouter(prefix="/v1/session", tags=["operator session"])


class OperatorSession(BaseModel):
    key_id: str = Field(description="The operator key the session was opened with")
    name: str
    role: Role
    expires_at: datetime | None = Field(
        default=None, description="When the cookie stops being accepted"
    )


KeyHolderDep = Annotated[Principal, Depends(require_role(Role.OPERATOR))]
SessionHolderDep = Annotated[Principal, Depends(operator_key_or_session)]


@router.post("", status_code=201, response_model=OperatorSession)
async def open_session(
    response: Response, settings: SettingsDep, principal: KeyHolderDep
) -> OperatorSession:
    """Exchanges an operator or admin key (`Authorization: Bearer`) for the session cookie;
    merchant keys get 403. The cookie is HttpOnly, signed, and expires after
    `PAY_OPERATOR_SESSION_TTL_SECONDS`."""
    token, claims = operator_session.issue(
        settings, key_id=principal.key_id, role=principal.role, now=datetime.now(UTC)
    )
    secure, same_site = operator_session.cookie_attributes(settings)
    response.set_cookie(
        operator_session.COOKIE_NAME,
        token,
        max_age=settings.operator_session_ttl_seconds,
        expires=claims.expires_at,
        path="/",
        secure=secure,
        httponly=True,
        samesite=same_site,
    )
    response.headers["Cache-Control"] = "no-store"
    return OperatorSession(
        key_id=principal.key_id,
        name=principal.name,
        role=principal.role,
        expires_at=claims.expires_at,
    )


@router.get("", response_model=OperatorSession)
async def show_session(
    request: Request, settings: SettingsDep, principal: SessionHolderDep
) -> OperatorSession:
    """Who the cookie (or the key sent) signs in as; 401 once it has expired."""
    token = request.cookies.get(operator_session.COOKIE_NAME)
    claims = operator_session.verify(settings, token, now=datetime.now(UTC)) if token else None
    return OperatorSession(
        key_id=principal.key_id,
        name=principal.name,
        role=principal.role,
        expires_at=claims.expires_at if claims and claims.key_id == principal.key_id else None,
    )


@router.delete("", status_code=204)
async def close_session(settings: SettingsDep) -> Response:
    """Signs out: the browser drops the cookie. Always 204, signed in or not."""
    response = Response(status_code=204)
    secure, same_site = operator_session.cookie_attributes(settings)
    response.delete_cookie(
        operator_session.COOKIE_NAME,
        path="/",
        secure=secure,
        httponly=True,
        samesite=same_site,
    )
    return response
