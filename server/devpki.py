"""A development PKI made with trustme: what `make run` and the README's curl examples use.

Never for production: the CA keys sit next to the certificates. Files written into `out`:
server-ca.pem (trust this to reach the server), server.pem/server.key (localhost, 127.0.0.1, ::1),
client-ca.pem (pass to --client-ca), client1.pem/.key and client2.pem/.key (issued by the client CA,
subject exactly `CN=client1,O=certbound dev` with SAN DNS client1.certbound.test, so the README's
`--subject-dn` example matches), selfsigned.pem/.key (a self-signed client certificate for
self_signed_tls_client_auth) and selfsigned.jwks.json (its JWK Set, to register as the client's
`jwks`).
"""

from __future__ import annotations

import datetime
import json
import os
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certbound.jose import jwk_set_from_pem

__all__ = ["DEV_CERTS_DIR", "DevPKI", "ensure_dev_pki", "write_dev_pki"]

#: Where `serve` and `demo-resource` look for (and create) the dev PKI when given no TLS flags.
DEV_CERTS_DIR = Path("certs")

_ORG = "certbound dev"
_FILES = ("server-ca.pem", "server.pem", "server.key", "client-ca.pem", "selfsigned.pem")
_SELF_SIGNED_JWKS = "selfsigned.jwks.json"


@dataclass(frozen=True)
class DevPKI:
    directory: Path

    def path(self, name: str) -> Path:
        return self.directory / name

    @property
    def server_cert(self) -> Path:
        return self.path("server.pem")

    @property
    def server_key(self) -> Path:
        return self.path("server.key")

    @property
    def client_ca(self) -> Path:
        return self.path("client-ca.pem")

    def written_files(self) -> list[Path]:
        return sorted(p for p in self.directory.iterdir() if p.suffix in (".pem", ".key", ".json"))


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _client_name(common_name: str) -> x509.Name:
    # RFC 4514 writes the most specific RDN first: this is "CN=<name>,O=certbound dev".
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORG),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _client_certificate(
    common_name: str, issuer: x509.Certificate | None, issuer_key: ec.EllipticCurvePrivateKey | None
) -> tuple[bytes, bytes]:
    """A client certificate with a predictable subject (trustme adds a random OU), issued by
    `issuer`, or self-signed when there is none."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = _client_name(common_name)
    signer = issuer_key or key
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer is not None else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(f"{common_name}.certbound.test")]), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False
        )
    )
    cert = builder.sign(signer, hashes.SHA256())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def write_dev_pki(out: Path) -> DevPKI:
    """Write a fresh dev PKI into `out` (replacing what is there)."""
    out.mkdir(parents=True, exist_ok=True)
    server_ca = trustme.CA(organization_name=_ORG)
    server = server_ca.issue_cert("localhost", "127.0.0.1", "::1", common_name="localhost")
    _write(out / "server-ca.pem", server_ca.cert_pem.bytes())
    _write(out / "server.pem", b"".join(blob.bytes() for blob in server.cert_chain_pems))
    _write(out / "server.key", server.private_key_pem.bytes(), private=True)

    client_ca = trustme.CA(organization_name=_ORG)
    _write(out / "client-ca.pem", client_ca.cert_pem.bytes())
    ca_cert = x509.load_pem_x509_certificate(client_ca.cert_pem.bytes())
    ca_key = serialization.load_pem_private_key(client_ca.private_key_pem.bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError("trustme's CA key is expected to be ECDSA")
    for name in ("client1", "client2"):
        cert_pem, key_pem = _client_certificate(name, ca_cert, ca_key)
        _write(out / f"{name}.pem", cert_pem)
        _write(out / f"{name}.key", key_pem, private=True)

    cert_pem, key_pem = _client_certificate("selfsigned", None, None)
    _write(out / "selfsigned.pem", cert_pem)
    _write(out / "selfsigned.key", key_pem, private=True)
    _write_self_signed_jwks(out)
    return DevPKI(out)


def _write_self_signed_jwks(out: Path) -> None:
    jwks = jwk_set_from_pem((out / "selfsigned.pem").read_bytes())
    _write(out / _SELF_SIGNED_JWKS, json.dumps(jwks, indent=2).encode() + b"\n")


def ensure_dev_pki(out: Path) -> DevPKI:
    """The dev PKI in `out`, created when any of its files is missing (a JWK Set missing from an
    older dev PKI is derived from its certificate)."""
    if not all((out / name).exists() for name in _FILES):
        return write_dev_pki(out)
    if not (out / _SELF_SIGNED_JWKS).exists():
        _write_self_signed_jwks(out)
    return DevPKI(out)
