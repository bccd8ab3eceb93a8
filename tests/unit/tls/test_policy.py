"""Handshake bounds (issue 9, finding 1): the key policy, the verify depth and the size of what a
client sends, each refused during the handshake, each with its accepted twin."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from OpenSSL import SSL, crypto

from certbound.tls import TLSHandshakeError, connection, policy
from certbound.tls.peercache import PeerCertificateCache, certificate_sha256
from certbound.tls.policy import MAX_CHAIN_BYTES, MAX_INTERMEDIATES
from tests.unit.pki import builders
from tests.unit.pki.builders import Issued, PrivateKey, ca_name, issue, make_ca, name, self_signed

from .conftest import ClientIdentity, ConnectionPair, Pki, client_context


@pytest.fixture(scope="module")
def huge_exponent_key() -> rsa.RSAPrivateKey:
    return builders.huge_exponent_key(2048, exponent_bits=2000)


def _identity(directory: Path, issued: Issued, extra: tuple[x509.Certificate, ...] = ()) -> ClientIdentity:
    """Files a client presents: the leaf, its intermediates, then `extra` certificates."""
    chain_file = directory / f"{issued.cert.serial_number:x}.pem"
    key_file = directory / f"{issued.cert.serial_number:x}.key"
    chain_file.write_bytes(issued.chain_pem() + b"".join(cert.public_bytes(Encoding.PEM) for cert in extra))
    key_file.write_bytes(issued.key_pem())
    return ClientIdentity(issued.cert, (*issued.chain, *extra), chain_file, key_file)


def _client(label: str = "client") -> x509.Name:
    return name((NameOID.COMMON_NAME, label))


def _chain_of(intermediates: int, *, key: PrivateKey | None = None) -> Issued:
    """A leaf under `intermediates` CAs below an untrusted root; `key` is every intermediate's."""
    ca = make_ca(ca_name("root"))
    for level in range(intermediates):
        ca = make_ca(ca_name(f"intermediate {level}"), parent=ca, key=key)
    return issue(ca, _client())


def _handshake(pki: Pki, server_context: SSL.Context, identity: ClientIdentity) -> tuple[int, ...]:
    """Handshake; the server's view of how many certificates came with the leaf."""
    info = ConnectionPair(server_context, client_context(pki, identity)).handshake()
    assert info.peer is not None
    assert info.peer.leaf == identity.leaf
    return (len(info.peer.chain),)


def test_an_intermediate_on_another_curve_is_refused(
    pki: Pki, server_context: SSL.Context, tmp_path: Path
) -> None:
    abusive = _identity(tmp_path, _chain_of(1, key=ec.generate_private_key(ec.SECP256K1())))
    refusal = "the certificate at depth 1 has an EC key on curve secp256k1"
    with pytest.raises(TLSHandshakeError, match=refusal):
        _handshake(pki, server_context, abusive)


def test_a_huge_exponent_intermediate_is_refused_at_the_top_of_the_chain(
    pki: Pki, server_context: SSL.Context, tmp_path: Path, huge_exponent_key: rsa.RSAPrivateKey
) -> None:
    abusive = _identity(tmp_path, _chain_of(2, key=huge_exponent_key))
    with pytest.raises(
        TLSHandshakeError,
        match="refused: the certificate at depth 2 has an RSA key with public exponent of 2000 bits",
    ):
        _handshake(pki, server_context, abusive)


