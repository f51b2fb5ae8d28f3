"""The one place provider HTTP errors become `providers.errors` (shared by every adapter)."""

from collections.abc import Callable
from typing import Any, TypeVar

import httpx

from providers.errors import ProviderRejected, ProviderTimeout, ProviderUnavailable

T = TypeVar("T")


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
        """`json` or form `data`; 5xx and transport errors become ProviderUnavailable /
        ProviderTimeout, a 4xx ProviderRejected with the provider's code (`_error_code`)."""
        try:
            response = await self._http.request(
                method, self._base + path, json=json, data=data, headers=self._headers
            )
        except httpx.TimeoutException as exc:
            raise ProviderTimeout(self.provider, "timeout", type(exc).__name__) from exc
        except httpx.TransportError as exc:
            raise ProviderUnavailable(self.provider, "unreachable", type(exc).__name__) from exc
        if response.status_code >= 500:
            raise ProviderUnavailable(self.provider, f"http_{response.status_code}")
        if response.status_code >= 400:
            raise ProviderRejected(self.provider, self._error_code(response))
        return response

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
        """A provider's answer in our terms; one we cannot read is refused as `invalid_response`."""
        try:
            return parse(data)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ProviderRejected(self.provider, "invalid_response", str(exc)) from exc

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
