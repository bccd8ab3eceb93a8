"""The Store contract (server/store/base.py), every test run against SQLite and PostgreSQL.

A new store method gets its tests here, written once against the `store` fixture (or `backend`
when a test needs a second connection to the same database, as another worker or node has).
PostgreSQL tests use one fresh database per run (emptied before each test) and skip, saying why,
only when PostgreSQL is unreachable.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from certbound.models import Client, ReferenceToken, SigningKeyRecord
from certbound.store import ClientExistsError, Store, open_store
from certbound.store.base import CLIENT_CHANGE_RETENTION, issuer_jti_scope
from tests.postgres import fresh_database, run_sync, truncate_all


@dataclass(frozen=True)
class Backend:
    name: str
    url: str

    async def open(self) -> Store:
        """Another connection (pool) to the test's database, as another process would open."""
        return await open_store(self.url)


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    with fresh_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        return Backend("sqlite", f"sqlite:///{tmp_path}/store.db")
    url: str = request.getfixturevalue("postgres_database")
    run_sync(truncate_all(url))
    return Backend("postgresql", url)


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    opened = await backend.open()
    yield opened
    await opened.close()


def make_client(client_id: str, method: str = "client_secret_basic") -> Client:
    return Client(
        client_id=client_id,
        metadata={"token_endpoint_auth_method": method, "scope": "read", "x-custom": [1, 2], "é": "ü"},
        client_id_issued_at=100,
        secret_hash=b"h" * 32,
        secret_ciphertext=b"\x00\xff" * 20,
        secret_expires_at=2**40,
        registration_token_hash=b"r" * 32,
    )


# clients
async def test_client_crud(store: Store) -> None:
    await store.create_client(make_client("a"))
    with pytest.raises(ClientExistsError):
        await store.create_client(make_client("a"))
    loaded = await store.get_client("a")
    assert loaded == make_client("a")
    assert await store.get_client("missing") is None
    updated = Client("a", {"token_endpoint_auth_method": "client_secret_post"}, 5)
    assert await store.update_client(updated)
    assert (await store.get_client("a")) == updated
    assert not await store.update_client(make_client("zzz"))
    assert await store.delete_client("a")
    assert not await store.delete_client("a")


async def test_a_client_id_no_client_can_have_is_simply_unknown(store: Store) -> None:
    """Client ids come from unauthenticated requests: NUL (which PostgreSQL text cannot hold)
    and other odd text are an unknown client, never an error."""
    for odd in ("a\x00b", "\x00", "é\u2028", "' OR 1=1 --"):
        assert await store.get_client(odd) is None


async def test_list_clients_paginates_and_filters(store: Store) -> None:
    for index in range(5):
        await store.create_client(make_client(f"c{index}", "none" if index % 2 else "client_secret_basic"))
    page = await store.list_clients(limit=2)
    assert [c.client_id for c in page] == ["c0", "c1"]
    page = await store.list_clients(limit=10, after="c1")
    assert [c.client_id for c in page] == ["c2", "c3", "c4"]
    assert [c.client_id for c in await store.list_clients(auth_method="none")] == ["c1", "c3"]


async def test_clients_are_listed_in_byte_order_on_every_backend(store: Store) -> None:
    for client_id in ("b", "B", "a", "_", "é", "Z"):
        await store.create_client(make_client(client_id))
    assert [c.client_id for c in await store.list_clients()] == ["B", "Z", "_", "a", "b", "é"]


# the client change log
async def test_every_client_write_is_in_the_change_log_in_order(store: Store) -> None:
    assert await store.latest_client_change() == 0
    assert await store.client_changes_since(0, limit=10) == []
    await store.create_client(make_client("a"))
    await store.create_client(make_client("b"))
    await store.update_client(make_client("a"))
    await store.delete_client("b")
    changes = await store.client_changes_since(0, limit=10)
    assert [client_id for _, client_id in changes] == ["a", "b", "a", "b"]
    sequence = [seq for seq, _ in changes]
    assert sequence == sorted(sequence)
    assert len(set(sequence)) == 4
    assert await store.latest_client_change() == sequence[-1]
    assert await store.client_changes_since(sequence[1], limit=1) == [changes[2]]
    assert await store.client_changes_since(sequence[-1], limit=10) == []


