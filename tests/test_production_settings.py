"""Production refuses the development secrets; development keeps working with them."""

import base64
import os
from typing import Any

import pytest
from pydantic import ValidationError

from config import Settings
from config.settings import DEV_CODEC_KEY, DEV_SECRET

STRONG_KEY = base64.b64encode(os.urandom(32)).decode()


def production(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "production",
        "idempotency_secret": "idem-" + "x" * 40,
        "provider_secrets": {"kazcard": "kazcard-" + "y" * 40},
        "webhook_secrets": {"kazcard": "kazcard-hook-" + "w" * 40},
        "codec_keys": {"2025-01": STRONG_KEY},
        "codec_active_key": "2025-01",
        "operator_session_secret": "session-" + "s" * 40,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


def refusal(**values: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, **values)
    return str(caught.value)


def test_production_with_the_defaults_is_refused_with_what_to_set() -> None:
    message = refusal(environment="production")
    assert "refusing to start with environment=production" in message
    assert "PAY_IDEMPOTENCY_SECRET" in message
    assert "PAY_PROVIDER_SECRETS" in message
    assert "kazcard" in message
    assert "PAY_CODEC_KEYS" in message
    assert "PAY_OPERATOR_SESSION_SECRET" in message


def test_production_with_real_secrets_starts_with_the_codec_on() -> None:
    settings = production()
    assert settings.payload_codec_enabled
    assert settings.codec_active_key == "2025-01"


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"idempotency_secret": DEV_SECRET}, "PAY_IDEMPOTENCY_SECRET"),
        ({"idempotency_secret": ""}, "PAY_IDEMPOTENCY_SECRET"),
        ({"provider_secrets": {}}, "PAY_PROVIDER_SECRETS"),
        ({"provider_secrets": {"kazcard": "k" * 40, "halyk": DEV_SECRET}}, "halyk"),
        ({"provider_secrets": {"kazcard": " "}}, "kazcard"),
        ({"provider_secrets": {"kazcard": "k" * 40, "kzqr": f"{DEV_SECRET}-kzqr"}}, "kzqr"),
        ({"codec_keys": {"dev": DEV_CODEC_KEY}, "codec_active_key": "dev"}, "PAY_CODEC_KEYS"),
        ({"codec_keys": {}}, "PAY_CODEC_KEYS"),
        ({"codec_active_key": "2024-12"}, "PAY_CODEC_ACTIVE_KEY"),
        ({"operator_session_secret": DEV_SECRET}, "PAY_OPERATOR_SESSION_SECRET"),
        ({"operator_session_secret": f"{DEV_SECRET}-operator-session"}, "PAY_OPERATOR_SESSION"),
        ({"operator_session_secret": "short"}, "PAY_OPERATOR_SESSION_SECRET to at least 32"),
        ({"webhook_secrets": {}}, "PAY_WEBHOOK_SECRETS"),
        ({"webhook_secrets": {"kazcard": f"{DEV_SECRET}-kazcard-webhook"}}, "PAY_WEBHOOK"),
        ({"webhook_secrets": {"kazcard": "k" * 40}}, "the same as its API secret"),
    ],
)
def test_each_development_or_missing_secret_is_named(override: dict[str, Any], named: str) -> None:
    values: dict[str, Any] = {
        "environment": "production",
        "idempotency_secret": "i" * 40,
        "provider_secrets": {"kazcard": "k" * 40},
        "webhook_secrets": {"kazcard": "w" * 40, "halyk": "h" * 40, "kzqr": "q" * 40},
        "codec_keys": {"2025-01": STRONG_KEY},
        "codec_active_key": "2025-01",
        "operator_session_secret": "s" * 40,
    }
    values.update(override)
    message = refusal(**values)
    assert named in message


def test_a_dev_codec_key_kept_for_reading_old_history_is_refused_too() -> None:
    message = refusal(
        environment="production",
        idempotency_secret="i" * 40,
        provider_secrets={"kazcard": "k" * 40},
        codec_keys={"2025-01": STRONG_KEY, "dev": DEV_CODEC_KEY},
        codec_active_key="2025-01",
    )
    assert "key dev is the development default" in message


def test_production_may_turn_the_codec_off_explicitly() -> None:
    settings = production(codec_enabled=False, codec_keys={}, codec_active_key="none")
    assert not settings.payload_codec_enabled


def test_codec_keys_must_be_base64_of_32_bytes_in_any_environment() -> None:
    short = base64.b64encode(os.urandom(16)).decode()
    assert "32 random bytes" in refusal(codec_keys={"k": short}, codec_active_key="k")
    assert "PAY_CODEC_KEYS['k']" in refusal(codec_keys={"k": "not base64!"}, codec_active_key="k")
    urlsafe = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    assert Settings(codec_keys={"k": urlsafe}, codec_active_key="k").codec_active_key == "k"


def test_refusals_never_echo_a_secret() -> None:
    secret = "provider-secret-that-must-not-leak-" + "z" * 10
    message = refusal(
        environment="production",
        idempotency_secret=DEV_SECRET,
        provider_secrets={"kazcard": secret},
        codec_keys={"2025-01": STRONG_KEY},
        codec_active_key="2025-01",
    )
    assert secret not in message
    assert STRONG_KEY not in message
    assert DEV_SECRET not in message


def test_development_and_test_keep_the_dev_defaults_and_the_codec_off() -> None:
    for environment in ("development", "test"):
        settings = Settings(_env_file=None, environment=environment)
        assert not settings.payload_codec_enabled
        assert settings.idempotency_secret.get_secret_value() == DEV_SECRET
        assert not settings.operator_session_cookie_secure  # plain HTTP works in development
    assert Settings(codec_enabled=True).payload_codec_enabled  # opt in with the dev key


def test_production_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAY_ENVIRONMENT", "production")
    monkeypatch.setenv("PAY_IDEMPOTENCY_SECRET", "i" * 40)
    monkeypatch.setenv("PAY_PROVIDER_SECRETS", '{"kazcard": "' + "k" * 40 + '"}')
    monkeypatch.setenv("PAY_WEBHOOK_SECRETS", '{"kazcard": "' + "w" * 40 + '"}')
    monkeypatch.setenv("PAY_CODEC_KEYS", '{"2025-01": "' + STRONG_KEY + '"}')
    monkeypatch.setenv("PAY_CODEC_ACTIVE_KEY", "2025-01")
    monkeypatch.setenv("PAY_OPERATOR_SESSION_SECRET", "s" * 40)
    settings = Settings()
    assert settings.environment == "production"
    assert settings.payload_codec_enabled
    assert settings.operator_session_cookie_secure
    monkeypatch.setenv("PAY_PROVIDER_SECRETS", '{"kazcard": "' + DEV_SECRET + '"}')
    with pytest.raises(ValidationError, match="PAY_PROVIDER_SECRETS"):
        Settings()
