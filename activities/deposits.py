"""Deposit activities. Each is safe to run again: keys come from the deposit id, never minted."""

import time
from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import fraud
from activities.models import (
    ChargeCardInput,
    ChargeCardResult,
    CreditDepositInput,
    CreditDepositResult,
    RecordStatusInput,
    RecordStatusResult,
    RiskCheckInput,
    RiskCheckResult,
)
from db import deposits as deposit_store
from db import ledger as ledger_store
from domain.fraud import RuleSource
from domain.ledger import LedgerPolicy, deposit_credit, deposit_fee, fee_for
from domain.risk import RiskLimits
from providers.card import CardProviderClient, ChargeOutcome
from providers.errors import ProviderError, ProviderRejected, ProviderTimeout


class DepositActivities:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        card_providers: Mapping[str, CardProviderClient],
        risk_limits: RiskLimits,
        ledger_policy: LedgerPolicy,
        fraud_rules: RuleSource | None = None,
    ) -> None:
        self._fraud = fraud_rules or RuleSource()
        self._sessions = sessions
        self._card_providers = card_providers
        self._risk_limits = risk_limits
        self._ledger = ledger_policy

    @activity.defn
    async def assess_deposit_risk(self, inp: RiskCheckInput) -> RiskCheckResult:
        async with self._sessions.begin() as session:
            view = await deposit_store.get_deposit_view(session, deposit_id=inp.deposit_id)
            if view is None:
                raise ApplicationError(
                    f"deposit {inp.deposit_id} not found", non_retryable=True, type="NotFound"
                )
            decision = await fraud.assess_deposit(
                session, deposit=view.deposit, rules=self._fraud.current()
            )
            result = RiskCheckResult(
                decision=decision.decision, score=decision.score, reasons=list(decision.reasons)
            )
        return result

    @activity.defn
    async def charge_card(self, inp: ChargeCardInput) -> ChargeCardResult:
        """Charge once. A retry first asks the provider what became of the previous try."""
        client = self._provider(inp.provider)
        attempt = activity.info().attempt
        started = time.monotonic()
        try:
            if attempt > 1:
                earlier = await client.get_charge(inp.deposit_id)
                if earlier is not None:
                    await self._record_attempt(inp, attempt, "inquiry_" + earlier.status, started)
                    return _charge_result(earlier)
            outcome = await client.charge(
                reference=inp.deposit_id,
                token=inp.card_token,
                amount=inp.amount_minor,
                currency=inp.currency,
            )
        except ProviderRejected as exc:
            await self._record_attempt(inp, attempt, "rejected", started, exc.code)
            raise ApplicationError(
                str(exc), exc.code, non_retryable=True, type="ProviderRejected"
            ) from exc
        except ProviderError as exc:
            kind = "timeout" if isinstance(exc, ProviderTimeout) else "error"
            await self._record_attempt(inp, attempt, kind, started, exc.code)
            raise
        await self._record_attempt(inp, attempt, outcome.status, started, outcome.decline_code)
        return _charge_result(outcome)

    @activity.defn
    async def inquire_card_charge(self, inp: ChargeCardInput) -> ChargeCardResult:
        """Settle an unknown outcome: what does the provider hold under our reference?"""
        outcome = await self._provider(inp.provider).get_charge(inp.deposit_id)
        if outcome is None:
            return ChargeCardResult(found=False)
        return _charge_result(outcome)

    @activity.defn
    async def credit_deposit(self, inp: CreditDepositInput) -> CreditDepositResult:
        """Credit the wallet and book the provider's fee, in one database transaction."""
        shards = self._ledger.house_shards
        credit = deposit_credit(
            deposit_id=inp.deposit_id,
            player_id=inp.player_id,
            provider=inp.provider,
            amount_minor=inp.amount_minor,
            currency=inp.currency,
            shards=shards,
        )
        fee_minor = fee_for(inp.amount_minor, self._ledger.fee_bps(inp.provider))
        fee = (
            deposit_fee(
                deposit_id=inp.deposit_id,
                provider=inp.provider,
                fee_minor=fee_minor,
                currency=inp.currency,
                shards=shards,
            )
            if fee_minor
            else None
        )

        async def post_both(session: AsyncSession) -> ledger_store.PostedTransaction:
            posted = await ledger_store.post_transaction(session, spec=credit)
            if fee is not None:
                await ledger_store.post_transaction(session, spec=fee)
            return posted

        try:
            posted = await ledger_store.with_retry(self._sessions, post_both)
        except ledger_store.LedgerError as exc:
            raise ApplicationError(str(exc), non_retryable=True, type=type(exc).__name__) from exc
        return CreditDepositResult(transaction_id=posted.id, key=posted.key, created=posted.created)

    @activity.defn
    async def record_deposit_status(self, inp: RecordStatusInput) -> RecordStatusResult:
        async with self._sessions.begin() as session:
            status = await deposit_store.record_status(
                session,
                deposit_id=inp.deposit_id,
                status=inp.status,
                reason=inp.reason,
                occurred_at=inp.occurred_at,
            )
        return RecordStatusResult(status=status)

    def _provider(self, name: str) -> CardProviderClient:
        client = self._card_providers.get(name)
        if client is None:
            raise ApplicationError(
                f"no card provider {name!r} configured", non_retryable=True, type="UnknownProvider"
            )
        return client

    async def _record_attempt(
        self,
        inp: ChargeCardInput,
        attempt: int,
        outcome: str,
        started: float,
        error_code: str | None = None,
    ) -> None:
        async with self._sessions.begin() as session:
            await deposit_store.record_attempt(
                session,
                payment_id=inp.deposit_id,
                step="charge",
                attempt_no=attempt,
                provider=inp.provider,
                outcome=outcome,
                error_code=error_code,
                latency_ms=int((time.monotonic() - started) * 1000),
            )


def _charge_result(outcome: ChargeOutcome) -> ChargeCardResult:
    return ChargeCardResult(
        found=True,
        status=outcome.status,
        decline_code=outcome.decline_code,
        charge_id=outcome.charge_id,
    )
