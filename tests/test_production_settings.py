"""Production refuses the development secrets and an incomplete or unsafe configuration: every
configured provider with all of its secrets, long enough; the metrics token; TLS to PostgreSQL
(`sslmode=verify-full`) and to Temporal (mutual TLS); TLS files that exist. Development keeps
working with the defaults."""

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from config import Settings
from config.connectors import ConnectorConfig
from config.production import configured_providers
from config.settings import DEFAULT_PROVIDERS, DEV_CODEC_KEY, DEV_SECRET
from domain.routing import ProviderRule
from stack.certs import make_certificates

STRONG_KEY = base64.b64encode(os.urandom(32)).decode()
PROVIDERS = sorted({rule.name for rule in DEFAULT_PROVIDERS})
# Every configured provider's API and callback secrets (the defaults route to all of them).
API_SECRETS = {name: f"{name}-api-" + "k" * 32 for name in PROVIDERS}
HOOK_SECRETS = {name: f"{name}-hook-" + "w" * 32 for name in PROVIDERS}
METRICS_TOKEN = "metrics-" + "m" * 40


def production(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "production",
        "idempotency_secret": "idem-" + "x" * 40,
        "provider_secrets": API_SECRETS,
        "webhook_secrets": HOOK_SECRETS,
        "codec_keys": {"2025-01": STRONG_KEY},
        "codec_active_key": "2025-01",
        "operator_session_secret": "session-" + "s" * 40,
        "approval_token_secret": "approvals-" + "a" * 40,
        "metrics_token": METRICS_TOKEN,
        "exclusion_registry_secret": "registers-" + "r" * 24,
        "esu_secret": "esu-" + "e" * 24,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


def refusal(**values: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, **values)
    return str(caught.value)


def production_refusal(**overrides: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        production(**overrides)
    return str(caught.value)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tls")
    make_certificates(out)
    return out


def test_production_with_the_defaults_is_refused_with_what_to_set() -> None:
    message = refusal(environment="production")
    assert "refusing to start with environment=production" in message
    assert "PAY_IDEMPOTENCY_SECRET" in message
    assert "PAY_PROVIDER_SECRETS" in message
    assert "halyk" in message
    assert "PAY_CODEC_KEYS" in message
    assert "PAY_OPERATOR_SESSION_SECRET" in message
    assert "PAY_METRICS_TOKEN" in message
    assert "PAY_EXCLUSION_REGISTRY_SECRET" in message
    assert "PAY_ESU_SECRET" in message


def test_production_with_real_secrets_starts_with_the_codec_on() -> None:
    settings = production()
    assert settings.payload_codec_enabled
    assert settings.codec_active_key == "2025-01"


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"idempotency_secret": DEV_SECRET}, "PAY_IDEMPOTENCY_SECRET"),
        ({"idempotency_secret": ""}, "PAY_IDEMPOTENCY_SECRET"),
        ({"idempotency_secret": "i" * 31}, "PAY_IDEMPOTENCY_SECRET to at least 32"),
        ({"provider_secrets": {}}, "PAY_PROVIDER_SECRETS"),
        ({"provider_secrets": {**API_SECRETS, "halyk": DEV_SECRET}}, "the secret of halyk"),
        ({"provider_secrets": {**API_SECRETS, "halyk": " "}}, "the secret of halyk"),
        (
            {"provider_secrets": {**API_SECRETS, "kaspi_qr": f"{DEV_SECRET}-kaspi_qr"}},
            "the secret of kaspi_qr is missing or the development default",
        ),
        ({"codec_keys": {"dev": DEV_CODEC_KEY}, "codec_active_key": "dev"}, "PAY_CODEC_KEYS"),
        ({"codec_keys": {}}, "PAY_CODEC_KEYS"),
        ({"codec_active_key": "2024-12"}, "PAY_CODEC_ACTIVE_KEY"),
        ({"operator_session_secret": DEV_SECRET}, "PAY_OPERATOR_SESSION_SECRET"),
        ({"operator_session_secret": f"{DEV_SECRET}-operator-session"}, "PAY_OPERATOR_SESSION"),
        ({"operator_session_secret": "short"}, "PAY_OPERATOR_SESSION_SECRET to at least 32"),
        ({"approval_token_secret": f"{DEV_SECRET}-approvals"}, "PAY_APPROVAL_TOKEN_SECRET"),
        ({"approval_token_secret": "short"}, "PAY_APPROVAL_TOKEN_SECRET to at least 32"),
        ({"webhook_secrets": {}}, "PAY_WEBHOOK_SECRETS"),
        ({"webhook_secrets": {**HOOK_SECRETS, "halyk": f"{DEV_SECRET}-halyk-webhook"}}, "halyk"),
        (
            {"webhook_secrets": {**HOOK_SECRETS, "halyk": API_SECRETS["halyk"]}},
            "the same as its API secret",
        ),
        ({"metrics_token": None}, "set PAY_METRICS_TOKEN"),
        ({"metrics_token": ""}, "set PAY_METRICS_TOKEN"),
        ({"metrics_token": DEV_SECRET}, "set PAY_METRICS_TOKEN"),
        ({"metrics_token": "m" * 31}, "PAY_METRICS_TOKEN to at least 32"),
    ],
)
def test_each_development_missing_or_short_secret_is_named(
    override: dict[str, Any], named: str
) -> None:
    assert named in production_refusal(**override)


