"""The periodic monitoring run as an activity: the checks of `db/monitoring.py`, one transaction."""

from datetime import datetime

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from db import monitoring
from domain.fraud import RuleSource


class MonitoringCheckInput(BaseModel):
    now: datetime
    """The workflow's time, so a replayed or time-skipped run judges the same instant."""


class MonitoringCheckResult(BaseModel):
    raised: list[str]
    """Dedupe keys of the alerts this run raised (an alert already open is not raised again)."""


class MonitoringActivities:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        fraud_rules: RuleSource | None = None,
        thresholds: monitoring.MonitorThresholds | None = None,
    ) -> None:
        self._sessions = sessions
        self._fraud = fraud_rules or RuleSource()
        self._thresholds = thresholds or monitoring.MonitorThresholds()

    @activity.defn
    async def run_monitoring_checks(self, inp: MonitoringCheckInput) -> MonitoringCheckResult:
        async with self._sessions.begin() as session:
            raised = await monitoring.run_checks(
                session, now=inp.now, thresholds=self._thresholds, rules=self._fraud.current()
            )
        if raised:
            activity.logger.warning("monitoring raised %d alert(s): %s", len(raised), raised)
        return MonitoringCheckResult(raised=raised)
