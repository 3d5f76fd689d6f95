"""The webhook receiver's TLS: a certificate given to it (a mounted Secret, from cert-manager or the
chart), or a private CA and a serving certificate it makes for itself at start.

MLflow delivers only over https by default and verifies the certificate, so a self-made one is
only useful together with its CA, which ``generate`` writes where an administrator can hand it to
MLflow. The CA's key never leaves the process: a restart makes a new CA.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=365)


@dataclass(frozen=True)
class Material:
    """PEM files for ``ssl.SSLContext.load_cert_chain``, and the CA's PEM when self-made."""

    cert_file: Path
    key_file: Path
    ca_pem: bytes | None = None


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _san(hosts: Sequence[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def generate(hosts: Sequence[str], now: datetime.datetime | None = None) -> tuple[bytes, bytes, bytes]:
    """(CA certificate, serving certificate, serving key) as PEM, the serving one for ``hosts``."""
    now = now or datetime.datetime.now(datetime.UTC)
    start = now - datetime.timedelta(minutes=5)  # tolerate a peer's clock a little behind
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("ferry-operator webhook CA")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(now + VALIDITY)
        .add_extension(_san(hosts), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return ca.public_bytes(pem), cert.public_bytes(pem), key_pem


def self_made(hosts: Sequence[str], ca_file: Path | None, directory: Path | None = None) -> Material:
    """A fresh CA and serving certificate; the CA written to ``ca_file`` when given.

    tls.crt and tls.key go to ``directory`` (a new private temporary one when None: ``ssl`` loads
    only from files), laid out as a mounted ``kubernetes.io/tls`` Secret, so ``from_dir`` reads it.
    """
    ca_pem, cert_pem, key_pem = generate(hosts)
    where = directory or Path(tempfile.mkdtemp(prefix="ferry-webhook-tls-"))
    where.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = where / "tls.crt", where / "tls.key"
    cert_file.write_bytes(cert_pem)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_pem)
    if ca_file is not None:
        ca_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = ca_file.with_name(ca_file.name + ".tmp")
        tmp.write_bytes(ca_pem)
        tmp.replace(ca_file)  # whole or not at all: a reader never sees half a CA
    return Material(cert_file, key_file, ca_pem)


def from_dir(directory: Path) -> Material:
    """``tls.crt`` and ``tls.key`` in ``directory``: a mounted ``kubernetes.io/tls`` Secret."""
    return Material(directory / "tls.crt", directory / "tls.key")


def server_context(material: Material) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(material.cert_file, material.key_file)
    return context
