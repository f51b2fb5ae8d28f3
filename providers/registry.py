"""Builds the provider adapters from settings; the API and the worker share one definition.

Each provider is reached through its connector type (`Settings.connector(name).type`): the
client class registered for that type here, or by a module of `providers/connectors/` that
declares `CONNECTOR_TYPE` and `CLIENT`. Several providers may share one type.
"""

import ssl
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, TypeVar

import httpx

from config import Settings, get_settings
from providers import connectors as connector_modules
from providers.card import CardProviderClient
from providers.connectors import modules_by_type
from providers.http import ProviderHttp
from providers.kazbank import KazbankClient
from providers.payments import PaymentProviderClient

if TYPE_CHECKING:
    from providers.payout import PayoutProviderClient

BUILT_IN_TYPES: dict[str, type[ProviderHttp]] = {
    "common_card": CardProviderClient,
    "common_payments": PaymentProviderClient,
    "kazbank": KazbankClient,
}


@cache
def connector_types() -> dict[str, type[ProviderHttp]]:
    """Every connector type: the built-in ones and those of `providers/connectors/`."""
    types = dict(BUILT_IN_TYPES)
    for name, module in modules_by_type(connector_modules.__name__).items():
        client = getattr(module, "CLIENT", None)
        if isinstance(client, type) and issubclass(client, ProviderHttp):
            types[name] = client
    return types


def payout_class(settings: Settings, provider: str) -> "type[PayoutProviderClient]":
    """The payout client of the provider's connector type: its module's `PAYOUT_CLIENT`, or the
    common payout API."""
    from providers.payout import PayoutProviderClient

    module = modules_by_type(connector_modules.__name__).get(settings.connector(provider).type)
    client = getattr(module, "PAYOUT_CLIENT", None)
    if isinstance(client, type) and issubclass(client, PayoutProviderClient):
        return client
    return PayoutProviderClient


def connector_class(settings: Settings, provider: str) -> type[ProviderHttp]:
    kind = settings.connector(provider).type
    client = connector_types().get(kind)
    if client is None:
        known = ", ".join(sorted(connector_types()))
        raise ValueError(f"provider {provider!r}: unknown connector type {kind!r} ({known})")
    return client


def card_dialect(provider: str, settings: Settings | None = None) -> type[CardProviderClient]:
    """The adapter class of a card acquirer."""
    client = connector_class(settings or get_settings(), provider)
    return client if issubclass(client, CardProviderClient) else CardProviderClient


def payment_dialect(provider: str, settings: Settings | None = None) -> type[PaymentProviderClient]:
    """The adapter class (API, callback signature and format) of a provider."""
    client = connector_class(settings or get_settings(), provider)
    return client if issubclass(client, PaymentProviderClient) else PaymentProviderClient


def callback_dialect(provider: str, settings: Settings | None = None) -> type[ProviderHttp]:
    """The class that verifies and reads this provider's callbacks: its connector when the
    connector has its own (`verify_callback`, `parse_callback`), else the common signed format."""
    client = connector_class(settings or get_settings(), provider)
    if hasattr(client, "verify_callback") and hasattr(client, "parse_callback"):
        return client
    return PaymentProviderClient


def provider_http_client(settings: Settings) -> httpx.AsyncClient:
    # httpcore walks its whole pool for every request and response, polling each idle socket
    # and counting idle ones per idle one; a small pool is cheaper than a large idle one.
    return httpx.AsyncClient(
        timeout=settings.provider_http_timeout_seconds,
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
    )


def card_providers(settings: Settings, http: httpx.AsyncClient) -> dict[str, CardProviderClient]:
    """Every card acquirer in the provider registry (`Settings.providers`)."""
    return _clients(settings, http, lambda name: card_dialect(name, settings), cards=True)


def payment_providers(
    settings: Settings, http: httpx.AsyncClient
) -> dict[str, PaymentProviderClient]:
    """Every asynchronous provider (bank transfer, e-wallet, mobile banking, QR, aggregator)."""
    return _clients(settings, http, lambda name: payment_dialect(name, settings), cards=False)


C = TypeVar("C", bound=ProviderHttp)


def build_client(settings: Settings, http: httpx.AsyncClient, provider: str, client: type[C]) -> C:
    """One provider's adapter, configured from `Settings.connector(provider)`."""
    config = settings.connector(provider)
    if config.webhook_secret is None and provider in settings.webhook_secrets:
        # Connectors that sign per payment (Halyk's secret_hash) key it with the webhook secret.
        config = config.model_copy(update={"webhook_secret": settings.webhook_secrets[provider]})
    if config.client_cert_file is not None:
        # Mutual TLS (Kaspi's strongest scheme): a client of its own, holding the certificate;
        # it lives as long as the process, like the shared one.
        context = ssl.create_default_context()
        context.load_cert_chain(config.client_cert_file, config.client_key_file)
        http = httpx.AsyncClient(verify=context, timeout=settings.provider_http_timeout_seconds)
    return client(
        http=http,
        base_url=settings.simulator_url,
        provider=provider,
        secret=settings.provider_secret(provider),
        root_url=settings.provider_base_url(provider),
        config=config,
    )


def _clients(
    settings: Settings, http: httpx.AsyncClient, dialect: Callable[[str], type[C]], *, cards: bool
) -> dict[str, C]:
    """One adapter per provider in the registry of card acquirers (`cards`) or of the others."""
    clients: dict[str, C] = {}
    for rule in settings.providers:
        if (rule.method == "card") != cards:
            continue
        if not rule.enabled and settings.connector(rule.name).type not in connector_types():
            continue  # a provider switched off whose connector this build does not have
        clients[rule.name] = build_client(settings, http, rule.name, dialect(rule.name))
    return clients
