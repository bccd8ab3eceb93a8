"""ClientManager: secrets and registration tokens issued once and stored hashed, replacement rules
when the method changes, admin-chosen identifiers, cache invalidation."""

from __future__ import annotations

import logging
import time
from dataclasses import replace

import pytest

from certbound.clients import ClientCache
from certbound.config import Settings
from certbound.errors import InvalidClientMetadataError
from certbound.management import ClientManager, client_information
from certbound.store.sqlite import SQLiteStore
from certbound.vault import Vault, is_slow_hash

SETTINGS = Settings(scopes=("read", "write"))


@pytest.fixture
def vault() -> Vault:
    return Vault(bytes(range(32)))


@pytest.fixture
def manager(store: SQLiteStore, vault: Vault) -> ClientManager:
    return ClientManager(store, vault, SETTINGS)


async def test_generated_secret_has_256_bits_and_is_stored_hashed(
    manager: ClientManager, store: SQLiteStore
) -> None:
    created = await manager.create({})
    assert created.secret is not None
    assert len(created.secret) == 43  # base64url of 32 random bytes
    stored = await store.get_client(created.client.client_id)
    assert stored is not None
    assert stored.secret_hash is not None
    assert created.secret.encode() not in stored.secret_hash
    assert await manager.verify_client_secret(stored, created.secret)
    assert not await manager.verify_client_secret(stored, created.secret + "x")
    assert created.registration_token is None
    assert stored.registration_token_hash is None


async def test_secretless_method_gets_no_secret(manager: ClientManager) -> None:
    created = await manager.create({"token_endpoint_auth_method": "none"})
    assert created.secret is None
    assert created.client.secret_hash is None


async def test_registration_token_issued_once_and_verified(manager: ClientManager) -> None:
    created = await manager.create({}, dynamic=True)
    token = created.registration_token
    assert token is not None
    assert len(token) == 43
    assert created.client.registration_token_hash not in (None, token.encode())
    assert manager.verify_registration_token(created.client, token)
    assert not manager.verify_registration_token(created.client, token[:-1])
    assert not manager.verify_registration_token(None, token)
    other = await manager.create({})
    assert not manager.verify_registration_token(other.client, token)


async def test_secret_lifetime_sets_expiry(store: SQLiteStore, vault: Vault) -> None:
    manager = ClientManager(store, vault, replace(SETTINGS, client_secret_lifetime=3600))
    before = int(time.time())
    created = await manager.create({})
    assert before + 3600 <= created.client.secret_expires_at <= int(time.time()) + 3600
    never = await ClientManager(store, vault, SETTINGS).create({})
    assert never.client.secret_expires_at == 0


async def test_admin_chosen_secret_rules(manager: ClientManager, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(InvalidClientMetadataError, match="client_secret"):
        await manager.create({}, secret="1234567")
    with caplog.at_level(logging.WARNING, logger="certbound.clients"):
        short = await manager.create({}, secret="pässwört")  # 8 characters of Unicode text
    assert await manager.verify_client_secret(short.client, "pässwört")
    assert "fewer than 32 characters" in caplog.text
    assert "pässwört" not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="certbound.clients"):
        await manager.create({}, secret="x" * 32)
    assert caplog.text == ""
    with pytest.raises(InvalidClientMetadataError, match="not used by none"):
        await manager.create({"token_endpoint_auth_method": "none"}, secret="x" * 32)


# Issue 9 finding 15: what an administrator chose is stored with the slow hash, what we generated not
@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post", "client_secret_jwt"])
async def test_chosen_secrets_get_the_slow_hash_and_generated_ones_the_fast(
    manager: ClientManager, store: SQLiteStore, method: str
) -> None:
    chosen = await manager.create({"token_endpoint_auth_method": method}, secret="chosen-secret")
    generated = await manager.create({"token_endpoint_auth_method": method})
    chosen_stored = await store.get_client(chosen.client.client_id)
    generated_stored = await store.get_client(generated.client.client_id)
    assert chosen_stored is not None
    assert generated_stored is not None
    assert chosen_stored.secret_hash is not None
    assert is_slow_hash(chosen_stored.secret_hash)
    assert generated_stored.secret_hash is not None
    assert len(generated_stored.secret_hash) == 32
    assert await manager.verify_client_secret(chosen_stored, "chosen-secret")
    assert not await manager.verify_client_secret(chosen_stored, "chosen-secreT")
    rotated = await manager.rotate_secret(chosen_stored, secret="another-chosen-one")
    assert rotated is not None
    assert rotated.client.secret_hash is not None
    assert is_slow_hash(rotated.client.secret_hash)
    regenerated = await manager.rotate_secret(rotated.client)
    assert regenerated is not None
    assert regenerated.client.secret_hash is not None
    assert not is_slow_hash(regenerated.client.secret_hash)
    replaced = await manager.replace(
        regenerated.client, {"token_endpoint_auth_method": method}, secret="x" * 9
    )
    assert replaced is not None
    assert replaced.client.secret_hash is not None
    assert is_slow_hash(replaced.client.secret_hash)


