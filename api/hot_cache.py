"""Hot lookups of every wallet request, kept briefly in the process: API key -> principal,
API key -> merchant, player -> (merchant, exists).

A revoked or rotated key must stop working at once, in every API process: `db.api_keys` sends
`NOTIFY api_keys_changed, '<key id>'` in the transaction that revokes or rotates, and each
process's `listen_for_key_changes` drops that key from its cache as the commit lands. While the
listener is not connected (start-up, a lost connection) the key cache is not used at all, so a
missed notification can never keep a revoked key alive; the TTL bounds everything else.

Players are never deleted and never change merchant, so a player entry only goes stale by not
being there yet (a miss is not cached).
"""

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

import psycopg

from db.api_keys import CHANGES_CHANNEL, KeyHolder

log = logging.getLogger(__name__)

K = TypeVar("K")
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """A dict whose entries expire `ttl` seconds after they were put; at most `size` of them."""

    def __init__(self, *, ttl: float, size: int = 100_000) -> None:
        self._ttl = ttl
        self._size = size
        self._data: dict[K, tuple[float, V]] = {}

    def get(self, key: K) -> V | None:
        hit = self._data.get(key)
        if hit is None:
            return None
        if hit[0] < time.monotonic():
            self._data.pop(key, None)
            return None
        return hit[1]

    def put(self, key: K, value: V) -> None:
        if self._ttl <= 0:
            return
        if len(self._data) >= self._size:
            self._data.clear()  # crude but bounded: a cache, not a store
        self._data[key] = (time.monotonic() + self._ttl, value)

    def invalidate(self, key: K) -> None:
        self._data.pop(key, None)

    def clear(self) -> None:
        self._data.clear()


@dataclass(frozen=True)
class CachedKey:
    holder: KeyHolder
    secret_sha256: str
    expires_at: datetime | None
    merchant_id: str


@dataclass(frozen=True)
class CachedPlayer:
    merchant_id: str


@dataclass
class HotLookups:
    ttl: float = 5.0
    keys: TtlCache[str, CachedKey] = field(init=False)
    players: TtlCache[str, CachedPlayer] = field(init=False)
    listening: bool = False
    """True while the change listener is connected; the key cache is bypassed otherwise."""
    generation: int = 0
    """Bumped on every key change: a lookup read before a change must not be cached after it."""
    _pgconn: Any = None
    _lost: asyncio.Event | None = None

    def __post_init__(self) -> None:
        self.keys = TtlCache(ttl=self.ttl)
        self.players = TtlCache(ttl=max(self.ttl, 60.0))

    def key_changed(self, key_id: str) -> None:
        self.generation += 1
        self.keys.invalidate(key_id)

    def cached_key(self, key_id: str) -> CachedKey | None:
        """The cached key, after taking in every change notice already on the listener's socket
        (a non-blocking read): a change committed before this request is never missed."""
        if not self.listening:
            return None
        self.drain()
        return self.keys.get(key_id) if self.listening else None

    def drain(self) -> None:
        pgconn = self._pgconn
        if pgconn is None:
            return
        try:
            pgconn.consume_input()
            while (notice := pgconn.notifies()) is not None:
                self.key_changed(notice.extra.decode())
        except Exception:  # the connection is gone: stop trusting the cache
            self._detach()
            if self._lost is not None:
                self._lost.set()

    def _attach(self, pgconn: Any, lost: asyncio.Event) -> None:
        self._pgconn, self._lost = pgconn, lost
        self.generation += 1
        self.keys.clear()  # anything cached before LISTEN may have missed a change
        self.listening = True

    def _detach(self) -> None:
        self.listening = False
        self._pgconn = None
        self.generation += 1
        self.keys.clear()


def _libpq_url(url: str) -> str:
    for prefix in ("postgresql+psycopg://", "postgresql+psycopg2://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


async def listen_for_key_changes(hot: HotLookups, database_url: str) -> None:
    """Drop a key from the cache whenever migration 0180's trigger notifies a change to it;
    reconnect on a lost connection (the cache is bypassed and emptied meanwhile)."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            conn: psycopg.AsyncConnection[Any] = await psycopg.AsyncConnection.connect(
                _libpq_url(database_url), autocommit=True
            )
            async with conn:
                await conn.execute(f"LISTEN {CHANGES_CHANNEL}")
                lost = asyncio.Event()
                socket = conn.pgconn.socket
                hot._attach(conn.pgconn, lost)
                loop.add_reader(socket, hot.drain)
                try:
                    await lost.wait()
                finally:
                    loop.remove_reader(socket)
                    hot._detach()
        except asyncio.CancelledError:
            hot._detach()
            raise
        except Exception:
            log.warning("api key change listener lost its connection; retrying", exc_info=True)
        await asyncio.sleep(1.0)
