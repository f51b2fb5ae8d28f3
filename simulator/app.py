"""The simulator's HTTP API: provider endpoints, player-facing pages, and `/admin` to steer it.

Providers come from the same registry as the platform's (`Settings.providers`) and speak the API
of their connector type: the real providers' APIs (`simulator.connectors`: Halyk ePay, Freedom
Pay, CloudPayments, Kaspi, ioka), the operator's bank (`simulator.dialects`: KazBank's transfer
instructions), or, for a provider configured with the generic types `common_card` /
`common_payments`, the simulator's own `/providers/{name}/tokens|charges|payments`. Each
authenticates with its own secret and signs its callbacks with its webhook secret, in its own
format.

`/admin` steers them: each provider's misbehaviour (`simulator.behaviour.Behaviour`: latency,
declines, 5xx before or after processing, dropped connections, throttling, expired credentials,
lost / duplicated / repeated / late callbacks, payments reported after expiry, slow payouts),
bank statement lines for the bank-transfer provider, and what every provider holds under a
reference (`GET /admin/charges?reference=`).
"""

import asyncio
import contextlib
from collections import defaultdict
from datetime import datetime
from typing import Annotated, Any, Literal, cast

from fastapi import Depends, FastAPI, Header, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field

from config import Settings, get_settings
from simulator.behaviour import Behaviour, BehaviourState
from simulator.callbacks import CallbackSender
from simulator.cards import (
    CardProvider,
    Charge,
    ChargeRequest,
    TokenizeRequest,
    TokenResponse,
)
from simulator.connectors import plugins
from simulator.dialects import DIALECTS, ENCODERS, dialects_router
from simulator.esu import esu_router
from simulator.faults import DropConnectionMiddleware, SimulatorError
from simulator.pages import pages_router
from simulator.payments import (
    AsyncMethod,
    AsyncProvider,
    CreditedLine,
    Payment,
    PaymentRequest,
    StatementLine,
)
from simulator.payouts import PayoutDesk, payout_router
from simulator.registers import registers_router
from simulator.reports import Books
from simulator.reports.routes import reports_router
from simulator.store import SimulatorStore


class ChargeLog(BaseModel):
    reference: str
    calls: int
    charge: Charge | None


class PaymentLog(BaseModel):
    reference: str
    calls: int
    payment: Payment | None = None
    charge: Charge | None = None


class Held(BaseModel):
    """One thing a simulated provider holds under a reference."""

    provider: str
    kind: Literal["charge", "payment", "payout"]
    status: str = Field(
        description="charges: succeeded / declined / requires_action / cancelled; payments: "
        "pending / succeeded / declined / expired / cancelled; payouts: processing / paid / "
        "failed"
    )
    money_moved: bool = Field(description="a succeeded charge or payment, a paid payout")
    amount: int
    amount_received: int | None = Field(
        default=None, description="payments: what the payer actually paid"
    )
    currency: str
    provider_id: str = Field(description="the provider's own id (charge, payment, payout)")
    decline_code: str | None = None
    tombstone: bool = Field(
        default=False, description="a cancel of a reference never seen, kept to refuse it later"
    )
    created_at: datetime | None = Field(description="when the provider first stored it")


def _held(kind: str, provider: str, data: dict[str, Any], created: str | None) -> Held:
    if kind == "payment":
        data = data["payment"]
    status = str(data["status"])
    provider_id = str(data.get("charge_id") or data.get("payment_id") or data.get("payout_id"))
    return Held(
        provider=provider,
        kind=cast(Literal["charge", "payment", "payout"], kind),
        status=status,
        money_moved=status in ("succeeded", "paid"),
        amount=int(data["amount"]),
        amount_received=data.get("amount_received"),
        currency=str(data["currency"]),
        provider_id=provider_id,
        decline_code=data.get("decline_code") or data.get("failure_code"),
        tombstone="_void_" in provider_id or data.get("failure_code") == "cancelled",
        created_at=datetime.fromisoformat(created) if created else None,
    )