async def test_a_secret_stored_before_the_slow_hash_still_works(
    manager: ClientManager, store: SQLiteStore, vault: Vault
) -> None:
    created = await manager.create({}, secret="chosen-long-ago")
    legacy = replace(created.client, secret_hash=vault.hash_secret("chosen-long-ago"))  # an old row
    assert await store.update_client(legacy)
    stored = await store.get_client(created.client.client_id)
    assert stored is not None
    assert await manager.verify_client_secret(stored, "chosen-long-ago")
    assert not await manager.verify_client_secret(stored, "chosen-long-ag0")


async def test_a_chosen_secret_must_be_unicode_text(manager: ClientManager) -> None:
    with pytest.raises(InvalidClientMetadataError, match="lone surrogate"):
        await manager.create({}, secret="long enough \ud800")


async def test_admin_chosen_client_id(manager: ClientManager) -> None:
    created = await manager.create({}, client_id="billing service/1 ü")
    assert created.client.client_id == "billing service/1 ü"
    with pytest.raises(InvalidClientMetadataError, match="taken"):
        await manager.create({}, client_id="billing service/1 ü")
    for bad in ("", "tab\there", "new\nline", "x" * 256):
        with pytest.raises(InvalidClientMetadataError, match="client_id"):
            await manager.create({}, client_id=bad)


async def test_replace_keeps_secret_when_method_keeps_one(manager: ClientManager) -> None:
    created = await manager.create({"client_name": "a"})
    updated = await manager.replace(
        created.client, {"token_endpoint_auth_method": "client_secret_post", "client_name": "b"}
    )
    assert updated is not None
    assert updated.secret is None
    assert updated.client.metadata["client_name"] == "b"
    assert updated.client.auth_method == "client_secret_post"
    assert updated.client.secret_hash == created.client.secret_hash


async def test_replace_is_a_full_replacement(manager: ClientManager) -> None:
    created = await manager.create({"client_name": "a", "scope": "read"})
    updated = await manager.replace(created.client, {})
    assert updated is not None
    assert "client_name" not in updated.client.metadata
    assert updated.client.metadata["scope"] == "read write"


async def test_replace_with_rotation_issues_a_new_secret(manager: ClientManager) -> None:
    created = await manager.create({})
    assert created.secret is not None
    updated = await manager.replace(created.client, {}, rotate_secret=True)
    assert updated is not None
    assert updated.secret is not None
    assert await manager.verify_client_secret(updated.client, updated.secret)
    assert not await manager.verify_client_secret(updated.client, created.secret)


async def test_method_change_drops_then_issues_secrets(manager: ClientManager) -> None:
    created = await manager.create({})
    public = await manager.replace(created.client, {"token_endpoint_auth_method": "none"})
    assert public is not None
    assert public.client.secret_hash is None
    assert public.secret is None
    assert public.client.metadata["grant_types"] == []
    confidential = await manager.replace(public.client, {"token_endpoint_auth_method": "client_secret_basic"})
    assert confidential is not None
    assert confidential.secret is not None
    assert await manager.verify_client_secret(confidential.client, confidential.secret)


async def test_replace_validates_like_registration(manager: ClientManager) -> None:
    created = await manager.create({})
    with pytest.raises(InvalidClientMetadataError, match="scope"):
        await manager.replace(created.client, {"scope": "delete"})


async def test_replace_rotates_registration_token(manager: ClientManager) -> None:
    created = await manager.create({}, dynamic=True)
    assert created.registration_token is not None
    updated = await manager.replace(created.client, {}, dynamic=True)
    assert updated is not None
    assert updated.registration_token is not None
    assert manager.verify_registration_token(updated.client, updated.registration_token)
    assert not manager.verify_registration_token(updated.client, created.registration_token)


async def test_replace_of_a_deleted_client_returns_none(manager: ClientManager) -> None:
    created = await manager.create({})
    assert await manager.delete(created.client.client_id)
    assert await manager.replace(created.client, {}) is None
    assert await manager.rotate_secret(created.client) is None
    assert not await manager.delete(created.client.client_id)


