"""SPIFFE IDs (SPIFFE-ID §2) and the leaf rules of an X.509-SVID (X509-SVID §4-5)."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from certbound.pki.rejection import CertificateRejected
from certbound.pki.spiffeid import parse_spiffe_id
from certbound.pki.subject import SPIFFE_ID, registered_subject
from certbound.pki.svid import check_svid_leaf
from certbound.reasons import Reason
from tests.unit.pki.builders import issue, key_usage, make_ca, name

ID = "spiffe://example.org/ns/prod/sa/api"
CA = make_ca(name((NameOID.COMMON_NAME, "example.org CA")))


@pytest.mark.parametrize(
    "value", [ID, "spiffe://a.b-c_d/x", "spiffe://example.org/A.b-C_d/e", "spiffe://1.2.3.4/x"]
)
def test_valid_spiffe_ids(value: str) -> None:
    parsed = parse_spiffe_id(value)
    assert str(parsed) == value


@pytest.mark.parametrize(
    "value",
    [
        None,
        42,
        "https://example.org/x",
        "SPIFFE://example.org/x",
        "spiffe://Example.org/x",
        "spiffe://example.org:8443/x",
        "spiffe://user@example.org/x",
        "spiffe://example.org/",
        "spiffe://example.org//x",
        "spiffe://example.org/./x",
        "spiffe://example.org/x/..",
        "spiffe://example.org/x?y",
        "spiffe://example.org/x#y",
        "spiffe://example.org/x y",
        "spiffe:///x",
        "spiffe://example.org/" + "x" * 2048,
    ],
)
def test_invalid_spiffe_ids(value: object) -> None:
    with pytest.raises(ValueError, match=r"SPIFFE ID|trust domain"):
        parse_spiffe_id(value)


def test_a_workload_needs_a_path_a_trust_domain_does_not() -> None:
    with pytest.raises(ValueError, match="has a path"):
        parse_spiffe_id("spiffe://example.org")
    assert parse_spiffe_id("spiffe://example.org", workload=False).path == ""


def test_spiffe_id_is_one_subject_field_among_the_others() -> None:
    assert registered_subject({SPIFFE_ID: ID}) == (SPIFFE_ID, ID)
    with pytest.raises(ValueError, match="exactly one of"):
        registered_subject({SPIFFE_ID: ID, "tls_client_auth_san_uri": ID})
    with pytest.raises(ValueError, match="spiffe_id is not a workload's SPIFFE ID"):
        registered_subject({SPIFFE_ID: "spiffe://example.org"})


SIGNING = key_usage(digital_signature=True)


def _svid(*uris: str, usage: x509.KeyUsage | None = SIGNING) -> x509.Certificate:
    sans = [x509.UniformResourceIdentifier(uri) for uri in uris]
    return issue(CA, name((NameOID.COMMON_NAME, "w")), sans=sans, usage=usage).cert


def test_an_svid_leaf_passes() -> None:
    check_svid_leaf(_svid(ID), ID)
    check_svid_leaf(_svid(ID, usage=key_usage(digital_signature=True, key_agreement=True)), ID)


@pytest.mark.parametrize(
    ("leaf", "message", "reason"),
    [
        (_svid(), "holds 0", Reason.SVID_INVALID),
        (_svid(ID, ID + "2"), "holds 2", Reason.SVID_INVALID),
        (_svid(ID, usage=None), "allows digitalSignature", Reason.SVID_INVALID),
        (_svid(ID, usage=key_usage(key_encipherment=True)), "allows digitalSignature", Reason.SVID_INVALID),
        (
            _svid(ID, usage=key_usage(digital_signature=True, crl_sign=True)),
            "keyCertSign or cRLSign",
            Reason.SVID_INVALID,
        ),
        (CA.cert, "holds 0", Reason.SVID_INVALID),
        (_svid("spiffe://example.org/other"), "not the client's spiffe_id", Reason.SPIFFE_ID_MISMATCH),
        (
            _svid(ID.upper().replace("SPIFFE://", "spiffe://")),
            "not the client's spiffe_id",
            Reason.SPIFFE_ID_MISMATCH,
        ),
    ],
)
def test_an_svid_leaf_is_refused(leaf: x509.Certificate, message: str, reason: Reason) -> None:
    with pytest.raises(CertificateRejected, match=message) as refused:
        check_svid_leaf(leaf, ID)
    assert refused.value.code is reason


def test_a_ca_holding_a_spiffe_id_is_no_leaf() -> None:
    signing = make_ca(name((NameOID.COMMON_NAME, "intermediate")), parent=CA)
    leaf = issue(
        signing,
        name((NameOID.COMMON_NAME, "ca-as-leaf")),
        sans=[x509.UniformResourceIdentifier(ID)],
        usage=key_usage(digital_signature=True),
    )
    # Rebuilt as a CA with the same SAN: refused before any chain is built.
    forged = (
        x509.CertificateBuilder()
        .subject_name(leaf.cert.subject)
        .issuer_name(CA.cert.subject)
        .public_key(leaf.key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(leaf.cert.not_valid_before_utc)
        .not_valid_after(leaf.cert.not_valid_after_utc)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(ID)]), critical=False)
        .add_extension(key_usage(digital_signature=True), critical=True)
        .sign(CA.key, leaf.cert.signature_hash_algorithm)
    )
    with pytest.raises(CertificateRejected, match="must not be a CA"):
        check_svid_leaf(forged, ID)
