"""Withdrawal activities. Each is safe to run again: keys come from the withdrawal id."""

import time
from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import fraud
from activities.provider_failures import retry_later
from activities.withdrawal_models import (
    EscalateInput,
    EscalateResult,
    PayoutInput,
    PayoutResult,
    RecordReviewInput,
    RecordReviewResult,
    RecordWithdrawalStatusInput,
    RecordWithdrawalStatusResult,
    SettleHoldInput,
    SettleHoldResult,
    WithdrawalRiskInput,
    WithdrawalRiskResult,
)
from db import deposits as deposit_store
from db import ledger as ledger_store
from db import withdrawals as withdrawal_store
from db.models import Withdrawal
from domain.fraud import RuleSource
from domain.ledger import withdrawal_post, withdrawal_void
from providers.errors import ProviderError, ProviderRejected, ProviderTimeout
from providers.payout import PayoutOutcome, PayoutProviderClient


class WithdrawalActivities:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        payout_providers: Mapping[str, PayoutProviderClient],
        fraud_rules: RuleSource | None = None,
    ) -> None:
        self._sessions = sessions
        self._payout_providers = payout_providers
        self._fraud = fraud_rules or RuleSource()
        # Group commit (issue 21), shared with the process's other activities: concurrent
        # settlements share one statement and one WAL flush; each keeps its own key, so each is
        # still posted exactly once.
        self._batcher = ledger_store.LedgerBatcher.shared(sessions)

    @activity.defn
    async def assess_withdrawal_risk(self, inp: WithdrawalRiskInput) -> WithdrawalRiskResult:
        """The anti-fraud engine's decision (config/fraud_rules.toml, `[withdrawal]`), stored
        with its signals in `fraud_decisions` and on the withdrawal (`risk`)."""
        async with self._sessions.begin() as session:
            withdrawal = await session.get(Withdrawal, inp.withdrawal_id)
            if withdrawal is None:
                raise ApplicationError(
                    f"withdrawal {inp.withdrawal_id} not found", non_retryable=True, type="NotFound"
                )
            decision = await fraud.assess_withdrawal(
                session, withdrawal=withdrawal, rules=self._fraud.current()
            )
        return WithdrawalRiskResult(
            decision=decision.decision.value,
            score=decision.score,
            reasons=list(decision.reasons),
            version=decision.version,
        )

    @activity.defn
    async def pay_out(self, inp: PayoutInput) -> PayoutResult:
        """Pay once. A retry first asks the provider what became of the previous try."""
        client = self._provider(inp.provider)
        attempt = activity.info().attempt
        started = time.monotonic()
        try:
            if attempt > 1:
                earlier = await client.get_payout(inp.withdrawal_id)
                if earlier is not None:
                    await self._record_attempt(inp, attempt, "inquiry_" + earlier.status, started)
                    return _result(earlier)
            outcome = await client.pay(
                reference=inp.withdrawal_id,
                amount=inp.amount_minor,
                currency=inp.currency,
                method=inp.method,
                destination=inp.destination,
            )
        except ProviderRejected as exc:
            await self._record_attempt(inp, attempt, "rejected", started, exc.code)
            raise ApplicationError(
                f"payout refused: {exc.code}", non_retryable=True, type="PayoutRejected"
            ) from exc
        except ProviderError as exc:
            outcome_name = "timeout" if isinstance(exc, ProviderTimeout) else "error"
            await self._record_attempt(inp, attempt, outcome_name, started, exc.code)
            raise retry_later(exc) from exc
        await self._record_attempt(inp, attempt, outcome.status, started, outcome.failure_code)
        return _result(outcome)

    @activity.defn
    async def inquire_payout(self, inp: PayoutInput) -> PayoutResult:
        """What the provider holds under our reference; if nothing, close the reference so that
        a request still in flight cannot be paid later (found False: it cannot cancel what it
        never saw, so only waiting out its processing window tells)."""
        client = self._provider(inp.provider)
        started = time.monotonic()
        attempt = activity.info().attempt
        try:
            outcome = await client.get_payout(inp.withdrawal_id)
            if outcome is None:
                outcome = await client.cancel_payout(
                    reference=inp.withdrawal_id, amount=inp.amount_minor, currency=inp.currency
                )
                name = "cancelled_" + outcome.status
            else:
                name = "inquiry_" + outcome.status
        except ProviderRejected as exc:
            if exc.code != "not_found":
                raise retry_later(exc) from exc
            await self._record_attempt(inp, attempt, "cancel_not_found", started, exc.code)
            return PayoutResult(found=False)
        except ProviderError as exc:
            raise retry_later(exc) from exc
        await self._record_attempt(inp, attempt, name, started, step="payout_inquiry")
        return _result(outcome)

    @activity.defn
    async def get_payout_status(self, inp: PayoutInput) -> PayoutResult:
        """A status poll of a payout the provider is processing (no cancel)."""
        try:
            outcome = await self._provider(inp.provider).get_payout(inp.withdrawal_id)
        except ProviderError as exc:
            raise retry_later(exc) from exc
        return PayoutResult(found=False) if outcome is None else _result(outcome)

    @activity.defn
    async def settle_hold(self, inp: SettleHoldInput) -> SettleHoldResult:
        """Post the held amount (paid) or release it (anything else): exactly one, once."""
        resolution = (
            withdrawal_post(withdrawal_id=inp.withdrawal_id)
            if inp.action == "post"
            else withdrawal_void(withdrawal_id=inp.withdrawal_id)
        )
        try:
            posted = await self._batcher.resolve(resolution)
        except ledger_store.PendingAlreadyResolved as exc:
            raise ApplicationError(
                f"the hold of {inp.withdrawal_id} was already resolved the other way",
                non_retryable=True,
                type="HoldAlreadyResolved",
            ) from exc
        return SettleHoldResult(transaction_id=posted.id)

    @activity.defn
    async def record_withdrawal_status(
        self, inp: RecordWithdrawalStatusInput
    ) -> RecordWithdrawalStatusResult:
        async with self._sessions.begin() as session:
            status = await withdrawal_store.record_status(
                session,
                withdrawal_id=inp.withdrawal_id,
                status=inp.status,
                reason=inp.reason,
                occurred_at=inp.occurred_at,
            )
        return RecordWithdrawalStatusResult(status=status)

    @activity.defn
    async def record_review(self, inp: RecordReviewInput) -> RecordReviewResult:
        async with self._sessions.begin() as session:
            await withdrawal_store.record_review(
                session,
                withdrawal_id=inp.withdrawal_id,
                action=inp.action,
                operator_id=inp.operator_id,
                operator_name=inp.operator_name,
                reason=inp.reason,
                occurred_at=inp.occurred_at,
            )
        return RecordReviewResult()

    @activity.defn
    async def escalate_review(self, inp: EscalateInput) -> EscalateResult:
        async with self._sessions.begin() as session:
            await withdrawal_store.mark_escalated(
                session, withdrawal_id=inp.withdrawal_id, at=inp.occurred_at
            )
        return EscalateResult()

    def _provider(self, name: str) -> PayoutProviderClient:
        try:
            return self._payout_providers[name]
        except KeyError:
            raise ApplicationError(
                f"no payout provider {name!r} configured", non_retryable=True, type="Config"
            ) from None

    async def _record_attempt(
        self,
        inp: PayoutInput,
        attempt: int,
        outcome: str,
        started: float,
        error_code: str | None = None,
        *,
        step: str = "payout",
    ) -> None:
        async with self._sessions.begin() as session:
            await deposit_store.record_attempt(
                session,
                payment_id=inp.withdrawal_id,
                step=step,
                attempt_no=attempt,
                provider=inp.provider,
                outcome=outcome,
                error_code=error_code,
                latency_ms=int((time.monotonic() - started) * 1000),
            )


def _result(outcome: PayoutOutcome) -> PayoutResult:
    return PayoutResult(
        found=True,
        status=outcome.status,
        failure_code=outcome.failure_code,
        payout_id=outcome.payout_id,
    )
