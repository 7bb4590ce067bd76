"""The development certificate: HTTPS (so HTTP/2) for browsers against `make run`.

Browsers speak HTTP/2 only over TLS, and over HTTP/1.1 they open at most 6 connections
per host, which 6 open watch streams use up. So in development Envoy also accepts TLS on
its port, with a self-signed certificate for `localhost`, `127.0.0.1` and `::1` made here
at first start and reused after (remade when missing, unreadable or close to expiry). The
README's "Using it from a web frontend" says how to trust it. It is never used in
production, where `TODO_TLS_CERT_FILE` names a real certificate.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_FOR = datetime.timedelta(days=365)
RENEW_BEFORE = datetime.timedelta(days=30)
COMMON_NAME = "todo-service development certificate"
DNS_NAMES = ("localhost",)
IP_ADDRESSES = ("127.0.0.1", "::1")


@dataclasses.dataclass(frozen=True)
class DevCertificate:
    """Where the development certificate and its key are."""

    cert_file: Path
    """PEM certificate: the file to trust in a browser or pass to a client as its CA."""

    key_file: Path
    """PEM private key (mode 0600)."""

    @classmethod
    def in_folder(cls, data_dir: Path) -> DevCertificate:
        """The certificate's place under a data folder (`<data_dir>/tls/`)."""
        folder = data_dir.resolve() / "tls"
        return cls(folder / "dev-cert.pem", folder / "dev-key.pem")

    def exists(self) -> bool:
        """Whether both files are there."""
        return self.cert_file.is_file() and self.key_file.is_file()


def ensure(data_dir: Path, now: datetime.datetime | None = None) -> DevCertificate:
    """Return the development certificate under `data_dir`, making it first if needed.

    Args:
        data_dir: The settings' data folder; the files go to its `tls/` subfolder.
        now: The current time (tests); the system clock by default.

    Returns:
        The certificate's files, valid at `now` for at least `RENEW_BEFORE`.
    """
    now = now or datetime.datetime.now(datetime.UTC)
    certificate = DevCertificate.in_folder(data_dir)
    if not _usable(certificate, now):
        _write(certificate, now)
    return certificate


def _usable(certificate: DevCertificate, now: datetime.datetime) -> bool:
    if not certificate.exists():
        return False
    try:
        cert = x509.load_pem_x509_certificate(certificate.cert_file.read_bytes())
    except ValueError:
        return False
    return cert.not_valid_before_utc <= now and now + RENEW_BEFORE < cert.not_valid_after_utc


def _write(certificate: DevCertificate, now: datetime.datetime) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, COMMON_NAME)])
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in DNS_NAMES]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in IP_ADDRESSES]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALID_FOR)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    certificate.cert_file.parent.mkdir(parents=True, exist_ok=True)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_atomically(certificate.key_file, key_pem, mode=0o600)
    _write_atomically(certificate.cert_file, cert.public_bytes(serialization.Encoding.PEM))


def _write_atomically(path: Path, data: bytes, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    tmp.replace(path)
