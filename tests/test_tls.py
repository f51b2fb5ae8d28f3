"""`python -m stack.certs` and Temporal over mutual TLS.

The certificates chain to the CA with the names the compose services use; keys are private; a
second run changes nothing. Then, in front of the test's Temporal server, a TLS terminator that
demands a client certificate of the CA (what `TEMPORAL_TLS_REQUIRE_CLIENT_AUTH` does): the SDK
connects with `config.temporal_tls.temporal_tls(settings)`, and is refused without a client
certificate or when it would trust another CA. (The embedded PostgreSQL is built without SSL, so
`sslmode=verify-full` is checked as configuration: tests/test_production_settings.py.)
"""

import asyncio
import contextlib
import ssl
import stat
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client
from temporalio.service import TLSConfig
from temporalio.testing import WorkflowEnvironment

from config import Settings
from config.temporal_tls import temporal_tls
from stack import certs as certs_cli
from stack.certs import LEAVES, make_certificates


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tls")
    make_certificates(out, hosts=["pay.example.kz"])
    return out


def _certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _names(certificate: x509.Certificate) -> set[str]:
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(n) for n in names.get_values_for_type(x509.DNSName)} | {
        str(ip) for ip in names.get_values_for_type(x509.IPAddress)
    }


def test_every_certificate_chains_to_the_ca_with_its_names(certs: Path) -> None:
    ca = _certificate(certs / "ca.crt")
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for leaf in LEAVES:
        certificate = _certificate(certs / f"{leaf.name}.crt")
        certificate.verify_directly_issued_by(ca)
        assert certificate.not_valid_after_utc > datetime.now(UTC)
        usages = set(certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
        assert (ExtendedKeyUsageOID.SERVER_AUTH in usages) == leaf.server, leaf.name
        assert (ExtendedKeyUsageOID.CLIENT_AUTH in usages) == leaf.client, leaf.name
        assert set(leaf.names) <= _names(certificate), leaf.name
    assert "pay.example.kz" in _names(_certificate(certs / "edge.crt"))
    assert {"temporal", "localhost", "127.0.0.1"} <= _names(_certificate(certs / "temporal.crt"))
    assert "postgresql" in _names(_certificate(certs / "postgresql.crt"))


def test_keys_are_private_and_a_second_run_changes_nothing(certs: Path) -> None:
    for key in certs.glob("*.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key.name
    before = {path.name: path.read_bytes() for path in certs.iterdir()}
    assert make_certificates(certs) == []
    assert {path.name: path.read_bytes() for path in certs.iterdir()} == before


def test_the_command_line_fills_in_what_is_missing_and_force_starts_over(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert certs_cli.main(["--out", str(tmp_path), "--key-mode", "644"]) == 0
    assert len(capsys.readouterr().out.split()) == 2 + 2 * len(LEAVES)
    assert stat.S_IMODE((tmp_path / "client.key").stat().st_mode) == 0o644
    ca = (tmp_path / "ca.crt").read_bytes()
    (tmp_path / "edge.crt").unlink()
    assert certs_cli.main(["--out", str(tmp_path), "--host", "pay.example.kz"]) == 0
    assert capsys.readouterr().out.split() == [
        str(tmp_path / "edge.crt"),
        str(tmp_path / "edge.key"),
    ]
    assert (tmp_path / "ca.crt").read_bytes() == ca  # signed by the same CA
    assert "pay.example.kz" in _names(_certificate(tmp_path / "edge.crt"))
    _certificate(tmp_path / "edge.crt").verify_directly_issued_by(_certificate(tmp_path / "ca.crt"))
    assert certs_cli.main(["--out", str(tmp_path)]) == 0
    assert "already there" in capsys.readouterr().out
    assert certs_cli.main(["--out", str(tmp_path), "--force"]) == 0
    assert (tmp_path / "ca.crt").read_bytes() != ca


def test_no_tls_settings_mean_a_plain_connection(certs: Path) -> None:
    assert temporal_tls(Settings(_env_file=None)) is False
    settings = Settings(
        _env_file=None,
        temporal_tls_ca=certs / "ca.crt",
        temporal_tls_cert=certs / "client.crt",
        temporal_tls_key=certs / "client.key",
        temporal_tls_server_name="temporal",
    )
    tls = temporal_tls(settings)
    assert isinstance(tls, TLSConfig)
    assert tls.server_root_ca_cert == (certs / "ca.crt").read_bytes()
    assert tls.client_private_key == (certs / "client.key").read_bytes()
    assert tls.domain == "temporal"


@contextlib.asynccontextmanager
async def _mutual_tls_frontend(certs: Path, upstream: str) -> AsyncIterator[int]:
    """A TLS terminator that requires a client certificate of the CA, in front of `upstream`."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(certs / "ca.crt"))
    context.load_cert_chain(certs / "temporal.crt", certs / "temporal.key")
    context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols(["h2"])
    host, port = upstream.rsplit(":", 1)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ssl.SSLError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def serve(
        client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        server_reader, server_writer = await asyncio.open_connection(host, int(port))
        await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer))

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def test_the_sdk_connects_over_mutual_tls_and_is_refused_without_its_certificate(
    certs: Path, temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    upstream = temporal_env.client.service_client.config.target_host
    settings = Settings(
        _env_file=None,
        temporal_tls_ca=certs / "ca.crt",
        temporal_tls_cert=certs / "client.crt",
        temporal_tls_key=certs / "client.key",
        temporal_tls_server_name="temporal",
    )
    async with _mutual_tls_frontend(certs, upstream) as port:
        target = f"127.0.0.1:{port}"
        client = await Client.connect(target, tls=temporal_tls(settings))
        info = await client.workflow_service.get_system_info(GetSystemInfoRequest())
        assert info.server_version is not None

        no_certificate = TLSConfig(
            server_root_ca_cert=(certs / "ca.crt").read_bytes(), domain="temporal"
        )
        with pytest.raises(RuntimeError):  # connecting asks the server for its system info
            await Client.connect(target, tls=no_certificate)

        other = tmp_path / "other"
        make_certificates(other)
        other_ca = settings.model_copy(update={"temporal_tls_ca": other / "ca.crt"})
        with pytest.raises(RuntimeError):
            await Client.connect(target, tls=temporal_tls(other_ca))
