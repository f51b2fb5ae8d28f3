"""docker-compose.yml and the Dockerfile, checked without a Docker engine: services, images, ports,
networks, TLS, database roles, dependencies, and every PAY_* variable against the settings the
code really reads.

The production shape publishes the HTTPS edge alone; everything else is on an internal network;
the simulator exists only in the `dev` profile; the Web UI is behind operator sign-in; /metrics
never passes the edge; Temporal is mutual TLS and PostgreSQL `verify-full`.
"""

import base64
import importlib.util
import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from config import Settings
from config.settings import DEFAULT_PROVIDERS
from db.roles import DatabaseRoles
from stack.certs import LEAVES, make_certificates
from workflows.search_attributes import ALL as SEARCH_ATTRIBUTES

ROOT = Path(__file__).resolve().parent.parent
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
EDGE_CONF = (ROOT / "deploy/nginx/templates/edge.conf.template").read_text()

OURS = {"migrate", "temporal-setup", "simulator", "worker", "api"}
ONE_SHOT = {"temporal-schema", "migrate", "temporal-setup"}
DEV_ONLY = {"simulator"}
# Where the services find the certificates (`python -m stack.certs` makes every file).
TLS_MOUNT = "/run/kzpay/tls"
# What production cannot start without (Settings refuses the dev defaults of the secrets).
REQUIRED = {
    "PAY_ENVIRONMENT",
    "PAY_DATABASE_URL",
    "PAY_TEMPORAL_ADDRESS",
    "PAY_TEMPORAL_TLS_CA",
    "PAY_TEMPORAL_TLS_CERT",
    "PAY_TEMPORAL_TLS_KEY",
    "PAY_PROVIDER_SECRETS",
    "PAY_WEBHOOK_SECRETS",
    "PAY_IDEMPOTENCY_SECRET",
    "PAY_CODEC_KEYS",
    "PAY_CODEC_ACTIVE_KEY",
    "PAY_OPERATOR_SESSION_SECRET",
    "PAY_APPROVAL_TOKEN_SECRET",
    "PAY_METRICS_TOKEN",
    "PAY_EXCLUSION_REGISTRY_SECRET",
    "PAY_ESU_SECRET",
}
SECRETS = {
    "PAY_PROVIDER_SECRETS",
    "PAY_WEBHOOK_SECRETS",
    "PAY_IDEMPOTENCY_SECRET",
    "PAY_CODEC_KEYS",
    "PAY_OPERATOR_SESSION_SECRET",
    "PAY_APPROVAL_TOKEN_SECRET",
    "PAY_METRICS_TOKEN",
}
PROVIDERS = sorted({rule.name for rule in DEFAULT_PROVIDERS})
# Real values, as an operator puts them into .env.
DOTENV = {
    "POSTGRES_PASSWORD": "0123456789abcdef",
    "DB_OWNER_PASSWORD": "0wner0123456789abcdef",
    "DB_APP_PASSWORD": "app0123456789abcdef",
    "DB_ANALYTICS_PASSWORD": "analytics0123456789",
    "TEMPORAL_DB_PASSWORD": "temporal0123456789",
    "PAY_PROVIDER_SECRETS": json.dumps({name: f"{name}-" + "k" * 40 for name in PROVIDERS}),
    "PAY_WEBHOOK_SECRETS": json.dumps({name: f"{name}-" + "w" * 40 for name in PROVIDERS}),
    "PAY_IDEMPOTENCY_SECRET": "i" * 40,
    "PAY_CODEC_KEYS": '{"2025-01": "' + base64.b64encode(os.urandom(32)).decode() + '"}',
    "PAY_CODEC_ACTIVE_KEY": "2025-01",
    "PAY_OPERATOR_SESSION_SECRET": "s" * 40,
    "PAY_APPROVAL_TOKEN_SECRET": "a" * 40,
    "PAY_METRICS_TOKEN": "m" * 40,
    "PAY_EXCLUSION_REGISTRY_URL": "https://registers.example.kz/api",
    "PAY_EXCLUSION_REGISTRY_SECRET": "r" * 40,
    "PAY_ESU_URL": "https://esu.example.kz/api",
    "PAY_ESU_SECRET": "e" * 40,
    "OPERATOR_OIDC_ISSUER_URL": "https://login.example.kz",
    "OPERATOR_OIDC_CLIENT_ID": "temporal-ui",
    "OPERATOR_OIDC_CLIENT_SECRET": "c" * 40,
    "OPERATOR_COOKIE_SECRET": base64.urlsafe_b64encode(os.urandom(32)).decode(),
    "OPERATOR_EMAIL_DOMAINS": "example.kz",
}
_INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?P<op>:?[-?])?(?P<arg>[^}]*)\}")


