"""Key equality for self_signed_tls_client_auth (RFC 8705 §2.2): keys, not encodings."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from joserfc.jwk import JWKRegistry, Key, OctKey

from certbound.jose import public_jwk
from certbound.pki.spki import certificate_key_registered, jwk_certificate
from tests.unit.pki.builders import Issued, make_ca, name, new_key

SUBJECT = name((NameOID.COMMON_NAME, "self-signed client"))


def jwk_of(issued: Issued, **extra: object) -> Key:
    return JWKRegistry.import_key({**public_jwk(issued.key.public_key()), **extra})


def x5c_of(issued: Issued) -> list[str]:
    return [base64.b64encode(issued.cert.public_bytes(Encoding.DER)).decode("ascii")]


@pytest.mark.parametrize("kind", ["rsa", "ec", "ed25519"])
def test_certificate_key_matches_its_jwk(kind: str) -> None:
    mine, other = make_ca(SUBJECT, key=new_key(kind)), make_ca(SUBJECT, key=new_key(kind))
    assert certificate_key_registered(mine.cert, [jwk_of(other), jwk_of(mine)])
    assert not certificate_key_registered(mine.cert, [jwk_of(other)])
    assert not certificate_key_registered(mine.cert, [])


def test_a_jwk_with_x5c_counts_by_its_certificate_key() -> None:
    listed, certified = make_ca(SUBJECT), make_ca(SUBJECT)
    # The JWK's own members describe `listed`, its x5c certifies `certified`.
    jwk = jwk_of(listed, x5c=x5c_of(certified))
    assert jwk_certificate(jwk) == certified.cert
    assert certificate_key_registered(certified.cert, [jwk])
    assert not certificate_key_registered(listed.cert, [jwk])


def test_a_malformed_x5c_matches_nothing() -> None:
    mine = make_ca(SUBJECT)
    broken = jwk_of(mine, x5c=["not base64!"])
    with pytest.raises(ValueError, match="x5c"):
        jwk_certificate(broken)
    assert not certificate_key_registered(mine.cert, [broken])


def test_symmetric_keys_never_match() -> None:
    mine = make_ca(SUBJECT)
    assert not certificate_key_registered(mine.cert, [OctKey.generate_key(256)])
