"""Certificates, CAs and CRLs built with cryptography, for what trustme cannot make: identical CA
names, chosen string types, URI SANs, missing or other EKUs, revocation lists."""

from __future__ import annotations

import base64
import datetime
import math
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

NOW = datetime.datetime.now(datetime.UTC)
DAY = datetime.timedelta(days=1)
CLIENT_AUTH = [ExtendedKeyUsageOID.CLIENT_AUTH]


def name(*attributes: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    """A name from (oid, value) pairs, most significant first (ASN.1 order)."""
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in attributes])


def new_key(kind: str = "ec") -> PrivateKey:
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    return ec.generate_private_key(ec.SECP256R1())


def huge_exponent_key(bits: int = 3072, exponent_bits: int | None = None) -> rsa.RSAPrivateKey:
    """An RSA key whose public exponent is nearly as long as its modulus (or `exponent_bits` long):
    each verification with it costs thousands of times more than with 65537 (the attack of issue 9)."""
    numbers = rsa.generate_private_key(public_exponent=65537, key_size=bits).private_numbers()
    p, q = numbers.p, numbers.q
    order = math.lcm(p - 1, q - 1)
    exponent = (1 << ((exponent_bits or bits - 1) - 1)) + 1
    while math.gcd(exponent, order) != 1:
        exponent += 2
    private = pow(exponent, -1, order)
    public = rsa.RSAPublicNumbers(exponent, p * q)
    return rsa.RSAPrivateNumbers(
        p, q, private, private % (p - 1), private % (q - 1), pow(q, -1, p), public
    ).private_key()


def _hash_for(key: PrivateKey) -> hashes.SHA256 | None:
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


@dataclass
class Issued:
    cert: x509.Certificate
    key: PrivateKey
    #: Certificates above it that a client sends (intermediates, never the root), nearest first.
    chain: tuple[x509.Certificate, ...] = ()
    is_root: bool = False

    def pem(self) -> bytes:
        return self.cert.public_bytes(Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())

    def chain_pem(self) -> bytes:
        return self.pem() + b"".join(cert.public_bytes(Encoding.PEM) for cert in self.chain)

    def configure_cert(self, context: ssl.SSLContext, directory: Path) -> None:
        """Present this certificate (and its intermediates) from an ssl client context."""
        serial = format(self.cert.serial_number, "x")
        cert_file, key_file = directory / f"{serial}.pem", directory / f"{serial}.key"
        cert_file.write_bytes(self.chain_pem())
        key_file.write_bytes(self.key_pem())
        context.load_cert_chain(cert_file, key_file)


def _authority_key_id(issuer_public: object) -> x509.AuthorityKeyIdentifier:
    """The AuthorityKeyIdentifier for a certificate signed by the holder of `issuer_public`."""
    assert isinstance(issuer_public, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey)
    return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public)


def _sent_above(issuer: Issued | None) -> tuple[x509.Certificate, ...]:
    """What a holder of a certificate issued by `issuer` sends along: intermediates, not the root
    (which the server has configured)."""
    if issuer is None or issuer.is_root:
        return ()
    return (issuer.cert, *issuer.chain)


def key_usage(**allowed: bool) -> x509.KeyUsage:
    """A keyUsage extension allowing the named bits (digital_signature=True, ...), no others."""
    bits = (
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
    )
    return x509.KeyUsage(
        **{bit: allowed.get(bit, False) for bit in bits}, encipher_only=False, decipher_only=False
    )


def make_ca(subject: x509.Name, *, parent: Issued | None = None, key: PrivateKey | None = None) -> Issued:
    key = key or new_key()
    signer = parent.key if parent is not None else key
    issuer = parent.cert.subject if parent is not None else subject
    issuer_public = parent.cert.public_key() if parent is not None else key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - 30 * DAY)
        .not_valid_after(NOW + 30 * DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(_authority_key_id(issuer_public), critical=False)
        .sign(signer, _hash_for(signer))
    )
    return Issued(cert, key, _sent_above(parent), is_root=parent is None)


def issue(
    ca: Issued,
    subject: x509.Name,
    *,
    sans: Sequence[x509.GeneralName] = (),
    san_critical: bool = False,
    eku: Sequence[x509.ObjectIdentifier] | None = CLIENT_AUTH,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
    key: PrivateKey | None = None,
    send_chain: bool = True,
    usage: x509.KeyUsage | None = None,
) -> Issued:
    """A client certificate issued by `ca`. `send_chain`: the client sends `ca` along when `ca` is
    an intermediate (its `chain` is not empty)."""
    key = key or new_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or NOW - DAY)
        .not_valid_after(not_after or NOW + 10 * DAY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            _authority_key_id(ca.cert.public_key()),
            critical=False,
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=san_critical)
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    if usage is not None:
        builder = builder.add_extension(usage, critical=True)
    cert = builder.sign(ca.key, _hash_for(ca.key))
    return Issued(cert, key, _sent_above(ca) if send_chain else ())


def make_crl(
    ca: Issued,
    revoked_serials: Sequence[int] = (),
    *,
    next_update: datetime.datetime | None = None,
    signer: PrivateKey | None = None,
) -> x509.CertificateRevocationList:
    """A CRL of `ca` (signed by `signer` instead, to forge one)."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        .last_update(NOW - DAY)
        .next_update(next_update or NOW + 7 * DAY)
        .add_extension(
            _authority_key_id(ca.cert.public_key()),
            critical=False,
        )
    )
    for serial in revoked_serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(NOW - DAY).build()
        )
    key = signer or ca.key
    return builder.sign(key, _hash_for(key))


def ca_name(label: str = "Example Client CA") -> x509.Name:
    return name((NameOID.ORGANIZATION_NAME, "Example"), (NameOID.COMMON_NAME, label))


def self_signed(subject: x509.Name, key: PrivateKey | None = None) -> Issued:
    """A self-signed end-entity certificate, as self_signed_tls_client_auth clients use."""
    key = key or new_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - DAY)
        .not_valid_after(NOW + 10 * DAY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(CLIENT_AUTH), critical=False)
        .sign(key, _hash_for(key))
    )
    return Issued(cert, key)


def x5c_of(issued: Issued) -> str:
    """The certificate as one `x5c` member entry (standard base64 DER, RFC 7517 §4.7)."""
    return base64.b64encode(issued.cert.public_bytes(Encoding.DER)).decode("ascii")


def from_trustme(ca: trustme.CA) -> Issued:
    """A trustme root CA as an `Issued`, to issue what trustme cannot (URI SANs, other EKUs)."""
    key = load_pem_private_key(ca.private_key_pem.bytes(), password=None)
    assert isinstance(key, PrivateKey)
    return Issued(x509.load_pem_x509_certificate(ca.cert_pem.bytes()), key, is_root=True)
