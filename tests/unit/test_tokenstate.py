"""certbound.accesstoken's RFC 9068 format checks, and certbound.tokenstate: the server's view of its own
tokens."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.jwk import JWKRegistry

from certbound.accesstoken import read_access_token_jwt, verified_claims
from certbound.app import build_context
from certbound.config import Settings
from certbound.context import ServerContext
from certbound.errors import InvalidTokenError
from certbound.jose import b64url_encode, json_compact
from certbound.keys import KeyRing, SigningKey
from certbound.models import Client
from certbound.tokenstate import find_token, revoke_token
from tests.helpers import jwt_parts, sign_jwt

ISSUER = "https://as.certbound.test"


@pytest.fixture
async def context() -> AsyncIterator[ServerContext]:
    built = await build_context(Settings(db="sqlite://:memory:", issuer=ISSUER))
    yield built
    await built.store.close()


def client(*, as_jwt: bool = True) -> Client:
    return Client("c1", {"access_token_as_jwt": as_jwt}, 0)


async def issue(
    context: ServerContext, *, as_jwt: bool = True, x5t: str | None = None, jkt: str | None = None
) -> str:
    issued = await context.tokens.issue(
        client(as_jwt=as_jwt), subject="c1", scope="read", audience=ISSUER, x5t_s256=x5t, jkt=jkt
    )
    assert issued.token_type == ("DPoP" if jkt is not None else "Bearer")
    return issued.access_token


def compact(header: dict[str, object], claims: dict[str, object], signature: str = "c2ln") -> str:
    return f"{b64url_encode(json_compact(header))}.{b64url_encode(json_compact(claims))}.{signature}"


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("opaque", "not a JWT"),
        ("a.b.c", "malformed"),
        (compact({"alg": "ES256", "kid": "k"}, {}), "typ must be at+jwt"),
        (compact({"alg": "ES256", "kid": "k", "typ": "JWT"}, {}), "typ must be at+jwt"),
        (compact({"alg": "none", "kid": "k", "typ": "at+jwt"}, {}), "'none' is not accepted"),
        (compact({"alg": "HS256", "kid": "k", "typ": "at+jwt"}, {}), "'HS256' is not accepted"),
        (compact({"alg": "ES256", "typ": "at+jwt"}, {}), "names no kid"),
    ],
)
def test_read_access_token_jwt_refuses(token: str, reason: str) -> None:
    with pytest.raises(InvalidTokenError, match=re.escape(reason)):
        read_access_token_jwt(token)


@pytest.mark.parametrize("typ", ["at+jwt", "application/at+jwt", "AT+JWT"])
def test_read_access_token_jwt_accepts_both_spellings_of_the_type(typ: str) -> None:
    signed = read_access_token_jwt(compact({"alg": "ES256", "kid": "k", "typ": typ}, {}))
    assert signed.headers()["kid"] == "k"


def signing_key() -> SigningKey:
    return SigningKey.from_private_key(ec.generate_private_key(ec.SECP256R1()), "ES256", 0)


def test_verified_claims_checks_the_signature_and_the_keys_alg() -> None:
    key, other = signing_key(), signing_key()
    token = sign_jwt(key, "at+jwt", {"sub": "x"})
    signed = read_access_token_jwt(token)

    assert verified_claims(signed, JWKRegistry.import_key({**key.jwk})) == {"sub": "x"}
    with pytest.raises(InvalidTokenError, match="signature is invalid"):
        verified_claims(signed, JWKRegistry.import_key({**other.jwk}))
    with pytest.raises(InvalidTokenError, match="does not match its signing key"):
        verified_claims(signed, JWKRegistry.import_key({**key.jwk, "alg": "ES384"}))


def test_verified_claims_wants_a_json_object() -> None:
    key = signing_key()
    header = key.header_b64("at+jwt")
    signing_input = f"{header}.{b64url_encode(b'[1]')}"
    token = f"{signing_input}.{b64url_encode(key.sign(signing_input.encode()))}"
    with pytest.raises(InvalidTokenError, match="not a JSON object"):
        verified_claims(read_access_token_jwt(token), JWKRegistry.import_key({**key.jwk}))


@pytest.mark.parametrize("as_jwt", [True, False], ids=["jwt", "reference"])
async def test_find_token_reads_back_what_was_issued(context: ServerContext, as_jwt: bool) -> None:
    token = await issue(context, as_jwt=as_jwt, x5t="thumb")
    state = await find_token(token, context)

    assert state is not None
    assert (state.client_id, state.subject, state.scope, state.audience) == ("c1", "c1", "read", ISSUER)
    assert state.x5t_s256 == "thumb"
    assert state.expires_at - state.issued_at == context.settings.token_lifetime
    assert (state.reference_hash is None) is as_jwt
    assert state.is_active(time.time())
    assert not state.is_active(state.expires_at)
    assert state.introspection(ISSUER) == {
        "active": True,
        "client_id": "c1",
        "sub": "c1",
        "scope": "read",
        "exp": state.expires_at,
        "iat": state.issued_at,
        "iss": ISSUER,
        "aud": ISSUER,
        "token_type": "Bearer",
        "jti": state.jti,
        "cnf": {"x5t#S256": "thumb"},
    }


@pytest.mark.parametrize("as_jwt", [True, False], ids=["jwt", "reference"])
@pytest.mark.parametrize(
    ("x5t", "cnf"),
    [(None, {"jkt": "key-thumb"}), ("cert-thumb", {"x5t#S256": "cert-thumb", "jkt": "key-thumb"})],
    ids=["dpop", "dpop+mtls"],
)
async def test_a_dpop_bound_token_is_introspected_as_dpop(
    context: ServerContext, as_jwt: bool, x5t: str | None, cnf: dict[str, str]
) -> None:
    token = await issue(context, as_jwt=as_jwt, x5t=x5t, jkt="key-thumb")
    if as_jwt:
        assert jwt_parts(token)[1]["cnf"] == cnf
    state = await find_token(token, context)
    assert state is not None
    assert (state.x5t_s256, state.jkt) == (x5t, "key-thumb")
    answer = state.introspection(ISSUER)
    assert (answer["token_type"], answer["cnf"]) == ("DPoP", cnf)


async def test_unbound_token_has_no_cnf(context: ServerContext) -> None:
    state = await find_token(await issue(context), context)
    assert state is not None
    assert "cnf" not in state.introspection(ISSUER)


@pytest.mark.parametrize("as_jwt", [True, False], ids=["jwt", "reference"])
async def test_revoke_token_makes_it_inactive(context: ServerContext, as_jwt: bool) -> None:
    token = await issue(context, as_jwt=as_jwt)
    state = await find_token(token, context)
    assert state is not None
    assert not state.revoked

    await revoke_token(state, context.store)

    after = await find_token(token, context)
    assert after is not None
    assert after.revoked
    assert not after.is_active(time.time())


async def test_find_token_ignores_what_is_not_ours(context: ServerContext) -> None:
    token = await issue(context)
    header, payload, _ = token.split(".")
    claims = jwt_parts(token)[1]
    foreign, ours = signing_key(), context.keys.active
    # The twin: re-signing the same claims with our key is recognised.
    assert await find_token(sign_jwt(ours, "at+jwt", claims), context) is not None

    for candidate in (
        "unknown-reference",
        sign_jwt(foreign, "at+jwt", claims),
        sign_jwt(ours, "at+jwt", {**claims, "iss": "https://other.example"}),
        sign_jwt(ours, "at+jwt", {**claims, "exp": "soon"}),
        sign_jwt(ours, "at+jwt", {**claims, "cnf": {"jkt": 5}}),
        sign_jwt(ours, "at+jwt", {**claims, "cnf": {}}),
        sign_jwt(ours, "at+jwt", {**claims, "cnf": {"jkt": "x", "x5t": "y"}}),
        sign_jwt(ours, "JWT", claims),
        f"{header}.{payload}.AAAA",
    ):
        assert await find_token(candidate, context) is None, candidate


async def test_a_key_no_longer_published_no_longer_verifies(context: ServerContext) -> None:
    token = await issue(context)
    await context.keys.rotate()
    assert await find_token(token, context) is not None  # retired, still published
    # A key ring whose grace period has passed stops publishing the retired key.
    ring = KeyRing(context.store, context.vault, alg="ES256", publish_after_retirement=-10)
    await ring.refresh()
    assert await find_token(token, replace(context, keys=ring)) is None
