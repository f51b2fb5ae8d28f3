"""Late payments: a provider's success for a deposit that had already expired, failed, or
succeeded elsewhere. Opening the case raises a critical alert; the policy resolves it once."""

from datetime import datetime
from typing import Literal, cast

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from db import late_payments as store
from db import monitoring
from db.models import Deposit

LatePolicy = Literal["credit", "refund"]
CasePolicy = Literal["credit", "refund", "manual"]


class OpenLateInput(BaseModel):
    deposit_id: str
    provider: str
    amount_minor: int  # what the provider confirms it received
    currency: str


class OpenLateResult(BaseModel):
    case_id: int  # 0: no case (the money paid this very deposit: it is not late)
    resolution: str
    policy: CasePolicy
    player_id: str
    deposit_status: str


class ResolveLateInput(BaseModel):
    case_id: int
    resolution: Literal["credited", "refunded", "refund_requested"]
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
            if deposit.status == "succeeded" and deposit.provider == inp.provider:
                found = await store.find_case(
                    session, deposit_id=inp.deposit_id, provider=inp.provider
                )
                if found is None:
                    return OpenLateResult(  # this money is what the deposit was credited for
                        case_id=0,
                        resolution="not_late",
                        policy=self._policy,
                        player_id=deposit.player_id,
                        deposit_status=deposit.status,
                    )
                # Credited by its case here (a run that credited it and was retried before it
                # resolved the case): that case as it stands, to be resolved, never judged anew
                # (as money paid to a credited deposit it would be refunded).
                case_id, resolution, policy_now = found
                return OpenLateResult(
                    case_id=case_id,
                    resolution=resolution,
                    policy=cast(CasePolicy, policy_now),
                    player_id=deposit.player_id,
                    deposit_status=deposit.status,
                )
            exact = (inp.amount_minor, inp.currency) == (deposit.amount_minor, deposit.currency)
            # Credited already (at another provider): crediting again would pay twice. Another
            # amount than the deposit's: a person decides (credit what came, or return it).
            # Money from credit is never credited (it failed `credit_funds_not_allowed`).
            refused_credit = (deposit.status_reason or "").startswith("credit_funds_not_allowed")
            policy: CasePolicy = (
                "refund"
                if deposit.status == "succeeded" or refused_credit
                else (self._policy if exact else "manual")
            )
            case_id, resolution, policy_now, created = await store.open_case(
                session,
                deposit_id=inp.deposit_id,
                provider=inp.provider,
                amount_minor=inp.amount_minor,
                currency=inp.currency,
                deposit_status=deposit.status,
                policy=policy,
            )
            policy = cast(CasePolicy, policy_now)
            if created:
                action = {
                    "credit": "credited to the player",
                    "refund": "to be refunded",
                    "manual": f"of another amount than the deposit's {deposit.amount_minor} "
                    f"{deposit.currency}: decide whether to credit or return it",
                }[policy]
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
