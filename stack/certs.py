"""`python -m stack.certs --out deploy/tls`: a local CA and the certificates of the compose shape.

For development and trying `docker compose` out only: production certificates come from your own
PKI. Into the directory (PEM; keys PKCS#8, unencrypted, mode 0600 unless `--key-mode`):

| file | what it is | names |
| --- | --- | --- |
| `ca.crt`, `ca.key` | the CA every service trusts | |
| `edge.crt`, `edge.key` | the HTTPS edge (nginx) | localhost, 127.0.0.1, `--host` names |
| `temporal.crt`, `temporal.key` | the Temporal frontend, also between its own services | temporal |
| `postgresql.crt`, `postgresql.key` | PostgreSQL (`sslmode=verify-full`) | postgresql |
| `client.crt`, `client.key` | Temporal's clients: API, workers, setup job, Web UI | CN kzpay |

Server certificates also name localhost and 127.0.0.1. The CA is kept when it exists (new
certificates are signed by it; `--force` starts over); an existing certificate is kept too, so
running it again changes nothing.
"""

import argparse
import ipaddress
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOCAL_NAMES = ("localhost", "127.0.0.1")


@dataclass(frozen=True)
class Leaf:
    name: str
    names: tuple[str, ...]  # subject alternative names (DNS names or IP addresses)
    server: bool
    client: bool


LEAVES: tuple[Leaf, ...] = (
    Leaf("edge", LOCAL_NAMES, server=True, client=False),
    # The frontend's own services connect to each other with it (internode mutual TLS).
    Leaf("temporal", ("temporal", *LOCAL_NAMES), server=True, client=True),
    Leaf("postgresql", ("postgresql", *LOCAL_NAMES), server=True, client=False),
    Leaf("client", ("kzpay",), server=False, client=True),
)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "kzpay development"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _alternative_names(names: Iterable[str]) -> x509.SubjectAlternativeName:
    general: list[x509.GeneralName] = []
    for name in dict.fromkeys(names):
        try:
            general.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            general.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(general)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey, mode: int) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "wb") as file:
        file.write(pem)
    path.chmod(mode)  # whatever the umask


def _write_certificate(path: Path, certificate: x509.Certificate) -> None:
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def _ca(out: Path, days: int, key_mode: int) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert_path, key_path = out / "ca.crt", out / "ca.key"
    if cert_path.is_file() and key_path.is_file():
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise SystemExit(f"{key_path}: not an EC key made by stack.certs; use --force")
        return x509.load_pem_x509_certificate(cert_path.read_bytes()), key
    key = _key()
    now = datetime.now(UTC)
    subject = _name("kzpay development CA")
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(key_path, key, key_mode)
    _write_certificate(cert_path, certificate)
    return certificate, key


def _leaf(
    leaf: Leaf,
    names: Sequence[str],
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    days: int,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    now = datetime.now(UTC)
    usages = [ExtendedKeyUsageOID.SERVER_AUTH] * leaf.server + [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ] * leaf.client
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(names[0]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(_alternative_names(names), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return certificate, key


def make_certificates(
    out: Path,
    *,
    hosts: Sequence[str] = (),
    days: int = 825,
    force: bool = False,
    key_mode: int = 0o600,
) -> list[Path]:
    """Writes the CA and every certificate of `LEAVES` that is missing; returns what it wrote."""
    out.mkdir(parents=True, exist_ok=True)
    if force:
        for path in out.glob("*.crt"):
            path.unlink()
        for path in out.glob("*.key"):
            path.unlink()
    had_ca = (out / "ca.crt").is_file()
    ca, ca_key = _ca(out, days, key_mode)
    written = [] if had_ca else [out / "ca.crt", out / "ca.key"]
    for leaf in LEAVES:
        cert_path, key_path = out / f"{leaf.name}.crt", out / f"{leaf.name}.key"
        if cert_path.is_file() and key_path.is_file():
            continue
        names = (*leaf.names, *hosts) if leaf.name == "edge" else leaf.names
        certificate, key = _leaf(leaf, names, ca, ca_key, days)
        _write_key(key_path, key, key_mode)
        _write_certificate(cert_path, certificate)
        written += [cert_path, key_path]
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stack.certs",
        description="Make a local CA and the development certificates of docker-compose.yml.",
    )
    parser.add_argument("--out", type=Path, default=Path("deploy/tls"), help="the directory")
    parser.add_argument(
        "--host",
        action="append",
        default=[],
        help="another name (or IP address) the edge is reached at; repeatable",
    )
    parser.add_argument("--days", type=int, default=825, help="validity (default 825 days)")
    parser.add_argument("--force", action="store_true", help="a new CA and new certificates")
    parser.add_argument(
        "--key-mode",
        type=lambda text: int(text, 8),
        default=0o600,
        help="octal mode of the key files (default 600; the containers of `docker compose` "
        "run as other users: 644 lets them read development keys)",
    )
    args = parser.parse_args(argv)
    written = make_certificates(
        args.out, hosts=args.host, days=args.days, force=args.force, key_mode=args.key_mode
    )
    for path in written:
        print(path)
    if not written:
        print(f"{args.out}: every certificate is already there (--force makes new ones)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
