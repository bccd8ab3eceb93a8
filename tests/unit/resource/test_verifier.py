"""certbound.resource's TokenVerifier against a scripted authorization server (conftest.py): RFC 9068
§4 claim checks, the RFC 8705 binding, key-set fetching, introspection and its opt-in cache (SPEC §3),
failures of the AS."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any
from urllib.parse import unquote_plus

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from certbound.dpop import DPoPKey
from certbound.errors import InvalidTokenError
from certbound.resource import AuthorizationServerError, DPoPRequest, TokenVerifier, certificate_thumbprint
from certbound.tls import PeerCertificates
from tests.unit.resource.conftest import ScriptedAS, client_certificate, new_key, sign


async def test_a_valid_jwt_is_verified(authorization_server, verifier) -> None:
    token = authorization_server.token(aud=["https://other.example", authorization_server.issuer])
    verified = await verifier.verify(token, None)
    assert verified.client_id == verified.subject == "client-1"
    assert verified.scope == "read write"
    assert verified.scopes == {"read", "write"}
    assert verified.audience == ("https://other.example", authorization_server.issuer)
    assert verified.issuer == authorization_server.issuer
    assert verified.cnf is None
    assert verified.claims["jti"] == verified.jti


@pytest.mark.parametrize(
    ("changes", "description"),
    [
        ({"iss": "https://evil.example"}, "another authorization server"),
        ({"aud": "https://other.example"}, "another audience"),
        ({"aud": ["https://a.example", "https://b.example"]}, "another audience"),
        ({"exp": -61}, "expired"),  # exp and nbf are relative to now here
        ({"nbf": 120}, "not valid yet"),
        ({"exp": None}, "has no exp"),
        ({"jti": None}, "has no jti"),
        ({"exp": "tomorrow"}, "exp is not a number"),
        ({"client_id": 7}, "client_id is not a string"),
        ({"cnf": {"jkt": "abc"}}, "DPoP-bound: send it with the DPoP scheme"),
        ({"cnf": {"x5t": "abc"}}, "not a certificate or DPoP key thumbprint"),
        ({"cnf": {"jkt": 5}}, "not a certificate or DPoP key thumbprint"),
        ({"cnf": {}}, "not a certificate or DPoP key thumbprint"),
        ({"cnf": "abc"}, "not a certificate or DPoP key thumbprint"),
    ],
)
async def test_claims_that_fail(authorization_server, verifier, changes, description) -> None:
    now = int(time.time())
    changes = {
        name: now + value if name in ("exp", "nbf") and isinstance(value, int) else value
        for name, value in changes.items()
    }
    with pytest.raises(InvalidTokenError, match=description):
        await verifier.verify(authorization_server.token(**changes), None)


async def test_expiry_and_nbf_within_the_leeway_pass(authorization_server, verifier) -> None:
    now = int(time.time())
    await verifier.verify(authorization_server.token(exp=now - 30, nbf=now + 30), None)


def forged_with_published_kid(scripted: ScriptedAS) -> str:
    return sign(new_key(), scripted.claims(), kid=scripted.key.kid)


@pytest.mark.parametrize(
    ("token_of", "description"),
    [
        (lambda scripted: scripted.token(typ="JWT"), "typ must be at.jwt"),
        (lambda scripted: scripted.token(key=new_key()), "does not publish"),
        (forged_with_published_kid, "signature is invalid"),
        (lambda scripted: "opaque-reference-token", "not a JWT"),
    ],
)
async def test_tokens_that_fail(authorization_server, verifier, token_of, description) -> None:
    with pytest.raises(InvalidTokenError, match=description):
        await verifier.verify(token_of(authorization_server), None)


@pytest.mark.parametrize("as_peer", [False, True], ids=["x509", "PeerCertificates"])
async def test_binding_accepts_the_certificate_and_refuses_others(
    authorization_server, verifier, as_peer
) -> None:
    certificate = client_certificate()
    presented: Any = PeerCertificates.from_certs(certificate, ()) if as_peer else certificate
    token = authorization_server.token(cnf={"x5t#S256": certificate_thumbprint(certificate)})

    verified = await verifier.verify(token, presented)

    assert verified.cnf == {"x5t#S256": certificate_thumbprint(certificate)}
    with pytest.raises(InvalidTokenError, match="does not match"):
        await verifier.verify(token, client_certificate())
    with pytest.raises(InvalidTokenError, match="present it over mutual TLS"):
        await verifier.verify(token, None)


def test_thumbprint_is_base64url_sha256_of_der() -> None:
    certificate = client_certificate()
    digest = hashlib.sha256(certificate.public_bytes(Encoding.DER)).digest()
    assert certificate_thumbprint(certificate) == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def test_metadata_and_keys_are_fetched_once(authorization_server, verifier) -> None:
    for _ in range(3):
        await verifier.verify(authorization_server.token(), None)
    assert authorization_server.hits == {"metadata": 1, "jwks": 1}


async def test_unknown_kids_refetch_at_most_once_per_cooldown(authorization_server, verifier) -> None:
    await verifier.verify(authorization_server.token(), None)
    for _ in range(5):
        with pytest.raises(InvalidTokenError, match="does not publish"):
            await verifier.verify(authorization_server.token(key=new_key()), None)
    assert authorization_server.hits["jwks"] == 1  # the first fetch is within the cooldown


async def test_a_rotated_key_is_fetched_on_its_first_token(authorization_server) -> None:
    async with TokenVerifier(
        issuer=authorization_server.issuer, ca_file=authorization_server.ca_file, jwks_refresh_cooldown=0
    ) as verifier:
        await verifier.verify(authorization_server.token(), None)
        rotated = new_key()
        authorization_server.keys.append(rotated)
        await verifier.verify(authorization_server.token(key=rotated), None)
        assert authorization_server.hits["jwks"] == 2


async def test_failed_refresh_keeps_the_keys_fetched_before(authorization_server) -> None:
    async with TokenVerifier(
        issuer=authorization_server.issuer,
        ca_file=authorization_server.ca_file,
        jwks_refresh_cooldown=0,
        jwks_max_age=0,
    ) as verifier:
        await verifier.verify(authorization_server.token(), None)
        authorization_server.jwks_status = 500
        await verifier.verify(authorization_server.token(), None)
        assert authorization_server.hits["jwks"] == 2


async def test_concurrent_unknown_kids_share_one_fetch(authorization_server, verifier) -> None:
    tokens = [authorization_server.token(key=new_key()) for _ in range(10)]
    results = await asyncio.gather(
        *(verifier.verify(token, None) for token in tokens), return_exceptions=True
    )
    assert all(isinstance(result, InvalidTokenError) for result in results)
    assert authorization_server.hits["jwks"] == 1


async def test_unreachable_authorization_server(tmp_path) -> None:
    async with TokenVerifier(issuer="https://127.0.0.1:9", timeout=2) as verifier:
        with pytest.raises(AuthorizationServerError):
            await verifier.verify(sign(new_key(), {}), None)


async def test_untrusted_authorization_server_certificate(authorization_server) -> None:
    async with TokenVerifier(issuer=authorization_server.issuer) as verifier:
        with pytest.raises(AuthorizationServerError):
            await verifier.verify(authorization_server.token(), None)


async def test_metadata_for_another_issuer_is_refused(authorization_server, verifier) -> None:
    authorization_server.metadata_issuer = "https://evil.example"
    with pytest.raises(AuthorizationServerError, match="another issuer"):
        await verifier.verify(authorization_server.token(), None)


@pytest.mark.parametrize("body", [b"[]", b"not json", b'{"keys": "x"}', b"{" + b" " * 300_000 + b"}"])
async def test_unusable_key_sets_are_refused(authorization_server, verifier, body: bytes) -> None:
    authorization_server.jwks_body = body
    with pytest.raises(AuthorizationServerError):
        await verifier.verify(authorization_server.token(), None)


class Clock:
    """Seconds since the epoch, moved by the test."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@asynccontextmanager
