"""Deposit activities. Each is safe to run again: keys come from the deposit id, never minted."""

import inspect
import random
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import fraud
from activities.gateway_models import (
    InquiryInput,
    PrepareDepositInput,
    PrepareDepositResult,
    ProviderCallInput,
    ProviderCallResult,
    RecordRouteInput,
    RecordRouteResult,
    RouteCandidate,
    RouteDepositInput,
    RouteDepositResult,
)
from activities.models import (
    CreditDepositInput,
    CreditDepositResult,
    RecordStatusInput,
    RecordStatusResult,
    RiskCheckInput,
    RiskCheckResult,
)
from activities.provider_failures import call_failure, retry_later
from db import deposits as deposit_store
from db import gateway as gateway_store
from db import ledger as ledger_store
from db.engine import autocommit_sessions
from db.models import Deposit
from domain.fraud import RuleSource
from domain.ledger import LedgerPolicy, deposit_credit, deposit_fee, fee_for
from domain.risk import RiskVerdict
from domain.routing import (
    CircuitPolicy,
    ProviderRule,
    RouteRequest,
    eligible,
    order_providers,
    unified_error_code,
)
from domain.statuses import LATE_PAYMENT_FROM, DepositStatus
from providers.card import CardProviderClient, ChargeOutcome
from providers.errors import (
    ProviderError,
    ProviderRejected,
    ProviderTimeout,
)
from providers.payments import PaymentOutcome, PaymentProviderClient

_CALL_FAILURES = ("error", "timeout")  # outcomes that count against a provider's circuit


