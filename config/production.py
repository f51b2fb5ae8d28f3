"""Production start checks beyond the development defaults (`Settings` runs them when it is built).

A process in production refuses to start, saying what to set, while

* a configured provider (an enabled routing rule, a payout provider or a `PAY_CONNECTORS` entry)
  lacks a secret it needs: its API secret, its callback secret (unless it takes no callbacks),
  the secrets its connector type cannot work without; or one of them is too short;
* a secret of ours (`PAY_IDEMPOTENCY_SECRET`, `PAY_METRICS_TOKEN`) is missing or short;
* the database URL does not ask for `sslmode=verify-full`, or Temporal (when external) is not
  reached over mutual TLS.

In every environment a TLS file named in the settings must exist and be readable
(`tls_file_problems`).
"""

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from pydantic import SecretStr

if TYPE_CHECKING:
    from config.settings import Settings

# Secrets we generate ourselves (random, 32+ characters).
MIN_SECRET_LENGTH = 32
# Secrets a provider issues: some are short (Freedom Pay's secret keys have 16 characters).
MIN_PROVIDER_SECRET_LENGTH = 16
# What a connector type cannot work without besides the API secret (ConnectorConfig fields):
# Kaspi's DeviceToken of the registered trade point device.
REQUIRED_CONNECTOR_SECRETS: dict[str, tuple[str, ...]] = {"kaspi": ("api_secret",)}
CONNECTOR_SECRET_FIELDS = (
    "api_key",
    "api_secret",
    "client_secret",
    "webhook_secret",
    "payout_secret",
)
# libpq parameters naming files.
_DATABASE_TLS_FILES = ("sslrootcert", "sslcert", "sslkey")


def _is_development(value: str) -> bool:
    from config.settings import DEV_CODEC_KEY, DEV_SECRET

    value = value.strip()
    return value in ("", DEV_CODEC_KEY) or value.startswith(DEV_SECRET)


def configured_providers(settings: "Settings") -> list[str]:
    """Every provider the platform may call: enabled routing rules, payout providers, connectors."""
    names = {rule.name for rule in settings.providers if rule.enabled}
    names |= set(settings.payout_providers.values())
    names |= set(settings.connectors)
    return sorted(names)


def production_problems(settings: "Settings") -> list[str]:
    return [
        *_provider_problems(settings),
        *_own_secret_problems(settings),
        *_transport_problems(settings),
    ]


def _provider_problems(settings: "Settings") -> Iterator[str]:
    missing: list[str] = []
    weak: list[str] = []
    short: list[str] = []
    hook_weak: list[str] = []
    hook_short: list[str] = []
    names = sorted(set(configured_providers(settings)) | set(settings.provider_secrets))
    for name in names:
        connector = settings.connectors.get(name)
        api: SecretStr | None = (connector.api_key if connector else None) or (
            settings.provider_secrets.get(name)
        )
        if api is None:
            missing.append(name)
        elif _is_development(api.get_secret_value()):
            weak.append(name)
        elif len(api.get_secret_value().strip()) < MIN_PROVIDER_SECRET_LENGTH:
            short.append(name)
        if connector is not None and not connector.callbacks:
            continue
        hook = (connector.webhook_secret if connector else None) or settings.webhook_secrets.get(
            name
        )
        if (
            hook is None
            or _is_development(hook.get_secret_value())
            or (api is not None and hook.get_secret_value() == api.get_secret_value())
        ):
            hook_weak.append(name)
        elif len(hook.get_secret_value().strip()) < MIN_PROVIDER_SECRET_LENGTH:
            hook_short.append(name)
    if not settings.provider_secrets and not settings.connectors:
        yield 'set PAY_PROVIDER_SECRETS (a JSON map {"provider": "secret"})'
    if missing:
        yield (
            f"set PAY_PROVIDER_SECRETS: no API secret for {', '.join(missing)} (or `api_key` "
            "in its PAY_CONNECTORS entry)"
        )
    if weak:
        yield (
            f"set PAY_PROVIDER_SECRETS: the secret of {', '.join(weak)} is missing or the "
            "development default"
        )
    if short:
        yield (
            f"set PAY_PROVIDER_SECRETS: the secret of {', '.join(short)} is shorter than "
            f"{MIN_PROVIDER_SECRET_LENGTH} characters"
        )
    if hook_weak:
        yield (
            f"set PAY_WEBHOOK_SECRETS: the callback secret of {', '.join(hook_weak)} is "
            "missing, the development default, or the same as its API secret"
        )
    if hook_short:
        yield (
            f"set PAY_WEBHOOK_SECRETS: the callback secret of {', '.join(hook_short)} is shorter "
            f"than {MIN_PROVIDER_SECRET_LENGTH} characters"
        )
    for name, connector in sorted(settings.connectors.items()):
        for field in CONNECTOR_SECRET_FIELDS:
            value: SecretStr | None = getattr(connector, field)
            where = f"set PAY_CONNECTORS[{name!r}].{field}"
            if value is None:
                if field in REQUIRED_CONNECTOR_SECRETS.get(connector.type, ()):
                    yield f"{where}: a {connector.type} connector needs it"
            elif _is_development(value.get_secret_value()):
                yield f"{where}: it is empty or the development default"
            elif len(value.get_secret_value().strip()) < MIN_PROVIDER_SECRET_LENGTH:
                yield f"{where}: it is shorter than {MIN_PROVIDER_SECRET_LENGTH} characters"


