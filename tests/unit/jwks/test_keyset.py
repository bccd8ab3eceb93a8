"""JWK Set registration checks (issue 9 findings 3 and 13): a cap on members, duplicates dropped,
the key policy, one key per (type, kid), x5c consistent with the key."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from joserfc.jwk import ECKey, OKPKey, RSAKey

from certbound.config import Settings
from certbound.errors import InvalidClientMetadataError
from certbound.jose import public_jwk
from certbound.jwks import MAX_KEYS, parse_jwks, require_key_source
from tests.assertion_kit import generate_key, public_jwks
from tests.unit.pki.builders import huge_exponent_key, name, self_signed, x5c_of

SUBJECT = name((NameOID.COMMON_NAME, "client"))


def _refused(jwks: Any, match: str) -> None:
    with pytest.raises(InvalidClientMetadataError, match=match):
        parse_jwks(jwks)


def test_every_key_type_decodes_and_keeps_its_members() -> None:
    rsa_key, ec_key, okp = (
        generate_key("RS256", kid="r"),
        generate_key("ES384", kid="e"),
        generate_key("EdDSA"),
    )
    jwks = public_jwks(rsa_key, ec_key, okp)
    jwks["keys"][1]["use"] = "sig"
    keys = parse_jwks(jwks)
    assert [type(key) for key in keys] == [RSAKey, ECKey, OKPKey]
    assert [key.kid for key in keys] == ["r", "e", None]
    assert keys[1].get("use") == "sig"
    assert all(not key.is_private for key in keys)


@pytest.mark.parametrize(
    ("jwks", "problem"),
    [
        ([], "not a JWK Set"),
        ({"keys": {}}, "not a JWK Set"),
        ({"keys": []}, "holds no keys"),
        ({"keys": ["x"]}, "jwks key 0 is not a JSON object"),
        ({"keys": [{"kty": "EC", "crv": "P-256"}]}, "jwks key 0 does not parse"),
        ({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}, "symmetric"),
    ],
)
def test_shape(jwks: Any, problem: str) -> None:
    _refused(jwks, problem)


def test_the_member_count_is_capped_before_any_key_is_decoded() -> None:
    key = generate_key("ES256").as_dict(private=False)
    assert len(parse_jwks({"keys": [dict(key, kid=str(index)) for index in range(MAX_KEYS)]})) == MAX_KEYS
    # One more, even of undecodable members, is refused by count.
    _refused({"keys": [{"kty": "RSA", "n": "x" * 100000}] * (MAX_KEYS + 1)}, f"at most {MAX_KEYS}")


def test_the_issues_230_huge_exponent_copies_are_refused() -> None:
    jwk = public_jwk(huge_exponent_key(2048).public_key())
    _refused({"keys": [jwk] * 230}, "230 keys; at most 16")
    _refused({"keys": [jwk]}, "jwks key 0 is an RSA key with a public exponent above 4294967297")


def test_identical_copies_are_dropped() -> None:
    key = generate_key("ES256", kid="a").as_dict(private=False)
    other = generate_key("ES256", kid="b").as_dict(private=False)
    keys = parse_jwks({"keys": [key, key, other, key]})
    assert [k.kid for k in keys] == ["a", "b"]
    # Twin: the same key under two kids is two entries (a client may alias a key).
    assert [k.kid for k in parse_jwks({"keys": [key, dict(key, kid="c")]})] == ["a", "c"]


def test_two_keys_of_one_type_may_not_share_a_kid() -> None:
    first, second = generate_key("ES256", kid="same"), generate_key("ES256", kid="same")
    _refused(public_jwks(first, second), r"jwks keys 0 and 1 are both EC keys with kid 'same'")
    # Twin: keys of different types under one kid (RFC 7517 §4.5's own example) are fine.
    assert len(parse_jwks(public_jwks(generate_key("RS256", kid="same"), first))) == 2


@pytest.mark.parametrize(
    ("member", "problem"),
    [
        (public_jwk(rsa.generate_private_key(65537, 1024).public_key()), "RSA key of 1024 bits"),
        ({"kty": "RSA", "n": "A" * 1500, "e": "AQAB"}, "RSA key of more than 8192 bits"),
        ({"kty": "RSA", "n": "A" * 400, "e": "A" * 12}, "exponent above 4294967297"),
        (
            {**public_jwk(rsa.generate_private_key(65537, 2048).public_key()), "e": "AQAAAAM"},
            "public exponent 4294967299",
        ),
        (ECKey.generate_key("secp256k1").as_dict(private=False), "curve secp256k1"),
        (OKPKey.generate_key("X25519").as_dict(private=False), "X25519PublicKey"),
    ],
)
def test_keys_outside_the_policy_are_refused_naming_the_rule(member: dict[str, Any], problem: str) -> None:
    _refused({"keys": [generate_key("ES256").as_dict(private=False), member]}, f"jwks key 1 is .*{problem}")


def test_in_policy_extremes_are_accepted() -> None:
    # An 8192-bit modulus (no need for a real key: nothing is verified here) with e = 2^32 + 1.
    fermat = rsa.RSAPublicNumbers(2**32 + 1, (1 << 8191) + 1).public_key()
    p521 = ec.generate_private_key(ec.SECP521R1()).public_key()
    keys = parse_jwks(
        {"keys": [public_jwk(fermat), public_jwk(p521), OKPKey.generate_key("Ed448").as_dict()]}
    )
    assert len(keys) == 3


def test_x5c_must_certify_the_jwks_own_key() -> None:
    mine, other = self_signed(SUBJECT), self_signed(SUBJECT)
    jwk = public_jwk(mine.key.public_key())
    assert parse_jwks({"keys": [{**jwk, "x5c": [x5c_of(mine)]}]})
    _refused({"keys": [{**jwk, "x5c": [x5c_of(other)]}]}, r"x5c\[0\] certificate that holds another key")
    _refused({"keys": [{**jwk, "x5c": ["bm90IGEgY2VydA=="]}]}, r"x5c\[0\] that is not a base64 DER")
    _refused({"keys": [{**jwk, "x5c": []}]}, "x5c that is not a non-empty array")


def test_require_key_source() -> None:
    settings = Settings()
    jwks = public_jwks(generate_key("ES256"))
    require_key_source({"jwks": jwks}, settings)
    require_key_source({"jwks_uri": "https://client.example/jwks"}, settings)
    with pytest.raises(InvalidClientMetadataError, match="neither"):
        require_key_source({}, settings)
    with pytest.raises(InvalidClientMetadataError, match="both"):
        require_key_source({"jwks": jwks, "jwks_uri": "https://client.example/jwks"}, settings)
    with pytest.raises(InvalidClientMetadataError, match="230 keys"):
        require_key_source({"jwks": {"keys": jwks["keys"] * 230}}, settings)
