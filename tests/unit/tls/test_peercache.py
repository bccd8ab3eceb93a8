"""Client chains parsed once and shared by the connections presenting them (certbound.tls.peercache):
the same chain gives the same object, another chain its own, and the cache keeps within its entry
and byte bounds (an over-size chain is refused each time and never stored: test_policy.py)."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from OpenSSL import SSL, crypto

from certbound.tls import TLSInfo, connection
from certbound.tls.peer import PeerCertificates
from certbound.tls.peercache import PeerCertificateCache, certificate_sha256
from tests.unit.pki.builders import ca_name, issue, make_ca, name, self_signed

from .conftest import ClientIdentity, ConnectionPair, Pki, client_context


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch) -> PeerCertificateCache:
    fresh = PeerCertificateCache()
    monkeypatch.setattr(connection, "PEER_CACHE", fresh)
    return fresh


def _handshake(pki: Pki, server_context: SSL.Context, identity: ClientIdentity) -> TLSInfo:
    return ConnectionPair(server_context, client_context(pki, identity)).handshake()


def _files(directory: Path, label: str, pem: bytes, key_pem: bytes) -> ClientIdentity:
    chain_file, key_file = directory / f"{label}.pem", directory / f"{label}.key"
    chain_file.write_bytes(pem)
    key_file.write_bytes(key_pem)
    certs = x509.load_pem_x509_certificates(pem)
    return ClientIdentity(certs[0], tuple(certs[1:]), chain_file, key_file)


def test_connections_with_the_same_chain_share_one_parsed_chain(
    pki: Pki, server_context: SSL.Context, cache: PeerCertificateCache
) -> None:
    first = _handshake(pki, server_context, pki.chained).peer
    second = _handshake(pki, server_context, pki.chained).peer
    assert first is not None
    assert first is second
    assert first.leaf == pki.chained.leaf
    assert first.chain == pki.chained.intermediates
    assert len(cache) == 1


def test_another_chain_gets_its_own_entry(
    pki: Pki, server_context: SSL.Context, cache: PeerCertificateCache
) -> None:
    chained = _handshake(pki, server_context, pki.chained).peer
    direct = _handshake(pki, server_context, pki.direct).peer
    assert chained is not None
    assert direct is not None
    assert chained is not direct
    assert direct.leaf == pki.direct.leaf
    assert direct.chain == ()
    assert len(cache) == 2


def test_the_same_leaf_with_another_intermediate_is_another_chain(
    pki: Pki, server_context: SSL.Context, cache: PeerCertificateCache, tmp_path: Path
) -> None:
    issued = issue(
        make_ca(ca_name("intermediate"), parent=make_ca(ca_name("root"))), name((NameOID.COMMON_NAME, "c"))
    )
    extra = self_signed(name((NameOID.COMMON_NAME, "extra"))).cert.public_bytes(Encoding.PEM)
    plain = _files(tmp_path, "plain", issued.chain_pem(), issued.key_pem())
    padded = _files(tmp_path, "padded", issued.chain_pem() + extra, issued.key_pem())
    one = _handshake(pki, server_context, plain).peer
    two = _handshake(pki, server_context, padded).peer
    assert one is not None
    assert two is not None
    assert len(one.chain) + 1 == len(two.chain)
    assert len(cache) == 2


def _entry(label: str, size: int) -> tuple[PeerCertificates, int]:
    return PeerCertificates.from_certs(self_signed(name((NameOID.COMMON_NAME, label))).cert, ()), size


def test_the_cache_keeps_its_entry_bound_least_recently_used_out() -> None:
    cache = PeerCertificateCache(max_entries=2, max_bytes=10_000)
    a, b, c = (_entry(label, 100) for label in "abc")
    cache.get_or_build((b"a",), lambda: a)
    cache.get_or_build((b"b",), lambda: b)
    assert cache.get_or_build((b"a",), lambda: pytest.fail("a is cached")) is a[0]  # a is now newest
    cache.get_or_build((b"c",), lambda: c)
    assert len(cache) == 2
    assert cache.der_bytes == 200
    rebuilt = _entry("b", 100)
    assert cache.get_or_build((b"b",), lambda: rebuilt) is rebuilt[0]  # b was the one dropped


def test_the_cache_keeps_its_byte_bound_and_skips_what_cannot_fit() -> None:
    cache = PeerCertificateCache(max_entries=100, max_bytes=1_000)
    for label in "abc":
        cache.get_or_build((label.encode(),), functools.partial(_entry, label, 400))
    assert len(cache) == 2
    assert cache.der_bytes == 800
    huge = _entry("huge", 1_001)
    assert cache.get_or_build((b"huge",), lambda: huge) is huge[0]
    assert len(cache) == 2
    assert cache.der_bytes == 800


def test_the_key_is_the_sha256_of_each_certificate_sent() -> None:
    leaf, other = (self_signed(name((NameOID.COMMON_NAME, label))).cert for label in ("leaf", "other"))
    as_openssl = [crypto.X509.from_cryptography(cert) for cert in (leaf, other)]
    assert certificate_sha256(as_openssl[0]) == hashlib.sha256(leaf.public_bytes(Encoding.DER)).digest()
    key = PeerCertificateCache.key(as_openssl[0], as_openssl[1:])
    assert key == tuple(hashlib.sha256(cert.public_bytes(Encoding.DER)).digest() for cert in (leaf, other))
