"""Reading a tls_client_auth subject from a certificate, and a JWK Set from JSON or PEM."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from certbound.jose import public_jwk, rfc7638_thumbprint
from certbound.jwks import parse_jwks
from certbound.pki.dn import name_matches
from certbound.tui.sources import MAX_FILE_BYTES, SourceError, read_jwks, read_subject
from tests.unit.pki.builders import issue, make_ca, name

CA = make_ca(name((NameOID.COMMON_NAME, "Test CA")))


def write(tmp_path: Path, data: bytes, filename: str = "file.pem") -> Path:
    path = tmp_path / filename
    path.write_bytes(data)
    return path


def test_subject_dn_in_rfc_4514_order_matches_the_certificate(tmp_path: Path) -> None:
    subject = name(
        (NameOID.COUNTRY_NAME, "DE"),
        (NameOID.ORGANIZATION_NAME, "Acme, Inc."),
        (NameOID.COMMON_NAME, "svc+billing"),
    )
    cert = issue(CA, subject).cert
    path = write(tmp_path, cert.public_bytes(serialization.Encoding.PEM))
    dn = read_subject(path, "tls_client_auth_subject_dn")
    assert dn == r"CN=svc\+billing,O=Acme\, Inc.,C=DE"  # most significant last (RFC 4514 §2.1)
    assert name_matches(dn, cert.subject)


@pytest.mark.parametrize(
    ("member", "expected"),
    [
        ("tls_client_auth_san_dns", "svc.example.com"),
        ("tls_client_auth_san_uri", "spiffe://example.org/svc"),
        ("tls_client_auth_san_ip", "2001:db8::1"),
        ("tls_client_auth_san_email", "svc@example.com"),
    ],
)
def test_first_san_of_the_kind(tmp_path: Path, member: str, expected: str) -> None:
    sans = [
        x509.DNSName("svc.example.com"),
        x509.DNSName("other.example.com"),
        x509.UniformResourceIdentifier("spiffe://example.org/svc"),
        x509.IPAddress(ipaddress.ip_address("2001:db8::1")),
        x509.RFC822Name("svc@example.com"),
    ]
    cert = issue(CA, name((NameOID.COMMON_NAME, "svc")), sans=sans).cert
    chain = cert.public_bytes(serialization.Encoding.PEM) + CA.pem()
    assert read_subject(write(tmp_path, chain), member) == expected


def test_subject_refusals(tmp_path: Path) -> None:
    bare = issue(CA, name()).cert.public_bytes(serialization.Encoding.PEM)
    with pytest.raises(SourceError, match="subject is empty"):
        read_subject(write(tmp_path, bare), "tls_client_auth_subject_dn")
    with pytest.raises(SourceError, match="no subjectAltName"):
        read_subject(write(tmp_path, bare), "tls_client_auth_san_dns")
    dns_only = issue(CA, name((NameOID.COMMON_NAME, "x")), sans=[x509.DNSName("x.example")]).cert
    with pytest.raises(SourceError, match="tls_client_auth_san_email"):
        read_subject(
            write(tmp_path, dns_only.public_bytes(serialization.Encoding.PEM)), "tls_client_auth_san_email"
        )
    with pytest.raises(SourceError, match="no PEM certificate"):
        read_subject(write(tmp_path, b"hello"), "tls_client_auth_subject_dn")
    with pytest.raises(SourceError, match="cannot read"):
        read_subject(tmp_path / "missing.pem", "tls_client_auth_subject_dn")


def test_jwks_from_pem_certificates_and_keys_is_public_only(tmp_path: Path) -> None:
    cert_key = ec.generate_private_key(ec.SECP256R1())
    cert = issue(CA, name((NameOID.COMMON_NAME, "x")), key=cert_key).cert
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP384R1())
    pem = (
        cert.public_bytes(serialization.Encoding.PEM)
        + rsa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        + ec_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    jwks = read_jwks(write(tmp_path, pem))
    expected = [public_jwk(key.public_key()) for key in (cert_key, rsa_key, ec_key)]
    assert jwks == {"keys": [{**jwk, "kid": rfc7638_thumbprint(jwk)} for jwk in expected]}
    assert len(parse_jwks(jwks)) == 3  # the server takes it


def test_jwks_from_json_is_passed_through(tmp_path: Path) -> None:
    document = {"keys": [{"kty": "EC", "whatever": 1}]}
    assert read_jwks(write(tmp_path, json.dumps(document).encode(), "jwks.json")) == document


def test_jwks_refusals(tmp_path: Path) -> None:
    encrypted = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"password"),
    )
    with pytest.raises(SourceError, match="encrypted private key"):
        read_jwks(write(tmp_path, encrypted))
    with pytest.raises(SourceError, match="no certificate or key"):
        read_jwks(write(tmp_path, b"-----BEGIN NOTHING-----\nAA==\n-----END NOTHING-----\n"))
    with pytest.raises(SourceError, match="does not parse"):
        read_jwks(write(tmp_path, b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
    with pytest.raises(SourceError, match="neither JSON nor PEM"):
        read_jwks(write(tmp_path, b"{not json"))
    with pytest.raises(SourceError, match="JSON object"):
        read_jwks(write(tmp_path, b"[1, 2]"))
    with pytest.raises(SourceError, match="larger than"):
        read_jwks(write(tmp_path, b" " * (MAX_FILE_BYTES + 1)))
