"""Marking a payment stuck: the one thing a workflow does when a bounded step runs out.

The flag (step and reason on the payment's row, migration 0080) makes `GET /v1/ops/stuck` list
the payment with why it waits, whatever its age; the critical alert tells a person now.
"""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from db import monitoring

PaymentKind = Literal["deposit", "withdrawal", "refund"]


class FlagStuckInput(BaseModel):
    kind: PaymentKind
    payment_id: str
    step: str
    reason: str
    occurred_at: datetime


class ClearStuckInput(BaseModel):
    kind: PaymentKind
    payment_id: str


class StuckResult(BaseModel):
    changed: bool


_TABLES: dict[PaymentKind, str] = {
    "deposit": "deposits",
    "withdrawal": "withdrawals",
    "refund": "refunds",
}


class StuckActivities:
    def __init__(self, *, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    @activity.defn
    async def flag_stuck(self, inp: FlagStuckInput) -> StuckResult:
        reason = f"{inp.step}: {inp.reason}"[:200]
        async with self._sessions.begin() as session:
            result = await session.execute(
                text(
                    f"UPDATE {_TABLES[inp.kind]} SET stuck_reason = :reason, "  # noqa: S608
                    "stuck_since = coalesce(stuck_since, :at) WHERE id = :id"
                ),
                {"reason": reason, "at": inp.occurred_at, "id": inp.payment_id},
            )
            await monitoring.raise_alert(
                session,
                dedupe_key=f"payment_stuck:{inp.kind}:{inp.payment_id}:{inp.step}"[:200],
                kind="payment_stuck",
                severity="critical",
                subject=f"{inp.kind}:{inp.payment_id}",
                message=f"{inp.kind} {inp.payment_id} is stuck at {reason}"[:500],
                details={"step": inp.step, "reason": inp.reason},
            )
        activity.logger.error("%s %s stuck at %s", inp.kind, inp.payment_id, reason)
        return StuckResult(changed=bool(getattr(result, "rowcount", 0)))

    @activity.defn
    async def clear_stuck(self, inp: ClearStuckInput) -> StuckResult:
        async with self._sessions.begin() as session:
            result = await session.execute(
                text(
                    f"UPDATE {_TABLES[inp.kind]} SET stuck_reason = NULL, "  # noqa: S608
                    "stuck_since = NULL WHERE id = :id AND stuck_reason IS NOT NULL"
                ),
                {"id": inp.payment_id},
            )
        return StuckResult(changed=bool(getattr(result, "rowcount", 0)))