async def introspecting_verifier(
    scripted: ScriptedAS, clock: Clock, **options: Any
) -> AsyncIterator[TokenVerifier]:
    async with TokenVerifier(
        issuer=scripted.issuer,
        ca_file=scripted.ca_file,
        introspection_client_id="rs:1",
        introspection_client_secret="s3cr%t +ü",
        clock=clock,
        **options,
    ) as built:
        yield built


@pytest.fixture
async def introspecting(authorization_server: ScriptedAS, clock: Clock) -> AsyncIterator[TokenVerifier]:
    async with introspecting_verifier(authorization_server, clock) as built:
        yield built


@pytest.fixture
async def caching(authorization_server: ScriptedAS, clock: Clock) -> AsyncIterator[TokenVerifier]:
    async with introspecting_verifier(authorization_server, clock, introspection_cache_ttl=30) as built:
        yield built


async def test_introspection_authenticates_with_form_encoded_basic(
    authorization_server, introspecting
) -> None:
    authorization_server.answer = authorization_server.active_answer()
    verified = await introspecting.verify("opaque", None)
    assert verified.client_id == "client-1"
    scheme, _, encoded = authorization_server.authorizations[0].partition(" ")
    client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
    assert (scheme, unquote_plus(client_id), unquote_plus(secret)) == ("Basic", "rs:1", "s3cr%t +ü")


