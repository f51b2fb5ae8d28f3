"""Process-wide clients the API shares between requests, created once in the lifespan."""

import asyncio
from dataclasses import dataclass, field

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.client import Client

from codec.converter import data_converter
from config import Settings
from providers.card import CardProviderClient


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
    _temporal: Client | None = None
    _temporal_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def temporal(self) -> Client:
        """Connected on first use, so the API can start before Temporal is reachable."""
        async with self._temporal_lock:
            if self._temporal is None:
                self._temporal = await Client.connect(
                    self.settings.temporal_target,
                    namespace=self.settings.temporal_namespace,
                    data_converter=data_converter(self.settings),
                )
            return self._temporal
