"""Settings come from `PAY_*` environment variables: the same code runs embedded and in production.

Nothing else in the project reads `os.environ`: components receive a `Settings` instance, and the
stack launcher hands its children their settings through `child_environment`.
"""

import os
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from codec.aesgcm import decode_key
from config.connectors import ConnectorConfig, default_connector
from config.production import production_problems, tls_file_problems
from domain.ledger import LedgerPolicy
from domain.routing import CircuitPolicy, ProviderRule

if TYPE_CHECKING:
    from db.monitoring import MonitorThresholds

DEV_SECRET = "dev-only-secret-change-me"  # noqa: S105 - refused in production (see below)
# Base64 of 32 bytes; only for trying the codec out in development. Refused in production.
DEV_CODEC_KEY_ID = "dev"
DEV_CODEC_KEY = "ZGV2LW9ubHktY29kZWMta2V5LWNoYW5nZS1tZSEhISE="

# The provider registry: which provider serves which method, for which amounts and cards.
DEFAULT_PROVIDERS: tuple[ProviderRule, ...] = (
    # Cards: Halyk ePay first, Freedom Pay (also UnionPay) and CloudPayments behind it.
    ProviderRule("halyk", "card", priority=1, schemes=("visa", "mastercard")),
    ProviderRule("freedom", "card", priority=2, schemes=("visa", "mastercard", "unionpay")),
    ProviderRule("cloudpayments", "card", priority=3, schemes=("visa", "mastercard")),
    # Bank transfer by IBAN, confirmed from the bank's statement lines.
    ProviderRule("kazbank", "bank_transfer", action_ttl_seconds=72 * 3600),
    # E-wallets through Freedom Pay's payment page (`pg_payment_system`).
    ProviderRule(
        "freedom_wallet", "ewallet", max_amount_minor=1_000_000_00, action_ttl_seconds=1800
    ),
    ProviderRule("kaspi_pay", "mobile_banking", action_ttl_seconds=900),
    ProviderRule("kaspi_qr", "qr", action_ttl_seconds=900),
    ProviderRule("ioka", "aggregator", action_ttl_seconds=1800),
)


def _dev_webhook_secrets() -> dict[str, SecretStr]:
    """Development callback secrets, apart from the API secrets."""
    return {rule.name: SecretStr(f"{DEV_SECRET}-{rule.name}-webhook") for rule in DEFAULT_PROVIDERS}


def _dev_provider_secrets() -> dict[str, SecretStr]:
    """Development secrets, one per provider."""
    secrets = {rule.name: SecretStr(f"{DEV_SECRET}-{rule.name}") for rule in DEFAULT_PROVIDERS}
    return secrets


