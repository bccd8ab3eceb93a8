"""SPIFFE bundles (SPIFFE Trust Domain and Bundle §4, X509-SVID §6): keys sorted by `use`,
unknown uses and key types ignored, anything broken of a known kind refused."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from certbound.federation import parse_bundle
from certbound.federation.bundle import MAX_BUNDLE_KEYS
from certbound.jose import public_jwk
from tests.assertion_kit import generate_key
from tests.unit.pki.builders import issue, make_ca, name, self_signed

CA = make_ca(name((NameOID.COMMON_NAME, "example.org CA")))
JWT_KEY = {**generate_key("ES256", kid="svid-1").as_dict(private=False), "use": "jwt-svid"}


def _authority(issued: Any = CA) -> dict[str, Any]:
    der = issued.cert.public_bytes(Encoding.DER)
    return {
        **public_jwk(issued.cert.public_key()),
        "use": "x509-svid",
        "x5c": [base64.b64encode(der).decode()],
    }


def test_keys_are_sorted_by_use() -> None:
    bundle = parse_bundle({"keys": [_authority(), JWT_KEY], "spiffe_refresh_hint": 60, "spiffe_sequence": 7})
    assert [key.kid for key in bundle.jwt_keys] == ["svid-1"]
    assert bundle.x509_authorities == (CA.cert,)
    assert bundle.refresh_hint == 60


def test_unknown_uses_and_key_types_are_ignored() -> None:
    bundle = parse_bundle(
        {
            "keys": [
                {**JWT_KEY, "use": "wit-svid"},
                {**JWT_KEY, "use": "sig"},
                {"kty": "PQC", "use": "jwt-svid", "x": "AA"},
                {**JWT_KEY, "use": None},
                "not an object",
                JWT_KEY,
            ]
        }
    )
    assert len(bundle.jwt_keys) == 1
    assert bundle.x509_authorities == ()
    assert bundle.refresh_hint is None


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "a SPIFFE bundle is a JWK Set"),
        ({"keys": {}}, "a SPIFFE bundle is a JWK Set"),
        ({"keys": [JWT_KEY] * (MAX_BUNDLE_KEYS + 1)}, f"at most {MAX_BUNDLE_KEYS}"),
        ({"keys": [{**JWT_KEY, "d": "AAAA"}]}, "private or symmetric"),
        ({"keys": [{**_authority(), "x5c": []}]}, "x5c that is not a non-empty array"),
        ({"keys": [{**JWT_KEY, "use": "x509-svid"}]}, "has no x5c certificate"),
        ({"keys": [{**_authority(), "x5c": ["not base64!"]}]}, "x5c"),
        (
            {"keys": [_authority(issue(CA, name((NameOID.COMMON_NAME, "leaf"))))]},
            "is not a CA certificate",
        ),
        (
            {"keys": [_authority(self_signed(name((NameOID.COMMON_NAME, "self"))))]},
            "is not a CA certificate",
        ),
        ({"keys": [{**_authority(), "x": JWT_KEY["x"], "y": JWT_KEY["y"]}]}, "holds another key"),
        ({"keys": [JWT_KEY], "spiffe_refresh_hint": "300"}, "spiffe_refresh_hint"),
        ({"keys": [JWT_KEY], "spiffe_refresh_hint": -1}, "spiffe_refresh_hint"),
    ],
)
def test_a_broken_bundle_is_refused(document: object, message: str) -> None:
    with pytest.raises(ValueError, match="bundle") as refused:
        parse_bundle(document)
    assert message in str(refused.value)
