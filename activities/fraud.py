"""The anti-fraud step of a payment: gather facts, apply the configured rules, store the decision.

Called inside an activity's database transaction; safe to repeat (the decision row is upserted
and alerts are raised once per key).
"""

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from db import fraud as fraud_store
from db.models import Deposit, Withdrawal
from db.monitoring import raise_alert
from domain.fraud import Decision, RuleSet, evaluate_deposit, evaluate_withdrawal
from domain.risk import RiskVerdict


async def assess_deposit(session: AsyncSession, *, deposit: Deposit, rules: RuleSet) -> Decision:
    signals = fraud_store.Signals.of(card=deposit.card, client=deposit.client)
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
    )
    set_committed_value(deposit, "risk", decision.as_json())  # written by record_decision
    if decision.decision is RiskVerdict.REVIEW:
        # Deposits have no manual-review status: they proceed and the risk team gets an alert.
        await raise_alert(
            session,
            dedupe_key=f"payment_review:{deposit.id}",
            kind="payment_review",
            severity="warning",
            subject=deposit.player_id,
            message=f"Deposit {deposit.id} needs a look: {', '.join(decision.reasons)}",
            details={"payment_id": deposit.id, **decision.as_json()},
        )
    return decision


async def assess_withdrawal(
    session: AsyncSession, *, withdrawal: Withdrawal, rules: RuleSet
) -> Decision:
    """The withdrawal's decision, stored with its signals and on the withdrawal (`risk`).

    The payout destination is linked by the withdrawal's fingerprint (multi-accounting, a
    destination used before); a card payout also by the card (BIN + last four).
    """
    card = withdrawal.destination.get("card")
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
    )
    set_committed_value(withdrawal, "risk", decision.as_json())  # written by record_decision
    return decision