def test_every_configured_provider_needs_its_secrets() -> None:
    """Routing rules, payout providers and connectors: each one the platform may call."""
    without = {name: secret for name, secret in API_SECRETS.items() if name != "kazbank"}
    message = production_refusal(provider_secrets=without)
    assert "no API secret for kazbank" in message  # routed (bank_transfer) and a payout provider
    hooks = {name: secret for name, secret in HOOK_SECRETS.items() if name != "ioka"}
    assert "callback secret of ioka is missing" in production_refusal(webhook_secrets=hooks)

    # A provider switched off in routing and paying nothing out needs nothing.
    rules = (
        *(rule for rule in DEFAULT_PROVIDERS if rule.name != "ioka"),
        ProviderRule("ioka", "aggregator", enabled=False),
    )
    settings = production(
        providers=rules,
        provider_secrets={k: v for k, v in API_SECRETS.items() if k != "ioka"},
        webhook_secrets={k: v for k, v in HOOK_SECRETS.items() if k != "ioka"},
    )
    assert "ioka" not in configured_providers(settings)
    assert "kazbank" in configured_providers(settings)

    # A connector entry makes its provider configured, even off the routing table.
    message = production_refusal(connectors={"halyk_2": ConnectorConfig(type="halyk_epay")})
    assert "no API secret for halyk_2" in message
    assert "callback secret of halyk_2" in message


def test_provider_secrets_have_a_minimum_length() -> None:
    message = production_refusal(provider_secrets={**API_SECRETS, "freedom": "f" * 15})
    assert "the secret of freedom is shorter than 16 characters" in message
    message = production_refusal(webhook_secrets={**HOOK_SECRETS, "freedom": "h" * 15})
    assert "the callback secret of freedom is shorter than 16 characters" in message
    # Freedom Pay's secret keys have 16 characters: enough.
    production(
        provider_secrets={**API_SECRETS, "freedom": "f" * 16},
        webhook_secrets={**HOOK_SECRETS, "freedom": "h" * 16},
    )


def test_connector_secrets_are_complete_and_long_enough() -> None:
    kaspi = ConnectorConfig(
        type="kaspi", base_url="https://kaspi.example", api_key="a" * 32, merchant_id="1" * 12
    )
    message = production_refusal(connectors={"kaspi_qr": kaspi})
    assert "PAY_CONNECTORS['kaspi_qr'].api_secret: a kaspi connector needs it" in message
    complete = ConnectorConfig(**{**kaspi.model_dump(), "api_secret": "device-" + "t" * 20})
    assert production(connectors={"kaspi_qr": complete}).connector("kaspi_qr") == complete

    short = ConnectorConfig(type="halyk_epay", client_secret="c" * 8, payout_secret=DEV_SECRET)
    message = production_refusal(connectors={"halyk": short})
    assert "PAY_CONNECTORS['halyk'].client_secret: it is shorter than 16" in message
    assert "PAY_CONNECTORS['halyk'].payout_secret: it is empty or the development default" in (
        message
    )

    # A connector's own secrets stand in for the maps; one without callbacks needs no hook.
    own = ConnectorConfig(
        type="ioka", api_key="ioka-own-" + "k" * 20, webhook_secret="ioka-own-" + "w" * 20
    )
    polled = ConnectorConfig(type="kazbank", api_key="bank-own-" + "k" * 20, callbacks=False)
    production(
        provider_secrets={k: v for k, v in API_SECRETS.items() if k not in ("ioka", "kazbank")},
        webhook_secrets={k: v for k, v in HOOK_SECRETS.items() if k not in ("ioka", "kazbank")},
        connectors={"ioka": own, "kazbank": polled},
    )
    same = own.model_copy(update={"webhook_secret": own.api_key})
    assert "the same as its API secret" in production_refusal(connectors={"ioka": same})


def test_production_asks_postgresql_for_verified_tls(certs: Path) -> None:
    base = "postgresql://kzpay_app:pw@postgresql:5432/payments"
    for url in (base, f"{base}?sslmode=require", f"{base}?sslmode=verify-ca"):
        message = production_refusal(database_url=url)
        assert "PAY_DATABASE_URL must ask for TLS" in message
        assert "pw" not in message.replace("PAY_", "")
    settings = production(database_url=f"{base}?sslmode=verify-full&sslrootcert={certs}/ca.crt")
    assert settings.database_url is not None
    production(database_url=f"{base}?sslmode=verify-full&sslrootcert=system")
    # The files it names must exist, in any environment.
    missing = f"{base}?sslmode=verify-full&sslrootcert={certs}/nowhere.crt"
    assert f"no such file {certs}/nowhere.crt" in production_refusal(database_url=missing)
    assert "sslrootcert: no such file" in refusal(database_url=missing)
    # Development keeps plain connections to the embedded server.
    assert Settings(_env_file=None, database_url=base).database_url == base


