"""ClientKeyResolver: inline keys, jwks_uri fetched over real TLS from a local server (trustme),
caching, refetch cooldown, and every fetch refusal (SSRF, time, size, trust, policy): the client is
told one generic description whatever went wrong, the server log says what."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from joserfc.jwk import RSAKey

from certbound.config import Settings
from certbound.errors import ConfigError, InvalidClientError
from certbound.jose import public_jwk
from certbound.jwks import FETCH_FAILED, ClientKeyResolver, FetchLimits
from certbound.models import Client
from certbound.vault import Vault
from tests.assertion_kit import JwksServer, generate_key, public_jwks
from tests.unit.pki.builders import name, self_signed, x5c_of

KEY_A = generate_key("ES256", kid="a")
KEY_B = generate_key("ES256", kid="b")
SUBJECT = name((NameOID.COMMON_NAME, "client"))


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def jwks_server(tmp_path: Path) -> AsyncIterator[JwksServer]:
    async with JwksServer(tmp_path, public_jwks(KEY_A)) as server:
        yield server


def _client(**metadata: Any) -> Client:
    return Client("c1", {"token_endpoint_auth_method": "private_key_jwt", **metadata}, 0)


def _resolver(
    server: JwksServer | None = None,
    *,
    allow_private: bool = True,
    trust: bool = True,
    clock: FakeClock | None = None,
    **limits: Any,
) -> ClientKeyResolver:
    settings = Settings(
        issuer="https://as.example",
        allow_private_fetch=allow_private,
        outbound_ca=(server.ca_file,) if server is not None and trust else (),
    )
    return ClientKeyResolver(settings, limits=FetchLimits(**limits), clock=clock or FakeClock())


def _kids(keys: list[Any]) -> list[str | None]:
    return [key.kid for key in keys]


# --- configuration ---------------------------------------------------------------------------------


def test_unreadable_outbound_ca_is_bad_configuration(tmp_path: Path) -> None:
    settings = Settings(outbound_ca=(tmp_path / "missing.pem",))
    with pytest.raises(ConfigError, match="outbound-ca"):
        ClientKeyResolver(settings)


# --- inline jwks ----------------------------------------------------------------------------------


async def test_inline_jwks_are_decoded_once_per_client() -> None:
    resolver = _resolver()
    client = _client(jwks=public_jwks(KEY_A))
    first = await resolver.keys_for(client)
    assert _kids(first) == ["a"]
    assert await resolver.keys_for(client) is first
    updated = _client(jwks=public_jwks(KEY_A, KEY_B))
    assert _kids(await resolver.keys_for(updated)) == ["a", "b"]


async def test_broken_inline_jwks_is_invalid_client() -> None:
    with pytest.raises(InvalidClientError, match="private"):
        await _resolver().keys_for(_client(jwks={"keys": [KEY_A.as_dict(private=True)]}))


async def test_client_without_keys_is_invalid_client() -> None:
    with pytest.raises(InvalidClientError, match="neither jwks nor jwks_uri"):
        await _resolver().keys_for(_client())


# --- client_secret_jwt HMAC keys ----------------------------------------------------------------------


def _secret_client(vault: Vault, secret: bytes) -> Client:
    ciphertext = vault.encrypt(secret, context=b"c1")
    return Client("c1", {"token_endpoint_auth_method": "client_secret_jwt"}, 0, secret_ciphertext=ciphertext)


def test_hmac_key_is_decoded_once_per_secret() -> None:
    vault, resolver = Vault(b"m" * 32), _resolver()
    client = _secret_client(vault, b"first-secret-first-secret-first-secret")
    key = resolver.hmac_key_for(client, vault)
    assert key.raw_value == b"first-secret-first-secret-first-secret"
    assert resolver.hmac_key_for(client, vault) is key
    rotated = _secret_client(vault, b"second-secret-second-secret-second")
    assert resolver.hmac_key_for(rotated, vault).raw_value == b"second-secret-second-secret-second"


def test_a_public_key_secret_never_becomes_an_hmac_key() -> None:
    vault = Vault(b"m" * 32)
    rsa = generate_key("RS256")
    assert isinstance(rsa, RSAKey)
    client = _secret_client(vault, rsa.as_pem(private=False))
    with pytest.raises(InvalidClientError, match="public key"):
        _resolver().hmac_key_for(client, vault)


def test_a_client_without_a_stored_secret_has_no_hmac_key() -> None:
    client = Client("c1", {"token_endpoint_auth_method": "client_secret_jwt"}, 0)
    with pytest.raises(InvalidClientError, match="no secret"):
        _resolver().hmac_key_for(client, Vault(b"m" * 32))


# --- jwks_uri: success, caching, refresh ----------------------------------------------------------


async def test_jwks_uri_is_fetched_and_cached(jwks_server: JwksServer) -> None:
    resolver = _resolver(jwks_server)
    try:
        client = _client(jwks_uri=jwks_server.url)
        assert _kids(await resolver.keys_for(client)) == ["a"]
        assert _kids(await resolver.keys_for(client)) == ["a"]
        assert jwks_server.requests == 1
    finally:
        await resolver.close()


@pytest.mark.parametrize(
    ("cache_control", "fresh_until"),
    [
        (None, 300),
        ("max-age=120", 120),
        ("public, max-age=5", 60),
        ("max-age=999999999", 86400),
        ("no-store", 60),
    ],
)
async def test_cache_lifetime_follows_max_age_within_bounds(
    jwks_server: JwksServer, cache_control: str | None, fresh_until: int
) -> None:
    jwks_server.cache_control = cache_control
    clock = FakeClock()
    resolver = _resolver(jwks_server, clock=clock)
    try:
        client = _client(jwks_uri=jwks_server.url)
        await resolver.keys_for(client)
        clock.now += fresh_until - 1
        await resolver.keys_for(client)
        assert jwks_server.requests == 1
        clock.now += 2
        await resolver.keys_for(client)
        assert jwks_server.requests == 2
    finally:
        await resolver.close()


async def test_refresh_refetches_once_per_cooldown(jwks_server: JwksServer) -> None:
    clock = FakeClock()
    resolver = _resolver(jwks_server, clock=clock)
    try:
        client = _client(jwks_uri=jwks_server.url)
        assert _kids(await resolver.keys_for(client)) == ["a"]
        jwks_server.jwks = public_jwks(KEY_A, KEY_B)
        assert _kids(await resolver.keys_for(client, refresh=True)) == ["a", "b"]
        assert jwks_server.requests == 2
        # A flood of unknown kids within the cooldown fetches nothing more.
        for _ in range(20):
            await resolver.keys_for(client, refresh=True)
        assert jwks_server.requests == 2
        clock.now += 31
        await resolver.keys_for(client, refresh=True)
        assert jwks_server.requests == 3
    finally:
        await resolver.close()


async def test_concurrent_callers_share_one_fetch(jwks_server: JwksServer) -> None:
    jwks_server.delay = 0.2
    resolver = _resolver(jwks_server)
    try:
        client = _client(jwks_uri=jwks_server.url)
        results = await asyncio.gather(*(resolver.keys_for(client) for _ in range(10)))
        assert all(_kids(keys) == ["a"] for keys in results)
        assert jwks_server.requests == 1
    finally:
        await resolver.close()


# --- jwks_uri: refusals -----------------------------------------------------------------------------

GENERIC = f"cannot use the client's jwks_uri: {FETCH_FAILED}"


async def _refusal(
    resolver: ClientKeyResolver, uri: str, detail: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The fetch fails with the one generic description; the log holds `detail`."""
    caplog.set_level(logging.WARNING, logger="certbound.jwks")
    try:
        with pytest.raises(InvalidClientError) as refused:
            await resolver.keys_for(_client(jwks_uri=uri))
    finally:
        await resolver.close()
    assert refused.value.description == GENERIC
    assert detail in caplog.text
    assert "'c1'" in caplog.text  # the log names the client