class Settings(BaseSettings):
    # Errors never echo the input: it holds secrets.
    model_config = SettingsConfigDict(env_prefix="PAY_", extra="ignore", hide_input_in_errors=True)

    environment: Literal["development", "test", "production"] = "development"

    # Where the embedded stack keeps PostgreSQL, Temporal and logs between runs.
    data_dir: Path = Path(".data")

    # External services; empty means "start the embedded one". In production the database URL
    # must ask for `sslmode=verify-full` (config/production.py).
    database_url: str | None = None
    # Analytics (summary, dashboard, /metrics) read on a pool of their own, so a busy dashboard
    # can never take the connections payments need: a read replica's URL, or empty for the
    # primary. `analytics_time_zone`: the calendar days of the analytics (IANA zone).
    analytics_database_url: str | None = None
    analytics_pool_size: int = Field(default=3, ge=1, le=50)
    analytics_time_zone: str = "Asia/Almaty"
    temporal_address: str | None = None
    # Temporal over mutual TLS (config/temporal_tls.py): the CA of the frontend's certificate, this
    # client's certificate and key (PEM files; `python -m stack.certs` makes development ones),
    # and the name to verify (default: the host of PAY_TEMPORAL_ADDRESS). Required in production
    # with an external Temporal.
    temporal_tls_ca: Path | None = None
    temporal_tls_cert: Path | None = None
    temporal_tls_key: Path | None = None
    temporal_tls_server_name: str | None = None
    # PostgreSQL roles (migration 0130): the owner of the schema that migrations run as, the
    # application's role (no ownership; no UPDATE/DELETE/TRUNCATE on the ledger), read-only
    # analytics. Created (NOLOGIN) when missing; deploy/postgres makes them login roles.
    db_owner_role: str = Field(default="kzpay_owner", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    db_app_role: str = Field(default="kzpay_app", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    db_analytics_role: str = Field(default="kzpay_analytics", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    temporal_namespace: str = "default"
    temporal_task_queue: str = "payments"

    # Ports of the embedded stack.
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    simulator_port: int = 8100
    simulator_host: str = "127.0.0.1"
    temporal_port: int = 7233
    temporal_ui_port: int = 8233
    public_api_url: str | None = None
    api_max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    # API processes behind the one port (`python -m api`): 0 means one per CPU core.
    api_workers: int = Field(default=0, ge=0, le=64)
    # How long an API process trusts its cached API keys and players (api/hot_cache.py); a
    # changed key is dropped at once anyway (NOTIFY). 0 turns the caches off.
    api_cache_ttl_seconds: float = Field(default=5.0, ge=0, le=300)
    # uvicorn's access log line per request; at the wallet's rates (1,000+ calls/s) it costs a
    # noticeable share of the CPU: the edge proxy's access log can stand in for it.
    api_access_log: bool = True
    # Rate limits (api/rate_limits.py; `limits` notation, ";" between several): on by default in
    # production only. The storage URI shares counts between replicas (async+redis://...).
    rate_limits_enabled: bool | None = None
    rate_limit_storage: str = "async+memory://"
    rate_limit_per_api_key: str = "100/second;3000/minute"
    rate_limit_per_client_ip: str = "200/second"
    rate_limit_per_provider_webhook: str = "50/second"
    temporal_ui_url: str | None = None

    # Providers.
    simulator_url: str = "http://127.0.0.1:8100"
    simulator_persist: bool = True  # keep simulated tokens and charges in data_dir between runs
    provider_http_timeout_seconds: float = Field(default=10.0, gt=0)
    provider_secrets: dict[str, SecretStr] = Field(default_factory=_dev_provider_secrets)
    # How each provider is reached (config/connectors.py): connector type, base URL, credentials,
    # capabilities. A provider without an entry is reached at the simulator.
    connectors: dict[str, ConnectorConfig] = Field(default_factory=dict)
    # What each provider signs its callbacks with: never its API secret (a leaked API key must
    # not forge callbacks). A connector's own `webhook_secret` wins.
    webhook_secrets: dict[str, SecretStr] = Field(default_factory=_dev_webhook_secrets)
    # Routing (domain/routing.py): rules, exploration, circuit breakers shared in PostgreSQL.
    providers: tuple[ProviderRule, ...] = DEFAULT_PROVIDERS
    routing_exploration_rate: float = Field(default=0.05, ge=0, le=1)
    routing_stats_window_seconds: int = Field(default=900, gt=0)
    circuit_failure_threshold: int = Field(default=5, ge=1)
    circuit_cooldown_seconds: float = Field(default=30.0, ge=0)
    provider_attempts: int = Field(default=3, ge=1, le=10)  # calls at one provider, then failover
    # Waiting for the player: status polls back off from initial to max (covers lost callbacks).
    callback_poll_initial_seconds: float = Field(default=30.0, gt=0)
    callback_poll_max_seconds: float = Field(default=900.0, gt=0)
    webhook_tolerance_seconds: int = Field(default=300, gt=0)

    # Keys the idempotency fingerprint so that card data in a request body is never stored in clear.
    idempotency_secret: SecretStr = SecretStr(DEV_SECRET)

    # Payload codec: AES-GCM over every Temporal payload (codec/). Keys by id, each base64 of
    # 32 bytes; new payloads use the active key, older ones decrypt with any key still listed.
    # On by default in production, off otherwise; PAY_CODEC_ENABLED overrides either way.
    codec_enabled: bool | None = None
    codec_keys: dict[str, SecretStr] = Field(
        default_factory=lambda: {DEV_CODEC_KEY_ID: SecretStr(DEV_CODEC_KEY)}
    )
    codec_active_key: str = DEV_CODEC_KEY_ID
    # Decoding refuses payloads that are not encrypted, and encrypted ones not bound to the
    # workflow reading them (codec/aesgcm.py). Always on in production (it cannot be turned off
    # there); PAY_CODEC_ACCEPT_UNBOUND=true reads history written before payloads were bound.
    codec_refuse_plaintext: bool | None = None
    codec_accept_unbound: bool = False
    # Browser origins allowed to call /codec (the Temporal Web UI); empty: temporal_web_url.
    codec_cors_origins: list[str] = Field(default_factory=list)
    # Operator sessions (api/session.py): an operator key is exchanged at POST /v1/session for
    # a short-lived HMAC-signed cookie that the Web UI's codec calls carry. Secure (and
    # SameSite=None) by default in production; PAY_OPERATOR_SESSION_SECURE overrides.
    operator_session_secret: SecretStr = SecretStr(f"{DEV_SECRET}-operator-session")
    operator_session_ttl_seconds: int = Field(default=3600, ge=60, le=24 * 3600)
    operator_session_secure: bool | None = None
    # Approval tokens (domain/approvals.py): the API signs each decision update (approve,
    # reject, cancel) for that payment, decision and operator; the workers' update validators
    # refuse anything else. The API and the workers need the same secret; tokens live this long.
    approval_token_secret: SecretStr = SecretStr(f"{DEV_SECRET}-approvals")
    approval_token_ttl_seconds: int = Field(default=120, ge=10, le=3600)

    # `GET /metrics` asks for `Authorization: Bearer <token>` when set (Prometheus scrapes the
    # replicas on the internal network; the edge never forwards /metrics). Required in production.
    metrics_token: SecretStr | None = None

    # Logs: one JSON object per line on stderr (config/logging.py); "text" for humans.
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"

    # Ledger: shards per busy house account; provider fees in basis points of the amount.
    ledger_house_shards: int = Field(default=8, ge=1, le=256)
    provider_fee_bps: dict[str, int] = Field(default_factory=lambda: {"halyk": 150})

    # Supported currencies; KZT is the product's currency.
    currencies: frozenset[str] = frozenset({"KZT"})

    # Compliance (README "Compliance"): the exclusion registers and the unified accounting
    # system (ESU), each reached over HTTP at its base URL (empty: the simulator's) with its own
    # credential. Register answers are cached this long (0: not cached). When a register or the
    # ESU does not answer, deposits are refused (fail closed) unless switched off here;
    # withdrawals of existing balances go on. Financial-monitoring thresholds are in KZT.
    exclusion_registry_url: str | None = None
    exclusion_registry_secret: SecretStr = SecretStr(f"{DEV_SECRET}-registers")
    exclusion_cache_seconds: float = Field(default=60.0, ge=0)
    exclusion_fail_closed: bool = True
    esu_url: str | None = None
    esu_secret: SecretStr = SecretStr(f"{DEV_SECRET}-esu")
    esu_operator_id: str = Field(default="dev-operator", min_length=1, max_length=64)
    esu_fail_closed: bool = True
    compliance_report_threshold_kzt: int = Field(default=1_000_000, ge=1)
    compliance_split_window_days: int = Field(default=7, ge=1, le=366)

    # The anti-fraud rule set (supersedes the risk_* fields above): a TOML file, re-read when it
    # changes; empty means the packaged config/fraud_rules.toml. An overlay is merged over it.
    fraud_rules_path: Path | None = None
    fraud_rules_overlay: Path | None = None
    # Cards are identified across payments by HMAC-SHA256 of the PAN under this secret (computed
    # in the API before tokenization); changing it unlinks every card seen before. Empty: a key
    # derived from PAY_IDEMPOTENCY_SECRET (which production requires).
    card_fingerprint_secret: SecretStr | None = None
    # IP countries: a MaxMind-format country database (GeoLite2/GeoIP2-Country, DB-IP lite);
    # empty: the sample database of `python -m risk.geoip_sample` (development and tests only).
    geoip_database: Path | None = None

    # Deposit workflow timings. give_up: how long inquiries and cancels at one provider try
    # before a payment whose outcome is unknown is flagged stuck there.
    charge_retry_initial_seconds: float = 1.0
    charge_retry_max_seconds: float = 30.0
    charge_give_up_seconds: float = 600.0
    # Money a provider confirms for a deposit that already expired or failed: credit it to the
    # player (once, with the deposit's own posting) or ask the provider for a refund.
    late_payment_policy: Literal["credit", "refund"] = "credit"

    # Workflows a worker keeps in memory between tasks (sticky execution); 0 replays each task
    # from history, so any worker can take the next task at once when one dies.
    worker_max_cached_workflows: int = Field(default=1000, ge=0)

    # Monitoring (db/monitoring.py): the worker runs the checks this often; 0 switches it off.
    monitoring_interval_seconds: float = Field(default=60.0, ge=0)
    # Its thresholds. A provider's approval rate counts its own answers only (approved against
    # declined or failed: a player who never finished is no failure), per method; a deposit is
    # stuck after its method's minutes (a card in seconds, a bank transfer in days), or after
    # the review minutes when held for an operator.
    monitor_window_minutes: int = Field(default=15, ge=1)
    monitor_min_attempts: int = Field(default=10, ge=1)
    monitor_min_approval_pct: int = Field(default=70, ge=0, le=100)
    monitor_min_approval_pct_by_method: dict[str, int] = Field(default_factory=dict)
    monitor_max_p95_latency_ms: int = Field(default=3000, ge=1)
    monitor_stuck_minutes: int = Field(default=10, ge=1)
    monitor_stuck_minutes_by_method: dict[str, int] = Field(
        default_factory=lambda: {
            "card": 10,
            "qr": 30,
            "mobile_banking": 30,
            "ewallet": 60,
            "aggregator": 60,
            "bank_transfer": 3 * 24 * 60,
        }
    )
    monitor_deposit_review_stuck_minutes: int = Field(default=240, ge=1)
    monitor_stuck_count: int = Field(default=5, ge=1)

    # Withdrawals: the payout provider per method, amount bounds, review and four-eyes rules.
    payout_providers: dict[str, str] = Field(
        default_factory=lambda: {
            # Cards through Freedom Pay's own payout API (to a card it vaulted); the rest as
            # outgoing transfers of the operator's bank (to an IBAN, a wallet account, a phone).
            "card": "freedom",
            "bank_transfer": "kazbank",
            "ewallet": "kazbank",
            "mobile_banking": "kazbank",
        }
    )
    # Their risk rules (large amount, new destination, low turnover, ...) are in the fraud rules.
    withdrawal_min_minor: int = 1_000_00
    withdrawal_four_eyes_from_minor: int = 2_000_000_00
    withdrawal_escalate_after_seconds: float = 4 * 3600.0
    payout_retry_initial_seconds: float = 1.0
    payout_retry_max_seconds: float = 60.0
    payout_give_up_seconds: float = 1800.0
    # A payout the desk cannot cancel because it never saw it (404) may still be in flight:
    # asked again after this before the hold is released.
    payout_processing_window_seconds: float = Field(default=120.0, ge=0)
    # A payout the provider reports `processing` (bank rails): first status poll after this,
    # backing off to an hour.
    payout_processing_poll_seconds: float = Field(default=60.0, gt=0)

    # Reconciliation (workflows/reconciliation.py): a Temporal Schedule per provider reconciles
    # the previous Asia/Almaty day at this time; on by default except in tests. Providers: every
    # enabled one whose connector delivers reports, unless listed here. Uploaded reports are
    # limited to this size; a payment credited within the window of the provider's line (days)
    # is a cut-off, matched across the two days.
    recon_schedule_enabled: bool | None = None
    # The worker folds the analytics rollups on the primary by a Temporal schedule every minute
    # (workflows/analytics.py); default on outside tests, whose reads fold what they need.
    analytics_fold_schedule_enabled: bool | None = None
    recon_schedule_hour: int = Field(default=6, ge=0, le=23)
    recon_schedule_minute: int = Field(default=0, ge=0, le=59)
    recon_schedule_providers: tuple[str, ...] | None = None
    recon_upload_max_bytes: int = Field(default=256 * 1024 * 1024, ge=1024)
    recon_cross_day_window_days: int = Field(default=31, ge=0, le=366)
    # Business days a provider's settlement (its run's net, booked to the operator's bank
    # account) may take, after the report's settlement date, to show on a bank statement; a
    # statement of a later day without it makes it a `settlement_missing_at_bank` case.
    recon_settlement_grace_days: int = Field(default=3, ge=0, le=60)

    # Reconciliation cases (db/recon_cases.py): resolving this much money or more needs a second,
    # different operator's approval.
    recon_four_eyes_from_minor: int = Field(default=1_000_000_00, ge=1)

    # Hosted checkout (checkout/, README "Hosted checkout"): the players' pages /checkout/{token}.
    # Parent origins allowed to embed the page in an iframe (CSP frame-ancestors), e.g.
    # ["https://casino.example"]; empty: no site may frame it.
    checkout_frame_ancestors: list[str] = Field(default_factory=list)
    # Keys the session tokens in the pages' URLs and the forms' CSRF tokens; empty: a key
    # derived from PAY_IDEMPOTENCY_SECRET (which production requires).
    checkout_secret: SecretStr | None = None
    checkout_session_ttl_seconds: int = Field(default=1800, ge=60, le=24 * 3600)
    checkout_max_attempts: int = Field(default=5, ge=1, le=20)  # payments tried per session
    checkout_min_amount_minor: int = Field(default=100_00, ge=1)  # when the casino sets none
    checkout_max_amount_minor: int = Field(default=5_000_000_00, ge=1)
    checkout_default_locale: Literal["kk", "ru", "en"] = "ru"
    # The operator's responsible-gaming help page, linked from refusals (a session may override).
    checkout_help_url: str | None = None
    # Per session token and per client IP, on every /checkout route (`limits` notation).
    checkout_rate_limit_per_session: str = "120/minute"
    checkout_rate_limit_per_ip: str = "600/minute"
    checkout_poll_seconds: float = Field(default=2.0, gt=0)  # the page's status polls
    # Shown on the cash-out page: hours until a payout usually arrives, per method.
    checkout_payout_eta_hours: dict[str, int] = Field(
        default_factory=lambda: {"card": 24, "bank_transfer": 24, "ewallet": 2, "mobile_banking": 2}
    )

    @field_validator("checkout_frame_ancestors")
    @classmethod
    def _checkout_origins(cls, value: list[str]) -> list[str]:
        from checkout.origins import origin_problem

        for origin in value:
            problem = origin_problem(origin)
            if problem:
                raise ValueError(f"checkout_frame_ancestors: {problem}")
        return value

    @field_validator("checkout_rate_limit_per_session", "checkout_rate_limit_per_ip")
    @classmethod
    def _checkout_rate_limits(cls, value: str) -> str:
        from limits import parse_many

        try:
            parse_many(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a rate limit such as '120/minute'") from exc
        return value

    @field_validator(
        "rate_limit_per_api_key", "rate_limit_per_client_ip", "rate_limit_per_provider_webhook"
    )
    @classmethod
    def _rate_limits_parse(cls, value: str) -> str:
        from limits import parse_many

        try:
            parse_many(value)
        except ValueError as exc:
            example = "'100/second;3000/minute'"
            raise ValueError(f"{value!r} is not a rate limit such as {example}") from exc
        return value

    @field_validator("codec_keys")
    @classmethod
    def _codec_keys_are_aes_256(cls, keys: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for key_id, key in keys.items():
            try:
                decode_key(key.get_secret_value())
            except ValueError as exc:
                raise ValueError(f"PAY_CODEC_KEYS[{key_id!r}]: {exc}") from exc
        return keys

    @model_validator(mode="after")
    def _production_refuses_dev_secrets(self) -> "Settings":
        problems: list[str] = []
        if self.payload_codec_enabled and self.codec_active_key not in self.codec_keys:
            problems.append(
                f"PAY_CODEC_ACTIVE_KEY={self.codec_active_key!r} is not a key id in "
                f"PAY_CODEC_KEYS ({sorted(self.codec_keys)})"
            )
        if self.environment == "production":
            problems += self._development_secrets()
            problems += production_problems(self)
        problems += tls_file_problems(self)
        if problems:
            raise ValueError(
                f"refusing to start with environment={self.environment}: "
                + "; ".join(problems)
                + ". Generate secrets with "
                "python -c 'import os,base64; print(base64.b64encode(os.urandom(32)).decode())'"
            )
        return self

    def _development_secrets(self) -> list[str]:
        def unset(secret: SecretStr) -> bool:
            value = secret.get_secret_value().strip()
            return value in ("", DEV_CODEC_KEY) or value.startswith(DEV_SECRET)

        problems: list[str] = []
        if unset(self.idempotency_secret):
            problems.append("set PAY_IDEMPOTENCY_SECRET (it is missing or the development default)")
        # Providers' secrets (all of them, for every configured provider): config/production.py.
        if unset(self.operator_session_secret):
            problems.append(
                "set PAY_OPERATOR_SESSION_SECRET (it is missing or the development default)"
            )
        elif len(self.operator_session_secret.get_secret_value().strip()) < 32:
            problems.append("set PAY_OPERATOR_SESSION_SECRET to at least 32 random characters")
        if unset(self.approval_token_secret):
            problems.append(
                "set PAY_APPROVAL_TOKEN_SECRET (it is missing or the development default)"
            )
        elif len(self.approval_token_secret.get_secret_value().strip()) < 32:
            problems.append("set PAY_APPROVAL_TOKEN_SECRET to at least 32 random characters")
        if self.codec_enabled is False:
            problems.append("unset PAY_CODEC_ENABLED: production always encrypts payloads")
        if self.codec_refuse_plaintext is False:
            problems.append(
                "unset PAY_CODEC_REFUSE_PLAINTEXT: production never reads unencrypted payloads"
            )
        if self.payload_codec_enabled:
            dev_keys = sorted(k for k, key in self.codec_keys.items() if unset(key))
            if not self.codec_keys:
                problems.append('set PAY_CODEC_KEYS (a JSON map {"key-id": "<base64 32 bytes>"})')
            elif dev_keys:
                problems.append(
                    f"set PAY_CODEC_KEYS: key {', '.join(dev_keys)} is the development default"
                )
        return problems

    @property
    def rate_limits_on(self) -> bool:
        if self.rate_limits_enabled is not None:
            return self.rate_limits_enabled
        return self.environment == "production"

    @property
    def payload_codec_enabled(self) -> bool:
        if self.codec_enabled is not None:
            return self.codec_enabled
        return self.environment == "production"

    @property
    def codec_strict(self) -> bool:
        """Decoding refuses plaintext (and unbound) payloads: production, or when asked."""
        if self.codec_refuse_plaintext is not None:
            return self.codec_refuse_plaintext
        return self.environment == "production"

    @property
    def operator_session_cookie_secure(self) -> bool:
        if self.operator_session_secure is not None:
            return self.operator_session_secure
        return self.environment == "production"

    @property
    def recon_schedule_active(self) -> bool:
        if self.recon_schedule_enabled is not None:
            return self.recon_schedule_enabled
        return self.environment != "test"

    @property
    def analytics_fold_schedule_active(self) -> bool:
        if self.analytics_fold_schedule_enabled is not None:
            return self.analytics_fold_schedule_enabled
        return self.environment != "test"

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

    def provider_rule(self, provider: str) -> ProviderRule | None:
        return next((rule for rule in self.providers if rule.name == provider), None)

    def circuit_policy(self) -> CircuitPolicy:
        return CircuitPolicy(
            failure_threshold=self.circuit_failure_threshold,
            cooldown=timedelta(seconds=self.circuit_cooldown_seconds),
        )

    def connector(self, provider: str) -> ConnectorConfig:
        """The provider's connection, configured or the embedded default."""
        configured = self.connectors.get(provider)
        if configured is not None:
            return configured
        rule = self.provider_rule(provider)
        return default_connector(provider, card=rule is None or rule.method == "card")

    @property
    def registers_base_url(self) -> str:
        """The exclusion registers' API: configured, or the simulator's."""
        return (
            self.exclusion_registry_url or f"{self.simulator_url.rstrip('/')}/registers"
        ).rstrip("/")

    @property
    def esu_base_url(self) -> str:
        """The ESU's API: configured, or the simulator's."""
        return (self.esu_url or f"{self.simulator_url.rstrip('/')}/esu").rstrip("/")

    def provider_base_url(self, provider: str) -> str:
        """Where the provider's API is: its configured base URL, or its place at the simulator."""
        configured = self.connector(provider).base_url
        if configured:
            return configured.rstrip("/")
        return f"{self.simulator_url.rstrip('/')}/providers/{provider}"

    def monitor_thresholds(self) -> "MonitorThresholds":
        """The monitoring checks' thresholds (db/monitoring.py) from these settings."""
        from db.monitoring import MonitorThresholds

        return MonitorThresholds(
            window_minutes=self.monitor_window_minutes,
            min_attempts=self.monitor_min_attempts,
            min_approval_pct=self.monitor_min_approval_pct,
            min_approval_pct_by_method=dict(self.monitor_min_approval_pct_by_method),
            max_p95_latency_ms=self.monitor_max_p95_latency_ms,
            stuck_minutes=self.monitor_stuck_minutes,
            stuck_minutes_by_method=dict(self.monitor_stuck_minutes_by_method),
            deposit_review_stuck_minutes=self.monitor_deposit_review_stuck_minutes,
            stuck_count=self.monitor_stuck_count,
        )

    def webhook_secret(self, provider: str) -> str:
        configured = self.connectors.get(provider)
        if configured is not None and configured.webhook_secret is not None:
            return configured.webhook_secret.get_secret_value()
        secret = self.webhook_secrets.get(provider)
        if secret is None:
            raise KeyError(
                f"no webhook secret configured for provider {provider!r}: set PAY_WEBHOOK_SECRETS"
            )
        return secret.get_secret_value()

    def provider_secret(self, provider: str) -> str:
        configured = self.connectors.get(provider)
        secret = configured.api_key if configured and configured.api_key else None
        secret = secret or self.provider_secrets.get(provider)
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
