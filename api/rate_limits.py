"""Request rate limits per API key, per client IP and, for webhooks, per provider, before any
handler runs: a client that floods the API is answered 429 problem+json with Retry-After and
costs nothing further.

Counting is the `limits` library's moving window. Its storage is a URI
(`PAY_RATE_LIMIT_STORAGE`): `async+memory://` counts per process; `async+redis://host:6379`
shares the counts between API replicas (in the compose shape the edge limits as well). Keys are
counted by a digest, never in clear.
"""

import hashlib
import json
import math
import time
from collections.abc import Iterator

from limits import RateLimitItem, parse_many
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string
from starlette.types import ASGIApp, Receive, Scope, Send

from config import Settings


def _problem(detail: str) -> bytes:
    return json.dumps(
        {
            "type": "https://docs.kzpay.example/errors/rate_limited",
            "title": "Too many requests",
            "status": 429,
            "detail": detail,
            "code": "rate_limited",
        }
    ).encode()


class RateLimits:
    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        storage = storage_from_string(settings.rate_limit_storage)
        self.limiter = MovingWindowRateLimiter(storage)
        self.per_key = parse_many(settings.rate_limit_per_api_key)
        self.per_ip = parse_many(settings.rate_limit_per_client_ip)
        self.per_provider = parse_many(settings.rate_limit_per_provider_webhook)
        self.exempt = ("/healthz", "/metrics")

    def _checks(self, scope: Scope) -> Iterator[tuple[str, list[RateLimitItem], str]]:
        path = str(scope.get("path", ""))
        client = scope.get("client")
        yield "ip", self.per_ip, client[0] if client else "unknown"
        headers = dict(scope.get("headers", []))
        authorization = headers.get(b"authorization")
        if authorization:
            yield "key", self.per_key, hashlib.sha256(authorization).hexdigest()[:32]
        if path.startswith("/v1/webhooks/"):
            yield "webhook", self.per_provider, path.split("/")[3][:64]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope.get("path", "")).startswith(self.exempt):
            await self.app(scope, receive, send)
            return
        for kind, items, who in self._checks(scope):
            for item in items:
                if not await self.limiter.hit(item, kind, who):
                    stats = await self.limiter.get_window_stats(item, kind, who)
                    wait = max(1, math.ceil(stats.reset_time - time.time()))
                    await _refuse(send, f"more than {item} per {kind}: retry in {wait} s", wait)
                    return
        await self.app(scope, receive, send)


async def _refuse(send: Send, detail: str, retry_after: int) -> None:
    body = _problem(detail)
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(retry_after).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
