"""Client certificate path validation, CRLs, the verdict cache and reloads (RFC 8705 §2.1,
RFC 5280 §6 and §6.3)."""

from __future__ import annotations

import datetime
import hashlib
import logging
import threading
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import Store

from certbound.cpupool import CpuPool
from certbound.errors import ConfigError
from certbound.keypolicy import MAX_INTERMEDIATES
from certbound.pki.crl import RevocationLists, load_crls
from certbound.pki.rejection import CertificateRejected
from certbound.pki.trust import REFUSAL_SECONDS, ClientTrust, TrustStore, VerifiedPath
from certbound.tls.peer import PeerCertificates
from tests.unit.pki.builders import (
    DAY,
    NOW,
    Issued,
    PrivateKey,
    ca_name,
    huge_exponent_key,
    issue,
    key_usage,
    make_ca,
    make_crl,
    name,
    new_key,
)

CLIENT = name((NameOID.COMMON_NAME, "client"))


def peer_of(issued: Issued) -> PeerCertificates:
    return PeerCertificates.from_certs(issued.cert, issued.chain)


def der_sha256(cert: x509.Certificate) -> bytes:
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).digest()


@pytest.fixture(scope="module")
def root() -> Issued:
    return make_ca(ca_name("Root CA"))


@pytest.fixture(scope="module")
def intermediate(root: Issued) -> Issued:
    return make_ca(ca_name("Issuing CA"), parent=root)


@pytest.fixture
def store(root: Issued) -> TrustStore:
    return TrustStore([root.cert])


async def test_trustme_leaf_with_intermediate_validates() -> None:
    ca = trustme.CA()
    leaf = ca.create_child_ca().issue_cert("client.example.com")
    certs = [x509.load_pem_x509_certificate(blob.bytes()) for blob in leaf.cert_chain_pems]
    store = TrustStore([x509.load_pem_x509_certificate(ca.cert_pem.bytes())])
    path = await store.verify(PeerCertificates.from_certs(certs[0], certs[1:]))
    # trustme marks subjectAltName critical: the leaf profile must allow it.
    assert len(path.chain) == 3


async def test_path_through_intermediate(store: TrustStore, root: Issued, intermediate: Issued) -> None:
    leaf = issue(intermediate, CLIENT)
    path = await store.verify(peer_of(leaf))
    assert path.chain == (leaf.cert, intermediate.cert, root.cert)
    assert path.anchor == root.cert
    assert path.ca_sha256 == {der_sha256(intermediate.cert), der_sha256(root.cert)}
    assert path.valid_until == min(cert.not_valid_after_utc for cert in path.chain)


async def test_missing_intermediate_is_refused(store: TrustStore, intermediate: Issued) -> None:
    leaf = issue(intermediate, CLIENT, send_chain=False)
    with pytest.raises(CertificateRejected):
        await store.verify(peer_of(leaf))


async def test_untrusted_ca_is_refused(store: TrustStore) -> None:
    stranger = make_ca(ca_name("Root CA"))  # even with the trusted root's name
    with pytest.raises(CertificateRejected):
        await store.verify(peer_of(issue(stranger, CLIENT)))


async def test_self_signed_leaf_is_refused(store: TrustStore) -> None:
    self_signed = make_ca(CLIENT)
    with pytest.raises(CertificateRejected):
        await store.verify(peer_of(self_signed))


@pytest.mark.parametrize(
    ("not_before", "not_after"),
    [(NOW - 10 * DAY, NOW - DAY), (NOW + DAY, NOW + 10 * DAY)],
    ids=["expired", "not-yet-valid"],
)
async def test_validity_period(
    store: TrustStore, root: Issued, not_before: datetime.datetime, not_after: datetime.datetime
) -> None:
    leaf = issue(root, CLIENT, not_before=not_before, not_after=not_after)
    with pytest.raises(CertificateRejected, match="not valid at validation time"):
        await store.verify(peer_of(leaf))
    # Twin: the same certificate inside its period.
    assert (await store.verify(peer_of(leaf), now=not_before + datetime.timedelta(hours=1))).chain[
        0
    ] == leaf.cert


