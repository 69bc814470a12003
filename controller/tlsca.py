"""A development CA for the embedded broker's mqtts:// listener.

`edgefleet server --tls` needs a server certificate and nobody has to buy
one for a lab: the first start creates a private CA in `<state-dir>/tls/`
(key 0600) and every start issues a fresh server certificate for the names
it listens on. Join strings carry this CA (controller.join_cli), so agents
pin it instead of trusting whatever the system trusts. Production brokers use
certificates from the operator's own CA, given with --broker-ca.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from controller import errors, keystore

# Long enough that a lab never sees it expire; rotate by deleting <state-dir>/tls.
CA_DAYS = 3650
# Re-issued at every start, so this only bounds a server that runs for a year.
SERVER_DAYS = 397


@dataclass(frozen=True)
class Files:
    ca: Path
    cert: Path
    key: Path


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def ca_path(state_dir: Path) -> Path:
    return state_dir / "tls" / "ca.pem"


def _ca(directory: Path, now: datetime.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert_path, key_path = directory / "ca.pem", directory / "ca.key"
    if cert_path.exists() and key_path.exists():
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise errors.StateError(f"{key_path} is not an EC key")
        return x509.load_pem_x509_certificate(cert_path.read_bytes()), key
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, f"edgefleet development CA ({socket.gethostname()})")]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(key, hashes.SHA256())
    )
    keystore.write_atomic(key_path, _key_pem(key), mode=0o600)
    keystore.write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    return cert, key


def _names(hosts: Iterable[str]) -> list[x509.GeneralName]:
    found: list[x509.GeneralName] = []
    for host in {*hosts, "localhost", "127.0.0.1", "::1", socket.gethostname()}:
        if not host or host in ("0.0.0.0", "::"):
            continue
        try:
            found.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            found.append(x509.DNSName(host))
    return sorted(found, key=str)


def ensure(state_dir: Path, hosts: Iterable[str]) -> Files:
    """The CA (created once) and a server certificate for `hosts`, issued now."""
    directory = state_dir / "tls"
    try:
        directory.mkdir(mode=0o700, exist_ok=True)
    except OSError as exc:
        raise errors.StateError(f"cannot create {directory}: {exc.strerror}") from exc
    now = datetime.datetime.now(datetime.UTC)
    ca, ca_key = _ca(directory, now)
    key = ec.generate_private_key(ec.SECP256R1())
    names = _names(hosts)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "edgefleet embedded broker")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=SERVER_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    files = Files(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    keystore.write_atomic(files.key, _key_pem(key), mode=0o600)
    keystore.write_atomic(files.cert, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    return files


def der_of(pem_path: Path) -> bytes:
    """A CA file's first certificate as DER, for a join string."""
    try:
        cert = x509.load_pem_x509_certificate(pem_path.read_bytes())
    except OSError as exc:
        raise errors.ControllerError(f"cannot read CA file {pem_path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise errors.ControllerError(f"{pem_path} is not a PEM certificate: {exc}") from exc
    return cert.public_bytes(serialization.Encoding.DER)
