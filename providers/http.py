"""The one place a provider's HTTP answer or transport failure is classified (shared by every
adapter): did the provider process the request, refuse it, or is the outcome unknown?

What differs between providers (their key's header, where their errors keep a code, errors inside
a 2xx envelope) is read from the adapter's connector spec (`providers.connector`)."""

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

import httpx

from config.connectors import ConnectorConfig
from providers.connector import Connector, Endpoint
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
# Error codes (in ours, lower-cased) a 503 carries when the provider documents it as refused
# before processing: its gateway is down or in maintenance and took nothing. An assumption per
# provider; a 503 without one of them, and every other 5xx, leaves the outcome unknown.
UNAVAILABLE_BEFORE_PROCESSING = frozenset(
    {"outage", "maintenance", "service_unavailable", "temporarily_unavailable", "unavailable"}
)


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
    """One provider reached over HTTP, the way its connector `spec` says. `http` is shared and
    owned by the caller."""

    spec: ClassVar[Connector] = Connector()

    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        base_url: str,
        provider: str,
        secret: str,
        root_url: str | None = None,
        config: ConnectorConfig | None = None,
    ) -> None:
        """`root_url` is the provider's API root (`Settings.provider_base_url`); without it the
        provider is at the simulator under `base_url`. `config` carries what a connector needs
        beyond one secret (OAuth client, webhook and payout secrets, certificates)."""
        self._http = http
        self._base = (root_url or f"{base_url.rstrip('/')}/providers/{provider}").rstrip("/")
        self._headers = self.spec.auth.headers(secret)
        self.provider = provider
        self.config = config
        # The provider's own timeout when configured, else the shared client's.
        self._timeout: Any = (
            config.timeout_seconds
            if config is not None and config.timeout_seconds
            else httpx.USE_CLIENT_DEFAULT
        )
        self._secret = secret
        self._setup()

    def _setup(self) -> None:
        """What a connector prepares from `provider`, `_secret` and `config` once built (its
        credentials, signing keys, token cache); nothing for the common APIs."""

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: object = None,
        data: Mapping[str, Any] | None = None,
    ) -> httpx.Response:
        """`json` or form `data`; every failure classified (see providers.errors)."""
        try:
            response = await self._http.request(
                method,
                self._base + path,
                json=json,
                data=data,
                headers=self._headers,
                timeout=self._timeout,
            )
        except httpx.TransportError as exc:
            raise classify_transport_error(self.provider, exc) from exc
        self._classify_status(response)
        self._classify_envelope(response)
        return response

    def _classify_status(self, response: httpx.Response) -> None:
        status = response.status_code
        if status < 400:
            return
        if status == 429:
            raise ProviderThrottled(
                self.provider, "throttled", retry_after=retry_after_seconds(response)
            )
        code = self.spec.errors.code_of(response)
        if status in REFUSED_BEFORE_PROCESSING:
            raise ProviderRejected(self.provider, code)
        if status == 503 and code.lower() in UNAVAILABLE_BEFORE_PROCESSING:
            # The provider's documented "down, nothing processed" answer (maintenance, outage):
            # as safe to go elsewhere as a refused connection. A bare 503 stays unknown.
            raise ProviderUnreachable(self.provider, code.lower())
        # 5xx: processed then failed is as likely as not; other 4xx: something is there.
        raise ProviderOutcomeUnknown(self.provider, f"http_{status}", code if status < 500 else "")

    def _classify_envelope(self, response: httpx.Response) -> None:
        """An error inside a 2xx envelope: a refusal only where the provider documents the code
        as one (`Envelope.refusals`); any other code, or an envelope we cannot read, leaves the
        outcome unknown."""
        envelope = self.spec.errors.envelope
        if envelope is None:
            return
        code = self._parsed(envelope.error_code, self._json(response))
        if code is None:
            return
        ours = self.spec.errors.ours(code)
        if str(code) in envelope.refusals:
            raise ProviderRejected(self.provider, ours)
        detail = f"error inside an HTTP {response.status_code} answer"
        raise ProviderOutcomeUnknown(self.provider, ours, detail)

    async def _call(
        self, endpoint: Endpoint, reference: str = "", body: Mapping[str, Any] | None = None
    ) -> httpx.Response:
        """One of the spec's endpoints (see `Endpoint.request`)."""
        method, path, json, data = endpoint.request(reference, body)
        return await self._request(method, path, json=json, data=data)

    async def _lookup(
        self, endpoint: Endpoint, reference: str, body: Mapping[str, Any] | None = None
    ) -> httpx.Response | None:
        """`_call` about one of our references; None when the provider answers `not_found`,
        i.e. it never saw that reference."""
        try:
            return await self._call(endpoint, reference, body)
        except ProviderRejected as exc:
            if exc.code == "not_found":
                return None
            raise

    async def _inquiry(
        self, endpoint: Endpoint, reference: str, parse: Callable[[Any], T]
    ) -> T | None:
        """`_lookup`'s answer through `parse`: None when the provider never saw the reference."""
        response = await self._lookup(endpoint, reference)
        return None if response is None else self._answer(parse, response)

    def _parsed(self, parse: Callable[[Any], T], data: Any) -> T:
        """A provider's answer in our terms. One we cannot read leaves the outcome unknown: the
        provider answered, so it may well have processed the request."""
        try:
            return parse(data)
        except (ValueError, LookupError, TypeError, AttributeError) as exc:
            raise ProviderOutcomeUnknown(self.provider, "invalid_response", str(exc)) from exc

    def _json(self, response: httpx.Response) -> Any:
        """The body as JSON, or ProviderOutcomeUnknown when it is not JSON."""
        return self._parsed(lambda r: r.json(), response)

    def _answer(self, parse: Callable[[Any], T], response: httpx.Response) -> T:
        """A JSON answer through `parse`; ProviderOutcomeUnknown when it cannot be read."""
        return self._parsed(parse, self._json(response))
