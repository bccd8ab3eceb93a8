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

Path building costs CPU a peer chooses (issue 9 finding 4: eight self-issued intermediates with
one name made cryptography's builder try path after path for a second, until its own budget
stopped it). So before the builder runs, a chain is refused unread when it holds more than
`MAX_INTERMEDIATES` certificates, two certificates with the same subject (compared case- and
space-insensitively, so each issuer name leads to at most one certificate the client sent: no
branching), or a key outside certbound.keypolicy (no huge RSA exponents to verify with). The
builder itself runs on the CPU pool (certbound.cpupool), off the event loop.

A validated path is cached by (leaf, intermediates sent) until the first of its certificates or
consulted CRLs expires, so keep-alive requests and reconnecting clients do not rebuild it; a
refusal is cached too, for `REFUSAL_SECONDS`, so repeating a refused chain costs a lookup. Both
caches are bounded LRUs.
"""

from __future__ import annotations

import datetime
import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
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

from certbound.cpupool import CpuPool
from certbound.errors import ConfigError
from certbound.keypolicy import MAX_INTERMEDIATES, KeyPolicyError, check_public_key
from certbound.pki.crl import RevocationLists, load_crls
from certbound.pki.rejection import CertificateRejected
from certbound.reasons import Reason
from certbound.tls.peer import PeerCertificates

__all__ = ["REFUSAL_SECONDS", "ClientTrust", "TrustStore", "VerifiedPath"]

#: How long a refused (leaf, intermediates) pair is answered from memory.
REFUSAL_SECONDS = 30
_REFUSAL_PERIOD = datetime.timedelta(seconds=REFUSAL_SECONDS)
_CACHE_ENTRIES = 4096

_CacheKey = tuple[str, tuple[x509.Certificate, ...]]
_V = TypeVar("_V")


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


def _name_key(name: x509.Name) -> tuple[tuple[tuple[str, str], ...], ...]:
    # RFC 5280 §7.1 compares names case-insensitively with spaces folded: so does this check, so
    # no two certificates the builder might take for one issuer get past it.
    return tuple(
        tuple(
            sorted(
                (attribute.oid.dotted_string, " ".join(str(attribute.value).casefold().split()))
                for attribute in rdn
            )
        )
        for rdn in name.rdns
    )


def _precheck(peer: PeerCertificates) -> None:
    """Refuse, before any signature is checked, what would make path building expensive."""
    if len(peer.chain) > MAX_INTERMEDIATES:
        raise CertificateRejected(
            f"more than {MAX_INTERMEDIATES} intermediate certificates", code=Reason.TOO_MANY_INTERMEDIATES
        )
    try:
        subjects = {_name_key(cert.subject) for cert in peer.chain}
        keys = [cert.public_key() for cert in (peer.leaf, *peer.chain)]
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CertificateRejected(f"malformed certificate: {exc}", code=Reason.CERT_MALFORMED) from None
    if len(subjects) != len(peer.chain):
        raise CertificateRejected("two of the intermediate certificates sent have the same subject")
    for key in keys:
        try:
            check_public_key(key)
        except KeyPolicyError as exc:
            raise CertificateRejected(
                f"a certificate of the chain holds {exc}", code=Reason.KEY_OUT_OF_POLICY
            ) from None


def _remember(cache: OrderedDict[_CacheKey, _V], key: _CacheKey, value: _V) -> None:
    cache[key] = value
    cache.move_to_end(key)
    if len(cache) > _CACHE_ENTRIES:
        cache.popitem(last=False)


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


def _code(peer: PeerCertificates, now: datetime.datetime) -> Reason:
    """The reason code of a failed validation: an expired (or not yet valid) leaf is told apart,
    anything else (unknown issuer, bad signature, constraints, usage) is an untrusted chain."""
    leaf = peer.leaf
    if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
        return Reason.CERT_EXPIRED
    return Reason.CHAIN_UNTRUSTED


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
        self._paths: OrderedDict[_CacheKey, VerifiedPath] = OrderedDict()
        #: (the refusal, when refused)
        self._refusals: OrderedDict[_CacheKey, tuple[CertificateRejected, datetime.datetime]] = OrderedDict()

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

    async def verify(
        self, peer: PeerCertificates, *, pool: CpuPool | None = None, now: datetime.datetime | None = None
    ) -> VerifiedPath:
        """The validated path of `peer` (cached); raises CertificateRejected. The path builder runs
        on `pool` when one is given, else inline."""
        now = now or datetime.datetime.now(datetime.UTC)
        key = (peer.x5t_s256, peer.chain)
        cached = self._paths.get(key)
        if cached is not None and now < cached.valid_until:
            self._paths.move_to_end(key)
            return cached
        refused = self._refusals.get(key)
        if refused is not None and refused[1] <= now < refused[1] + _REFUSAL_PERIOD:
            raise CertificateRejected(refused[0].reason, code=refused[0].code)
        try:
            store = self._store
            if store is None:
                raise CertificateRejected(
                    "no client CA is configured (--client-ca)", code=Reason.NO_CLIENT_CA
                )
            _precheck(peer)
            if pool is None:
                path = self._validate(store, peer, now)
            else:
                path = await pool.run(self._validate, store, peer, now)
        except CertificateRejected as exc:
            _remember(self._refusals, key, (exc, now))
            raise
        _remember(self._paths, key, path)
        return path

    def _validate(self, store: Store, peer: PeerCertificates, now: datetime.datetime) -> VerifiedPath:
        """Path building, signatures and CRLs: touches no cache, so it may run on a pool thread."""
        verifier = (
            PolicyBuilder()
            .store(store)
            .time(now)
            .extension_policies(ca_policy=_CA_POLICY, ee_policy=_LEAF_POLICY)
            .build_client_verifier()
        )
        try:
            verified = verifier.verify(peer.leaf, list(peer.chain))
        except VerificationError as exc:
            raise CertificateRejected(_reason(exc), code=_code(peer, now)) from None
        except (ValueError, x509.UnsupportedGeneralNameType, x509.DuplicateExtension) as exc:
            # Lazily parsed extensions that turn out malformed.
            raise CertificateRejected(f"malformed certificate: {exc}", code=Reason.CERT_MALFORMED) from None
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

    async def verify(self, peer: PeerCertificates, *, pool: CpuPool | None = None) -> VerifiedPath:
        return await self._current.verify(peer, pool=pool)

    def load_next(self) -> TrustStore:
        """Re-read the files into the next store (ConfigError when one cannot be used), not yet in
        use: a reload installs it only once everything else it reloads could be read too."""
        return TrustStore.load(self._ca_files, self._crl_files, generation=self._current.generation + 1)

    def install(self, store: TrustStore) -> None:
        self._current = store
