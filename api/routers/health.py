"""Liveness (the process answers) and readiness (its database answers)."""

from fastapi import APIRouter
from sqlalchemy import text

from api.deps import SessionDep
from api.errors import Problem

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "database not reachable"}})
async def readyz(session: SessionDep) -> dict[str, str]:
    try:
        await session.execute(text("SELECT 1"))
    except OSError as exc:
        raise Problem(503, "not_ready", "database is not reachable") from exc
    return {"status": "ready"}