async def test_a_refused_client_write_leaves_no_change(store: Store) -> None:
    await store.create_client(make_client("a"))
    latest = await store.latest_client_change()
    with pytest.raises(ClientExistsError):
        await store.create_client(make_client("a"))
    assert await store.latest_client_change() == latest


async def test_change_log_sequence_never_goes_back_after_a_purge(store: Store) -> None:
    await store.create_client(make_client("a"))
    first = await store.latest_client_change()
    await store.purge_expired(10**10 + CLIENT_CHANGE_RETENTION)  # every change row is old now
    assert await store.client_changes_since(0, limit=10) == []
    await store.delete_client("a")
    (change,) = await store.client_changes_since(first, limit=10)
    assert change[0] > first


async def test_changes_from_another_connection_are_seen_at_once(store: Store, backend: Backend) -> None:
    other = await backend.open()
    try:
        cursor = await store.latest_client_change()
        await other.create_client(make_client("from-elsewhere"))
        assert [c for _, c in await store.client_changes_since(cursor, limit=10)] == ["from-elsewhere"]
    finally:
        await other.close()


# assertion replay
async def test_assertion_jti_is_recorded_once_even_concurrently(store: Store) -> None:
    results = await asyncio.gather(*(store.record_assertion_jti("c", "j1", 10**10) for _ in range(10)))
    assert results.count(True) == 1
    assert await store.record_assertion_jti("other-client", "j1", 10**10)


#: The two replay records (RFC 7523 §3 item 7, RFC 9449 §11.1): same contract, separate tables.
RECORDS: dict[str, Callable[[Store, str], Awaitable[bool]]] = {
    "assertion": lambda store, jti: store.record_assertion_jti("c", jti, 10**10),
    "proof": lambda store, jti: store.record_proof_jti(jti, 10**10),
}


@pytest.mark.parametrize("kind", RECORDS)
async def test_one_jti_raced_by_two_processes_is_accepted_once(
    store: Store, backend: Backend, kind: str
) -> None:
    record = RECORDS[kind]
    other = await backend.open()
    try:
        results = await asyncio.gather(*(record(s, f"j{n}") for n in range(20) for s in (store, other)))
    finally:
        await other.close()
    # results[2n] and results[2n + 1] are the two processes' answers for jti n: exactly one wins.
    assert all(results[2 * n] != results[2 * n + 1] for n in range(20))


@pytest.mark.parametrize("kind", RECORDS)
async def test_a_burst_of_jtis_is_committed_together_and_each_answered(store: Store, kind: str) -> None:
    record = RECORDS[kind]
    jtis = [f"j{n % 50}" for n in range(200)]  # every jti four times, in one burst
    results = await asyncio.gather(*(record(store, jti) for jti in jtis))
    for jti in set(jtis):
        assert [ok for name, ok in zip(jtis, results, strict=True) if name == jti].count(True) == 1
    assert sum(results) == 50
    assert not await record(store, "j7")


# DPoP proof replay
async def test_proof_jti_is_recorded_once_whoever_sends_it(store: Store) -> None:
    results = await asyncio.gather(*(store.record_proof_jti("p1", 10**10) for _ in range(10)))
    assert results.count(True) == 1
    assert await store.record_proof_jti("p2", 10**10)
    # Proof jtis and assertion jtis are separate: the same string is new in the other.
    assert await store.record_assertion_jti("c", "p1", 10**10)
    assert not await store.record_proof_jti("p1", 10**10)


async def test_an_issuers_jtis_never_meet_a_clients(store: Store) -> None:
    """SPEC §13: a federated issuer's jtis are recorded once per issuer, in their own namespace: a
    client named like the issuer shares nothing with it."""
    await store.create_client(make_client("github"))
    assert await store.record_assertion_jti(issuer_jti_scope("github"), "j", 2**40)
    assert await store.record_assertion_jti("github", "j", 2**40)
    assert not await store.record_assertion_jti(issuer_jti_scope("github"), "j", 2**40)
    assert await store.record_assertion_jti(issuer_jti_scope("gitlab"), "j", 2**40)


