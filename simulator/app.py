"""The simulator's HTTP API: provider endpoints, player-facing pages, and `/admin` to steer it.

Providers come from the same registry as the platform's (`Settings.providers`): card acquirers
speak `/providers/{name}/tokens|charges` (AltynCard its own `/gateway/...` API,
`simulator.card_dialects`), the asynchronous providers (bank transfer, e-wallet,
mobile banking, QR, aggregator) speak `/providers/{name}/payments`, except those with an API of
their own (`simulator.dialects`: KazBank's transfer instructions, TengeWallet's invoices,
BankApp's push requests, KZQR's QR orders, PayHub's checkout sessions). Each authenticates with
its own secret and signs its callbacks with it, in its own format.
"""

import asyncio
import contextlib
from collections import defaultdict
from typing import Annotated, Any, cast

from fastapi import Depends, FastAPI, Header, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel

from config import Settings, get_settings
from simulator.behaviour import Behaviour, BehaviourState
from simulator.callbacks import CallbackSender
from simulator.card_dialects import CARD_DIALECTS, card_dialects_router
from simulator.cards import (
    CardProvider,
    Charge,
    ChargeRequest,
    SimulatorError,
    TokenizeRequest,
    TokenResponse,
)
from simulator.dialects import DIALECTS, ENCODERS, dialects_router
from simulator.pages import pages_router
from simulator.payments import AsyncMethod, AsyncProvider, Payment, PaymentRequest
from simulator.payouts import payout_router
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


class Registry:
    """Every simulated provider by name, and waiters for 'the platform created reference X'."""

    def __init__(self, settings: Settings, store: SimulatorStore) -> None:
        self.settings = settings
        self.sender = CallbackSender(settings.provider_secret)
        self.created: defaultdict[tuple[str, str], asyncio.Event] = defaultdict(asyncio.Event)
        self.cards: dict[str, CardProvider] = {}
        self.payments: dict[str, AsyncProvider] = {}
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

    def notify_payment(self, provider: AsyncProvider, payment: Payment) -> None:
        dialect = DIALECTS.get(provider.name)
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
            encode=ENCODERS[dialect] if dialect else None,
        )

    def notify_charge(self, card: CardProvider, charge: Charge) -> None:
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
        )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    store = SimulatorStore(
        settings.data_dir / "simulator.sqlite3" if settings.simulator_persist else None
    )
    registry = Registry(settings, store)
    app = FastAPI(title="Provider simulator", version="0.2.0")
    app.state.registry = registry

    @app.exception_handler(SimulatorError)
    async def simulator_error(_: Request, exc: SimulatorError) -> JSONResponse:
        return JSONResponse({"code": exc.code, "detail": exc.detail}, status_code=exc.status)

    def authorize(name: str, authorization: str) -> None:
        if authorization != f"Bearer {settings.provider_secret(name)}":
            raise SimulatorError(401, "unauthorized", "bad API key")
        if registry.behaviour(name).behaviour.outage:
            raise SimulatorError(503, "outage", f"{name} is down")

    def card_provider(name: str, authorization: str = Header(default="")) -> CardProvider:
        if name not in registry.cards or name in CARD_DIALECTS:  # those speak their own API
            raise SimulatorError(404, "unknown_provider", f"no card provider {name!r}")
        authorize(name, authorization)
        return registry.cards[name]

    def async_provider(name: str, authorization: str = Header(default="")) -> AsyncProvider:
        if name not in registry.payments or name in DIALECTS:  # those speak their own API
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
        return registry.behaviour(name).behaviour

    @app.put("/admin/providers/{name}/behaviour")
    async def set_behaviour(name: str, body: Behaviour) -> Behaviour:
        registry.behaviour(name).behaviour = body
        return body

    @app.post("/admin/reset")
    async def reset() -> dict[str, str]:
        for name in [*registry.cards, *registry.payments]:
            registry.behaviour(name).behaviour = Behaviour()
        return {"status": "reset"}

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

    app.include_router(dialects_router(registry))
    app.include_router(card_dialects_router(registry))
    app.include_router(pages_router(registry))
    app.include_router(payout_router(settings, store))
    return app
