"""The simulator's HTTP API: provider endpoints, plus `/admin` to steer it in tests and demos."""

import asyncio
from typing import Annotated

from fastapi import Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from config import Settings, get_settings
from simulator.behaviour import Behaviour
from simulator.cards import (
    CardProvider,
    Charge,
    ChargeRequest,
    SimulatorError,
    TokenizeRequest,
    TokenResponse,
)
from simulator.payouts import payout_router
from simulator.store import SimulatorStore


class ChargeLog(BaseModel):
    reference: str
    calls: int
    charge: Charge | None


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    store = SimulatorStore(
        settings.data_dir / "simulator.sqlite3" if settings.simulator_persist else None
    )
    providers = {name: CardProvider(name, store) for name in settings.provider_secrets}
    app = FastAPI(title="Provider simulator", version="0.1.0")

    @app.exception_handler(SimulatorError)
    async def simulator_error(_: Request, exc: SimulatorError) -> JSONResponse:
        return JSONResponse({"code": exc.code, "detail": exc.detail}, status_code=exc.status)

    def provider(name: str, authorization: str = Header(default="")) -> CardProvider:
        if name not in providers:
            raise SimulatorError(404, "unknown_provider", f"no provider {name!r}")
        if authorization != f"Bearer {settings.provider_secret(name)}":
            raise SimulatorError(401, "unauthorized", "bad API key")
        return providers[name]

    def admin_provider(name: str) -> CardProvider:
        if name not in providers:
            raise SimulatorError(404, "unknown_provider", f"no provider {name!r}")
        return providers[name]

    AuthorizedProvider = Annotated[CardProvider, Depends(provider)]
    AdminProvider = Annotated[CardProvider, Depends(admin_provider)]

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/providers/{name}/tokens", status_code=201)
    async def tokenize(body: TokenizeRequest, card: AuthorizedProvider) -> TokenResponse:
        return card.tokenize(body)

    @app.post("/providers/{name}/charges")
    async def charge(body: ChargeRequest, card: AuthorizedProvider) -> Charge:
        result, answer_late = await card.charge(body)
        if answer_late:
            await asyncio.sleep(card.behaviour.behaviour.timeout_seconds)
        return result

    @app.get("/providers/{name}/charges/{reference}")
    async def charge_status(reference: str, card: AuthorizedProvider) -> Charge:
        await card.behaviour.delay()
        found = card.find_charge(reference)
        if found is None:
            raise SimulatorError(404, "not_found", f"no charge with reference {reference!r}")
        return found

    @app.get("/admin/providers/{name}/behaviour")
    async def get_behaviour(card: AdminProvider) -> Behaviour:
        return card.behaviour.behaviour

    @app.put("/admin/providers/{name}/behaviour")
    async def set_behaviour(body: Behaviour, card: AdminProvider) -> Behaviour:
        card.behaviour.behaviour = body
        return body

    @app.get("/admin/providers/{name}/charges/{reference}")
    async def charge_log(reference: str, card: AdminProvider) -> ChargeLog:
        return ChargeLog(
            reference=reference,
            calls=card.charge_calls.get(reference, 0),
            charge=card.find_charge(reference),
        )

    app.include_router(payout_router(settings))
    return app
