"""Providers are configuration: connector type, base URL and credentials per provider, several
providers on one connector type, a check command, and callback secrets kept apart."""

import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from config import Settings, child_environment
from config.connectors import ConnectorConfig
from providers.card import CardData, CardProviderClient
from providers.registry import build_client, connector_class
from simulator.dialects import kzqr_callback
from tests.conftest import VISA_OK

ROOT = Path(__file__).resolve().parent.parent


def test_connectors_come_from_the_environment_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "PAY_CONNECTORS",
        '{"kazcard": {"type": "common_card", "base_url": "https://acquirer.example/api/", '
        '"api_key": "live-key", "webhook_secret": "hook", "timeout_seconds": 20}}',
    )
    settings = Settings(_env_file=None)
    assert settings.connector("kazcard").type == "common_card"
    assert settings.provider_base_url("kazcard") == "https://acquirer.example/api"
    assert settings.provider_secret("kazcard") == "live-key"
    assert settings.webhook_secret("kazcard") == "hook"
    # Unconfigured providers keep the embedded default: their own type, at the simulator.
    assert settings.connector("kzqr").type == "kzqr"
    assert settings.provider_base_url("kzqr").endswith("/providers/kzqr")
    with pytest.raises(ValueError, match="unknown connector type"):
        connector_class(Settings(connectors={"kzqr": ConnectorConfig(type="nope")}), "kzqr")


def test_the_webhook_secret_is_not_the_api_secret() -> None:
    settings = Settings()
    for rule in settings.providers:
        assert settings.webhook_secret(rule.name) != settings.provider_secret(rule.name)


async def test_two_terminals_share_one_connector_type_by_configuration(settings: Settings) -> None:
    """A second card terminal is an entry: the same connector type, its own base URL (here the
    simulated kazcard, as a real sandbox would be a URL) and its own key."""
    terminal = "kazcard-terminal-2"
    configured = settings.model_copy(
        update={
            "connectors": {
                terminal: ConnectorConfig(
                    type="common_card",
                    base_url=f"{settings.simulator_url}/providers/kazcard",
                    api_key=settings.provider_secrets["kazcard"],
                )
            }
        }
    )
    async with httpx.AsyncClient(timeout=10) as http:
        client = build_client(configured, http, terminal, connector_class(configured, terminal))
        assert isinstance(client, CardProviderClient)
        token = await client.tokenize(
            CardData(number=VISA_OK, exp_month=12, exp_year=2031, cvc="123")
        )
        reference = f"dep_cfg_{uuid.uuid4().hex[:8]}"
        charged = await client.charge(
            reference=reference, token=token.token, amount=10_000, currency="KZT"
        )
        assert charged.status == "succeeded"
        assert (await client.get_charge(reference)) is not None


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


@pytest.mark.parametrize("name", ["kazcard", "altyncard", "kzqr", "kazbank"])
def test_the_check_command_says_a_provider_is_reachable(settings: Settings, name: str) -> None:
    run = _check(settings, name)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("OK: ")
    assert "credentials OK" in run.stdout


def test_the_check_command_says_what_to_fix(settings: Settings) -> None:
    wrong = _check(settings, "kazcard", PAY_PROVIDER_SECRETS='{"kazcard": "not-the-key"}')
    assert wrong.returncode == 1
    assert "refused our credentials" in wrong.stderr
    assert "PAY_CONNECTORS" in wrong.stderr
    down = _check(settings, "kazcard", PAY_SIMULATOR_URL="http://127.0.0.1:9")
    assert down.returncode == 1
    assert "cannot be reached" in down.stderr
    unknown = _check(settings, "nobank")
    assert unknown.returncode == 1
    assert "no provider 'nobank'" in unknown.stderr


async def test_ops_providers_shows_each_connector(operator_api: httpx.AsyncClient) -> None:
    listed = (await operator_api.get("/v1/ops/providers")).json()["data"]
    by_name = {p["provider"]: p for p in listed}
    assert (by_name["kazcard"]["connector"], by_name["kazcard"]["simulated"]) == (
        "common_card",
        True,
    )
    assert by_name["kzqr"]["connector"] == "kzqr"


async def test_a_callback_signed_with_the_api_secret_is_refused(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    event = {
        "reference": "dep_x",
        "status": "succeeded",
        "amount": 1,
        "currency": "KZT",
        "provider_payment_id": "pay_x",
        "event_id": "evt_x",
        "sent_at": "now",
    }
    body, headers = kzqr_callback(settings.provider_secret("kzqr"), event)
    refused = await api.post("/v1/webhooks/kzqr", content=body, headers=headers)
    assert (refused.status_code, refused.json()["code"]) == (401, "invalid_signature")