async def test_introspection_answers_are_not_cached_by_default(authorization_server, introspecting) -> None:
    """SPEC §3 (issue 9, finding 17): a revocation is seen on the very next request."""
    authorization_server.answer = authorization_server.active_answer()
    await introspecting.verify("opaque", None)
    authorization_server.answer = {"active": False}  # revoked
    with pytest.raises(InvalidTokenError, match="not active"):
        await introspecting.verify("opaque", None)
    assert authorization_server.hits["introspect"] == 2


async def test_introspection_answers_are_cached_when_asked(authorization_server, caching, clock) -> None:
    authorization_server.answer = authorization_server.active_answer()
    await caching.verify("opaque", None)
    authorization_server.answer = {"active": False}
    await caching.verify("opaque", None)  # the cached answer, for up to 30 s
    assert authorization_server.hits["introspect"] == 1
    clock.now += 30
    with pytest.raises(InvalidTokenError, match="not active"):
        await caching.verify("opaque", None)
    assert authorization_server.hits["introspect"] == 2


async def test_each_token_has_its_own_cache_entry(authorization_server, caching) -> None:
    authorization_server.answer = authorization_server.active_answer()
    await caching.verify("opaque", None)
    await caching.verify("opaque", None)
    authorization_server.answer = {"active": False}
    with pytest.raises(InvalidTokenError, match="not active"):
        await caching.verify("another", None)
    assert authorization_server.hits["introspect"] == 2


async def test_cached_answer_does_not_outlive_the_token(authorization_server, caching, clock) -> None:
    authorization_server.answer = authorization_server.active_answer(exp=int(clock.now) + 5)
    await caching.verify("opaque", None)
    clock.now += 6  # past exp, within the 30 s cache TTL and within the 60 s leeway
    authorization_server.answer = {"active": False}
    with pytest.raises(InvalidTokenError, match="not active"):
        await caching.verify("opaque", None)
    assert authorization_server.hits["introspect"] == 2


def test_negative_cache_ttl_is_refused() -> None:
    with pytest.raises(ValueError, match="introspection_cache_ttl"):
        TokenVerifier(issuer="https://as.example", introspection_cache_ttl=-1)


