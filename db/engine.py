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


def make_sessionmaker(
    engine: AsyncEngine, *, autocommit: bool = False
) -> async_sessionmaker[AsyncSession]:
    """With `autocommit`, sessions on the same pool whose connections commit each statement: for
    reads and writes that are one statement on their own, without BEGIN and COMMIT round trips."""
    if autocommit:
        engine = engine.execution_options(isolation_level="AUTOCOMMIT")
    return async_sessionmaker(engine, expire_on_commit=False)


def autocommit_sessions(
    sessions: async_sessionmaker[AsyncSession],
) -> async_sessionmaker[AsyncSession]:
    """Autocommit sessions on the engine `sessions` is bound to (see `make_sessionmaker`)."""
    engine = sessions.kw.get("bind")
    if not isinstance(engine, AsyncEngine):
        raise TypeError("autocommit sessions need a sessionmaker bound to an AsyncEngine")
    return make_sessionmaker(engine, autocommit=True)
