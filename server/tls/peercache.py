"""Client chains seen recently, parsed once and shared by the connections that present them.

Every mutual-TLS connection used to convert its client's certificates from OpenSSL's form into
`cryptography` objects and keep its own copy: on a new-connection load that is repeated work, and a
worker holding many idle connections from the same clients kept as many copies of the same leaf
(its DER, its parsed subject). Connections presenting a chain this cache holds now share one
immutable :class:`~certbound.tls.peer.PeerCertificates`; its identity is the SHA-256 of every
certificate the client sent, so two chains share an entry only when they are byte for byte the same.

The cache is bounded by entries and by the DER bytes it holds (the chain bounds of
:mod:`certbound.tls.policy` apply before anything is stored), so a peer sending new chains only
misses it: a digest per certificate (~2 µs) is all that costs beyond the conversion it would have
paid anyway. Measured with scripts/idle_connections.py (1,000 idle connections of one client):
47.6 KiB per connection before, 44.1 KiB after.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from OpenSSL import crypto
from OpenSSL._util import ffi as _ffi
from OpenSSL._util import lib as _openssl_lib

from certbound.lru import LRU

from .peer import PeerCertificates

__all__ = ["PEER_CACHE", "PeerCertificateCache", "certificate_sha256"]

_SHA256 = _openssl_lib.EVP_get_digestbyname(b"sha256")

#: Chains remembered per process, and the DER bytes they may hold in all (a client chain is
#: 1-6 KB; the largest the handshake bounds admit is 32 KiB).
MAX_ENTRIES = 512
MAX_BYTES = 2 * 1024 * 1024


def certificate_sha256(cert: crypto.X509) -> bytes:
    """SHA-256 of the certificate's DER, computed by OpenSSL without copying the DER into Python
    (pyOpenSSL's X509.digest formats hex with colons: 5x slower)."""
    out = _ffi.new("unsigned char[]", 64)
    length = _ffi.new("unsigned int *")
    if not _openssl_lib.X509_digest(cert._x509, _SHA256, out, length):
        raise ValueError("X509_digest failed")
    return bytes(_ffi.buffer(out, length[0]))


ChainKey = tuple[bytes, ...]


class PeerCertificateCache:
    """PeerCertificates by the SHA-256 of each certificate sent (leaf first), least recently
    used first out."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES) -> None:
        self._entries: LRU[ChainKey, PeerCertificates] = LRU(max_entries, max_bytes)

    @staticmethod
    def key(leaf: crypto.X509, chain: Sequence[crypto.X509]) -> ChainKey:
        return (certificate_sha256(leaf), *(certificate_sha256(cert) for cert in chain))

    def get_or_build(
        self, key: ChainKey, build: Callable[[], tuple[PeerCertificates, int]]
    ) -> PeerCertificates:
        """The cached chain under `key`, else `build()`'s (its PeerCertificates and DER size),
        which is remembered if it fits. `build` raising leaves the cache as it was."""
        entries = self._entries
        if key in entries:
            return entries[key]
        peer, size = build()
        entries.put(key, peer, weight=size)
        return peer

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def der_bytes(self) -> int:
        return self._entries.weight


PEER_CACHE = PeerCertificateCache()
