"""Late payments: a provider's success for a deposit that had already expired, failed, or
succeeded elsewhere. Opening the case raises a critical alert; the policy resolves it once."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from db import late_payments as store
from db import monitoring
from db.models import Deposit

LatePolicy = Literal["credit", "refund"]


class OpenLateInput(BaseModel):
    deposit_id: str
    provider: str
    amount_minor: int
    currency: str


class OpenLateResult(BaseModel):
    case_id: int
    resolution: str
    policy: LatePolicy
    player_id: str
    deposit_status: str


class ResolveLateInput(BaseModel):
    case_id: int
    resolution: Literal["credited", "refund_requested"]
    ledger_transaction_id: int | None = None
    occurred_at: datetime


class ResolveLateResult(BaseModel):
    resolved: bool = True


class LatePaymentActivities:
    def __init__(
        self, *, sessions: async_sessionmaker[AsyncSession], policy: LatePolicy = "credit"
    ) -> None:
        self._sessions = sessions
        self._policy = policy

    @activity.defn
    async def open_late_payment(self, inp: OpenLateInput) -> OpenLateResult:
        async with self._sessions.begin() as session:
            deposit = await session.get(Deposit, inp.deposit_id)
            if deposit is None:
                raise ApplicationError(
                    f"deposit {inp.deposit_id} not found", non_retryable=True, type="NotFound"
                )
            # Credited already (at another provider): crediting again would pay twice.
            policy: LatePolicy = "refund" if deposit.status == "succeeded" else self._policy
            case_id, resolution, created = await store.open_case(
                session,
                deposit_id=inp.deposit_id,
                provider=inp.provider,
                amount_minor=inp.amount_minor,
                currency=inp.currency,
                deposit_status=deposit.status,
                policy=policy,
            )
            if created:
                action = "credited to the player" if policy == "credit" else "to be refunded"
                await monitoring.raise_alert(
                    session,
                    dedupe_key=f"late_payment:{inp.deposit_id}:{inp.provider}",
                    kind="late_payment",
                    severity="critical",
                    subject=deposit.player_id,
                    message=f"{inp.provider} confirms {inp.amount_minor} {inp.currency} paid for "
                    f"deposit {inp.deposit_id}, which was {deposit.status}: {action}",
                    details={
                        "payment_id": inp.deposit_id,
                        "provider": inp.provider,
                        "deposit_status": deposit.status,
                        "policy": policy,
                    },
                )
        return OpenLateResult(
            case_id=case_id,
            resolution=resolution,
            policy=policy,
            player_id=deposit.player_id,
            deposit_status=deposit.status,
        )

    @activity.defn
    async def resolve_late_payment(self, inp: ResolveLateInput) -> ResolveLateResult:
        async with self._sessions.begin() as session:
            await store.resolve_case(
                session,
                case_id=inp.case_id,
                resolution=inp.resolution,
                ledger_transaction_id=inp.ledger_transaction_id,
                at=inp.occurred_at,
            )
        return ResolveLateResult()
