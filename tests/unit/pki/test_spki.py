"""Key equality for self_signed_tls_client_auth (RFC 8705 §2.2): keys, not encodings."""

from __future__ import annotations

import pytest
from cryptography.x509.oid import NameOID
from joserfc.jwk import JWKRegistry, Key, OctKey

from certbound.jose import public_jwk
from certbound.pki.spki import certificate_key_registered
from tests.unit.pki.builders import Issued, make_ca, name, new_key

SUBJECT = name((NameOID.COMMON_NAME, "self-signed client"))


def jwk_of(issued: Issued, **extra: object) -> Key:
    return JWKRegistry.import_key({**public_jwk(issued.key.public_key()), **extra})


@pytest.mark.parametrize("kind", ["rsa", "ec", "ed25519"])
def test_certificate_key_matches_its_jwk(kind: str) -> None:
    mine, other = make_ca(SUBJECT, key=new_key(kind)), make_ca(SUBJECT, key=new_key(kind))
    assert certificate_key_registered(mine.cert, [jwk_of(other), jwk_of(mine)])
    assert not certificate_key_registered(mine.cert, [jwk_of(other)])
    assert not certificate_key_registered(mine.cert, [])


def test_symmetric_keys_never_match() -> None:
    mine = make_ca(SUBJECT)
    assert not certificate_key_registered(mine.cert, [OctKey.generate_key(256)])
