"""Late payments: a provider's success for a deposit that had already expired, failed, or
succeeded elsewhere. Opening the case raises a critical alert; the policy resolves it once.

A late payment is judged by the deposit's own risk review as an on-time one is (issue 18): a
deposit the engine sent to review under `review_mode = "hold"`, or paid with a card whose holder
the provider reports is not the player, is held (`in_review`, not credited) until an operator
approves it; under `credit` it is credited and the person's withdrawals wait for the review
(`db.risk.blocking_reviews`); money for a deposit whose review was rejected goes back.
"""

from datetime import datetime
from typing import Literal, cast

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from db import deposits as deposit_store
from db import late_payments as store
from db import monitoring
from db import risk as risk_store
from db.fraud_models import DepositReview
from db.models import Deposit
from domain.statuses import LATE_PAYMENT_FROM, DepositStatus

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
    # The deposit's risk review holds the money until an operator approves it (a `credit` case).
    review_hold: bool = False
    review_score: int = 0
    review_reasons: list[str] = []
    workflow_id: str | None = None  # the deposit's workflow id: where the API sends a decision


class HoldLateInput(BaseModel):
    deposit_id: str
    provider: str
    reason: str | None
    occurred_at: datetime


class HoldLateResult(BaseModel):
    status: str  # the deposit's status afterwards: `in_review` unless it had moved on


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
            review = await risk_store.get_review(session, deposit_id=inp.deposit_id)
            if deposit.status == DepositStatus.IN_REVIEW.value and deposit.provider == inp.provider:
                # Held for review with this provider's money: by this case (a run that held it
                # and ended before the decision: it holds again), or on time (not late at all).
                found = await store.find_case(
                    session, deposit_id=inp.deposit_id, provider=inp.provider
                )
                if found is None:
                    return OpenLateResult(
                        case_id=0,
                        resolution="not_late",
                        policy=self._policy,
                        player_id=deposit.player_id,
                        deposit_status=deposit.status,
                    )
                case_id, resolution, policy_now = found
                return self._result(deposit, review, case_id, resolution, policy_now)
            exact = (inp.amount_minor, inp.currency) == (deposit.amount_minor, deposit.currency)
            # Credited already (at another provider), or held for review with another
            # provider's money: crediting again would pay twice. Another amount than the
            # deposit's: a person decides (credit what came, or return it). Money from credit
            # is never credited (it failed `credit_funds_not_allowed`), nor money for a deposit
            # an operator rejected in review.
            refused_credit = (deposit.status_reason or "").startswith("credit_funds_not_allowed")
            rejected = review is not None and review.status == "rejected"
            policy: CasePolicy = (
                "refund"
                if deposit.status in ("succeeded", "in_review") or refused_credit or rejected
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
        return self._result(deposit, review, case_id, resolution, policy)

    @staticmethod
    def _result(
        deposit: Deposit,
        review: DepositReview | None,
        case_id: int,
        resolution: str,
        policy: str,
    ) -> OpenLateResult:
        """The case, and whether the deposit's review holds its money (an open `credit` case):
        the engine sent it to review under `hold`, or the provider reported a cardholder who is
        not the player (held whatever the mode, as on time); a review decided is not reopened."""
        risk = deposit.risk or {}
        holder_mismatch = risk.get("card_holder_matches") is False
        pending = review is None or review.status == "pending"
        hold = (
            policy == "credit"
            and resolution == "open"
            and pending
            and ((review is not None and review.mode == "hold") or holder_mismatch)
        )
        reasons = list(review.reasons) if review is not None else list(risk.get("reasons", []))
        if holder_mismatch and "card_holder_mismatch" not in reasons:
            reasons.append("card_holder_mismatch")
        return OpenLateResult(
            case_id=case_id,
            resolution=resolution,
            policy=cast(CasePolicy, policy),
            player_id=deposit.player_id,
            deposit_status=deposit.status,
            review_hold=hold,
            review_score=review.score if review is not None else int(risk.get("score", 0)),
            review_reasons=reasons,
            workflow_id=deposit.workflow_id,
        )

    @activity.defn
    async def hold_late_payment(self, inp: HoldLateInput) -> HoldLateResult:
        """The late money waits for the review: the deposit moves (from `expired` or `failed`)
        to `in_review` with this provider; a review is opened if none was (the provider reported
        another cardholder after the deposit ended). Repeating it changes nothing."""
        async with self._sessions.begin() as session:
            status = await deposit_store.record_status(
                session,
                deposit_id=inp.deposit_id,
                status=DepositStatus.IN_REVIEW,
                reason=inp.reason,
                occurred_at=inp.occurred_at,
                provider=inp.provider,
                also_from=LATE_PAYMENT_FROM,
            )
            deposit = await session.get(Deposit, inp.deposit_id)
            if deposit is None:
                raise ApplicationError(
                    f"deposit {inp.deposit_id} not found", non_retryable=True, type="NotFound"
                )
            if await risk_store.get_review(session, deposit_id=inp.deposit_id) is None:
                risk = deposit.risk or {}
                reasons = sorted({*risk.get("reasons", []), "card_holder_mismatch"})
                await risk_store.open_review(
                    session,
                    deposit_id=deposit.id,
                    player_id=deposit.player_id,
                    mode="hold",
                    score=int(risk.get("score", 0)),
                    reasons=reasons,
                )
            await monitoring.raise_alert(
                session,
                dedupe_key=f"payment_review:{inp.deposit_id}",
                kind="payment_review",
                severity="warning",
                subject=deposit.player_id,
                message=f"Deposit {inp.deposit_id}, paid late at {inp.provider}, is held (not "
                "credited) until an operator approves it",
                details={
                    "payment_id": inp.deposit_id,
                    "review_mode": "hold",
                    **(deposit.risk or {}),
                },
            )
        return HoldLateResult(status=status.value)

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
