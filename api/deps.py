"""`Annotated` dependency aliases the routers declare their needs with."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth import Decider, Principal, deciding_operator, require_role
from api.state import AppState
from config import Settings
from domain.roles import Role


async def get_state(request: Request) -> AppState:
    # async: FastAPI runs a plain `def` dependency in its thread pool, a thread hop per request.
    state: AppState = request.app.state.payments
    return state


StateDep = Annotated[AppState, Depends(get_state)]


async def get_app_settings(state: StateDep) -> Settings:
    return state.settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    async with state.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def get_analytics_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    """A session on the analytics pool (api/state.py), or the main one when there is none."""
    async with (state.analytics_sessions or state.sessions)() as session:
        yield session


AnalyticsSessionDep = Annotated[AsyncSession, Depends(get_analytics_session)]


MerchantDep = Annotated[Principal, Depends(require_role(Role.MERCHANT))]
OperatorDep = Annotated[Principal, Depends(require_role(Role.OPERATOR))]
ReaderDep = Annotated[Principal, Depends(require_role(Role.MERCHANT, Role.OPERATOR))]
AdminDep = Annotated[Principal, Depends(require_role(Role.ADMIN))]
# An operator or admin key that belongs to an active person: who decides approvals and cases.
DeciderDep = Annotated[Decider, Depends(deciding_operator)]
