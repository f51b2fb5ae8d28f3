"""Analytics activities: the rollup fold (db/rollups.py), run on the primary by the worker's
schedule (workflows/analytics.py), so rollups stay folded when the API's analytics reads go to
a read replica (`PAY_ANALYTICS_DATABASE_URL`), which cannot fold. Idempotent: a fold moves the
pending deltas into the rollups in one transaction; a second one finds none (or, while another
holds the fold's lock, skips)."""

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from db import rollups


class FoldResult(BaseModel):
    deltas: int  # moved into the rollups (0: none pending, or another fold was running)


class AnalyticsActivities:
    def __init__(self, *, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    @activity.defn
    async def fold_rollups(self) -> FoldResult:
        async with self._sessions() as session:
            return FoldResult(deltas=await rollups.fold(session))