async def test_a_name_resolving_to_loopback_is_refused_without_the_flag(
    jwks_server: JwksServer, caplog: pytest.LogCaptureFixture
) -> None:
    resolver = _resolver(jwks_server, allow_private=False)
    await _refusal(resolver, jwks_server.url, "non-public addresses", caplog)
    assert "--allow-private-fetch" in caplog.text
    assert jwks_server.requests == 0


async def test_a_literal_private_address_is_refused_without_the_flag(
    jwks_server: JwksServer, caplog: pytest.LogCaptureFixture
) -> None:
    uri = f"https://127.0.0.1:{jwks_server.port}/jwks"
    await _refusal(_resolver(jwks_server, allow_private=False), uri, "not a public address", caplog)
    assert jwks_server.requests == 0


async def test_a_literal_private_address_is_fetched_with_the_flag(jwks_server: JwksServer) -> None:
    resolver = _resolver(jwks_server)
    try:
        keys = await resolver.keys_for(_client(jwks_uri=f"https://127.0.0.1:{jwks_server.port}/jwks"))
        assert _kids(keys) == ["a"]
    finally:
        await resolver.close()


async def test_a_server_certificate_from_an_untrusted_ca_is_refused(
    jwks_server: JwksServer, caplog: pytest.LogCaptureFixture
) -> None:
    await _refusal(
        _resolver(jwks_server, trust=False), jwks_server.url, "TLS certificate not trusted", caplog
    )