@pytest.mark.parametrize(
    ("eku", "accepted"),
    [
        ([ExtendedKeyUsageOID.CLIENT_AUTH], True),
        ([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH], True),
        (None, True),
        ([ExtendedKeyUsageOID.SERVER_AUTH], False),
        ([ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE], False),
        ([ExtendedKeyUsageOID.CODE_SIGNING], False),
    ],
)
async def test_extended_key_usage(
    store: TrustStore, root: Issued, eku: list[x509.ObjectIdentifier] | None, accepted: bool
) -> None:
    peer = peer_of(issue(root, CLIENT, eku=eku))
    if accepted:
        await store.verify(peer)
    else:
        with pytest.raises(CertificateRejected, match="clientAuth"):
            await store.verify(peer)


@pytest.mark.parametrize(
    ("allowed", "refusal"),
    [
        ({"digital_signature": True}, None),
        ({"digital_signature": True, "key_encipherment": True, "key_agreement": True}, None),
        ({"key_encipherment": True}, "does not allow digitalSignature"),
        ({"content_commitment": True, "key_agreement": True}, "does not allow digitalSignature"),
        ({"digital_signature": True, "key_cert_sign": True}, "must not allow keyCertSign"),
    ],
)
async def test_leaf_key_usage(
    store: TrustStore, root: Issued, allowed: dict[str, bool], refusal: str | None
) -> None:
    peer = peer_of(issue(root, CLIENT, usage=key_usage(**allowed)))
    if refusal is None:
        assert (await store.verify(peer)).chain[0] == peer.leaf
    else:
        with pytest.raises(CertificateRejected, match=refusal):
            await store.verify(peer)


async def test_a_ca_certificate_is_not_a_client_certificate(store: TrustStore, root: Issued) -> None:
    with pytest.raises(CertificateRejected):
        await store.verify(peer_of(make_ca(CLIENT, parent=root)))


async def test_subject_alt_name_is_optional_and_may_be_critical(store: TrustStore, root: Issued) -> None:
    await store.verify(peer_of(issue(root, CLIENT)))
    await store.verify(peer_of(issue(root, CLIENT, sans=[x509.DNSName("a.example")], san_critical=True)))


async def test_too_many_intermediates(store: TrustStore, root: Issued) -> None:
    leaf = issue(root, CLIENT)
    padding = [root.cert] * (MAX_INTERMEDIATES + 1)
    with pytest.raises(CertificateRejected, match="intermediate"):
        await store.verify(PeerCertificates.from_certs(leaf.cert, padding))


async def test_no_configured_ca_refuses_everything(root: Issued) -> None:
    with pytest.raises(CertificateRejected, match="no client CA"):
        await TrustStore([]).verify(peer_of(issue(root, CLIENT)))


# -- CRLs ---------------------------------------------------------------------------------------


async def test_revoked_leaf_of_root(root: Issued) -> None:
    revoked, kept = issue(root, CLIENT), issue(root, CLIENT)
    store = TrustStore([root.cert], RevocationLists([make_crl(root, [revoked.cert.serial_number])]))
    with pytest.raises(CertificateRejected, match="revoked"):
        await store.verify(peer_of(revoked))
    path = await store.verify(peer_of(kept))
    assert path.valid_until <= NOW + 7 * DAY  # the CRL's nextUpdate bounds the cached verdict


async def test_revoked_leaf_of_intermediate(root: Issued, intermediate: Issued) -> None:
    revoked, kept = issue(intermediate, CLIENT), issue(intermediate, CLIENT)
    crl = make_crl(intermediate, [revoked.cert.serial_number])
    store = TrustStore([root.cert], RevocationLists([crl]))
    with pytest.raises(CertificateRejected, match="revoked"):
        await store.verify(peer_of(revoked))
    await store.verify(peer_of(kept))