def test_description_says_what_each_mode_means_for_revocation() -> None:
    jwt_mode = TokenVerifier(issuer="https://as.example").describe()
    assert "JWT mode cannot see revocation" in jwt_mode
    options: dict[str, Any] = {"introspection_client_id": "rs", "introspection_client_secret": "s"}
    uncached = TokenVerifier(issuer="https://as.example", **options).describe()
    assert "revoked token is refused at once" in uncached
    cached = TokenVerifier(issuer="https://as.example", introspection_cache_ttl=5, **options).describe()
    assert "cached up to 5 s" in cached


async def test_introspection_checks_the_same_claims(authorization_server, introspecting) -> None:
    certificate = client_certificate()
    authorization_server.answer = authorization_server.active_answer(
        cnf={"x5t#S256": certificate_thumbprint(certificate)}
    )
    assert (await introspecting.verify("bound", certificate)).cnf is not None
    with pytest.raises(InvalidTokenError, match="does not match"):
        await introspecting.verify("bound", client_certificate())
    authorization_server.answer = authorization_server.active_answer(aud="https://other.example")
    with pytest.raises(InvalidTokenError, match="another audience"):
        await introspecting.verify("other-audience", None)


@pytest.mark.parametrize(("status", "answer"), [(200, {"activ": True}), (200, {"active": "yes"}), (401, {})])
async def test_unusable_introspection_answers(authorization_server, introspecting, status, answer) -> None:
    authorization_server.introspect_status = status
    authorization_server.answer = answer
    with pytest.raises(AuthorizationServerError):
        await introspecting.verify("opaque", None)


def test_introspection_needs_both_credentials() -> None:
    with pytest.raises(ValueError, match="both"):
        TokenVerifier(issuer="https://as.example", introspection_client_id="rs")


# DPoP (RFC 9449 §7)
class Remembering:
    """A shared replay store of the verifier's choosing (ProofReplayCheck)."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}

    async def first_use(self, jti: str, remember_until: int) -> bool:
        if jti in self.seen:
            return False
        self.seen[jti] = remember_until
        return True


async def test_behind_a_proxy_the_configured_origin_is_the_htu(authorization_server: ScriptedAS) -> None:
    key = DPoPKey()
    token = authorization_server.token(cnf={"jkt": key.jkt})
    internal = DPoPRequest("GET", "http://10.0.0.5:8080/resource?x=1", [])
    replay = Remembering()
    async with TokenVerifier(
        issuer=authorization_server.issuer,
        ca_file=authorization_server.ca_file,
        dpop_origin="https://api.example/",
        dpop_replay=replay,
    ) as verifier:
        proof = key.proof("GET", "https://api.example/resource", access_token=token)
        verified = await verifier.verify(token, dpop=replace(internal, proofs=[proof]))
        assert verified.cnf == {"jkt": key.jkt}
        assert len(replay.seen) == 1
        with pytest.raises(InvalidTokenError, match="already been used"):
            await verifier.verify(token, dpop=replace(internal, proofs=[proof]))
    # Twin: without dpop_origin the request's own URL is the htu.
    async with TokenVerifier(
        issuer=authorization_server.issuer, ca_file=authorization_server.ca_file
    ) as plain:
        fresh = key.proof("GET", "https://api.example/resource", access_token=token)
        with pytest.raises(InvalidTokenError, match="htu is not") as refused:
            await plain.verify(token, dpop=replace(internal, proofs=[fresh]))
        assert refused.value.error == "invalid_dpop_proof"
        assert refused.value.dpop_algs == plain.dpop_algs


async def test_only_the_configured_algorithms_are_accepted(authorization_server: ScriptedAS) -> None:
    key = DPoPKey()
    token = authorization_server.token(cnf={"jkt": key.jkt})
    url = "https://api.example/resource"
    async with TokenVerifier(
        issuer=authorization_server.issuer, ca_file=authorization_server.ca_file, dpop_algs=["PS256"]
    ) as verifier:
        assert verifier.dpop_algs == ("PS256",)
        request = DPoPRequest("GET", url, [key.proof("GET", url, access_token=token)])
        with pytest.raises(InvalidTokenError, match="alg 'ES256' is not accepted"):
            await verifier.verify(token, dpop=request)
