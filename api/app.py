"""The FastAPI application: routers, problem+json errors, and clients opened once per process."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from api.auth import payments_access
from api.errors import Problem, install_error_handlers, problem_response
from api.limits import BodySizeLimit, ControlCharacters
from api.routers import (
    alerts,
    analytics,
    codec,
    dashboard,
    deposits,
    health,
    ledger,
    metrics,
    ops,
    ops_providers,
    players,
    reconcile,
    refunds,
    responsible_gaming,
    session,
    webhooks,
    withdrawals,
)
from api.state import AppState
from config import Settings, get_settings
from db import idempotency
from db.engine import make_engine, make_sessionmaker
from providers.registry import card_providers, provider_http_client


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not settings.database_url:
            raise RuntimeError("PAY_DATABASE_URL is not set: start the stack with `make run`")
        engine = make_engine(settings.database_url)
        async with provider_http_client(settings) as http:
            app.state.payments = AppState(
                settings=settings,
                engine=engine,
                sessions=make_sessionmaker(engine),
                lookups=make_sessionmaker(engine, autocommit=True),
                http=http,
                card_providers=card_providers(settings, http),
            )
            yield
        await engine.dispose()

    app = FastAPI(
        title="KZ Gaming Payments API",
        version="0.1.0",
        description="Deposits and withdrawals for online gaming operators in Kazakhstan. "
        "Money is integer minor units plus an ISO 4217 currency.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.api_max_body_bytes)
    app.add_middleware(ControlCharacters)

    @app.exception_handler(idempotency.IdempotencyKeyReused)
    async def on_key_reused(_: Request, exc: idempotency.IdempotencyKeyReused) -> JSONResponse:
        return problem_response(
            Problem(
                409,
                "idempotency_key_reused",
                "This Idempotency-Key was used with a different request body",
            )
        )

    app.include_router(health.router)
    app.include_router(codec.router)  # operator key or operator session cookie
    app.include_router(session.router)  # operator role: the browser's session cookie
    payments = [Depends(payments_access)]
    app.include_router(players.router, dependencies=payments)
    app.include_router(deposits.router, dependencies=payments)
    app.include_router(ledger.router, dependencies=payments)
    app.include_router(withdrawals.router)  # roles per route: merchant, operator
    app.include_router(refunds.router)  # operator role
    app.include_router(responsible_gaming.router, dependencies=payments)
    app.include_router(alerts.router)
    app.include_router(analytics.router)  # operator role
    app.include_router(ops.router)  # operator role
    app.include_router(ops_providers.router)  # operator role
    app.include_router(reconcile.router)  # operator role
    app.include_router(webhooks.router)  # providers: authenticated by their HMAC signature
    app.include_router(metrics.router)  # unauthenticated, like /healthz: no personal data
    app.include_router(dashboard.router)  # static page; its API calls carry the operator key
    return app
