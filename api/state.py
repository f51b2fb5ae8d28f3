"""Process-wide clients the API shares between requests, created once in the lifespan."""

import asyncio
from dataclasses import dataclass, field

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.client import Client

from api.hot_cache import HotLookups
from codec.converter import data_converter
from config import Settings
from config.temporal_tls import temporal_tls
from db.ledger import LedgerBatcher
from providers.card import CardProviderClient
from providers.compliance import CompliancePorts, compliance_ports


@dataclass
class AppState:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    http: httpx.AsyncClient
    card_providers: dict[str, CardProviderClient]
    # Autocommit sessions, for one-statement reads on the hot path (the API key of every
    # request): no BEGIN and no ROLLBACK round trips around the SELECT.
    lookups: async_sessionmaker[AsyncSession]
    # Analytics and /metrics: their own small pool (PAY_ANALYTICS_DATABASE_URL may be a replica).
    analytics_engine: AsyncEngine | None = None
    analytics_sessions: async_sessionmaker[AsyncSession] | None = None
    # Brief caches of the hot lookups (API key, player), and group commit for the wallet API's
    # postings (api/routers/wallet.py), one per process.
    hot: HotLookups = field(default_factory=HotLookups)
    ledger_batcher: LedgerBatcher | None = None
    _temporal: Client | None = None
    _compliance: CompliancePorts | None = None
    _temporal_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def compliance(self) -> CompliancePorts:
        """The exclusion registers and the ESU (README "Compliance"), built on first use."""
        if self._compliance is None:
            self._compliance = compliance_ports(self.settings, self.http)
        return self._compliance

    async def temporal(self) -> Client:
        """Connected on first use, so the API can start before Temporal is reachable."""
        async with self._temporal_lock:
            if self._temporal is None:
                self._temporal = await Client.connect(
                    self.settings.temporal_target,
                    namespace=self.settings.temporal_namespace,
                    data_converter=data_converter(self.settings),
                    tls=temporal_tls(self.settings),
                )
            return self._temporal
