"""One async engine per process; psycopg 3 serves both async (app) and sync (Alembic) use."""

from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def normalize_url(url: str) -> str:
    """Accept plain `postgresql://` URLs as people write them and pick the psycopg 3 driver."""
    for prefix in ("postgresql+psycopg2://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str, *, pool_size: int = 10, pre_ping: bool = True) -> AsyncEngine:
    """`pre_ping` tests each connection as it leaves the pool (one round trip): a request then
    never meets a connection PostgreSQL closed. Callers that retry anyway may turn it off."""
    return create_async_engine(
        normalize_url(url), pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=pre_ping
    )


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
