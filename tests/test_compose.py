"""docker-compose.yml and the Dockerfile, checked without a Docker engine: services, images, ports,
dependencies, and every PAY_* variable against the settings the code really reads."""

import base64
import importlib.util
import os
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from config import Settings
from workflows.search_attributes import ALL as SEARCH_ATTRIBUTES

ROOT = Path(__file__).resolve().parent.parent
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
DOCKERFILE = (ROOT / "Dockerfile").read_text()

OURS = {"migrate", "temporal-setup", "simulator", "worker", "api"}
ONE_SHOT = {"temporal-schema", "migrate", "temporal-setup"}
# What production cannot start without (Settings refuses the dev defaults of the secrets).
REQUIRED = {
    "PAY_ENVIRONMENT",
    "PAY_DATABASE_URL",
    "PAY_TEMPORAL_ADDRESS",
    "PAY_PROVIDER_SECRETS",
    "PAY_WEBHOOK_SECRETS",
    "PAY_IDEMPOTENCY_SECRET",
    "PAY_CODEC_KEYS",
    "PAY_CODEC_ACTIVE_KEY",
    "PAY_OPERATOR_SESSION_SECRET",
}
SECRETS = {
    "PAY_PROVIDER_SECRETS",
    "PAY_WEBHOOK_SECRETS",
    "PAY_IDEMPOTENCY_SECRET",
    "PAY_CODEC_KEYS",
    "PAY_OPERATOR_SESSION_SECRET",
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


def test_the_services_of_the_production_shape() -> None:
    assert set(SERVICES) == {
        "postgresql",
        "temporal-schema",
        "temporal",
        "temporal-setup",
        "temporal-ui",
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


def test_ports() -> None:
    published: dict[int, str] = {}
    for name, service in SERVICES.items():
        for port in service.get("ports", []):
            host = int(str(port).split(":")[0])
            assert host not in published, f"{name} and {published.get(host)} both publish {host}"
            published[host] = name
    # Replicas cannot share a host port: the API is reached through `edge`.
    assert "ports" not in SERVICES["api"]
    assert "ports" not in SERVICES["worker"]
    assert published[8000] == "edge"
    assert published[8080] == "temporal-ui"
    assert published[7233] == "temporal"
    assert published[8100] == "simulator"
    assert "5432" not in str(SERVICES["postgresql"].get("ports", []))

    api_env = environment("api")
    assert api_env["PAY_API_HOST"] == "0.0.0.0"
    edge = (ROOT / "deploy/nginx/edge.conf").read_text()
    assert f"http://api:{api_env['PAY_API_PORT']}" in edge
    assert "listen 8000" in edge
    assert environment("simulator")["PAY_SIMULATOR_HOST"] == "0.0.0.0"
    assert environment("simulator")["PAY_SIMULATOR_PORT"] == "8100"


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


def _all_strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for value in node.values() for s in _all_strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in _all_strings(value)]
    return []


@pytest.mark.parametrize("service", sorted(OURS))
def test_the_environment_of_each_service_makes_valid_production_settings(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With real values in .env, Settings accepts what compose passes (JSON maps included)."""
    key = base64.b64encode(os.urandom(32)).decode()
    dotenv = {
        "POSTGRES_PASSWORD": "0123456789abcdef",
        "PAY_PROVIDER_SECRETS": '{"kazcard": "' + "k" * 40 + '"}',
        "PAY_WEBHOOK_SECRETS": '{"kazcard": "' + "w" * 40 + '"}',
        "PAY_IDEMPOTENCY_SECRET": "i" * 40,
        "PAY_CODEC_KEYS": '{"2025-01": "' + key + '"}',
        "PAY_CODEC_ACTIVE_KEY": "2025-01",
        "PAY_OPERATOR_SESSION_SECRET": "s" * 40,
    }
    for variable in list(os.environ):
        if variable.startswith("PAY_"):
            monkeypatch.delenv(variable)
    for variable, value in environment(service).items():
        monkeypatch.setenv(variable, resolve(value, dotenv))
    settings = Settings()
    assert settings.environment == "production"
    assert settings.payload_codec_enabled
    assert settings.temporal_target == "temporal:7233"
    assert settings.database_url is not None
    assert settings.database_url.endswith("@postgresql:5432/payments")
    assert settings.simulator_url == "http://simulator:8100"
    assert settings.provider_secret("kazcard") == "k" * 40
    assert settings.operator_session_cookie_secure


def test_the_ui_decodes_payloads_through_our_codec_endpoint() -> None:
    ui = environment("temporal-ui")
    assert ui["TEMPORAL_ADDRESS"] == "temporal:7233"
    endpoint = ui["TEMPORAL_CODEC_ENDPOINT"]
    assert endpoint.endswith("/codec")
    # The browser calls it: through the published edge port, with the UI's origin allowed.
    assert endpoint.startswith("http://localhost:8000")
    api = environment("api")
    assert api["PAY_PUBLIC_API_URL"] == endpoint.removesuffix("/codec")
    ui_origin = api["PAY_TEMPORAL_UI_URL"]
    assert ui_origin == "http://localhost:8080"
    assert ui_origin in yaml.safe_load(api["PAY_CODEC_CORS_ORIGINS"])
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
    assert {".git", ".venv", ".data", ".env", "tests"} <= ignored
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = project["tool"]["setuptools"]["packages"]["find"]["include"]
    for pattern in packages:
        assert pattern.rstrip("*") not in ignored, pattern
    for module in project["tool"]["setuptools"].get("py-modules", []):
        assert f"{module}.py" not in ignored


def test_mounted_files_exist() -> None:
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
    named = {str(v).split(":")[0] for s in SERVICES.values() for v in s.get("volumes", [])}
    for volume in COMPOSE.get("volumes", {}):
        assert volume in named
