"""The one place a provider's HTTP answer or transport failure is classified (shared by every
adapter): did the provider process the request, refuse it, or is the outcome unknown?"""

from collections.abc import Callable
from typing import Any, TypeVar

import httpx

from providers.errors import (
    ProviderOutcomeUnknown,
    ProviderRejected,
    ProviderThrottled,
    ProviderTimeout,
    ProviderUnreachable,
)

T = TypeVar("T")

# 4xx answers that mean "refused before processing": the request was malformed, unauthenticated,
# forbidden, addressed to nothing, or throttled (429, ProviderThrottled). Any other 4xx (408,
# 409 conflict on our reference, 410, ...) says something exists or happened there: unknown.
REFUSED_BEFORE_PROCESSING = frozenset({400, 401, 403, 404, 405, 406, 411, 413, 414, 415, 422})


def classify_transport_error(provider: str, exc: httpx.TransportError) -> Exception:
    """A transport failure: only one that happened before the request left is 'not processed'."""
    if isinstance(exc, httpx.ConnectTimeout | httpx.ConnectError | httpx.PoolTimeout):
        return ProviderUnreachable(provider, "unreachable", type(exc).__name__)
    if isinstance(exc, httpx.TimeoutException):  # read or write timeout: it may be processing
        return ProviderTimeout(provider, "timeout", type(exc).__name__)
    # Read error, connection reset, remote protocol error: sent, answer lost.
    return ProviderOutcomeUnknown(provider, "connection_lost", type(exc).__name__)


def retry_after_seconds(response: httpx.Response) -> float | None:
    """Retry-After in seconds (the delta form; an HTTP date is ignored as unreadable)."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return max(seconds, 0.0)


class ProviderHttp:
    """One provider reached over HTTP. `http` is shared and owned by the caller."""

    def __init__(
        self, *, http: httpx.AsyncClient, base_url: str, provider: str, secret: str
    ) -> None:
        self._http = http
        self._base = f"{base_url.rstrip('/')}/providers/{provider}"
        self._headers = {"Authorization": f"Bearer {secret}"}
        self.provider = provider

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: object = None,
        data: dict[str, str] | None = None,
    ) -> httpx.Response:
        """`json` or form `data`; every failure classified (see providers.errors)."""
        try:
            response = await self._http.request(
                method, self._base + path, json=json, data=data, headers=self._headers
            )
        except httpx.TransportError as exc:
            raise classify_transport_error(self.provider, exc) from exc
        self._classify_status(response)
        return response

    def _classify_status(self, response: httpx.Response) -> None:
        status = response.status_code
        if status < 400:
            return
        if status == 429:
            raise ProviderThrottled(
                self.provider, "throttled", retry_after=retry_after_seconds(response)
            )
        if status in REFUSED_BEFORE_PROCESSING:
            raise ProviderRejected(self.provider, self._error_code(response))
        # 5xx: processed then failed is as likely as not; other 4xx: something is there.
        raise ProviderOutcomeUnknown(
            self.provider, f"http_{status}", self._error_code(response) if status < 500 else ""
        )

    async def _lookup(
        self,
        method: str,
        path: str,
        *,
        json: object = None,
        data: dict[str, str] | None = None,
    ) -> httpx.Response | None:
        """A request about one of our references; None when the provider answers `not_found`,
        i.e. it never saw that reference."""
        try:
            return await self._request(method, path, json=json, data=data)
        except ProviderRejected as exc:
            if exc.code == "not_found":
                return None
            raise

    def _parsed(self, parse: Callable[[Any], T], data: Any) -> T:
        """A provider's answer in our terms. One we cannot read leaves the outcome unknown: the
        provider answered, so it may well have processed the request."""
        try:
            return parse(data)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ProviderOutcomeUnknown(self.provider, "invalid_response", str(exc)) from exc

    def _json(self, response: httpx.Response) -> Any:
        """The body as JSON, or ProviderOutcomeUnknown when it is not JSON."""
        return self._parsed(lambda r: r.json(), response)

    def _error_code(self, response: httpx.Response) -> str:
        """The unified error code of a 4xx answer (dialects override: their own error shapes)."""
        return error_code(response)


def error_code(response: httpx.Response) -> str:
    try:
        payload = response.json()
    except ValueError:
        return f"http_{response.status_code}"
    code = payload.get("code") if isinstance(payload, dict) else None
    return str(code) if code else f"http_{response.status_code}"