async def test_legacy_audience_uses_add_up_per_client(store: Store, backend: Backend) -> None:
    await store.create_client(make_client("a"))
    await store.create_client(make_client("b"))
    assert await store.legacy_audience_uses(["a", "b"]) == {}
    await store.add_legacy_audience_uses({"a": (2, 1000), "b": (1, 900)})
    # Another process adds its own counts; the latest last-seen time wins, whichever comes last.
    other = await backend.open()
    try:
        await other.add_legacy_audience_uses({"a": (3, 950)})
    finally:
        await other.close()
    await store.add_legacy_audience_uses({})
    assert await store.legacy_audience_uses(["a", "b", "unknown"]) == {"a": (5, 1000), "b": (1, 900)}
    assert await store.legacy_audience_uses(["b"]) == {"b": (1, 900)}
    assert await store.legacy_audience_uses([]) == {}
    await store.delete_client("a")
    await store.create_client(make_client("a"))  # a new client of that id starts from nothing
    assert await store.legacy_audience_uses(["a"]) == {}


async def test_purge_expired(store: Store) -> None:
    await store.record_assertion_jti("c", "old", 50)
    await store.record_assertion_jti("c", "new", 500)
    await store.record_proof_jti("proof-old", 50)
    await store.record_proof_jti("proof-new", 500)
    await store.revoke_jwt("jti-old", "c", 50)
    assert await store.purge_expired(100) == 3
    assert await store.record_assertion_jti("c", "old", 500)
    assert not await store.record_assertion_jti("c", "new", 500)
    assert await store.record_proof_jti("proof-old", 500)
    assert not await store.record_proof_jti("proof-new", 500)
    assert not await store.is_jwt_revoked("jti-old")


async def test_purge_drops_expired_reference_tokens_and_old_changes_only(store: Store) -> None:
    await store.create_client(make_client("c"))  # one change row, changed_at = now
    await store.save_reference_token(_token(b"o" * 32, "old", expires_at=50))
    await store.save_reference_token(_token(b"n" * 32, "new", expires_at=500))
    assert await store.purge_expired(100) == 1
    assert await store.get_reference_token(b"o" * 32) is None
    assert await store.get_reference_token(b"n" * 32) is not None
    assert len(await store.client_changes_since(0, limit=10)) == 1


# signing keys
async def test_first_signing_key_only_once(store: Store) -> None:
    first = SigningKeyRecord("k1", "ES256", b"c1", 1)
    second = SigningKeyRecord("k2", "ES256", b"c2", 2)
    assert await store.add_first_signing_key(first)
    assert not await store.add_first_signing_key(second)
    assert [k.kid for k in await store.list_signing_keys()] == ["k1"]


async def test_processes_racing_for_the_first_key_end_with_one(store: Store, backend: Backend) -> None:
    others = [await backend.open() for _ in range(3)]
    try:
        results = await asyncio.gather(
            *(
                s.add_first_signing_key(SigningKeyRecord(f"k{n}", "ES256", b"c", n))
                for n, s in enumerate([store, *others])
            )
        )
    finally:
        for other in others:
            await other.close()
    assert results.count(True) == 1
    assert [k.active for k in await store.list_signing_keys()] == [True]


async def test_rotation_retires_the_active_key(store: Store) -> None:
    await store.add_first_signing_key(SigningKeyRecord("k1", "ES256", b"c1", 1))
    await store.add_signing_key(SigningKeyRecord("k2", "ES256", b"c2", 2), retire_others_at=2)
    keys = {k.kid: k for k in await store.list_signing_keys()}
    assert keys["k1"].retired_at == 2
    assert keys["k2"].active
    assert not await store.add_first_signing_key(SigningKeyRecord("k3", "ES256", b"c3", 3))
    assert await store.delete_signing_keys_retired_before(2) == 0
    assert await store.delete_signing_keys_retired_before(3) == 1
    assert [k.kid for k in await store.list_signing_keys()] == ["k2"]


