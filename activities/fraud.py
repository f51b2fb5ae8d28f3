"""The anti-fraud step of a payment: gather facts, apply the configured rules, store the decision.

Called inside an activity's database transaction; safe to repeat (the decision row is upserted
and alerts are raised once per key). Decisions about one person, card or device are serialized
(`db.fraud.lock_subjects`, held until the caller's transaction commits), so concurrent payments
see each other in their velocity counts.

A deposit the engine sends to review opens a review (`deposit_reviews`): with the rule set's
`review_mode = "hold"` the deposit workflow keeps it uncredited until an operator decides
(`ReviewActivities.record_deposit_review`); with `credit` it is credited and the person's
withdrawals wait for the decision (`api/routers/deposit_reviews.py`).
"""

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm.attributes import set_committed_value
from temporalio import activity
from temporalio.exceptions import ApplicationError

from db import fraud as fraud_store
from db import risk as risk_store
from db.models import Deposit, Withdrawal
from domain.fraud import Decision, RuleSet, evaluate_deposit, evaluate_withdrawal
from domain.fraud.review import InvalidReview, ReviewAction
from domain.risk import RiskVerdict


async def assess_deposit(session: AsyncSession, *, deposit: Deposit, rules: RuleSet) -> Decision:
    signals = fraud_store.Signals.of(
        card=deposit.card, client=deposit.client, account=deposit.details
    )
    await fraud_store.lock_subjects(session, player_id=deposit.player_id, signals=signals)
    facts = await fraud_store.deposit_facts(
        session,
        deposit_id=deposit.id,
        player_id=deposit.player_id,
        amount_minor=deposit.amount_minor,
        currency=deposit.currency,
        method=deposit.method,
        signals=signals,
        rules=rules,
        now=deposit.created_at,
    )
    decision = evaluate_deposit(facts, rules)
    review = decision.decision is RiskVerdict.REVIEW
    risk = decision.as_json()
    if review:  # shown on the deposit (GET /v1/deposits/{id}) as db.risk.open_review shows it
        risk["review"] = {"mode": decision.review_mode, "status": "pending"}
    alerts: list[dict[str, Any]] = []
    if review:
        held = (
            "is held (not credited) until an operator approves it"
            if decision.review_mode == "hold"
            else "is credited; the player's withdrawals wait for an operator's review"
        )
        alerts.append(
            {
                "dedupe_key": f"payment_review:{deposit.id}",
                "kind": "payment_review",
                "severity": "warning",
                "subject": deposit.player_id,
                "message": f"Deposit {deposit.id} {held}: {', '.join(decision.reasons)}",
                "details": {
                    "payment_id": deposit.id,
                    "review_mode": decision.review_mode,
                    **decision.as_json(),
                },
            }
        )
    for code, severity in _FRAUD_ALERTS.items():
        if code in decision.reasons:
            alerts.append(
                {
                    "dedupe_key": f"{code}:{deposit.id}",
                    "kind": code,
                    "severity": severity,
                    "subject": deposit.player_id,
                    "message": f"Deposit {deposit.id}: {code.replace('_', ' ')} "
                    f"({decision.decision.value}, score {decision.score})",
                    "details": {"payment_id": deposit.id, **decision.as_json()},
                }
            )
    # The decision, the review opened (or a pending one dropped: a retried step that no longer
    # asks for it), the alerts and the deposit's `risk`: one statement.
    await fraud_store.record_decision(
        session,
        payment_id=deposit.id,
        kind="deposit",
        player_id=deposit.player_id,
        amount_minor=deposit.amount_minor,
        currency=deposit.currency,
        method=deposit.method,
        signals=signals,
        decision=decision,
        created_at=deposit.created_at,
        facts=facts,
        review="open" if review else "drop",
        risk=risk,
        alerts=alerts,
    )
    set_committed_value(deposit, "risk", risk)  # written by record_decision
    return decision


# Patterns the risk team wants to see as alerts, whatever the decision did with the payment.
_FRAUD_ALERTS = {
    "multi_account_device": "high",
    "multi_account_card": "high",
    "card_testing": "high",
    "blocklisted": "high",
    "card_holder_mismatch": "high",
}


async def assess_withdrawal(
    session: AsyncSession, *, withdrawal: Withdrawal, rules: RuleSet
) -> Decision:
    """The withdrawal's decision, stored with its signals and on the withdrawal (`risk`).

    The payout destination is linked by the withdrawal's fingerprint (multi-accounting, a
    destination used before); a card payout also by the card (its fingerprint).
    """
    card = withdrawal.destination.get("card")
    destination = dict(withdrawal.destination)
    await fraud_store.lock_subjects(
        session,
        player_id=withdrawal.player_id,
        signals=fraud_store.Signals.of(
            card=card if isinstance(card, dict) else None, client=withdrawal.client
        ),
    )
    facts, signals = await fraud_store.withdrawal_facts(
        session,
        withdrawal_id=withdrawal.id,
        player_id=withdrawal.player_id,
        amount_minor=withdrawal.amount_minor,
        currency=withdrawal.currency,
        method=withdrawal.method,
        destination_fingerprint=withdrawal.destination_fingerprint,
        rules=rules,
        now=withdrawal.created_at,
        card=card if isinstance(card, dict) else None,
        client=withdrawal.client,
        destination_name=withdrawal.destination.get("holder_name"),
        account=destination,
    )
    decision = evaluate_withdrawal(facts, rules)
    await fraud_store.record_decision(
        session,
        payment_id=withdrawal.id,
        kind="withdrawal",
        player_id=withdrawal.player_id,
        amount_minor=withdrawal.amount_minor,
        currency=withdrawal.currency,
        method=withdrawal.method,
        signals=signals,
        decision=decision,
        created_at=withdrawal.created_at,
        facts=facts,
    )
    set_committed_value(withdrawal, "risk", decision.as_json())  # written by record_decision
    return decision


class DepositReviewInput(BaseModel):
    deposit_id: str
    action: ReviewAction
    actor_id: str
    actor_name: str
    reason: str | None = None
    occurred_at: datetime


class DepositReviewRecorded(BaseModel):
    status: str
    changed: bool


class ReviewActivities:
    """What the deposit workflow records of an operator's review."""

    def __init__(self, *, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    @activity.defn
    async def record_deposit_review(self, inp: DepositReviewInput) -> DepositReviewRecorded:
        async with self._sessions.begin() as session:
            if await risk_store.get_review(session, deposit_id=inp.deposit_id) is None:
                # Held on a provider's report (the webhook's review row did not commit).
                deposit = await session.get(Deposit, inp.deposit_id)
                if deposit is None:
                    raise ApplicationError(
                        f"deposit {inp.deposit_id} not found", non_retryable=True, type="NotFound"
                    )
                risk = deposit.risk or {}
                await risk_store.open_review(
                    session,
                    deposit_id=deposit.id,
                    player_id=deposit.player_id,
                    mode="hold",
                    score=int(risk.get("score", 0)),
                    reasons=[*risk.get("reasons", [])],
                )
            try:
                decided = await risk_store.decide_review(
                    session,
                    deposit_id=inp.deposit_id,
                    action=inp.action,
                    actor_id=inp.actor_id,
                    actor_name=inp.actor_name,
                    reason=inp.reason,
                    at=inp.occurred_at,
                )
            except InvalidReview as exc:  # the workflow's validators make this unreachable
                raise ApplicationError(
                    str(exc), non_retryable=True, type="InvalidTransition"
                ) from exc
        return DepositReviewRecorded(status=decided.review.status, changed=decided.changed)