def _own_secret_problems(settings: "Settings") -> Iterator[str]:
    idempotency = settings.idempotency_secret.get_secret_value().strip()
    if not _is_development(idempotency) and len(idempotency) < MIN_SECRET_LENGTH:
        yield f"set PAY_IDEMPOTENCY_SECRET to at least {MIN_SECRET_LENGTH} random characters"
    token = settings.metrics_token.get_secret_value().strip() if settings.metrics_token else ""
    if not token or _is_development(token):
        yield (
            "set PAY_METRICS_TOKEN (the bearer token Prometheus scrapes /metrics with; it is "
            "missing or the development default)"
        )
    elif len(token) < MIN_SECRET_LENGTH:
        yield f"set PAY_METRICS_TOKEN to at least {MIN_SECRET_LENGTH} random characters"
    for name, secret in (
        ("PAY_EXCLUSION_REGISTRY_SECRET", settings.exclusion_registry_secret),
        ("PAY_ESU_SECRET", settings.esu_secret),
    ):
        value = secret.get_secret_value().strip()
        if _is_development(value):
            yield f"set {name}: the credential you were issued (it is the development default)"
        elif len(value) < MIN_PROVIDER_SECRET_LENGTH:
            yield f"set {name} to the full credential ({MIN_PROVIDER_SECRET_LENGTH}+ characters)"


def _transport_problems(settings: "Settings") -> Iterator[str]:
    if settings.database_url is not None:
        sslmode = database_url_parameters(settings.database_url).get("sslmode")
        if sslmode != "verify-full":
            yield (
                "PAY_DATABASE_URL must ask for TLS with the server's name verified: add "
                "`?sslmode=verify-full&sslrootcert=/path/to/ca.crt` (it has "
                f"sslmode={sslmode or 'unset'})"
            )
    if settings.temporal_address is not None:
        unset = [
            f"PAY_TEMPORAL_TLS_{name.upper()}"
            for name in ("ca", "cert", "key")
            if getattr(settings, f"temporal_tls_{name}") is None
        ]
        if unset:
            yield (
                "Temporal is reached over mutual TLS in production: set "
                f"{', '.join(unset)} (python -m stack.certs makes development ones)"
            )


def database_url_parameters(url: str) -> dict[str, str]:
    """The query parameters of a database URL (libpq's sslmode, sslrootcert, ...)."""
    return {key: values[-1] for key, values in parse_qs(urlsplit(url).query).items()}


def tls_file_problems(settings: "Settings") -> list[str]:
    """TLS files the settings name but that do not exist (any environment)."""
    files: list[tuple[str, Path]] = [
        (f"PAY_TEMPORAL_TLS_{name.upper()}", path)
        for name in ("ca", "cert", "key")
        if (path := getattr(settings, f"temporal_tls_{name}")) is not None
    ]
    problems: list[str] = []
    if (settings.temporal_tls_cert is None) != (settings.temporal_tls_key is None):
        problems.append("set both PAY_TEMPORAL_TLS_CERT and PAY_TEMPORAL_TLS_KEY, or neither")
    if settings.database_url is not None:
        parameters = database_url_parameters(settings.database_url)
        for parameter in _DATABASE_TLS_FILES:
            value = parameters.get(parameter)
            if value and value != "system":  # libpq 16+: the system's CA store
                files.append((f"PAY_DATABASE_URL {parameter}", Path(value)))
    for name, connector in sorted(settings.connectors.items()):
        for field in ("client_cert_file", "client_key_file"):
            path = getattr(connector, field)
            if path is not None:
                files.append((f"PAY_CONNECTORS[{name!r}].{field}", path))
    for what, path in files:
        if not path.is_file():
            problems.append(f"{what}: no such file {path}")
        elif not os.access(path, os.R_OK):
            problems.append(f"{what}: {path} is not readable by this process (uid {os.getuid()})")
    return problems
