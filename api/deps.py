"""`Annotated` dependency aliases the routers declare their needs with."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth import Principal, require_role
from api.state import AppState
from config import Settings
from domain.roles import Role


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.payments
    return state


StateDep = Annotated[AppState, Depends(get_state)]


def get_app_settings(state: StateDep) -> Settings:
    return state.settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    async with state.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


MerchantDep = Annotated[Principal, Depends(require_role(Role.MERCHANT))]
OperatorDep = Annotated[Principal, Depends(require_role(Role.OPERATOR))]
ReaderDep = Annotated[Principal, Depends(require_role(Role.MERCHANT, Role.OPERATOR))]
AdminDep = Annotated[Principal, Depends(require_role(Role.ADMIN))]