def test_the_same_chain_with_a_normal_exponent_is_accepted(
    pki: Pki, server_context: SSL.Context, tmp_path: Path
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert _handshake(pki, server_context, _identity(tmp_path, _chain_of(2, key=key))) == (2,)


def test_a_chain_longer_than_the_verify_depth_is_refused(
    pki: Pki, server_context: SSL.Context, tmp_path: Path
) -> None:
    too_long = _identity(tmp_path, _chain_of(MAX_INTERMEDIATES + 1))
    with pytest.raises(TLSHandshakeError, match=f"more than {MAX_INTERMEDIATES} intermediate"):
        _handshake(pki, server_context, too_long)


def test_a_chain_as_long_as_the_verify_depth_is_accepted(
    pki: Pki, server_context: SSL.Context, tmp_path: Path
) -> None:
    longest = _identity(tmp_path, _chain_of(MAX_INTERMEDIATES))
    assert _handshake(pki, server_context, longest) == (MAX_INTERMEDIATES,)


def test_a_leaf_key_outside_policy_is_refused(pki: Pki, server_context: SSL.Context, tmp_path: Path) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    identity = _identity(tmp_path, self_signed(_client(), key=weak))
    ctx = client_context(pki)
    ctx.set_cipher_list(b"DEFAULT:@SECLEVEL=0")  # lets the client load a key this weak
    ctx.use_certificate_chain_file(str(identity.chain_file))
    ctx.use_privatekey_file(str(identity.key_file))
    with pytest.raises(TLSHandshakeError, match="depth 0 has an RSA key of 1024 bits"):
        ConnectionPair(server_context, ctx).handshake()


def test_a_leaf_key_within_policy_is_accepted(pki: Pki, server_context: SSL.Context, tmp_path: Path) -> None:
    leaf = self_signed(_client(), key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    assert _handshake(pki, server_context, _identity(tmp_path, leaf)) == (0,)


def _unrelated(count: int, *, padding: int = 0) -> tuple[x509.Certificate, ...]:
    """Certificates no path uses (sent beside the chain); each about `padding` bytes larger."""
    names = [x509.DNSName(f"{index:04d}.{'x' * 60}.example") for index in range(padding // 80)]
    certs = []
    for index in range(count):
        cert = self_signed(_client(f"unrelated {index}")).cert
        if names:
            cert = _with_sans(cert, names)
        certs.append(cert)
    return tuple(certs)


def _with_sans(cert: x509.Certificate, sans: list[x509.GeneralName]) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(cert.subject)
        .issuer_name(cert.subject)
        .public_key(key.public_key())
        .serial_number(cert.serial_number)
        .not_valid_before(cert.not_valid_before_utc)
        .not_valid_after(cert.not_valid_after_utc)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
    )
    return builder.sign(key, hashes.SHA256())


def test_more_certificates_than_a_path_holds_are_refused(
    pki: Pki, server_context: SSL.Context, tmp_path: Path
) -> None:
    crowded = _identity(tmp_path, self_signed(_client()), _unrelated(MAX_INTERMEDIATES + 1))
    with pytest.raises(TLSHandshakeError, match=f"{MAX_INTERMEDIATES + 1} certificates sent with the leaf"):
        _handshake(pki, server_context, crowded)


def test_as_many_certificates_as_a_path_holds_are_accepted(
    pki: Pki, server_context: SSL.Context, tmp_path: Path
) -> None:
    full = _identity(tmp_path, self_signed(_client()), _unrelated(MAX_INTERMEDIATES))
    assert _handshake(pki, server_context, full) == (MAX_INTERMEDIATES,)


def test_a_chain_over_the_size_cap_is_refused(pki: Pki, server_context: SSL.Context, tmp_path: Path) -> None:
    bulky = _identity(tmp_path, self_signed(_client()), _unrelated(5, padding=MAX_CHAIN_BYTES // 4))
    with pytest.raises(TLSHandshakeError, match="refused: a chain of"):
        _handshake(pki, server_context, bulky)


def test_an_oversize_chain_is_refused_again_and_never_remembered(
    pki: Pki, server_context: SSL.Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = PeerCertificateCache()
    monkeypatch.setattr(connection, "PEER_CACHE", cache)
    bulky = _identity(tmp_path, self_signed(_client()), _unrelated(5, padding=MAX_CHAIN_BYTES // 4))
    for _ in range(2):
        with pytest.raises(TLSHandshakeError, match="refused: a chain of"):
            _handshake(pki, server_context, bulky)
    assert len(cache) == 0


def test_a_chain_under_the_size_cap_is_accepted(
    pki: Pki, server_context: SSL.Context, tmp_path: Path
) -> None:
    bulky = _identity(tmp_path, self_signed(_client()), _unrelated(4, padding=MAX_CHAIN_BYTES // 6))
    assert _handshake(pki, server_context, bulky) == (4,)


# -- verdicts remembered per certificate ---------------------------------------------------------


def _counting_checks(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Record every key the policy is asked to judge."""
    judged: list[object] = []
    real = policy.check_public_key

    def counting(key: object) -> None:
        judged.append(key)
        real(key)

    monkeypatch.setattr(policy, "check_public_key", counting)
    return judged


def test_a_reconnecting_client_is_not_judged_again(
    pki: Pki, server_context: SSL.Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(policy, "VERDICTS", policy._Verdicts(16))
    judged = _counting_checks(monkeypatch)
    _handshake(pki, server_context, pki.chained)
    first = len(judged)
    assert first >= 1
    _handshake(pki, server_context, pki.chained)
    assert len(judged) == first


def test_a_refusal_is_remembered_and_still_refuses(
    pki: Pki, server_context: SSL.Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(policy, "VERDICTS", policy._Verdicts(16))
    judged = _counting_checks(monkeypatch)
    abusive = _identity(tmp_path, _chain_of(1, key=ec.generate_private_key(ec.SECP256K1())))
    for _ in range(2):
        with pytest.raises(TLSHandshakeError, match="depth 1 has an EC key on curve secp256k1"):
            _handshake(pki, server_context, abusive)
    assert len(judged) == 1


def test_the_verdict_cache_is_bounded_and_keyed_by_the_certificate_sha256(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    verdicts = policy._Verdicts(2)
    judged = _counting_checks(monkeypatch)
    certs = [crypto.X509.from_cryptography(self_signed(_client(f"c{i}")).cert) for i in range(3)]
    assert (
        certificate_sha256(certs[0])
        == hashlib.sha256(certs[0].to_cryptography().public_bytes(Encoding.DER)).digest()
    )
    for cert in certs:
        assert verdicts.judge(cert) is None
    assert len(verdicts) == 2
    verdicts.judge(certs[2])  # remembered
    assert len(judged) == 3
    verdicts.judge(certs[0])  # the oldest was forgotten: judged again
    assert len(judged) == 4
