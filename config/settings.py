"""Settings come from `PAY_*` environment variables: the same code runs embedded and in production.

Nothing else in the project reads `os.environ`: components receive a `Settings` instance, and the
stack launcher hands its children their settings through `child_environment`.
"""

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.ledger import LedgerPolicy

DEV_SECRET = "dev-only-secret-change-me"  # noqa: S105 - refused in production by the launcher


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAY_", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"

    # Where the embedded stack keeps PostgreSQL, Temporal and logs between runs.
    data_dir: Path = Path(".data")

    # External services; empty means "start the embedded one".
    database_url: str | None = None
    temporal_address: str | None = None
    temporal_namespace: str = "default"
    temporal_task_queue: str = "payments"

    # Ports of the embedded stack.
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    simulator_port: int = 8100
    temporal_port: int = 7233
    temporal_ui_port: int = 8233
    public_api_url: str | None = None
    temporal_ui_url: str | None = None

    # Providers.
    simulator_url: str = "http://127.0.0.1:8100"
    card_provider: str = "kazcard"
    simulator_persist: bool = True  # keep simulated tokens and charges in data_dir between runs
    provider_http_timeout_seconds: float = Field(default=10.0, gt=0)
    provider_secrets: dict[str, SecretStr] = Field(
        default_factory=lambda: {"kazcard": SecretStr(DEV_SECRET)}
    )

    # Keys the idempotency fingerprint so that card data in a request body is never stored in clear.
    idempotency_secret: SecretStr = SecretStr(DEV_SECRET)

    # Ledger: shards per busy house account; provider fees in basis points of the amount.
    ledger_house_shards: int = Field(default=8, ge=1, le=256)
    provider_fee_bps: dict[str, int] = Field(default_factory=lambda: {"kazcard": 150})

    # Supported currencies; KZT is the product's currency.
    currencies: frozenset[str] = frozenset({"KZT"})

    # Risk: the first rule set. Amounts in minor units (tiyn).
    risk_min_deposit_minor: int = 100_00
    risk_max_deposit_minor: int = 5_000_000_00
    risk_review_amount_minor: int = 1_000_000_00
    risk_max_deposits_per_10m: int = 5
    risk_max_deposit_sum_24h_minor: int = 10_000_000_00
    # The anti-fraud rule set (supersedes the risk_* fields above): a TOML file, re-read when it
    # changes; empty means the packaged config/fraud_rules.toml. An overlay is merged over it.
    fraud_rules_path: Path | None = None
    fraud_rules_overlay: Path | None = None

    # Deposit workflow timings.
    charge_retry_initial_seconds: float = 1.0
    charge_retry_max_seconds: float = 30.0
    charge_give_up_seconds: float = 600.0

    @property
    def temporal_target(self) -> str:
        return self.temporal_address or f"127.0.0.1:{self.temporal_port}"

    @property
    def api_url(self) -> str:
        return self.public_api_url or f"http://{self.api_host}:{self.api_port}"

    @property
    def temporal_web_url(self) -> str:
        return self.temporal_ui_url or f"http://127.0.0.1:{self.temporal_ui_port}"

    def ledger_policy(self) -> LedgerPolicy:
        return LedgerPolicy(
            house_shards=self.ledger_house_shards,
            provider_fee_bps=tuple(sorted(self.provider_fee_bps.items())),
        )

    def provider_secret(self, provider: str) -> str:
        secret = self.provider_secrets.get(provider)
        if secret is None:
            raise KeyError(
                f"no secret configured for provider {provider!r}: set PAY_PROVIDER_SECRETS"
            )
        return secret.get_secret_value()


@lru_cache
def get_settings() -> Settings:
    return Settings()


def child_environment(overrides: dict[str, str]) -> dict[str, str]:
    """The current environment plus `PAY_*` overrides, for processes the launcher starts."""
    return {**os.environ, **overrides}