def environment(service: str) -> dict[str, str]:
    env = SERVICES[service].get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def interpolations(value: str) -> list[re.Match[str]]:
    return list(_INTERPOLATION.finditer(value))


def resolve(value: str, variables: dict[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?error}` with the given variables."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        if variables.get(name):
            return variables[name]
        if op in (":-", "-"):
            return arg
        raise AssertionError(f"${{{name}}} is required and not set")

    return _INTERPOLATION.sub(one, value)


def image_version(image: str) -> tuple[int, ...]:
    tag = image.rsplit(":", 1)[1]
    return tuple(int(part) for part in re.findall(r"\d+", tag.split("-")[0]))


def python_modules(command: Any) -> list[str]:
    words = command if isinstance(command, list) else str(command).split()
    return [words[i + 1] for i, word in enumerate(words[:-1]) if word == "-m"]


def volumes(service: str) -> list[tuple[str, str]]:
    """(source, target) of each mount, interpolated with the defaults."""
    mounts = []
    for volume in SERVICES[service].get("volumes", []):
        source, target, *_ = resolve(str(volume), DOTENV).split(":")
        mounts.append((source, target))
    return mounts


def networks(service: str) -> set[str]:
    return set(SERVICES[service].get("networks", []))


def production_services() -> set[str]:
    return {name for name, service in SERVICES.items() if not service.get("profiles")}


def test_the_services_of_the_production_shape() -> None:
    assert set(SERVICES) == {
        "postgresql",
        "temporal-schema",
        "temporal",
        "temporal-setup",
        "temporal-ui",
        "oauth2-proxy",
        "migrate",
        "simulator",
        "worker",
        "api",
        "edge",
    }
    assert SERVICES["api"]["deploy"]["replicas"] >= 2
    assert SERVICES["worker"]["deploy"]["replicas"] >= 2
    for name in OURS:
        assert SERVICES[name]["build"] == ".", name
        assert SERVICES[name]["image"] == "kzpay:latest", name
    for name in ONE_SHOT:
        assert SERVICES[name].get("restart") == "no", name


def test_images() -> None:
    assert SERVICES["postgresql"]["image"].startswith("postgres:")
    assert image_version(SERVICES["postgresql"]["image"]) >= (14,)
    server, tools = SERVICES["temporal"]["image"], SERVICES["temporal-schema"]["image"]
    assert server.startswith("temporalio/server:")
    assert tools.startswith("temporalio/admin-tools:")
    assert image_version(server) == image_version(tools)  # schema tool matches the server
    assert image_version(server) >= (1, 27)
    ui = SERVICES["temporal-ui"]["image"]
    assert ui.startswith("temporalio/ui:")
    assert image_version(ui) >= (2, 36), "activity pause/reset needs a recent Web UI"
    assert SERVICES["edge"]["image"].startswith("nginx:")
    assert image_version(SERVICES["edge"]["image"]) >= (1, 25), "`http2 on;` needs nginx 1.25.1"
    assert "oauth2-proxy" in SERVICES["oauth2-proxy"]["image"]
    for service in SERVICES.values():
        if "image" in service and service.get("build") is None:
            assert ":" in service["image"]
            assert not service["image"].endswith(":latest"), service["image"]


def test_temporal_runs_on_postgresql_with_schema_setup_and_activity_apis() -> None:
    env = environment("temporal")
    assert env["DB"] == "postgres12"
    assert env["POSTGRES_SEEDS"] == "postgresql"
    assert int(resolve(env["NUM_HISTORY_SHARDS"], {})) >= 4
    schema_env = environment("temporal-schema")
    assert schema_env["POSTGRES_SEEDS"] == "postgresql"
    assert {env["DBNAME"], env["VISIBILITY_DBNAME"]} == {
        schema_env["DBNAME"],
        schema_env["VISIBILITY_DBNAME"],
    }
    script = ROOT / "deploy/temporal/setup-schema.sh"
    text = script.read_text()
    for step in ("--plugin postgres12", "create", "setup-schema -v 0.0", "update-schema"):
        assert step in text
    assert re.search(r"^setup \S+ temporal$", text, re.MULTILINE)
    assert re.search(r"^setup \S+ visibility$", text, re.MULTILINE)
    assert os.access(script, os.X_OK)

    config_dir = ROOT / "deploy/temporal/dynamicconfig"
    dynamic = yaml.safe_load((config_dir / Path(env["DYNAMIC_CONFIG_FILE_PATH"]).name).read_text())
    assert dynamic["frontend.activityAPIsEnabled"][0]["value"] is True


def test_search_attributes_are_created_by_the_setup_job() -> None:
    """The job runs stack.temporal_setup, which adds workflows.search_attributes.ALL."""
    assert python_modules(SERVICES["temporal-setup"]["command"]) == ["stack.temporal_setup"]
    names = {key.name for key in SEARCH_ATTRIBUTES}
    assert {"PaymentStatus", "PaymentMethod", "Provider", "PlayerId", "AmountMinor"} <= names


def test_dependencies_exist_and_use_health_or_completion() -> None:
    for name, service in SERVICES.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
        for target, spec in depends.items():
            assert target in SERVICES, f"{name} depends on unknown {target}"
            assert target not in DEV_ONLY, f"{name} depends on {target}, absent in production"
            condition = spec["condition"]
            if target in ONE_SHOT:
                assert condition == "service_completed_successfully", (name, target)
            else:
                assert condition == "service_healthy", (name, target)
                assert "healthcheck" in SERVICES[target], f"{target} has no healthcheck"


def test_start_order() -> None:
    def needs(name: str) -> set[str]:
        direct = set(SERVICES[name].get("depends_on", {}))
        return direct.union(*(needs(d) for d in direct)) if direct else set()

    assert {"migrate", "temporal-setup", "temporal", "postgresql"} <= needs("worker")
    assert {"migrate", "temporal-setup"} <= needs("api")
    assert needs("temporal") == {"temporal-schema", "postgresql"}
    assert "temporal" in needs("temporal-setup")
    assert "api" in needs("edge")
    for name in SERVICES:
        assert name not in needs(name), f"dependency cycle through {name}"


def test_only_the_edge_publishes_ports_and_only_https() -> None:
    published = {name for name in production_services() if SERVICES[name].get("ports")}
    assert published == {"edge"}
    for name in production_services():
        assert "expose" not in SERVICES[name], name
        assert SERVICES[name].get("network_mode") is None, name
    edge_ports = {str(port) for port in SERVICES["edge"]["ports"]}
    assert edge_ports == {"443:443", "8443:8443"}
    # Both are TLS listeners of the edge; the plain one is its loopback health check.
    assert re.search(r"^\s*listen 443 ssl;", EDGE_CONF, re.MULTILINE)
    assert re.search(r"^\s*listen 8443 ssl;", EDGE_CONF, re.MULTILINE)
    plain = re.findall(r"^\s*listen (\S+);", EDGE_CONF, re.MULTILINE)
    assert plain == ["127.0.0.1:8081"]
    assert "http://127.0.0.1:8081/healthz" in SERVICES["edge"]["healthcheck"]["test"]


def test_everything_else_lives_on_an_internal_network() -> None:
    declared = COMPOSE["networks"]
    assert declared["backend"]["internal"] is True
    for name in ("egress", "edge"):
        assert not (declared[name] or {}).get("internal"), name
    for name in SERVICES:
        assert "backend" in networks(name), f"{name} is not on the internal network"
    # Only what calls out is on `egress` (providers' APIs; the identity provider), and only the
    # edge is on the network its ports are published from.
    on_egress = {name for name in SERVICES if "egress" in networks(name)}
    assert on_egress == {"api", "worker", "oauth2-proxy", "simulator"}
    assert {name for name in SERVICES if "edge" in networks(name)} == {"edge"}
    for closed in ("postgresql", "temporal", "temporal-ui", "temporal-schema", "migrate"):
        assert networks(closed) == {"backend"}, closed


def test_the_simulator_is_development_only() -> None:
    for name, service in SERVICES.items():
        profiles = service.get("profiles", [])
        if name in DEV_ONLY:
            assert profiles == ["dev"], name
        else:
            assert not profiles, f"{name} must be part of the production shape"
    # Its pages are for a developer's browser: bound to the loopback, never to every interface.
    for port in SERVICES["simulator"].get("ports", []):
        assert str(port).startswith("127.0.0.1:"), port
    assert environment("simulator")["PAY_SIMULATOR_HOST"] == "0.0.0.0"
    assert environment("simulator")["PAY_SIMULATOR_PORT"] == "8100"


def test_the_edge_proxies_the_api_and_never_metrics() -> None:
    api_env = environment("api")
    assert api_env["PAY_API_HOST"] == "0.0.0.0"
    assert f"http://api:{api_env['PAY_API_PORT']}" in EDGE_CONF
    blocked = re.search(r"location ~\* \^/metrics \{\s*return 404;\s*\}", EDGE_CONF)
    assert blocked, "the edge must refuse /metrics"
    # The only other location of the API server is `/`: nothing else bypasses the block.
    api_server = EDGE_CONF[EDGE_CONF.index("listen 443") : EDGE_CONF.index("listen 8443")]
    locations = re.findall(r"location\s+([^{]+)\{", api_server)
    assert [location.strip() for location in locations] == ["~* ^/metrics", "/"]
    assert "X-Forwarded-Proto https" in api_server


def test_the_edge_certificate_comes_from_configuration() -> None:
    env = environment("edge")
    assert re.search(r"^ssl_certificate\s+\$\{EDGE_TLS_CERT\};", EDGE_CONF, re.MULTILINE)
    assert re.search(r"^ssl_certificate_key\s+\$\{EDGE_TLS_KEY\};", EDGE_CONF, re.MULTILINE)
    assert re.search(env["NGINX_ENVSUBST_FILTER"], "EDGE_TLS_CERT")  # grep -E on the names
    assert env["EDGE_TLS_CERT"] == f"{TLS_MOUNT}/edge.crt"
    assert env["EDGE_TLS_KEY"] == f"{TLS_MOUNT}/edge.key"
    # The nginx image renders /etc/nginx/templates/*.template into conf.d.
    assert ("./deploy/nginx/templates", "/etc/nginx/templates") in volumes("edge")


def test_the_web_ui_is_reached_only_through_operator_sign_in() -> None:
    assert "ports" not in SERVICES["temporal-ui"]
    ui_server = EDGE_CONF[EDGE_CONF.index("listen 8443") :]
    ui_server = ui_server[: ui_server.index("\nserver {")]
    assert "http://oauth2-proxy:4180" in ui_server
    assert "temporal-ui" not in EDGE_CONF  # only oauth2-proxy talks to the UI
    proxy = environment("oauth2-proxy")
    assert proxy["OAUTH2_PROXY_UPSTREAMS"] == "http://temporal-ui:8080/"
    assert proxy["OAUTH2_PROXY_HTTP_ADDRESS"].endswith(":4180")
    assert proxy["OAUTH2_PROXY_PROVIDER"] == "oidc"
    assert proxy["OAUTH2_PROXY_COOKIE_SECURE"] == "true"
    for required in (
        "OAUTH2_PROXY_OIDC_ISSUER_URL",
        "OAUTH2_PROXY_CLIENT_ID",
        "OAUTH2_PROXY_CLIENT_SECRET",
        "OAUTH2_PROXY_COOKIE_SECRET",
        "OAUTH2_PROXY_EMAIL_DOMAINS",  # who may sign in: never "*" by default
    ):
        (match,) = interpolations(proxy[required])
        assert match["op"] == ":?", required
    redirect = resolve(proxy["OAUTH2_PROXY_REDIRECT_URL"], DOTENV)
    assert redirect == "https://localhost:8443/oauth2/callback"
    assert (ROOT / "deploy/README.md").is_file()
    assert "oauth2-proxy" in (ROOT / "deploy/README.md").read_text()


def _tls_paths(service: str) -> dict[str, str]:
    return {k: v for k, v in environment(service).items() if v.startswith(f"{TLS_MOUNT}/")}


def test_every_certificate_a_service_reads_is_mounted_and_made_by_stack_certs() -> None:
    made = {"ca.crt", "ca.key"} | {
        f"{leaf.name}.{ext}" for leaf in LEAVES for ext in ("crt", "key")
    }
    for name in SERVICES:
        paths = list(_tls_paths(name).values())
        paths += [
            value.split("sslrootcert=")[1]
            for value in environment(name).values()
            if "sslrootcert=" in value
        ]
        if not paths:
            continue
        assert ("./deploy/tls", TLS_MOUNT) in volumes(name), f"{name} does not mount {TLS_MOUNT}"
        for path in paths:
            assert path.removeprefix(f"{TLS_MOUNT}/") in made, f"{name}: {path}"


def test_temporal_is_mutual_tls() -> None:
    server = environment("temporal")
    assert server["TEMPORAL_TLS_REQUIRE_CLIENT_AUTH"] == "true"
    for variable in (
        "TEMPORAL_TLS_SERVER_CA_CERT",
        "TEMPORAL_TLS_SERVER_CERT",
        "TEMPORAL_TLS_SERVER_KEY",
        "TEMPORAL_TLS_FRONTEND_CERT",
        "TEMPORAL_TLS_FRONTEND_KEY",
        "TEMPORAL_TLS_CLIENT1_CA_CERT",
    ):
        assert server[variable].startswith(f"{TLS_MOUNT}/"), variable
    name = server["TEMPORAL_TLS_FRONTEND_SERVER_NAME"]
    assert name == "temporal"
    temporal = next(leaf for leaf in LEAVES if leaf.name == "temporal")
    assert name in temporal.names
    assert temporal.server
    assert temporal.client  # Temporal's services present it to each other
    client = next(leaf for leaf in LEAVES if leaf.name == "client")
    assert client.client
    for service in OURS:
        env = environment(service)
        assert env["PAY_TEMPORAL_ADDRESS"] == "temporal:7233", service
        assert env["PAY_TEMPORAL_TLS_SERVER_NAME"] == name, service
        assert env["PAY_TEMPORAL_TLS_CERT"] == f"{TLS_MOUNT}/client.crt", service
    ui = environment("temporal-ui")
    assert ui["TEMPORAL_TLS_CERT"] == f"{TLS_MOUNT}/client.crt"
    assert ui["TEMPORAL_TLS_SERVER_NAME"] == name
    assert ui["TEMPORAL_TLS_ENABLE_HOST_VERIFICATION"] == "true"


def test_postgresql_is_tls_only_and_verified() -> None:
    command = " ".join(SERVICES["postgresql"]["command"])
    assert "ssl=on" in command
    assert "hba_file=/etc/postgresql/pg_hba.conf" in command
    hba = [
        line.split()
        for line in (ROOT / "deploy/postgres/pg_hba.conf").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert hba == [
        ["local", "all", "postgres", "peer"],
        ["hostssl", "all", "all", "all", "scram-sha-256"],
    ]
    entrypoint = (ROOT / "deploy/postgres/tls-entrypoint.sh").read_text()
    assert "exec docker-entrypoint.sh" in entrypoint
    assert "-m 0600" in entrypoint
    for name in OURS:
        url = urlsplit(resolve(environment(name)["PAY_DATABASE_URL"], DOTENV))
        assert url.hostname == "postgresql"
        assert "sslmode=verify-full" in url.query.split("&"), name
        assert "postgresql" in next(leaf for leaf in LEAVES if leaf.name == "postgresql").names
    temporal = environment("temporal")
    assert temporal["SQL_TLS_ENABLED"] == "true"
    assert temporal["SQL_HOST_VERIFICATION"] == "true"
    assert temporal["SQL_HOST_NAME"] == "postgresql"
    assert environment("temporal-schema")["SQL_TLS_CA_FILE"] == f"{TLS_MOUNT}/ca.crt"
    assert (
        "--tls-enable-host-verification" in (ROOT / "deploy/temporal/setup-schema.sh").read_text()
    )


def test_each_service_connects_as_its_own_database_role() -> None:
    roles = DatabaseRoles.defaults()
    for name in OURS:
        env = environment(name)
        user = urlsplit(resolve(env["PAY_DATABASE_URL"], DOTENV)).username
        assert user == (roles.owner if name == "migrate" else roles.app), name
        assert env["PAY_DB_OWNER_ROLE"] == roles.owner
        assert env["PAY_DB_APP_ROLE"] == roles.app
        assert env["PAY_DB_ANALYTICS_ROLE"] == roles.analytics
    postgres = environment("postgresql")
    assert (postgres["DB_OWNER_ROLE"], postgres["DB_APP_ROLE"], postgres["DB_ANALYTICS_ROLE"]) == (
        roles.owner,
        roles.app,
        roles.analytics,
    )
    # Temporal and its schema job use Temporal's role, never the superuser or ours.
    superuser = postgres["POSTGRES_USER"]
    for name in ("temporal", "temporal-schema"):
        assert environment(name)["POSTGRES_USER"] == postgres["TEMPORAL_DB_USER"] != superuser
    assert environment("temporal")["DBNAME"] == postgres["TEMPORAL_DBNAME"]
    assert environment("temporal")["VISIBILITY_DBNAME"] == postgres["TEMPORAL_VISIBILITY_DBNAME"]
    for name in SERVICES:
        for value in environment(name).values():
            assert f"//{superuser}:" not in value, f"{name} connects as the superuser"
    init = ("./deploy/postgres/init-roles.sh", "/docker-entrypoint-initdb.d/10-roles.sh")
    assert init in volumes("postgresql")


def test_every_pay_variable_is_a_setting() -> None:
    fields = set(Settings.model_fields)
    for name in SERVICES:
        for variable in environment(name):
            if variable.startswith("PAY_"):
                field = variable.removeprefix("PAY_").lower()
                assert field in fields, f"{name}: {variable} is not read by config/settings.py"


def test_production_secrets_are_required_and_never_written_in_the_file() -> None:
    for name in OURS:
        env = environment(name)
        assert env["PAY_ENVIRONMENT"] == "production", name
        assert set(env) >= REQUIRED, f"{name} lacks {REQUIRED - set(env)}"
        for secret in SECRETS:
            (match,) = interpolations(env[secret])
            assert match["op"] == ":?", f"{name}: {secret} must be required (${{X:?...}})"
            assert match.group(0) == env[secret], f"{name}: {secret} must come only from .env"
        password = interpolations(env["PAY_DATABASE_URL"])
        assert [m["op"] for m in password] == [":?"]
    for name in SERVICES:
        for variable, value in environment(name).items():
            if re.search(r"PASSWORD|PWD|SECRET", variable) and variable != "NGINX_ENVSUBST_FILTER":
                (match,) = interpolations(value)
                assert match["op"] == ":?", f"{name}: {variable} must come only from .env"
    assert resolve(environment("postgresql")["POSTGRES_PASSWORD"], {"POSTGRES_PASSWORD": "p"})
    with pytest.raises(AssertionError, match="required"):
        resolve(environment("api")["PAY_IDEMPOTENCY_SECRET"], {})


def test_env_example_lists_every_required_variable() -> None:
    example = ROOT / "deploy/env.example"
    listed = {
        line.split("=", 1)[0]
        for line in example.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }
    required = {
        match["name"]
        for service in SERVICES.values()
        for value in _all_strings(service)
        for match in interpolations(value)
        if match["op"] == ":?"
    }
    assert required
    assert required <= listed, f"deploy/env.example lacks {required - listed}"
    assert required <= set(DOTENV), f"this test's .env lacks {required - set(DOTENV)}"


def _all_strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for value in node.values() for s in _all_strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in _all_strings(value)]
    return []


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tls")
    make_certificates(out)
    return out


@pytest.mark.parametrize("service", sorted(OURS))
def test_the_environment_of_each_service_makes_valid_production_settings(
    service: str, certs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With real values in .env and the certificates of `python -m stack.certs` where the
    services find them, Settings accepts what compose passes (JSON maps included) and every
    production start check passes."""
    for variable in list(os.environ):
        if variable.startswith("PAY_"):
            monkeypatch.delenv(variable)
    for variable, value in environment(service).items():
        monkeypatch.setenv(variable, resolve(value, DOTENV).replace(TLS_MOUNT, str(certs)))
    settings = Settings()
    assert settings.environment == "production"
    assert settings.payload_codec_enabled
    assert settings.temporal_target == "temporal:7233"
    assert settings.temporal_tls_cert == certs / "client.crt"
    assert settings.database_url is not None
    assert "@postgresql:5432/payments?sslmode=verify-full&sslrootcert=" in settings.database_url
    assert settings.simulator_url == "http://simulator:8100"
    assert settings.provider_secret("halyk") == "halyk-" + "k" * 40
    assert settings.metrics_token is not None
    assert settings.operator_session_cookie_secure
    # Without the certificates the same environment is refused.
    monkeypatch.setenv("PAY_TEMPORAL_TLS_KEY", str(certs / "missing.key"))
    with pytest.raises(ValueError, match="PAY_TEMPORAL_TLS_KEY: no such file"):
        Settings()


def test_the_ui_decodes_payloads_through_our_codec_endpoint() -> None:
    ui = environment("temporal-ui")
    assert ui["TEMPORAL_ADDRESS"] == "temporal:7233"
    endpoint = resolve(ui["TEMPORAL_CODEC_ENDPOINT"], DOTENV)
    assert endpoint.endswith("/codec")
    # The browser calls it: through the edge over HTTPS, with the UI's origin allowed.
    assert endpoint == "https://localhost/codec"
    api = environment("api")
    assert resolve(api["PAY_PUBLIC_API_URL"], DOTENV) == endpoint.removesuffix("/codec")
    ui_origin = resolve(api["PAY_TEMPORAL_UI_URL"], DOTENV)
    assert ui_origin == "https://localhost:8443"
    assert ui_origin in yaml.safe_load(resolve(api["PAY_CODEC_CORS_ORIGINS"], DOTENV))
    assert resolve(ui["TEMPORAL_CORS_ORIGINS"], DOTENV) == ui_origin
    # The browser sends the operator session cookie, and no (empty) OIDC token shadows it.
    assert ui["TEMPORAL_CODEC_INCLUDE_CREDENTIALS"] == "true"
    assert ui.get("TEMPORAL_CODEC_PASS_ACCESS_TOKEN", "false") == "false"
    from api.routers.codec import router

    assert {"/codec/decode", "/codec/encode"} <= {getattr(r, "path", "") for r in router.routes}


def _runnable(module: str) -> bool:
    spec = importlib.util.find_spec(module)
    if spec is None:
        return False
    if spec.submodule_search_locations is not None:  # a package: needs __main__
        return importlib.util.find_spec(f"{module}.__main__") is not None
    assert spec.origin is not None
    return 'if __name__ == "__main__":' in Path(spec.origin).read_text()


def test_every_command_runs_a_module_that_exists() -> None:
    commands = {name: SERVICES[name]["command"] for name in OURS}
    cmd = re.search(r"^CMD\s+(\[.*\])\s*$", DOCKERFILE, re.MULTILINE)
    assert cmd is not None
    commands["Dockerfile CMD"] = yaml.safe_load(cmd[1])
    for name, command in commands.items():
        modules = python_modules(command)
        assert modules, f"{name}: {command} runs no python module"
        for module in modules:
            assert _runnable(module), f"{name}: python -m {module} cannot run"
    assert "ENTRYPOINT" not in DOCKERFILE


def test_dockerfile_builds_the_package_and_runs_as_non_root() -> None:
    stages = re.findall(r"^FROM\s+(\S+)", DOCKERFILE, re.MULTILINE)
    assert stages
    assert all(image.startswith("python:3.11-slim") for image in stages)
    final = DOCKERFILE[DOCKERFILE.rindex("\nFROM ") :]
    assert re.search(r"pip install /wheels/\*\.whl", final)
    assert "pip wheel --wheel-dir /wheels ." in DOCKERFILE
    user = re.findall(r"^USER\s+(\S+)", final, re.MULTILINE)
    assert user
    assert user[-1] not in ("root", "0", "0:0")
    assert final.rindex("USER") > final.rindex("RUN")  # nothing runs as root after it
    assert "PAY_ENVIRONMENT=production" in final
    for line in re.findall(r"^COPY\s+(?!--from)(.+)$", DOCKERFILE, re.MULTILINE):
        for source in line.split()[:-1]:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"


def test_the_build_context_has_the_package_but_no_local_state() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", ".data", ".env", "tests", "deploy"} <= ignored  # no keys either
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = project["tool"]["setuptools"]["packages"]["find"]["include"]
    for pattern in packages:
        assert pattern.rstrip("*") not in ignored, pattern
    for module in project["tool"]["setuptools"].get("py-modules", []):
        assert f"{module}.py" not in ignored


def test_mounted_files_exist() -> None:
    for name in SERVICES:
        for source, _ in volumes(name):
            if source.startswith(".") and source != "./deploy/tls":  # made by stack.certs
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
    for script in ("tls-entrypoint.sh", "init-roles.sh"):
        assert os.access(ROOT / "deploy/postgres" / script, os.X_OK), script
    named = {source for name in SERVICES for source, _ in volumes(name)}
    for volume in COMPOSE.get("volumes", {}):
        assert volume in named
    gitignore = (ROOT / ".gitignore").read_text().splitlines()
    assert "deploy/tls/" in gitignore, "development keys must never be committed"