class Registry:
    """Every simulated provider by name, and waiters for 'the platform created reference X'."""

    def __init__(self, settings: Settings, store: SimulatorStore) -> None:
        self.settings = settings
        self.store = store
        self.sender = CallbackSender(settings.webhook_secret)
        self.created: defaultdict[tuple[str, str], asyncio.Event] = defaultdict(asyncio.Event)
        self.cards: dict[str, CardProvider] = {}
        self.payments: dict[str, AsyncProvider] = {}
        self.payouts: dict[str, PayoutDesk] = {}  # opened on first use, by the payout router
        for rule in settings.providers:
            if rule.method == "card":
                card = CardProvider(rule.name, store)
                card.on_created = self._created_hook(rule.name)
                self.cards[rule.name] = card
            else:
                self.payments[rule.name] = AsyncProvider(
                    rule.name,
                    cast(AsyncMethod, rule.method),
                    store,
                    notify=self.notify_payment,
                    on_created=self._created_hook(rule.name),
                )
        # Providers known only by their secret (e.g. payout desks) still answer as card acquirers.
        for name in settings.provider_secrets:
            if name not in self.cards and name not in self.payments:
                self.cards[name] = CardProvider(name, store)

    def _created_hook(self, name: str) -> Any:
        return lambda reference: self.created[(name, reference)].set()

    def behaviour(self, name: str) -> BehaviourState:
        if name in self.cards:
            return self.cards[name].behaviour
        if name in self.payments:
            return self.payments[name].behaviour
        raise SimulatorError(404, "unknown_provider", f"no provider {name!r}")

    def speaks_own(self, name: str) -> bool:
        """A provider simulated by a connector module answers only on its own API."""
        return self.connector_type(name) in plugins()

    def connector_type(self, name: str) -> str:
        return self.settings.connector(name).type

    def speaks(self, name: str, connector_type: str) -> bool:
        """Whether the provider `name` is simulated with this connector type's API."""
        return self.connector_type(name) == connector_type

    def _plugin_encoder(self, name: str) -> tuple[bool, Any]:
        """(sends callbacks, encoder or None) of a provider simulated by a connector module."""
        plugin = plugins().get(self.connector_type(name))
        if plugin is None:
            return True, None
        return bool(getattr(plugin, "CALLBACKS", True)), getattr(plugin, "encode_callback", None)

    def notify_payment(self, provider: AsyncProvider, payment: Payment) -> None:
        dialect = DIALECTS.get(self.connector_type(provider.name))
        sends, plugin_encoder = self._plugin_encoder(provider.name)
        if not sends:
            return
        encoder = plugin_encoder or (ENCODERS[dialect] if dialect else None)
        self.sender.notify(
            provider.name,
            provider.callback_url(payment.reference),
            {
                "type": "transfer.received"
                if payment.method == "bank_transfer"
                else "payment.updated",
                "reference": payment.reference,
                "provider_payment_id": payment.payment_id,
                "status": payment.status,
                "amount": payment.amount_received or payment.amount,
                "ordered_amount": payment.amount,
                "currency": payment.currency,
                "decline_code": payment.decline_code,
            },
            provider.behaviour.behaviour,
            encode=encoder,
        )

    def notify_charge(self, card: CardProvider, charge: Charge) -> None:
        sends, plugin_encoder = self._plugin_encoder(card.name)
        if not sends:
            return
        self.sender.notify(
            card.name,
            card.callback_urls.get(charge.reference),
            {
                "type": "charge.updated",
                "reference": charge.reference,
                "provider_payment_id": charge.charge_id,
                "status": charge.status,
                "amount": charge.amount,
                "currency": charge.currency,
                "decline_code": charge.decline_code,
            },
            card.behaviour.behaviour,
            encode=plugin_encoder,
        )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    store = SimulatorStore(
        settings.data_dir / "simulator.sqlite3" if settings.simulator_persist else None
    )
    registry = Registry(settings, store)
    books = Books(registry)  # journals every provider's money movements from now on
    app = FastAPI(title="Provider simulator", version="0.2.0")
    app.state.registry = registry

    app.add_middleware(DropConnectionMiddleware)

    @app.exception_handler(SimulatorError)
    async def simulator_error(_: Request, exc: SimulatorError) -> JSONResponse:
        return JSONResponse(
            {"code": exc.code, "detail": exc.detail}, status_code=exc.status, headers=exc.headers
        )

    def authorize(name: str, authorization: str) -> None:
        if authorization != f"Bearer {settings.provider_secret(name)}":
            raise SimulatorError(401, "unauthorized", "bad API key")
        registry.behaviour(name).admit(name)

    def card_provider(name: str, authorization: str = Header(default="")) -> CardProvider:
        if name not in registry.cards or registry.speaks_own(name):
            raise SimulatorError(404, "unknown_provider", f"no card provider {name!r}")
        authorize(name, authorization)
        return registry.cards[name]

    def async_provider(name: str, authorization: str = Header(default="")) -> AsyncProvider:
        if (
            name not in registry.payments
            or registry.connector_type(name) in DIALECTS
            or registry.speaks_own(name)
        ):
            raise SimulatorError(404, "unknown_provider", f"no payment provider {name!r}")
        authorize(name, authorization)
        return registry.payments[name]

    def admin_card(name: str) -> CardProvider:
        if name not in registry.cards:
            raise SimulatorError(404, "unknown_provider", f"no card provider {name!r}")
        return registry.cards[name]

    AuthorizedCard = Annotated[CardProvider, Depends(card_provider)]
    AuthorizedPayments = Annotated[AsyncProvider, Depends(async_provider)]
    AdminCard = Annotated[CardProvider, Depends(admin_card)]

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    # -- card acquirers ---------------------------------------------------------------------

    @app.post("/providers/{name}/tokens", status_code=201)
    async def tokenize(body: TokenizeRequest, card: AuthorizedCard) -> TokenResponse:
        return card.tokenize(body)

    @app.post("/providers/{name}/charges")
    async def charge(body: ChargeRequest, card: AuthorizedCard, request: Request) -> Charge:
        result, answer_late = await card.charge(body, page_base=str(request.base_url))
        if answer_late:
            await asyncio.sleep(card.behaviour.behaviour.timeout_seconds)
        return result

    @app.get("/providers/{name}/charges/{reference}")
    async def charge_status(reference: str, card: AuthorizedCard) -> Charge:
        await card.behaviour.delay()
        found = card.find_charge(reference)
        if found is None:
            raise SimulatorError(404, "not_found", f"no charge with reference {reference!r}")
        return found

    @app.post("/providers/{name}/charges/{reference}/cancel")
    async def cancel_charge(reference: str, card: AuthorizedCard) -> Charge:
        return card.cancel(reference)

    # -- asynchronous providers -------------------------------------------------------------

    @app.post("/providers/{name}/payments", status_code=201)
    async def create_payment(
        body: PaymentRequest, provider: AuthorizedPayments, request: Request
    ) -> Payment:
        payment, answer_late = await provider.create(body, page_base=str(request.base_url))
        if answer_late:
            await asyncio.sleep(provider.behaviour.behaviour.timeout_seconds)
        return payment

    @app.get("/providers/{name}/payments/{reference}")
    async def payment_status(reference: str, provider: AuthorizedPayments) -> Payment:
        await provider.behaviour.delay()
        found = provider.find(reference)
        if found is None:
            raise SimulatorError(404, "not_found", f"no payment with reference {reference!r}")
        return found

    @app.post("/providers/{name}/payments/{reference}/cancel")
    async def cancel_payment(reference: str, provider: AuthorizedPayments) -> Payment:
        return provider.cancel(reference)

    # -- admin: behaviour and what the platform did ------------------------------------------

    @app.get("/admin/providers")
    async def list_providers() -> dict[str, str]:
        return {
            **{name: "card" for name in registry.cards},
            **{name: p.method for name, p in registry.payments.items()},
        }

    @app.get("/admin/providers/{name}/behaviour")
    async def get_behaviour(name: str) -> Behaviour:
        """The provider's behaviour now (one-shot counters show what is left)."""
        return registry.behaviour(name).behaviour

    @app.put("/admin/providers/{name}/behaviour")
    async def set_behaviour(name: str, body: Behaviour) -> Behaviour:
        """Replace the provider's behaviour; knobs left out take their defaults, unknown knobs
        are refused (422)."""
        state = registry.behaviour(name)
        state.behaviour = body
        return state.behaviour

    @app.post("/admin/reset")
    async def reset() -> dict[str, str]:
        """Every provider's behaviour, and every payout desk's, back to the defaults."""
        for name in [*registry.cards, *registry.payments]:
            registry.behaviour(name).behaviour = Behaviour()
        for desk in registry.payouts.values():
            desk.behaviour.behaviour = Behaviour()
        books.behaviours.clear()  # and how each reports
        return {"status": "reset"}

    @app.get("/admin/charges")
    async def held(reference: str) -> list[Held]:
        """Every charge, payment and payout that any simulated provider holds under this
        reference (tombstones of cancels included), oldest first: how many times money moved
        for one deposit or withdrawal, across providers."""
        found = [_held(*row) for row in registry.store.holding(reference)]
        return sorted(found, key=lambda h: (h.created_at is None, h.created_at, h.provider))

    def bank(name: str) -> AsyncProvider:
        provider = registry.payments.get(name)
        if provider is None or provider.method != "bank_transfer":
            raise SimulatorError(404, "unknown_provider", f"no bank-transfer provider {name!r}")
        return provider

    @app.post("/admin/providers/{name}/statement-lines", status_code=201)
    async def add_statement_line(name: str, line: StatementLine) -> CreditedLine:
        """A transfer lands on the collection account, as a line of the bank's statement: any
        amount (short, over), at any time (late: after the order expired or was cancelled),
        the order's reference somewhere in the payer's free-text purpose (any case, other words
        around it). The bank matches it to that order and reports it (status and callback);
        a line naming no order stays unmatched."""
        return bank(name).credit_transfer(line)

    @app.get("/admin/providers/{name}/statement-lines")
    async def statement_lines(name: str) -> list[CreditedLine]:
        return bank(name).statement

    @app.post("/admin/providers/{name}/payments/{reference}/expire")
    async def expire_payment(name: str, reference: str) -> Payment:
        """The order's time is up now: a pending payment expires (and, with
        `late_success_after_expiry`, is then reported paid)."""
        provider = registry.payments.get(name)
        if provider is None:
            raise SimulatorError(404, "unknown_provider", f"no payment provider {name!r}")
        return provider.expire(reference)

    @app.get("/admin/providers/{name}/charges/{reference}")
    async def charge_log(reference: str, card: AdminCard) -> ChargeLog:
        return ChargeLog(
            reference=reference,
            calls=card.charge_calls.get(reference, 0),
            charge=card.find_charge(reference),
        )

    @app.get("/admin/providers/{name}/payments/{reference}")
    async def payment_log(name: str, reference: str, wait: float = 0) -> PaymentLog:
        """What the provider holds under a reference; `wait` seconds for it to be created."""
        registry.behaviour(name)
        if wait > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(registry.created[(name, reference)].wait(), wait)
        if name in registry.cards:
            card = registry.cards[name]
            return PaymentLog(
                reference=reference,
                calls=card.charge_calls.get(reference, 0),
                charge=card.find_charge(reference),
            )
        provider = registry.payments[name]
        return PaymentLog(
            reference=reference,
            calls=provider.calls.get(reference, 0),
            payment=provider.find(reference),
        )

    @app.get("/admin/callbacks")
    async def callbacks(reference: str | None = None) -> list[dict[str, Any]]:
        return [c for c in registry.sender.sent if reference is None or c["reference"] == reference]

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> str:
        return "<h1>Provider simulator</h1><p>See <a href='/docs'>/docs</a>.</p>"

    app.include_router(reports_router(registry, books))
    app.include_router(dialects_router(registry))
    for plugin in plugins().values():
        app.include_router(plugin.router(registry))
    app.include_router(pages_router(registry))
    app.include_router(payout_router(settings, store, registry.payouts))
    app.include_router(registers_router(settings))  # the exclusion registers, by IIN
    app.include_router(esu_router(settings))  # the unified accounting system (ESU)
    return app
