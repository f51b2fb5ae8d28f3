"""The FastAPI application: routers, problem+json errors, and clients opened once per process."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from api.auth import payments_access
from api.errors import Problem, install_error_handlers, problem_response
from api.hot_cache import HotLookups, listen_for_key_changes
from api.limits import BodySizeLimit, ControlCharacters, JsonBodyGuard
from api.rate_limits import RateLimits
from api.routers import (
    alerts,
    analytics,
    codec,
    compliance,
    dashboard,
    deposit_reviews,
    deposits,
    finance,
    health,
    ledger,
    metrics,
    ops,
    ops_providers,
    players,
    recon,
    recon_cases,
    reconcile,
    refunds,
    responsible_gaming,
    risk,
    session,
    three_ds,
    wallet,
    webhooks,
    withdrawals,
)
from api.routers import checkout as hosted_checkout
from api.state import AppState
from config import Settings, get_settings
from db import idempotency
from db.engine import make_engine, make_sessionmaker
from db.ledger import LedgerBatcher
from providers.registry import card_providers, provider_http_client


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not settings.database_url:
            raise RuntimeError("PAY_DATABASE_URL is not set: start the stack with `make run`")
        engine = make_engine(settings.database_url)
        analytics_engine = make_engine(
            settings.analytics_database_url or settings.database_url,
            pool_size=settings.analytics_pool_size,
        )
        async with provider_http_client(settings) as http:
            app.state.payments = AppState(
                settings=settings,
                engine=engine,
                sessions=make_sessionmaker(engine),
                lookups=make_sessionmaker(engine, autocommit=True),
                http=http,
                card_providers=card_providers(settings, http),
            )
            state: AppState = app.state.payments
            state.analytics_engine = analytics_engine
            state.analytics_sessions = make_sessionmaker(analytics_engine)
            state.hot = HotLookups(ttl=settings.api_cache_ttl_seconds)
            # Its own pool without pre-ping (a lost connection is retried: postings are
            # idempotent), two lanes: bigger batches for the same concurrency.
            batch_engine = make_engine(settings.database_url, pool_size=4, pre_ping=False)
            state.ledger_batcher = LedgerBatcher(make_sessionmaker(batch_engine), parallel=2)
            listener = asyncio.create_task(listen_for_key_changes(state.hot, settings.database_url))
            try:
                yield
            finally:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener
                await batch_engine.dispose()
        await analytics_engine.dispose()
        await engine.dispose()

    app = FastAPI(
        title="KZ Gaming Payments API",
        version="0.1.0",
        description="Deposits and withdrawals for online gaming operators in Kazakhstan. "
        "Money is integer minor units plus an ISO 4217 currency.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(JsonBodyGuard)  # inside the size limit: it reads bounded bodies only
    app.add_middleware(BodySizeLimit, max_bytes=settings.api_max_body_bytes)
    app.add_middleware(ControlCharacters)
    if settings.rate_limits_on:  # outermost: a flood is refused before anything is read
        app.add_middleware(RateLimits, settings=settings)

    @app.exception_handler(idempotency.IdempotencyKeyReused)
    async def on_key_reused(_: Request, exc: idempotency.IdempotencyKeyReused) -> JSONResponse:
        return problem_response(
            Problem(
                409,
                "idempotency_key_reused",
                "This Idempotency-Key was used with a different request body",
            )
        )

    # First: routes are matched in order, and the wallet's are the busiest by far.
    app.include_router(wallet.router)  # merchant role: the game platform's wallet API
    app.include_router(health.router)
    app.include_router(codec.router)  # operator key or operator session cookie
    app.include_router(session.router)  # operator role: the browser's session cookie
    payments = [Depends(payments_access)]
    app.include_router(players.router, dependencies=payments)
    app.include_router(deposits.router, dependencies=payments)
    app.include_router(ledger.router, dependencies=payments)
    app.include_router(withdrawals.router)  # roles per route: merchant, operator
    app.include_router(refunds.router)  # operator role
    app.include_router(deposit_reviews.router)  # operator role: deposits in review
    app.include_router(risk.router)  # operator role: decisions, review queue, block/allow lists
    app.include_router(responsible_gaming.router, dependencies=payments)
    app.include_router(alerts.router)
    app.include_router(analytics.router)  # operator role
    app.include_router(analytics.profiles)  # operator role: the player 360
    app.include_router(compliance.router)  # operator role: financial monitoring, refusals
    app.include_router(ops.router)  # operator role
    app.include_router(ops_providers.router)  # operator role
    app.include_router(reconcile.router)  # operator role
    app.include_router(recon.router)  # operator role: reconciliation runs and report uploads
    app.include_router(recon_cases.router)  # operator role: cases, resolutions, chargebacks
    app.include_router(finance.router)  # operator role: trial balance, periods, GL export
    app.include_router(webhooks.router)  # providers: authenticated by their HMAC signature
    app.include_router(three_ds.router)  # the payer's browser from the ACS: checked at the acquirer
    app.include_router(metrics.router)  # unauthenticated, like /healthz: no personal data
    app.include_router(dashboard.router)  # static page; its API calls carry the operator key
    app.include_router(hosted_checkout.router)  # merchant key: checkout sessions
    app.include_router(hosted_checkout.pages)  # the players' pages: the URL's token
    app.include_router(hosted_checkout.analytics)  # operator role: the checkout funnel
    return app
