"""Builds the provider adapters from settings; the API and the worker share one definition."""

from collections.abc import Callable
from typing import TypeVar

import httpx

from config import Settings
from providers.altyncard import AltynCardClient
from providers.bankapp import BankAppClient
from providers.card import CardProviderClient
from providers.http import ProviderHttp
from providers.kazbank import KazbankClient
from providers.kzqr import KzqrClient
from providers.payhub import PayHubClient
from providers.payments import PaymentProviderClient
from providers.tengewallet import TengeWalletClient

# Providers that speak an API of their own; every other one speaks the common `/payments` API.
PAYMENT_DIALECTS: dict[str, type[PaymentProviderClient]] = {
    "kazbank": KazbankClient,
    "tengewallet": TengeWalletClient,
    "bankapp": BankAppClient,
    "kzqr": KzqrClient,
    "payhub": PayHubClient,
}


# Card acquirers with an API of their own; every other one speaks the common `/tokens|charges` API.
CARD_DIALECTS: dict[str, type[CardProviderClient]] = {"altyncard": AltynCardClient}


def card_dialect(provider: str) -> type[CardProviderClient]:
    """The adapter class of a card acquirer."""
    return CARD_DIALECTS.get(provider, CardProviderClient)


def payment_dialect(provider: str) -> type[PaymentProviderClient]:
    """The adapter class (API, callback signature and format) of a provider."""
    return PAYMENT_DIALECTS.get(provider, PaymentProviderClient)


def provider_http_client(settings: Settings) -> httpx.AsyncClient:
    # httpcore walks its whole pool for every request and response, polling each idle socket
    # and counting idle ones per idle one; a small pool is cheaper than a large idle one.
    return httpx.AsyncClient(
        timeout=settings.provider_http_timeout_seconds,
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
    )


def card_providers(settings: Settings, http: httpx.AsyncClient) -> dict[str, CardProviderClient]:
    """Every card acquirer in the provider registry (`Settings.providers`)."""
    return _clients(settings, http, card_dialect, cards=True)


def payment_providers(
    settings: Settings, http: httpx.AsyncClient
) -> dict[str, PaymentProviderClient]:
    """Every asynchronous provider (bank transfer, e-wallet, mobile banking, QR, aggregator)."""
    return _clients(settings, http, payment_dialect, cards=False)


C = TypeVar("C", bound=ProviderHttp)


def _clients(
    settings: Settings, http: httpx.AsyncClient, dialect: Callable[[str], type[C]], *, cards: bool
) -> dict[str, C]:
    """One adapter per provider in the registry of card acquirers (`cards`) or of the others."""
    return {
        rule.name: dialect(rule.name)(
            http=http,
            base_url=settings.simulator_url,
            provider=rule.name,
            secret=settings.provider_secret(rule.name),
        )
        for rule in settings.providers
        if (rule.method == "card") == cards
    }
