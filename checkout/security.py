"""The checkout pages' response headers and their rate limits.

Content-Security-Policy: nothing inline and nothing from elsewhere (the page's script and style
are files served by the platform); forms post only to the platform (and, on a 3-D Secure page,
to that issuer's ACS); framing only by the configured parent origins
(`PAY_CHECKOUT_FRAME_ANCESTORS`). The URL holds the session token, so no page sends a Referer,
and no page is cached (the card form included).

Rate limits count per session token (by digest) and per client IP on every /checkout route,
with the `limits` storage of the API's own limits (`PAY_RATE_LIMIT_STORAGE`), and are on in
every environment: the pages are public.
"""

import hashlib
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass

from limits import parse_many
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from config import Settings


def content_security_policy(settings: Settings, *, form_targets: Iterable[str] = ()) -> str:
    ancestors = " ".join(settings.checkout_frame_ancestors) or "'none'"
    form_action = " ".join(["'self'", *sorted(set(form_targets))])
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        f"connect-src 'self'; form-action {form_action}; frame-ancestors {ancestors}; "
        "base-uri 'none'"
    )


def page_headers(settings: Settings, *, form_targets: Iterable[str] = ()) -> dict[str, str]:
    headers = {
        "Content-Security-Policy": content_security_policy(settings, form_targets=form_targets),
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    }
    if not settings.checkout_frame_ancestors:
        headers["X-Frame-Options"] = "DENY"  # browsers that predate frame-ancestors
    return headers


@dataclass(frozen=True)
class Refusal:
    retry_after: int


class CheckoutLimiter:
    def __init__(self, settings: Settings) -> None:
        self.limiter = MovingWindowRateLimiter(storage_from_string(settings.rate_limit_storage))
        self.per_session = parse_many(settings.checkout_rate_limit_per_session)
        self.per_ip = parse_many(settings.checkout_rate_limit_per_ip)

    async def hit(self, *, token: str | None, ip: str) -> Refusal | None:
        checks = [("checkout-ip", self.per_ip, ip)]
        if token:
            digest = hashlib.sha256(token.encode()).hexdigest()[:32]
            checks.append(("checkout-session", self.per_session, digest))
        for kind, items, who in checks:
            for item in items:
                if not await self.limiter.hit(item, kind, who):
                    stats = await self.limiter.get_window_stats(item, kind, who)
                    return Refusal(max(1, math.ceil(stats.reset_time - time.time())))
        return None