async def test_update_merges_into_stored_metadata(manager: ClientManager) -> None:
    created = await manager.create({"client_name": "a", "software_id": "s"})
    updated = await manager.update(created.client, {"client_name": None, "scope": "read"})
    assert updated is not None
    assert "client_name" not in updated.client.metadata
    assert updated.client.metadata["software_id"] == "s"
    assert updated.client.metadata["scope"] == "read"
    assert updated.client.secret_hash == created.client.secret_hash


async def test_rotate_secret(manager: ClientManager) -> None:
    created = await manager.create({})
    assert created.secret is not None
    rotated = await manager.rotate_secret(created.client)
    assert rotated is not None
    assert rotated.secret is not None
    stored = await manager.get(created.client.client_id)
    assert stored is not None
    assert await manager.verify_client_secret(stored, rotated.secret)
    assert not await manager.verify_client_secret(stored, created.secret)
    public = await manager.create({"token_endpoint_auth_method": "none"})
    with pytest.raises(InvalidClientMetadataError, match="has no secret"):
        await manager.rotate_secret(public.client)


async def test_changes_invalidate_the_cache(store: SQLiteStore, vault: Vault) -> None:
    cache = ClientCache(store, clock=lambda: 0.0)  # the clock stands still: the cache stays current
    await cache.sync()
    manager = ClientManager(store, vault, SETTINGS, cache)
    created = await manager.create({})
    client_id = created.client.client_id
    assert await cache.get(client_id) is not None
    updated = await manager.replace(created.client, {"client_name": "new"})
    assert updated is not None
    cached = await cache.get(client_id)
    assert cached is not None
    assert cached.metadata["client_name"] == "new"
    await manager.delete(client_id)
    assert await cache.get(client_id) is None


async def test_client_information_shape(manager: ClientManager) -> None:
    created = await manager.create({"client_name": "a"})
    view = client_information(
        created.client,
        secret=created.secret,
        registration_token="tok",
        registration_client_uri="https://as/register/x",
    )
    assert view["client_id"] == created.client.client_id
    assert view["client_secret"] == created.secret
    assert view["client_secret_expires_at"] == 0
    assert view["client_name"] == "a"
    assert view["registration_access_token"] == "tok"
    assert "client_secret" not in client_information(created.client)
    public = await manager.create({"token_endpoint_auth_method": "none"})
    assert "client_secret_expires_at" not in client_information(public.client)


# SPEC §3: dynamic registration is bounded by --registration-scopes; only an administrator goes beyond.
BOUNDED = Settings(scopes=("read", "write", "admin"), registration_scopes=("read",))


async def test_a_dynamic_client_without_scope_gets_the_registration_scopes(
    store: SQLiteStore, vault: Vault
) -> None:
    manager = ClientManager(store, vault, BOUNDED)
    dynamic = await manager.create({}, dynamic=True)
    assert dynamic.client.scopes == ("read",)
    administered = await manager.create({})
    assert administered.client.scopes == ("read", "write", "admin")


async def test_registration_scopes_default_to_every_scope(manager: ClientManager) -> None:
    dynamic = await manager.create({}, dynamic=True)
    assert dynamic.client.scopes == ("read", "write")


async def test_a_dynamic_client_cannot_register_beyond_the_registration_scopes(
    store: SQLiteStore, vault: Vault
) -> None:
    manager = ClientManager(store, vault, BOUNDED)
    with pytest.raises(InvalidClientMetadataError, match="dynamically registered client may not hold: admin"):
        await manager.create({"scope": "read admin"}, dynamic=True)
    administered = await manager.create({"scope": "read admin"})
    assert administered.client.scopes == ("read", "admin")


async def test_a_dynamic_update_cannot_widen_but_keeps_what_an_administrator_gave(
    store: SQLiteStore, vault: Vault
) -> None:
    manager = ClientManager(store, vault, BOUNDED)
    created = await manager.create({"scope": "read"}, dynamic=True)
    with pytest.raises(InvalidClientMetadataError, match="may not hold: write"):
        await manager.replace(created.client, {"scope": "read write"}, dynamic=True)
    # Omitted scope in a full replacement: the registration scopes again, not everything.
    omitted = await manager.replace(created.client, {}, dynamic=True)
    assert omitted is not None
    assert omitted.client.scopes == ("read",)
    widened = await manager.replace(omitted.client, {"scope": "read write"})  # the administrator
    assert widened is not None
    kept = await manager.replace(widened.client, {"scope": "write read"}, dynamic=True)
    assert kept is not None
    assert kept.client.scopes == ("write", "read")
    with pytest.raises(InvalidClientMetadataError, match="may not hold: admin"):
        await manager.replace(kept.client, {"scope": "read write admin"}, dynamic=True)
