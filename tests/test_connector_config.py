"""Providers are configuration: connector type, base URL and credentials per provider, several
providers on one connector type, a check command, and callback secrets kept apart."""

import json
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from config import Settings, child_environment
from config.connectors import DEFAULT_CONNECTOR_TYPES, ConnectorConfig
from providers.card import CardData
from providers.connectors.freedom_pay import signed_form
from providers.connectors.halyk_epay import HalykEpayClient, invoice_id, secret_hash
from providers.connectors.kaspi import KaspiClient
from providers.registry import build_client, connector_class
from simulator.connectors.cloudpayments import encode_callback as cloudpayments_callback
from simulator.connectors.ioka import encode_callback as ioka_callback
from simulator.dialects import kazbank_callback
from tests.conftest import VISA_OK

ROOT = Path(__file__).resolve().parent.parent


async def test_connectors_come_from_the_environment_as_json(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Pointing a provider at its real sandbox is an entry of PAY_CONNECTORS, read by its
    connector: Halyk's OAuth client and terminal, Kaspi's trade point and device."""
    monkeypatch.setenv(
        "PAY_CONNECTORS",
        json.dumps(
            {
                "halyk": {
                    "type": "halyk_epay",
                    "base_url": "https://test-epay-api.epayment.kz/",
                    "api_key": "live-key",
                    "client_id": "merchant-client",
                    "client_secret": "client-secret",
                    "merchant_id": "terminal-67e34d63",
                    "webhook_secret": "hook",
                    "timeout_seconds": 20,
                },
                "kaspi_pay": {
                    "type": "kaspi",
                    "base_url": "https://qrapi-cert-ip.kaspi.kz/r3/v01",
                    "merchant_id": "180340021791",
                    "api_secret": "device-token",
                    "callbacks": False,
                },
            }
        ),
    )
    settings = Settings(_env_file=None)
    assert settings.connector("halyk").type == "halyk_epay"
    assert settings.provider_base_url("halyk") == "https://test-epay-api.epayment.kz"
    assert settings.provider_secret("halyk") == "live-key"
    assert settings.webhook_secret("halyk") == "hook"
    async with httpx.AsyncClient() as http:
        halyk = build_client(settings, http, "halyk", connector_class(settings, "halyk"))
        assert isinstance(halyk, HalykEpayClient)
        creds = halyk.credentials
        assert (creds.client_id, creds.client_secret, creds.terminal) == (
            "merchant-client",
            "client-secret",
            "terminal-67e34d63",
        )
        assert halyk._token_url == "https://test-epay-oauth.epayment.kz/oauth2/token"
        kaspi = build_client(settings, http, "kaspi_pay", connector_class(settings, "kaspi_pay"))
        assert isinstance(kaspi, KaspiClient)
        assert kaspi._credentials == {
            "OrganizationBin": "180340021791",
            "DeviceToken": "device-token",
        }
    assert settings.connector("kaspi_pay").callbacks is False
    # Unconfigured providers keep the embedded default: their own type, at the simulator.
    assert settings.connector("kaspi_qr").type == "kaspi"
    assert settings.provider_base_url("kaspi_qr").endswith("/providers/kaspi_qr")
    assert settings.connector("ioka").type == "ioka"
    with pytest.raises(ValueError, match="unknown connector type"):
        connector_class(Settings(connectors={"kaspi_qr": ConnectorConfig(type="nope")}), "kaspi_qr")


def test_the_webhook_secret_is_not_the_api_secret() -> None:
    settings = Settings()
    for rule in settings.providers:
        assert settings.webhook_secret(rule.name) != settings.provider_secret(rule.name)


async def test_two_terminals_share_one_connector_type_by_configuration(settings: Settings) -> None:
    """A second Halyk terminal is an entry: the same connector type, its own base URL (here the
    simulated Halyk, as a real sandbox would be a URL), its own OAuth client and terminal (here
    the simulated Halyk's) and its own key."""
    terminal = "halyk-terminal-2"
    configured = settings.model_copy(
        update={
            "connectors": {
                terminal: ConnectorConfig(
                    type="halyk_epay",
                    base_url=f"{settings.simulator_url}/providers/halyk",
                    api_key=settings.provider_secrets["halyk"],
                    client_id="halyk",
                    merchant_id="halyk",
                )
            }
        }
    )
    assert connector_class(configured, terminal) is connector_class(configured, "halyk")
    async with httpx.AsyncClient(timeout=10) as http:
        client = build_client(configured, http, terminal, connector_class(configured, terminal))
        assert isinstance(client, HalykEpayClient)
        assert client.provider == terminal
        token = await client.tokenize(
            CardData(number=VISA_OK, exp_month=12, exp_year=2031, cvc="123")
        )
        reference = f"dep_cfg_{uuid.uuid4().hex[:8]}"
        charged = await client.charge(
            reference=reference, token=token.token, amount=10_000, currency="KZT"
        )
        assert charged.status == "succeeded"
        found = await client.get_charge(reference)
        assert found is not None
        assert (found.status, found.amount) == ("succeeded", 10_000)


def _check(settings: Settings, name: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "providers.check", name],
        cwd=ROOT,
        env=child_environment({"PAY_SIMULATOR_URL": settings.simulator_url, **env}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("name", sorted(DEFAULT_CONNECTOR_TYPES))
def test_the_check_command_says_a_provider_is_reachable(settings: Settings, name: str) -> None:
    run = _check(settings, name)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("OK: ")
    assert "credentials OK" in run.stdout
    assert f"({DEFAULT_CONNECTOR_TYPES[name]})" in run.stdout


def test_the_check_command_says_what_to_fix(settings: Settings) -> None:
    wrong = _check(settings, "halyk", PAY_PROVIDER_SECRETS='{"halyk": "not-the-key"}')
    assert wrong.returncode == 1
    assert "refused our credentials" in wrong.stderr
    assert "PAY_CONNECTORS" in wrong.stderr
    down = _check(settings, "halyk", PAY_SIMULATOR_URL="http://127.0.0.1:9")
    assert down.returncode == 1
    assert "cannot be reached" in down.stderr
    unknown = _check(settings, "nobank")
    assert unknown.returncode == 1
    assert "no provider 'nobank'" in unknown.stderr
    mistyped = _check(settings, "ioka", PAY_CONNECTORS='{"ioka": {"type": "iokaa"}}')
    assert mistyped.returncode == 1
    assert "unknown connector type 'iokaa'" in mistyped.stderr


async def test_ops_providers_shows_each_connector(
    operator_api: httpx.AsyncClient, settings: Settings
) -> None:
    listed = (await operator_api.get("/v1/ops/providers")).json()["data"]
    by_name = {p["provider"]: p for p in listed}
    assert set(by_name) == {rule.name for rule in settings.providers}
    for name, shown in by_name.items():
        assert (shown["connector"], shown["simulated"]) == (DEFAULT_CONNECTOR_TYPES[name], True)
    assert by_name["kaspi_qr"]["connector"] == by_name["kaspi_pay"]["connector"] == "kaspi"


# -- callbacks are verified with the webhook secret, never the API secret -----------------------

EVENT: dict[str, Any] = {
    "reference": "dep_x",
    "status": "succeeded",
    "amount": 100,
    "ordered_amount": 100,
    "currency": "KZT",
    "provider_payment_id": "ch_0123456789ab",
    "decline_code": None,
    "event_id": "evt_x",
    "sent_at": "2026-01-01T00:00:00+00:00",
}

Signer = Callable[[str], tuple[bytes, dict[str, str]]]


def _halyk(secret: str) -> tuple[bytes, dict[str, str]]:
    """Halyk's postLink callback, its secret_hash keyed with `secret` (no HMAC of the body)."""
    invoice = invoice_id(EVENT["reference"])
    body = {
        "code": "ok",
        "invoiceId": invoice,
        "description": EVENT["reference"],
        "amount": 1,
        "currency": "KZT",
        "secret_hash": secret_hash(secret, invoice),
    }
    return json.dumps(body).encode(), {"content-type": "application/json"}


def _freedom_form(script: str) -> Signer:
    """Freedom Pay's result callback, signed for the script of our result URL."""

    def sign(secret: str) -> tuple[bytes, dict[str, str]]:
        fields = {
            "pg_order_id": EVENT["reference"],
            "pg_payment_id": "700001",
            "pg_amount": "1.00",
            "pg_currency": "KZT",
            "pg_result": "1",
        }
        form = signed_form(script, fields, secret, uuid.uuid4().hex[:16])
        return urlencode(form).encode(), {"content-type": "application/x-www-form-urlencoded"}

    return sign


SIGNERS: dict[str, Signer] = {
    "halyk": _halyk,
    "freedom": _freedom_form("freedom"),
    "freedom_wallet": _freedom_form("freedom_wallet"),
    "cloudpayments": lambda secret: cloudpayments_callback(secret, EVENT),
    "ioka": lambda secret: ioka_callback(secret, EVENT),
    "kazbank": lambda secret: kazbank_callback(secret, EVENT),
}


@pytest.mark.parametrize("provider", sorted(SIGNERS))
async def test_a_callback_signed_with_the_api_secret_is_refused(
    api: httpx.AsyncClient, settings: Settings, provider: str
) -> None:
    """Each provider's own callback format, signed with its API secret: refused. The same
    callback signed with its webhook secret passes the check (and then finds no such deposit)."""
    sign = SIGNERS[provider]
    body, headers = sign(settings.provider_secret(provider))
    refused = await api.post(f"/v1/webhooks/{provider}", content=body, headers=headers)
    assert (refused.status_code, refused.json()["code"]) == (401, "invalid_signature")

    body, headers = sign(settings.webhook_secret(provider))
    verified = await api.post(f"/v1/webhooks/{provider}", content=body, headers=headers)
    assert (verified.status_code, verified.json()["code"]) == (404, "payment_not_found")


@pytest.mark.parametrize("provider", ["kaspi_qr", "kaspi_pay"])
async def test_kaspi_sends_no_callbacks_so_every_one_is_refused(
    api: httpx.AsyncClient, settings: Settings, provider: str
) -> None:
    """Kaspi's payments are polled: anything claiming to be its callback is refused, whatever
    secret signed it."""
    for secret in (settings.provider_secret(provider), settings.webhook_secret(provider)):
        body, headers = ioka_callback(secret, EVENT)
        refused = await api.post(f"/v1/webhooks/{provider}", content=body, headers=headers)
        assert (refused.status_code, refused.json()["code"]) == (401, "callbacks_not_supported")