async def test_revoked_intermediate(root: Issued) -> None:
    middle = make_ca(ca_name("Revoked Issuing CA"), parent=root)
    leaf = issue(middle, CLIENT)
    store = TrustStore([root.cert], RevocationLists([make_crl(root, [middle.cert.serial_number])]))
    with pytest.raises(CertificateRejected, match="revoked"):
        await store.verify(peer_of(leaf))


async def test_issuer_without_crl_is_not_checked(root: Issued, intermediate: Issued) -> None:
    # Only the intermediate has a CRL; a leaf issued by the root is not checked.
    store = TrustStore([root.cert], RevocationLists([make_crl(intermediate, [1, 2, 3])]))
    await store.verify(peer_of(issue(root, CLIENT)))


async def test_expired_crl_fails_closed(root: Issued, caplog: pytest.LogCaptureFixture) -> None:
    crl = make_crl(root, [], next_update=NOW - datetime.timedelta(hours=1))
    store = TrustStore([root.cert], RevocationLists([crl]))
    with (
        caplog.at_level(logging.ERROR, logger="certbound.pki"),
        pytest.raises(CertificateRejected, match="out of date"),
    ):
        await store.verify(peer_of(issue(root, CLIENT)))
    assert "expired" in caplog.text


async def test_forged_crl_of_an_intermediate_fails_closed(root: Issued, intermediate: Issued) -> None:
    forged = make_crl(intermediate, [], signer=root.key)
    store = TrustStore([root.cert], RevocationLists([forged]))
    with pytest.raises(CertificateRejected, match="no valid CRL"):
        await store.verify(peer_of(issue(intermediate, CLIENT)))


def test_forged_crl_of_a_configured_ca_is_a_configuration_error(root: Issued, tmp_path: Path) -> None:
    other = make_ca(ca_name("Elsewhere"))
    crl_file = tmp_path / "forged.crl"
    crl_file.write_bytes(make_crl(root, [], signer=other.key).public_bytes(Encoding.PEM))
    with pytest.raises(ConfigError, match="not signed"):
        load_crls([crl_file], [root.cert])


async def test_crl_of_a_same_named_ca_does_not_apply(root: Issued) -> None:
    twin = make_ca(ca_name("Root CA"))  # same DN, other key
    leaf = issue(twin, CLIENT)
    store = TrustStore([root.cert, twin.cert], RevocationLists([make_crl(root, [leaf.cert.serial_number])]))
    await store.verify(peer_of(leaf))  # the root's CRL lists that serial, but it is not the twin's CRL


