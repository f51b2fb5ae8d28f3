"""Builds the provider adapters from settings; the API and the worker share one definition."""

import httpx

from config import Settings
from providers.card import CardProviderClient


def provider_http_client(settings: Settings) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=settings.provider_http_timeout_seconds,
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
    )


def card_providers(settings: Settings, http: httpx.AsyncClient) -> dict[str, CardProviderClient]:
    return {
        name: CardProviderClient(
            http=http,
            base_url=settings.simulator_url,
            provider=name,
            secret=secret.get_secret_value(),
        )
        for name, secret in settings.provider_secrets.items()
    }