class DepositActivities:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        card_providers: Mapping[str, CardProviderClient],
        ledger_policy: LedgerPolicy,
        fraud_rules: RuleSource | None = None,
        payment_providers: Mapping[str, PaymentProviderClient] | None = None,
        routing: "RoutingConfig | None" = None,
    ) -> None:
        self._payment_providers = payment_providers or {}
        self._routing = routing or RoutingConfig()
        self._fraud = fraud_rules or RuleSource()
        self._sessions = sessions
        self._autocommit = autocommit_sessions(sessions)
        self._card_providers = card_providers
        self._ledger = ledger_policy
        # Group commit (issue 21), shared with the process's other activities: concurrent
        # credits share one statement and one WAL flush, each under its own key.
        self._batcher = ledger_store.LedgerBatcher.shared(sessions)

    @activity.defn
    async def assess_deposit_risk(self, inp: RiskCheckInput) -> RiskCheckResult:
        async with self._sessions.begin() as session:
            return await self._assess(session, inp.deposit_id)

    @activity.defn
    async def route_deposit(self, inp: RouteDepositInput) -> RouteDepositResult:
        """Providers to try, in order: configured rules, then circuits and success rates."""
        async with self._sessions.begin() as session:
            return await self._route(session, inp)

    @activity.defn
    async def prepare_deposit(self, inp: PrepareDepositInput) -> PrepareDepositResult:
        """The risk check, the route and (for a card) `processing` in one database transaction:
        one local activity where a deposit used to take three. Run again, it decides afresh
        (the fraud decision is kept per deposit, the status moves once)."""
        async with self._sessions.begin() as session:
            risk = await self._assess(session, inp.route.deposit_id)
            if risk.decision is RiskVerdict.DECLINE:
                return PrepareDepositResult(risk=risk)
            route = await self._route(session, inp.route)
            if inp.processing_at is not None:
                await deposit_store.record_status(
                    session,
                    deposit_id=inp.route.deposit_id,
                    status=DepositStatus.PROCESSING,
                    reason=None,
                    occurred_at=inp.processing_at,
                )
        return PrepareDepositResult(risk=risk, route=route)

    async def _assess(self, session: AsyncSession, deposit_id: str) -> RiskCheckResult:
        deposit = await session.get(Deposit, deposit_id)  # the row only: no trail
        if deposit is None:
            raise ApplicationError(
                f"deposit {deposit_id} not found", non_retryable=True, type="NotFound"
            )
        decision = await fraud.assess_deposit(session, deposit=deposit, rules=self._fraud.current())
        return RiskCheckResult(
            decision=decision.decision,
            score=decision.score,
            reasons=list(decision.reasons),
            review_mode=decision.review_mode,
        )

    async def _route(self, session: AsyncSession, inp: RouteDepositInput) -> RouteDepositResult:
        request = RouteRequest(
            method=inp.method,
            amount_minor=inp.amount_minor,
            currency=inp.currency,
            bin=inp.bin,
            scheme=inp.scheme,
        )
        candidates = [
            rule
            for rule in eligible(self._routing.rules, request)
            if inp.allowed is None or rule.name in inp.allowed
        ]
        names = [rule.name for rule in candidates]
        now = datetime.now(UTC)
        circuits = await gateway_store.circuits(session, providers=names)
        stats = await gateway_store.provider_stats(
            session,
            providers=names,
            since=gateway_store.window_start(now, self._routing.stats_window_seconds),
        )
        states = {
            name: circuit.effective_state(now, self._routing.circuit.cooldown)
            for name, circuit in circuits.items()
        }
        decision = order_providers(
            candidates,
            stats=stats,
            circuits=states,
            rng=random.Random(inp.deposit_id),  # a re-run with the same facts picks the same
            exploration=self._routing.exploration,
        )
        for name in decision.skipped:
            await gateway_store.record_attempt(
                session,
                gateway_store.Attempt(
                    payment_id=inp.deposit_id,
                    step="route",
                    attempt_no=1,
                    provider=name,
                    outcome="skipped",
                    error_code="circuit_open",
                    unified_code=unified_error_code("circuit_open"),
                    latency_ms=0,
                ),
            )
        return RouteDepositResult(
            candidates=[
                RouteCandidate(
                    provider=r.name,
                    action_ttl_seconds=r.action_ttl_seconds,
                    processing_window_seconds=r.processing_window_seconds,
                )
                for r in decision.ordered
            ],
            skipped=decision.skipped,
        )

    @activity.defn
    async def charge_card(self, inp: ProviderCallInput) -> ProviderCallResult:
        """Charge once at one acquirer; after a timeout, ask what became of it first."""
        client = self._card(inp.provider)
        started = time.monotonic()
        try:
            if inp.inquire_first:
                earlier = await client.get_charge(inp.deposit_id)
                if earlier is not None:
                    result = self._charge_result(inp.deposit_id, earlier)
                    await self._attempt(inp, "charge", "inquiry_" + earlier.status, started, result)
                    return result
            if inp.card_token is None:
                raise ApplicationError("no card token", non_retryable=True, type="UnknownProvider")
            outcome = await client.charge(
                reference=inp.deposit_id,
                token=inp.card_token,
                amount=inp.amount_minor,
                currency=inp.currency,
                callback_url=self._routing.callback_url(inp.provider),
            )
        except ProviderError as exc:
            raise await self._call_failed(inp, "charge", started, exc) from exc
        result = self._charge_result(inp.deposit_id, outcome)
        await self._attempt(inp, "charge", outcome.status, started, result)
        return result

    @activity.defn
    async def create_payment(self, inp: ProviderCallInput) -> ProviderCallResult:
        """Open the payment at an asynchronous provider (idempotent on our reference)."""
        client = self._payments(inp.provider)
        started = time.monotonic()
        try:
            if inp.inquire_first:
                earlier = await client.get_payment(inp.deposit_id)
                if earlier is not None:
                    result = self._payment_result(inp.deposit_id, earlier)
                    await self._attempt(inp, "create", "inquiry_" + earlier.status, started, result)
                    return result
            outcome = await client.create_payment(
                reference=inp.deposit_id,
                method=inp.method,
                amount=inp.amount_minor,
                currency=inp.currency,
                details=inp.details,
                callback_url=self._routing.callback_url(inp.provider),
                expires_in_seconds=inp.expires_in_seconds,
            )
        except ProviderError as exc:
            raise await self._call_failed(inp, "create", started, exc) from exc
        result = self._payment_result(inp.deposit_id, outcome)
        await self._attempt(inp, "create", outcome.status, started, result)
        return result

    @activity.defn
    async def inquire_payment(self, inp: InquiryInput) -> ProviderCallResult:
        """What does the provider hold under our reference? Records an attempt once final."""
        started = time.monotonic()
        result = await self._inquire(inp)
        if result.found and result.status not in ("pending", "requires_action"):
            call = ProviderCallInput(
                deposit_id=inp.deposit_id,
                provider=inp.provider,
                method=inp.method,
                amount_minor=result.amount_minor or 0,
                currency="",
                attempt=inp.attempt,
            )
            await self._attempt(call, "inquiry", f"inquiry_{result.status}", started, result)
        return result

    @activity.defn
    async def cancel_payment(self, inp: InquiryInput) -> ProviderCallResult:
        """Close the payment at the provider unless it was paid meanwhile: the player ran out
        of time, or a card charge that timed out is abandoned before trying elsewhere."""
        started = time.monotonic()
        try:
            if inp.method == "card":
                charge = await self._card(inp.provider).cancel_charge(inp.deposit_id)
                if charge is None:
                    return ProviderCallResult(found=False)
                result = self._charge_result(inp.deposit_id, charge)
                call = ProviderCallInput(
                    deposit_id=inp.deposit_id,
                    provider=inp.provider,
                    method=inp.method,
                    amount_minor=charge.amount,
                    currency=charge.currency,
                    attempt=inp.attempt,
                )
                await self._attempt(call, "cancel", f"cancel_{charge.status}", started, result)
                return result
            payment = await self._payments(inp.provider).cancel_payment(inp.deposit_id)
        except ProviderError as exc:
            raise retry_later(exc) from exc
        return (
            self._payment_result(inp.deposit_id, payment)
            if payment
            else ProviderCallResult(found=False)
        )

    @activity.defn
    async def record_deposit_route(self, inp: RecordRouteInput) -> RecordRouteResult:
        async with self._sessions.begin() as session:
            await gateway_store.set_route(
                session,
                deposit_id=inp.deposit_id,
                provider=inp.provider,
                next_action=inp.next_action,
                at=inp.occurred_at,
            )
        return RecordRouteResult(recorded=True)

    @activity.defn
    async def credit_deposit(self, inp: CreditDepositInput) -> CreditDepositResult:
        """Credit the wallet and book the provider's fee (group commit), then mark the deposit
        succeeded."""
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

        # Through group commit: the credit and the fee are each posted exactly once under their
        # own keys (from the deposit id), in their lanes' next batches, which lock their
        # accounts in code order first (no deadlock between the two clearing shards). The
        # deposit's status follows in its own transaction: a retry after a crash in between
        # finds both postings made (created=False) and records the status then.
        specs = [credit] if fee is None else [credit, fee]
        try:
            posted = (await self._batcher.post_many(specs))[0]
        except ledger_store.LedgerError as exc:
            raise ApplicationError(str(exc), non_retryable=True, type=type(exc).__name__) from exc
        if inp.succeeded_at is not None or inp.funding:
            succeeded_at, funding = inp.succeeded_at, inp.funding

            async def record(session: AsyncSession) -> None:
                if succeeded_at is not None:
                    await deposit_store.record_status(
                        session,
                        deposit_id=inp.deposit_id,
                        status=DepositStatus.SUCCEEDED,
                        reason=None,
                        occurred_at=succeeded_at,
                        provider=inp.provider,
                        also_from=LATE_PAYMENT_FROM if inp.late else (),
                    )
                if funding:
                    await deposit_store.keep_funding(
                        session, deposit_id=inp.deposit_id, funding=funding
                    )

            await ledger_store.with_retry(self._sessions, record)
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
                provider=inp.provider,
            )
        return RecordStatusResult(status=status)

    async def _inquire(self, inp: InquiryInput) -> ProviderCallResult:
        try:
            if inp.method == "card":
                client = self._card(inp.provider)
                charge = (
                    await client.get_charge(inp.deposit_id, release_held=True)  # type: ignore[call-arg]
                    if inp.release_held and releases_held(client)
                    else await client.get_charge(inp.deposit_id)
                )
                return (
                    self._charge_result(inp.deposit_id, charge)
                    if charge
                    else ProviderCallResult(found=False)
                )
            payment = await self._payments(inp.provider).get_payment(inp.deposit_id)
        except ProviderError as exc:
            raise retry_later(exc) from exc
        return (
            self._payment_result(inp.deposit_id, payment)
            if payment
            else ProviderCallResult(found=False)
        )

    def _card(self, name: str) -> CardProviderClient:
        client = self._card_providers.get(name)
        if client is None:
            raise ApplicationError(
                f"no card provider {name!r} configured", non_retryable=True, type="UnknownProvider"
            )
        return client

    def _payments(self, name: str) -> PaymentProviderClient:
        client = self._payment_providers.get(name)
        if client is None:
            raise ApplicationError(
                f"no payment provider {name!r} configured",
                non_retryable=True,
                type="UnknownProvider",
            )
        return client

    def _charge_result(self, deposit_id: str, outcome: ChargeOutcome) -> ProviderCallResult:
        action: dict[str, Any] | None = None
        if outcome.action_url:
            action = {"type": "redirect", "url": outcome.action_url}
        if action is not None and outcome.action_form is not None:
            # 3-D Secure by form: the browser POSTs these to the ACS, which answers at TermUrl.
            term_url = f"{self._routing.api_url}/v1/deposits/{deposit_id}/3ds"
            action |= {"method": "POST", "form": {**outcome.action_form, "TermUrl": term_url}}
        return ProviderCallResult(
            found=True,
            status=outcome.status,
            decline_code=outcome.decline_code,
            provider_payment_id=outcome.charge_id,
            amount_minor=outcome.amount,
            currency=outcome.currency,
            next_action=action if outcome.status == "requires_action" else None,
        )

    def _payment_result(self, deposit_id: str, outcome: PaymentOutcome) -> ProviderCallResult:
        action: dict[str, Any] = dict(outcome.action)
        if action.get("type") == "qr":
            action["image_url"] = f"{self._routing.api_url}/v1/deposits/{deposit_id}/qr.png"
        return ProviderCallResult(
            found=True,
            status=outcome.status,
            decline_code=outcome.decline_code,
            provider_payment_id=outcome.payment_id,
            amount_minor=outcome.amount_received or outcome.amount,
            currency=outcome.currency,
            funding=outcome.funding,
            next_action=action if outcome.status == "pending" else None,
        )

    async def _call_failed(
        self, inp: ProviderCallInput, step: str, started: float, exc: ProviderError
    ) -> BaseException:
        """Record the failed try and translate it for the workflow, which decides on retries,
        inquiry and failover by its type (workflows.steps.read_failure)."""
        if isinstance(exc, ProviderRejected):
            await self._attempt(inp, step, "rejected", started, code=exc.code)
        else:
            kind = "timeout" if isinstance(exc, ProviderTimeout) else "error"
            await self._attempt(inp, step, kind, started, code=exc.code)
        return call_failure(exc)

    async def _attempt(
        self,
        inp: ProviderCallInput,
        step: str,
        outcome: str,
        started: float,
        result: ProviderCallResult | None = None,
        *,
        code: str | None = None,
    ) -> None:
        error_code = code if code is not None else (result.decline_code if result else None)
        now = datetime.now(UTC)
        attempt = gateway_store.Attempt(
            payment_id=inp.deposit_id,
            step=step,
            attempt_no=inp.attempt,
            provider=inp.provider,
            outcome=outcome,
            error_code=error_code,
            unified_code=unified_error_code(error_code),
            latency_ms=int((time.monotonic() - started) * 1000),
        )
        failed = outcome in _CALL_FAILURES
        if not failed and outcome != "rejected":
            # A success: recorded in one autocommit statement, which also says whether the
            # breaker needs it (the common case, a healthy provider, does not).
            async with self._autocommit() as session:
                if await gateway_store.record_success(session, attempt):
                    return
            async with self._sessions.begin() as session:
                await gateway_store.record_provider_result(
                    session,
                    provider=inp.provider,
                    failed=False,
                    now=now,
                    policy=self._routing.circuit,
                )
            return
        async with self._sessions.begin() as session:
            await gateway_store.record_attempt(session, attempt)
            if outcome != "rejected":
                await gateway_store.record_provider_result(
                    session,
                    provider=inp.provider,
                    failed=failed,
                    now=now,
                    policy=self._routing.circuit,
                )


def releases_held(client: CardProviderClient) -> bool:
    """Whether the acquirer's inquiry can release a hold instead of taking it (auth/capture)."""
    return "release_held" in inspect.signature(client.get_charge).parameters


class RoutingConfig:
    """What the gateway activities need from settings; built in worker.py."""

    def __init__(
        self,
        *,
        rules: tuple[ProviderRule, ...] = (),
        exploration: float = 0.0,
        stats_window_seconds: int = 900,
        circuit: CircuitPolicy | None = None,
        api_url: str = "http://127.0.0.1:8000",
    ) -> None:
        self.rules = rules
        self.exploration = exploration
        self.stats_window_seconds = stats_window_seconds
        self.circuit = circuit or CircuitPolicy()
        self.api_url = api_url.rstrip("/")

    def callback_url(self, provider: str) -> str:
        return f"{self.api_url}/v1/webhooks/{provider}"