async def test_concurrent_rotations_leave_one_active_key(store: Store, backend: Backend) -> None:
    await store.add_first_signing_key(SigningKeyRecord("k0", "ES256", b"c", 0))
    other = await backend.open()
    try:
        await asyncio.gather(
            *(
                s.add_signing_key(SigningKeyRecord(f"k{n}", "ES256", b"c", n), retire_others_at=n)
                for n, s in enumerate([store, other, store, other], start=1)
            )
        )
    finally:
        await other.close()
    keys = await store.list_signing_keys()
    assert len(keys) == 5
    assert sum(k.active for k in keys) == 1


# leases
async def test_a_lease_has_one_holder_until_it_expires(store: Store) -> None:
    assert await store.acquire_lease("housekeeping", "a", now=1000, seconds=60)
    assert not await store.acquire_lease("housekeeping", "b", now=1030, seconds=60)
    assert await store.acquire_lease("other-job", "b", now=1030, seconds=60)
    assert await store.acquire_lease("housekeeping", "a", now=1050, seconds=60)  # renewed: until 1110
    assert not await store.acquire_lease("housekeeping", "b", now=1100, seconds=60)
    assert await store.acquire_lease("housekeeping", "b", now=1110, seconds=60)
    assert not await store.acquire_lease("housekeeping", "a", now=1111, seconds=60)


async def test_processes_racing_for_a_lease_get_one_holder(store: Store, backend: Backend) -> None:
    others = [await backend.open() for _ in range(2)]
    try:
        results = await asyncio.gather(
            *(
                s.acquire_lease("housekeeping", f"holder-{n}", now=1000, seconds=60)
                for n, s in enumerate([store, *others])
            )
        )
    finally:
        for other in others:
            await other.close()
    assert results.count(True) == 1


# reference tokens and revocation
def _token(token_hash: bytes, jti: str, *, expires_at: int = 10**10, client_id: str = "c") -> ReferenceToken:
    return ReferenceToken(
        token_hash, jti, client_id, client_id, "read", "aud", 1, expires_at, "x5t", extra={"a": [1, "é"]}
    )


async def test_reference_tokens_and_revocation(store: Store) -> None:
    token = _token(b"t" * 32, "jti")
    await store.create_client(make_client("c"))
    await store.save_reference_token(token)
    assert await store.get_reference_token(b"t" * 32) == token
    assert await store.get_reference_token(b"u" * 32) is None
    assert await store.revoke_reference_token(b"t" * 32)
    assert not await store.revoke_reference_token(b"u" * 32)
    revoked = await store.get_reference_token(b"t" * 32)
    assert revoked is not None
    assert revoked.revoked
    await store.delete_client("c")
    assert await store.get_reference_token(b"t" * 32) is None


async def test_a_reference_token_keeps_both_confirmations(store: Store) -> None:
    bound = dataclasses.replace(_token(b"d" * 32, "dpop"), cnf_jkt="thumbprint")
    unbound = dataclasses.replace(_token(b"n" * 32, "none"), cnf_x5t_s256=None)
    await store.save_reference_token(bound)
    await store.save_reference_token(unbound)
    assert await store.get_reference_token(b"d" * 32) == bound
    loaded = await store.get_reference_token(b"n" * 32)
    assert loaded == unbound
    assert loaded is not None
    assert (loaded.cnf_x5t_s256, loaded.cnf_jkt) == (None, None)


async def test_jwt_revocation(store: Store) -> None:
    assert not await store.is_jwt_revoked("j")
    await store.revoke_jwt("j", "c", 10**10)
    await store.revoke_jwt("j", "c", 10**10)
    assert await store.is_jwt_revoked("j")


async def test_a_revocation_is_seen_by_another_process_at_once(store: Store, backend: Backend) -> None:
    other = await backend.open()
    try:
        await store.save_reference_token(_token(b"t" * 32, "jti"))
        await store.revoke_jwt("j", "c", 10**10)
        assert await other.is_jwt_revoked("j")
        assert await store.revoke_reference_token(b"t" * 32)
        seen = await other.get_reference_token(b"t" * 32)
        assert seen is not None
        assert seen.revoked
    finally:
        await other.close()


# schema
async def test_reopening_keeps_the_data_and_migrates_once(store: Store, backend: Backend) -> None:
    await store.create_client(make_client("kept"))
    again = await backend.open()
    try:
        assert await again.get_client("kept") == make_client("kept")
    finally:
        await again.close()