async def test_a_closed_port_is_refused_in_the_same_words(
    jwks_server: JwksServer, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as probe:  # bound, never listening: connection refused
        probe.bind(("127.0.0.1", 0))
        uri = f"https://localhost:{probe.getsockname()[1]}/jwks"
        await _refusal(_resolver(jwks_server), uri, "cannot connect", caplog)


async def test_plain_http_is_refused(jwks_server: JwksServer, caplog: pytest.LogCaptureFixture) -> None:
    await _refusal(_resolver(jwks_server), f"http://localhost:{jwks_server.port}/jwks", "https", caplog)
    assert jwks_server.requests == 0


async def test_a_slow_answer_times_out(jwks_server: JwksServer, caplog: pytest.LogCaptureFixture) -> None:
    jwks_server.delay = 3.0
    resolver = _resolver(jwks_server, timeout=0.3)
    await _refusal(resolver, jwks_server.url, "did not answer within 0.3 s", caplog)


@pytest.mark.parametrize("chunked", [False, True])
async def test_a_large_answer_is_cut_at_the_cap(
    jwks_server: JwksServer, chunked: bool, caplog: pytest.LogCaptureFixture
) -> None:
    jwks_server.body = b" " * (10 * 1024 * 1024)
    jwks_server.chunked = chunked
    await _refusal(_resolver(jwks_server), jwks_server.url, "more than 65536 bytes", caplog)


async def test_an_answer_under_the_cap_is_read(jwks_server: JwksServer) -> None:
    jwks_server.body = json.dumps(public_jwks(KEY_A)).encode().ljust(65536)
    jwks_server.chunked = True
    resolver = _resolver(jwks_server)
    try:
        assert _kids(await resolver.keys_for(_client(jwks_uri=jwks_server.url))) == ["a"]
    finally:
        await resolver.close()


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"<html>", "did not return JSON"),
        (b'{"keys": "none"}', "not return a JWK Set"),
        (b"[]", "JSON object"),
    ],
)
async def test_an_answer_that_is_not_a_jwk_set_is_refused(
    jwks_server: JwksServer, body: bytes, detail: str, caplog: pytest.LogCaptureFixture
) -> None:
    jwks_server.body = body
    await _refusal(_resolver(jwks_server), jwks_server.url, detail, caplog)


async def test_redirects_are_not_followed(jwks_server: JwksServer, caplog: pytest.LogCaptureFixture) -> None:
    jwks_server.redirect_to = "https://169.254.169.254/latest/meta-data"
    await _refusal(_resolver(jwks_server), jwks_server.url, "HTTP 302", caplog)


async def test_error_status_is_refused_and_not_retried_within_the_cooldown(jwks_server: JwksServer) -> None:
    jwks_server.status = 500
    clock = FakeClock()
    resolver = _resolver(jwks_server, clock=clock)
    client = _client(jwks_uri=jwks_server.url)
    try:
        for _ in range(3):
            with pytest.raises(InvalidClientError) as refused:
                await resolver.keys_for(client)
            assert refused.value.description == GENERIC
        assert jwks_server.requests == 1
        jwks_server.status = 200
        clock.now += 31
        assert _kids(await resolver.keys_for(client)) == ["a"]
        assert jwks_server.requests == 2
    finally:
        await resolver.close()


# --- jwks_uri: a fetched set is held to the registration policy -----------------------------------


@pytest.mark.parametrize(
    ("jwks", "rule"),
    [
        ({"keys": [KEY_A.as_dict(private=True)]}, "private"),
        ({"keys": [KEY_A.as_dict(private=False)] * 17}, "17 keys; at most 16"),
        ("weak-rsa", "RSA key of 1024 bits"),
        ("x5c-of-another-key", "holds another key than the JWK"),
    ],
)
async def test_a_fetched_set_out_of_policy_is_refused_naming_the_rule(
    jwks_server: JwksServer, jwks: Any, rule: str, caplog: pytest.LogCaptureFixture
) -> None:
    if jwks == "weak-rsa":
        weak = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
        jwks = {"keys": [public_jwk(weak)]}
    elif jwks == "x5c-of-another-key":
        jwks = {"keys": [{**KEY_A.as_dict(private=False), "x5c": [x5c_of(self_signed(SUBJECT))]}]}
    jwks_server.jwks = jwks
    caplog.set_level(logging.WARNING, logger="certbound.jwks")
    resolver = _resolver(jwks_server)
    try:
        with pytest.raises(InvalidClientError) as refused:
            await resolver.keys_for(_client(jwks_uri=jwks_server.url))
    finally:
        await resolver.close()
    description = refused.value.description
    assert description.startswith("cannot use the client's jwks_uri: its JWK Set is refused: jwks ")
    assert rule in description
    assert jwks_server.url not in description
    assert rule in caplog.text
