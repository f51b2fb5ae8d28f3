"""The exclusion registers over HTTP (`domain.compliance.exclusions.ExclusionRegistry`), and a
short-lived cache in front of them.

`GET {base}/v1/persons/{iin}` with `Authorization: Bearer <secret>` answers every active listing
of the IIN (the simulator's `simulator/registers.py`; base URL and credential from
`PAY_EXCLUSION_REGISTRY_URL` / `PAY_EXCLUSION_REGISTRY_SECRET`). Anything but a readable 200
(a transport error, a timeout, a 5xx, a refused credential) is `RegistryUnavailable`: the
caller's policy decides (deposits fail closed).
"""

import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import httpx

from config import Settings
from domain.compliance.exclusions import (
    ExclusionRegistry,
    Listing,
    Register,
    RegistryAnswer,
    RegistryUnavailable,
)


class HttpExclusionRegistry:
    def __init__(
        self, *, http: httpx.AsyncClient, base_url: str, secret: str, timeout_seconds: float
    ) -> None:
        self._http = http
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {secret}"}
        self._timeout = timeout_seconds

    async def check(self, iin: str) -> RegistryAnswer:
        try:
            response = await self._http.get(
                f"{self._base}/v1/persons/{iin}", headers=self._headers, timeout=self._timeout
            )
        except httpx.HTTPError as exc:
            raise RegistryUnavailable(f"no answer: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise RegistryUnavailable(f"answered {response.status_code}")
        try:
            return _answer(iin, response.json())
        except (ValueError, KeyError, TypeError) as exc:
            raise RegistryUnavailable(f"unreadable answer: {exc}") from exc


def _date(value: Any) -> date | None:
    return None if value is None else date.fromisoformat(str(value))


def _answer(iin: str, body: Any) -> RegistryAnswer:
    if not isinstance(body, dict) or body.get("iin") != iin:
        raise ValueError("the answer is not about this IIN")
    listings = tuple(
        Listing(
            register=Register(item["register"]),
            reason=item.get("reason"),
            listed_from=_date(item.get("listed_from")),
            listed_until=_date(item.get("listed_until")),
        )
        for item in body["listings"]
    )
    checked = body.get("checked_at")
    return RegistryAnswer(
        iin=iin,
        listings=listings,
        checked_at=datetime.fromisoformat(checked) if checked else datetime.now(UTC),
    )


class CachedExclusionRegistry:
    """Answers kept for `ttl_seconds` (0: none), at most `max_entries` IINs (the oldest go
    first). Only answers are kept: a register that did not answer is asked again next time."""

    def __init__(
        self,
        inner: ExclusionRegistry,
        *,
        ttl_seconds: float,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inner = inner
        self._ttl = ttl_seconds
        self._max = max_entries
        self._clock = clock
        self._kept: OrderedDict[str, tuple[float, RegistryAnswer]] = OrderedDict()

    async def check(self, iin: str) -> RegistryAnswer:
        now = self._clock()
        kept = self._kept.get(iin)
        if kept is not None and now - kept[0] < self._ttl:
            return kept[1]
        answer = await self._inner.check(iin)
        if self._ttl > 0:
            self._kept[iin] = (now, answer)
            self._kept.move_to_end(iin)
            while len(self._kept) > self._max:
                self._kept.popitem(last=False)
        return answer

    def forget(self, iin: str) -> None:
        self._kept.pop(iin, None)


def exclusion_registry(settings: Settings, http: httpx.AsyncClient) -> CachedExclusionRegistry:
    """The registers as configured, behind the cache."""
    return CachedExclusionRegistry(
        HttpExclusionRegistry(
            http=http,
            base_url=settings.registers_base_url,
            secret=settings.exclusion_registry_secret.get_secret_value(),
            timeout_seconds=settings.provider_http_timeout_seconds,
        ),
        ttl_seconds=settings.exclusion_cache_seconds,
    )
