"""Client certificate path validation for tls_client_auth (RFC 8705 §2.1, RFC 5280 §6, SPEC §8).

`TrustStore` is one immutable trust configuration: the client CA bundle(s) (`--client-ca`), their
CRLs (`--client-crl`) and a cache of validated paths. `ClientTrust` holds the current one and
swaps in a new one on reload (SIGHUP); each store has its own generation and cache, so a reload
invalidates every cached verdict at once.

Validation is cryptography's `x509.verification` client verifier: path building from the leaf
through the intermediates the client sent to a configured CA, signatures, validity periods,
basic constraints, name constraints and CA key usage (CA/B Forum profile for CAs). For the leaf
the web-PKI profile is relaxed where client certificates differ from server ones:
subjectAltName is optional and may be critical (a DN-only client certificate has none, and trustme
marks it critical), and the extended key usage, when present, must contain clientAuth (not merely
anyExtendedKeyUsage); a keyUsage, when present, must allow digitalSignature (the client signs the
TLS handshake) and must not allow certificate signing.

A validated path is cached by (leaf, intermediates sent) until the first of its certificates or
consulted CRLs expires, so keep-alive requests and reconnecting clients do not rebuild it; only
successes are cached, in a bounded LRU.
"""

from __future__ import annotations

import datetime
import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    Policy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from certbound.errors import ConfigError
from certbound.pki.crl import RevocationLists, load_crls
from certbound.pki.rejection import CertificateRejected
from certbound.tls.peer import PeerCertificates
from certbound.tls.policy import MAX_INTERMEDIATES

__all__ = ["MAX_INTERMEDIATES", "ClientTrust", "TrustStore", "VerifiedPath"]

_CACHE_ENTRIES = 4096


def _require_client_auth(policy: Policy, cert: x509.Certificate, eku: x509.ExtendedKeyUsage | None) -> None:
    if eku is not None and ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
        raise ValueError("the extended key usage does not include clientAuth")


def _require_signing_usage(policy: Policy, cert: x509.Certificate, usage: x509.KeyUsage | None) -> None:
    if usage is None:
        return
    if not usage.digital_signature:
        raise ValueError("the key usage does not allow digitalSignature")
    if usage.key_cert_sign:
        raise ValueError("an end-entity certificate must not allow keyCertSign")


def _client_leaf_policy() -> ExtensionPolicy:
    return (
        ExtensionPolicy.webpki_defaults_ee()
        .may_be_present(x509.SubjectAlternativeName, Criticality.AGNOSTIC, None)
        .may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, _require_client_auth)
        .may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, _require_signing_usage)
    )


_LEAF_POLICY = _client_leaf_policy()
_CA_POLICY = ExtensionPolicy.webpki_defaults_ca()


@dataclass(frozen=True, slots=True)
class VerifiedPath:
    """A validated path, leaf first and configured CA last."""

    chain: tuple[x509.Certificate, ...]
    #: SHA-256 of the DER of every CA certificate in the path (issuing CA up to the trust anchor).
    ca_sha256: frozenset[bytes]
    #: When this verdict must be recomputed: the first expiry among the path and consulted CRLs.
    valid_until: datetime.datetime

    @property
    def anchor(self) -> x509.Certificate:
        return self.chain[-1]


def _reason(exc: VerificationError) -> str:
    # cryptography appends "(encountered processing <Certificate(...)>)": the caller logs the
    # certificate itself, so keep the reason short.
    return str(exc).split(" (encountered processing", 1)[0]


class TrustStore:
    """One trust configuration: CA anchors, CRLs, and the cache of paths validated against them."""

    def __init__(
        self,
        anchors: Sequence[x509.Certificate],
        revocation: RevocationLists | None = None,
        *,
        generation: int = 1,
    ) -> None:
        self.generation = generation
        self.anchors = tuple(anchors)
        self.revocation = revocation if revocation is not None else RevocationLists(())
        self._store = Store(list(self.anchors)) if self.anchors else None
        self._cache: OrderedDict[tuple[str, tuple[x509.Certificate, ...]], VerifiedPath] = OrderedDict()

    @classmethod
    def load(cls, ca_files: Sequence[Path], crl_files: Sequence[Path], *, generation: int = 1) -> TrustStore:
        """Read the client CA bundles and CRL files; ConfigError names a file that cannot be used."""
        anchors: list[x509.Certificate] = []
        for path in ca_files:
            try:
                anchors.extend(x509.load_pem_x509_certificates(path.read_bytes()))
            except OSError as exc:
                raise ConfigError(f"cannot read --client-ca {path}: {exc.strerror}") from None
            except ValueError as exc:
                raise ConfigError(f"cannot load --client-ca {path}: {exc}") from None
        return cls(anchors, load_crls(crl_files, anchors), generation=generation)

    def verify(self, peer: PeerCertificates, *, now: datetime.datetime | None = None) -> VerifiedPath:
        """The validated path of `peer` (cached); raises CertificateRejected."""
        now = now or datetime.datetime.now(datetime.UTC)
        key = (peer.x5t_s256, peer.chain)
        cached = self._cache.get(key)
        if cached is not None and now < cached.valid_until:
            self._cache.move_to_end(key)
            return cached
        path = self._validate(peer, now)
        self._cache[key] = path
        if len(self._cache) > _CACHE_ENTRIES:
            self._cache.popitem(last=False)
        return path

    def _validate(self, peer: PeerCertificates, now: datetime.datetime) -> VerifiedPath:
        if self._store is None:
            raise CertificateRejected("no client CA is configured (--client-ca)")
        if len(peer.chain) > MAX_INTERMEDIATES:
            raise CertificateRejected(f"more than {MAX_INTERMEDIATES} intermediate certificates")
        verifier = (
            PolicyBuilder()
            .store(self._store)
            .time(now)
            .extension_policies(ca_policy=_CA_POLICY, ee_policy=_LEAF_POLICY)
            .build_client_verifier()
        )
        try:
            verified = verifier.verify(peer.leaf, list(peer.chain))
        except VerificationError as exc:
            raise CertificateRejected(_reason(exc)) from None
        except (ValueError, x509.UnsupportedGeneralNameType, x509.DuplicateExtension) as exc:
            # Lazily parsed extensions that turn out malformed.
            raise CertificateRejected(f"malformed certificate: {exc}") from None
        chain = tuple(verified.chain)
        crl_expiry = self.revocation.check(chain, now)
        valid_until = min(cert.not_valid_after_utc for cert in chain)
        if crl_expiry is not None:
            valid_until = min(valid_until, crl_expiry)
        return VerifiedPath(
            chain=chain,
            ca_sha256=frozenset(
                hashlib.sha256(cert.public_bytes(Encoding.DER)).digest() for cert in chain[1:]
            ),
            valid_until=valid_until,
        )


class ClientTrust:
    """The current `TrustStore`, reloadable from the same files (SIGHUP)."""

    def __init__(self, ca_files: Sequence[Path], crl_files: Sequence[Path]) -> None:
        self._ca_files = tuple(ca_files)
        self._crl_files = tuple(crl_files)
        self._current = TrustStore.load(self._ca_files, self._crl_files)

    @property
    def current(self) -> TrustStore:
        return self._current

    def verify(self, peer: PeerCertificates) -> VerifiedPath:
        return self._current.verify(peer)

    def reload(self) -> TrustStore:
        """Re-read the files. On ConfigError the current store stays in place (the caller logs)."""
        self._current = TrustStore.load(
            self._ca_files, self._crl_files, generation=self._current.generation + 1
        )
        return self._current
