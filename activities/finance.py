"""Finance activities: the daily balance snapshot, taken by the worker for a day that is over
(the reconciliation of a day can take it when it has settled the day). Idempotent: a fresh
snapshot of the day is left as it is; a stale one is taken again."""

from datetime import date, datetime

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from db import finance


class TakeSnapshotInput(BaseModel):
    day: date
    occurred_at: datetime


class TakeSnapshotResult(BaseModel):
    accounts: int
    taken: bool  # False: a fresh snapshot of the day was there already


class FinanceActivities:
    def __init__(self, *, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    @activity.defn
    async def take_balance_snapshot(self, inp: TakeSnapshotInput) -> TakeSnapshotResult:
        async with self._sessions.begin() as session:
            snapshot = await finance.take_snapshot(session, day=inp.day, now=inp.occurred_at)
        return TakeSnapshotResult(accounts=snapshot.accounts, taken=snapshot.taken)
