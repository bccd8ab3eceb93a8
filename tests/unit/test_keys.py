from __future__ import annotations

import time

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from certbound.errors import ConfigError
from certbound.jose import rfc7638_thumbprint
from certbound.keys import KeyRing
from certbound.store.sqlite import SQLiteStore
from certbound.vault import Vault
from tests.helpers import sign_jwt


@pytest.mark.parametrize("alg", ["ES256", "RS256", "PS256", "EdDSA"])
async def test_signed_tokens_verify_with_the_published_jwks(store: SQLiteStore, alg: str) -> None:
    ring = KeyRing(store, Vault(b"m" * 32), alg=alg, publish_after_retirement=60)
    await ring.ensure_active_key()
    key = ring.active
    token = sign_jwt(key, "at+jwt", {"sub": "x", "exp": int(time.time()) + 60})
    decoded = jwt.decode(token, KeySet.import_key_set(ring.jwks), algorithms=[alg])
    assert decoded.claims["sub"] == "x"
    assert decoded.header == {"alg": alg, "kid": key.kid, "typ": "at+jwt"}
    assert key.kid == rfc7638_thumbprint(key.jwk)


async def test_a_node_with_another_master_key_refuses_to_start_saying_why(store: SQLiteStore) -> None:
    await KeyRing(store, Vault(b"m" * 32), alg="ES256", publish_after_retirement=60).ensure_active_key()
    stranger = KeyRing(store, Vault(b"x" * 32), alg="ES256", publish_after_retirement=60)
    with pytest.raises(ConfigError, match="same --master-key-file"):
        await stranger.ensure_active_key()


async def test_two_nodes_on_one_database_share_one_key(store: SQLiteStore) -> None:
    vault = Vault(b"m" * 32)
    first = KeyRing(store, vault, alg="ES256", publish_after_retirement=60)
    second = KeyRing(store, vault, alg="ES256", publish_after_retirement=60)
    await first.ensure_active_key()
    await second.ensure_active_key()
    assert first.active.kid == second.active.kid


async def test_rotation_keeps_the_old_key_published_for_the_grace_period(store: SQLiteStore) -> None:
    vault = Vault(b"m" * 32)
    ring = KeyRing(store, vault, alg="ES256", publish_after_retirement=60)
    await ring.ensure_active_key()
    old = ring.active.kid
    new = (await ring.rotate()).kid
    assert ring.active.kid == new != old
    assert {k["kid"] for k in ring.jwks["keys"]} == {old, new}
    expired = KeyRing(store, vault, alg="ES256", publish_after_retirement=-1)
    await expired.refresh()
    assert {k["kid"] for k in expired.jwks["keys"]} == {new}


async def test_another_node_sees_a_rotation_on_refresh(store: SQLiteStore) -> None:
    vault = Vault(b"m" * 32)
    node_a = KeyRing(store, vault, alg="ES256", publish_after_retirement=60)
    node_b = KeyRing(store, vault, alg="ES256", publish_after_retirement=60)
    await node_a.ensure_active_key()
    await node_b.ensure_active_key()
    rotated = await node_a.rotate()
    await node_b.refresh()
    assert node_b.active.kid == rotated.kid


async def test_keys_are_encrypted_at_rest(store: SQLiteStore) -> None:
    ring = KeyRing(store, Vault(b"m" * 32), alg="ES256", publish_after_retirement=60)
    await ring.ensure_active_key()
    (record,) = await store.list_signing_keys()
    assert b"PRIVATE KEY" not in record.private_key_ciphertext
    wrong = KeyRing(store, Vault(b"x" * 32), alg="ES256", publish_after_retirement=60)
    with pytest.raises(ValueError, match="master key"):
        await wrong.refresh()


async def test_described_states_follow_the_clock(store: SQLiteStore) -> None:
    now = [1_700_000_000.0]
    ring = KeyRing(store, Vault(b"m" * 32), alg="ES256", publish_after_retirement=60, clock=lambda: now[0])
    await ring.ensure_active_key()
    first = ring.active.kid
    now[0] += 5
    second = (await ring.rotate()).kid
    assert await ring.describe() == [
        {"kid": second, "alg": "ES256", "state": "active", "created_at": 1_700_000_005, "retired_at": None},
        {
            "kid": first,
            "alg": "ES256",
            "state": "retired",
            "created_at": 1_700_000_000,
            "retired_at": 1_700_000_005,
        },
    ]
    now[0] += 60  # the last second the retired key is published
    assert [key["state"] for key in await ring.describe()] == ["active", "retired"]
    now[0] += 1
    assert [key["state"] for key in await ring.describe()] == ["active", "expired"]


async def test_described_active_key_first_within_one_second(store: SQLiteStore) -> None:
    ring = KeyRing(
        store, Vault(b"m" * 32), alg="ES256", publish_after_retirement=60, clock=lambda: 1_700_000_000
    )
    await ring.ensure_active_key()
    kids = [ring.active.kid]
    for _ in range(3):
        kids.append((await ring.rotate()).kid)
    described = await ring.describe()
    assert described[0]["kid"] == kids[-1]
    assert [key["state"] for key in described] == ["active", "retired", "retired", "retired"]