def test_crl_files_pem_bundle_and_der(root: Issued, intermediate: Issued, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(
        make_crl(root, [7]).public_bytes(Encoding.PEM)
        + make_crl(intermediate, [8]).public_bytes(Encoding.PEM)
    )
    der = tmp_path / "one.crl"
    der.write_bytes(make_crl(root, [9]).public_bytes(Encoding.DER))
    assert len(load_crls([bundle, der], [root.cert])) == 3
    garbage = tmp_path / "garbage.crl"
    garbage.write_bytes(b"not a crl")
    with pytest.raises(ConfigError, match=r"garbage\.crl"):
        load_crls([garbage], [root.cert])
    with pytest.raises(ConfigError, match=r"missing\.crl"):
        load_crls([tmp_path / "missing.crl"], [root.cert])


# -- cache and reload ---------------------------------------------------------------------------


@pytest.fixture
def validations(monkeypatch: pytest.MonkeyPatch) -> list[datetime.datetime]:
    """The `now` of every path-builder run (TrustStore._validate) during the test."""
    calls: list[datetime.datetime] = []
    original = TrustStore._validate

    def counting(
        self: TrustStore, store: Store, peer: PeerCertificates, now: datetime.datetime
    ) -> VerifiedPath:
        calls.append(now)
        return original(self, store, peer, now)

    monkeypatch.setattr(TrustStore, "_validate", counting)
    return calls


async def test_verdict_is_cached_until_it_expires(
    store: TrustStore, root: Issued, validations: list[datetime.datetime]
) -> None:
    peer = peer_of(issue(root, CLIENT, not_after=NOW + 2 * DAY))
    first = await store.verify(peer)
    assert await store.verify(peer) is first
    assert await store.verify(peer_of(Issued(peer.leaf, root.key))) is first  # same certificate, new object
    assert len(validations) == 1
    # Past the leaf's expiry the verdict is recomputed, and now fails.
    with pytest.raises(CertificateRejected):
        await store.verify(peer, now=NOW + 3 * DAY)
    assert len(validations) == 2


async def test_refusals_are_cached_briefly(store: TrustStore, validations: list[datetime.datetime]) -> None:
    stranger = make_ca(ca_name("Stranger"))
    peer = peer_of(issue(stranger, CLIENT))
    for seconds in (0, 1, REFUSAL_SECONDS - 1):
        with pytest.raises(CertificateRejected) as refused:
            await store.verify(peer, now=NOW + datetime.timedelta(seconds=seconds))
    assert len(validations) == 1
    assert "candidates exhausted" in refused.value.reason  # the cached reason is the builder's
    # Once the refusal is older than REFUSAL_SECONDS the path is built again.
    with pytest.raises(CertificateRejected):
        await store.verify(peer, now=NOW + datetime.timedelta(seconds=REFUSAL_SECONDS))
    assert len(validations) == 2
    # Another certificate is not answered from that refusal.
    with pytest.raises(CertificateRejected):
        await store.verify(peer_of(issue(stranger, CLIENT)), now=NOW)
    assert len(validations) == 3


async def test_the_refusal_cache_is_bounded(
    store: TrustStore, validations: list[datetime.datetime], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("certbound.pki.trust._CACHE_ENTRIES", 3)
    stranger = make_ca(ca_name("Stranger"))
    peers = [peer_of(issue(stranger, CLIENT)) for _ in range(4)]
    for peer in peers:
        with pytest.raises(CertificateRejected):
            await store.verify(peer, now=NOW)
    assert len(validations) == 4
    with pytest.raises(CertificateRejected):
        await store.verify(peers[-1], now=NOW)  # still remembered
    assert len(validations) == 4
    with pytest.raises(CertificateRejected):
        await store.verify(peers[0], now=NOW)  # the oldest was dropped
    assert len(validations) == 5


async def test_the_path_builder_runs_on_the_pool(store: TrustStore, root: Issued) -> None:
    pool = CpuPool(threads=1, queue=0)
    threads: list[str] = []
    original = TrustStore._validate

    def recording(
        self: TrustStore, store: Store, peer: PeerCertificates, now: datetime.datetime
    ) -> VerifiedPath:
        threads.append(threading.current_thread().name)
        return original(self, store, peer, now)

    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(TrustStore, "_validate", recording)
            path = await store.verify(peer_of(issue(root, CLIENT)), pool=pool)
        assert path.anchor == root.cert
        assert threads[0].startswith("certbound-cpu")
    finally:
        pool.close()


# -- pre-checks: refused before the path builder runs (issue 9 finding 4) ------------------------


def _self_issued_loop(count: int, key: PrivateKey) -> list[x509.Certificate]:
    """`count` CA certificates with one subject, each a valid issuer of every other."""
    return [make_ca(ca_name("Loop CA"), key=key).cert for _ in range(count)]


async def test_self_issued_same_name_intermediates_are_refused_unbuilt(
    store: TrustStore, validations: list[datetime.datetime]
) -> None:
    key = new_key()
    loop = _self_issued_loop(MAX_INTERMEDIATES, key)
    leaf = issue(Issued(loop[0], key), CLIENT, send_chain=False)
    with pytest.raises(CertificateRejected, match="same subject"):
        await store.verify(PeerCertificates.from_certs(leaf.cert, loop))
    assert validations == []
    # Twin: one of them alone is an ordinary (untrusted) chain, which the builder does examine.
    with pytest.raises(CertificateRejected, match="candidates exhausted"):
        await store.verify(PeerCertificates.from_certs(leaf.cert, loop[:1]))
    assert len(validations) == 1


@pytest.mark.parametrize("spelling", ["loop ca", "LOOP  CA", " Loop CA "])
async def test_subjects_differing_only_in_case_or_spaces_are_the_same_subject(
    store: TrustStore, root: Issued, spelling: str, validations: list[datetime.datetime]
) -> None:
    first = make_ca(ca_name("Loop CA"), parent=root)
    second = make_ca(ca_name(spelling), parent=root)
    leaf = issue(first, CLIENT, send_chain=False)
    with pytest.raises(CertificateRejected, match="same subject"):
        await store.verify(PeerCertificates.from_certs(leaf.cert, [first.cert, second.cert]))
    assert validations == []


async def test_distinct_intermediates_up_to_the_limit_validate(store: TrustStore, root: Issued) -> None:
    issuer = root
    for level in range(MAX_INTERMEDIATES):
        issuer = make_ca(ca_name(f"Level {level}"), parent=issuer)
    leaf = issue(issuer, CLIENT)
    assert len(leaf.chain) == MAX_INTERMEDIATES
    path = await store.verify(peer_of(leaf))
    assert len(path.chain) == MAX_INTERMEDIATES + 2


@pytest.mark.parametrize("holder", ["leaf", "intermediate"])
async def test_a_key_outside_the_policy_is_refused_unbuilt(
    store: TrustStore, root: Issued, holder: str, validations: list[datetime.datetime]
) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    if holder == "leaf":
        leaf = issue(root, CLIENT, key=weak)
    else:
        leaf = issue(make_ca(ca_name("Weak CA"), parent=root, key=weak), CLIENT)
    with pytest.raises(CertificateRejected, match="holds an RSA key of 1024 bits"):
        await store.verify(peer_of(leaf))
    assert validations == []


async def test_a_huge_exponent_intermediate_is_refused_unbuilt(
    store: TrustStore, root: Issued, validations: list[datetime.datetime]
) -> None:
    middle = make_ca(ca_name("Huge exponent CA"), parent=root, key=huge_exponent_key(2048))
    with pytest.raises(CertificateRejected, match="public exponent of 2047 bits"):
        await store.verify(peer_of(issue(middle, CLIENT)))
    assert validations == []


async def test_reload_swaps_the_store_and_keeps_it_on_error(root: Issued, tmp_path: Path) -> None:
    ca_file = tmp_path / "client-ca.pem"
    ca_file.write_bytes(root.pem())
    trust = ClientTrust([ca_file], [])
    newcomer = make_ca(ca_name("New CA"))
    peer = peer_of(issue(newcomer, CLIENT))
    with pytest.raises(CertificateRejected):
        await trust.verify(peer)

    ca_file.write_bytes(root.pem() + newcomer.pem())
    reloaded = trust.load_next()
    assert reloaded is not trust.current  # read, not yet in use
    with pytest.raises(CertificateRejected):
        await trust.verify(peer)
    trust.install(reloaded)
    assert reloaded.generation == 2
    await trust.verify(peer)

    ca_file.write_bytes(b"-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n")
    with pytest.raises(ConfigError, match=r"client-ca\.pem"):
        trust.load_next()
    assert trust.current is reloaded
    await trust.verify(peer)


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.pem"):
        TrustStore.load([tmp_path / "nope.pem"], [])
    empty = tmp_path / "empty.pem"
    empty.write_bytes(b"")
    with pytest.raises(ConfigError, match=r"empty\.pem"):
        TrustStore.load([empty], [])