def test_production_reaches_an_external_temporal_over_mutual_tls(certs: Path) -> None:
    message = production_refusal(temporal_address="temporal:7233")
    assert "mutual TLS" in message
    for variable in ("PAY_TEMPORAL_TLS_CA", "PAY_TEMPORAL_TLS_CERT", "PAY_TEMPORAL_TLS_KEY"):
        assert variable in message
    tls = {
        "temporal_tls_ca": certs / "ca.crt",
        "temporal_tls_cert": certs / "client.crt",
        "temporal_tls_key": certs / "client.key",
        "temporal_tls_server_name": "temporal",
    }
    assert production(temporal_address="temporal:7233", **tls).temporal_tls_server_name == (
        "temporal"
    )
    gone = {**tls, "temporal_tls_key": certs / "gone.key"}
    message = production_refusal(temporal_address="temporal:7233", **gone)
    assert f"PAY_TEMPORAL_TLS_KEY: no such file {certs}/gone.key" in message
    half = {"temporal_tls_cert": certs / "client.crt"}
    assert "set both PAY_TEMPORAL_TLS_CERT and PAY_TEMPORAL_TLS_KEY" in refusal(**half)


def test_connector_client_certificates_must_exist(certs: Path) -> None:
    connector = ConnectorConfig(
        type="kazbank", client_cert_file=certs / "client.crt", client_key_file=certs / "none.key"
    )
    message = refusal(connectors={"kazbank": connector})
    assert "PAY_CONNECTORS['kazbank'].client_key_file: no such file" in message


def test_a_dev_codec_key_kept_for_reading_old_history_is_refused_too() -> None:
    message = production_refusal(codec_keys={"2025-01": STRONG_KEY, "dev": DEV_CODEC_KEY})
    assert "key dev is the development default" in message


def test_production_may_not_turn_the_codec_off() -> None:
    message = production_refusal(codec_enabled=False, codec_keys={}, codec_active_key="none")
    assert "PAY_CODEC_ENABLED" in message


def test_codec_keys_must_be_base64_of_32_bytes_in_any_environment() -> None:
    short = base64.b64encode(os.urandom(16)).decode()
    assert "32 random bytes" in refusal(codec_keys={"k": short}, codec_active_key="k")
    assert "PAY_CODEC_KEYS['k']" in refusal(codec_keys={"k": "not base64!"}, codec_active_key="k")
    urlsafe = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    assert Settings(codec_keys={"k": urlsafe}, codec_active_key="k").codec_active_key == "k"


def test_refusals_never_echo_a_secret() -> None:
    secret = "provider-secret-that-must-not-leak-" + "z" * 10
    short = "short-secret-1"
    message = production_refusal(
        idempotency_secret=DEV_SECRET,
        provider_secrets={**API_SECRETS, "halyk": secret, "freedom": short},
        metrics_token="tiny-token",
    )
    for value in (secret, short, "tiny-token", STRONG_KEY, DEV_SECRET, *API_SECRETS.values()):
        assert value not in message


def test_development_and_test_keep_the_dev_defaults_and_the_codec_off() -> None:
    for environment in ("development", "test"):
        settings = Settings(_env_file=None, environment=environment)
        assert not settings.payload_codec_enabled
        assert settings.idempotency_secret.get_secret_value() == DEV_SECRET
        assert not settings.operator_session_cookie_secure  # plain HTTP works in development
        assert settings.metrics_token is None
    assert Settings(codec_enabled=True).payload_codec_enabled  # opt in with the dev key


def test_production_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in list(os.environ):
        if variable.startswith("PAY_"):
            monkeypatch.delenv(variable)
    monkeypatch.setenv("PAY_ENVIRONMENT", "production")
    monkeypatch.setenv("PAY_IDEMPOTENCY_SECRET", "i" * 40)
    monkeypatch.setenv("PAY_PROVIDER_SECRETS", json.dumps(API_SECRETS))
    monkeypatch.setenv("PAY_WEBHOOK_SECRETS", json.dumps(HOOK_SECRETS))
    monkeypatch.setenv("PAY_CODEC_KEYS", '{"2025-01": "' + STRONG_KEY + '"}')
    monkeypatch.setenv("PAY_CODEC_ACTIVE_KEY", "2025-01")
    monkeypatch.setenv("PAY_OPERATOR_SESSION_SECRET", "s" * 40)
    monkeypatch.setenv("PAY_APPROVAL_TOKEN_SECRET", "a" * 40)
    monkeypatch.setenv("PAY_METRICS_TOKEN", METRICS_TOKEN)
    monkeypatch.setenv("PAY_EXCLUSION_REGISTRY_SECRET", "r" * 24)
    monkeypatch.setenv("PAY_ESU_SECRET", "e" * 24)
    settings = Settings()
    assert settings.environment == "production"
    assert settings.payload_codec_enabled
    assert settings.operator_session_cookie_secure
    monkeypatch.setenv("PAY_PROVIDER_SECRETS", json.dumps({**API_SECRETS, "halyk": DEV_SECRET}))
    with pytest.raises(ValidationError, match="PAY_PROVIDER_SECRETS"):
        Settings()
