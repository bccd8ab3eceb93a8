"""Opaque values an attacker must not guess (RFC 6749 §10.10: the probability of guessing them must
be negligible): generated client secrets, registration access tokens and reference tokens carry 256
random bits, client_ids and jtis 128. Drawn many times through the code that issues them: the exact
length and alphabet, no repeats, and every position taking many values (a constant or structured
character, as in a UUID's version digit, would show as a position with few values)."""

from __future__ import annotations

import math
import string
from collections.abc import Sequence

import pytest

from certbound.config import Settings
from certbound.keys import KeyRing
from certbound.management import ClientManager
from certbound.models import Client
from certbound.store.sqlite import SQLiteStore
from certbound.tokens import AccessTokenIssuer, reference_token_hash
from certbound.vault import Vault

DRAWS = 200
BASE64URL = frozenset(string.ascii_letters + string.digits + "-_")
HEX = frozenset("0123456789abcdef")


def assert_random(values: Sequence[str], *, alphabet: frozenset[str], bits: int) -> None:
    """`values` each encode `bits` random bits in `alphabet` (hex, or unpadded base64url)."""
    per_symbol = int(math.log2(len(alphabet)))
    length = math.ceil(bits / per_symbol)
    assert len(set(values)) == len(values), "a value repeated"
    for value in values:
        assert len(value) == length, value
        assert set(value) <= alphabet, value
    for position in range(length):
        # The last symbol may carry fewer bits (base64url of 32 bytes: 4 bits, of 16 bytes: 2).
        symbols = 2 ** min(per_symbol, bits - per_symbol * position)
        seen = {value[position] for value in values}
        # 200 draws show nearly every symbol a position can hold; a constant or structured one
        # (a UUID's version digit) shows only a few.
        assert len(seen) >= min(12, symbols), f"position {position} took only {sorted(seen)}"


@pytest.fixture
def manager(store: SQLiteStore) -> ClientManager:
    return ClientManager(store, Vault(bytes(32)), Settings())


async def test_client_ids_secrets_and_registration_tokens(manager: ClientManager) -> None:
    created = [await manager.create({}, dynamic=True) for _ in range(DRAWS)]
    client_ids = [item.client.client_id for item in created]
    assert_random(client_ids, alphabet=HEX, bits=128)
    secrets = [item.secret or "" for item in created]
    assert_random(secrets, alphabet=BASE64URL, bits=256)
    registration_tokens = [item.registration_token or "" for item in created]
    assert_random(registration_tokens, alphabet=BASE64URL, bits=256)
    rotated = [await manager.rotate_secret(item.client) for item in created[:100]]
    more = [item.secret or "" for item in rotated if item is not None]
    assert_random(secrets[:100] + more, alphabet=BASE64URL, bits=256)


async def test_reference_tokens_and_their_jtis(store: SQLiteStore) -> None:
    keys = KeyRing(store, Vault(bytes(32)), alg="ES256", publish_after_retirement=0)
    issuer = AccessTokenIssuer(issuer="https://as.example", lifetime=60, keys=keys, store=store)
    client = Client("opaque", {"access_token_as_jwt": False, "scope": "read"}, 0)
    tokens = [
        (await issuer.issue(client, subject="opaque", scope="read", audience="https://rs", x5t_s256=None))
        for _ in range(DRAWS)
    ]
    values = [token.access_token for token in tokens]
    assert_random(values, alphabet=BASE64URL, bits=256)
    stored = [await store.get_reference_token(reference_token_hash(value)) for value in values]
    assert_random([row.jti for row in stored if row], alphabet=BASE64URL, bits=128)
