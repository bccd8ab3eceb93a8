"""Issue 9 findings 3, 4, 7 and 13 over real TLS: what a self-registered client can make the server
decode, verify, fetch or build is bounded before the expensive work, and each refusal says why.

Every server here registers openly (`registration="open"`), whatever the default, because the
attacker of the issue is a self-registered client."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from certbound.errors import InvalidClientMetadataError
from certbound.jose import public_jwk
from certbound.jwks import keyset
from certbound.models import Client
from certbound.pki.trust import TrustStore
from certbound.reasons import Reason
from certbound.testing import CertboundTestServer
from tests.assertion_kit import assertion_form, claims_for, compact, generate_key, public_jwks, sign
from tests.helpers import access_log, check_refusal
from tests.unit.pki.builders import (
    Issued,
    from_trustme,
    huge_exponent_key,
    issue,
    make_ca,
    name,
    new_key,
    x5c_of,
)

CLIENT = name((NameOID.COMMON_NAME, "client"))


@pytest.fixture
async def server() -> AsyncIterator[CertboundTestServer]:
    async with CertboundTestServer(registration="open") as running:
        yield running


async def _register(
    http: aiohttp.ClientSession, server: CertboundTestServer, **metadata: Any
) -> tuple[int, dict[str, Any]]:
    async with http.post(
        server.url + "/register", json=metadata, ssl=server.client_ssl_context()
    ) as response:
        return response.status, await response.json()


async def _token(
    http: aiohttp.ClientSession, server: CertboundTestServer, form: dict[str, str], context: Any = None
) -> tuple[int, dict[str, Any]]:
    async with http.post(
        server.url + "/token", data=form, ssl=context or server.client_ssl_context()
    ) as response:
        return response.status, await response.json()


def _huge_exponent_jwk() -> dict[str, Any]:
    return public_jwk(huge_exponent_key(3072).public_key())


# --- finding 3: key sets at registration -------------------------------------------------------------


@pytest.mark.parametrize(
    ("jwks", "problem"),
    [
        ("230-copies", "jwks holds 230 keys; at most 16 are accepted"),
        ("one-huge-exponent", "jwks key 0 is an RSA key with a public exponent above 4294967297"),
        ("rsa-1024", "jwks key 0 is an RSA key of 1024 bits (allowed: 2048 to 8192)"),
        ("same-kid", "jwks keys 0 and 1 are both EC keys with kid 'k': a kid must name one key"),
    ],
)
async def test_registration_refuses_key_sets_out_of_policy(
    server: CertboundTestServer, http: aiohttp.ClientSession, jwks: str, problem: str
) -> None:
    members: list[dict[str, Any]]
    if jwks == "230-copies":
        members = [_huge_exponent_jwk()] * 230
    elif jwks == "one-huge-exponent":
        members = [_huge_exponent_jwk()]
    elif jwks == "rsa-1024":
        members = [public_jwk(rsa.generate_private_key(65537, 1024).public_key())]
    else:
        members = public_jwks(generate_key("ES256", kid="k"), generate_key("ES256", kid="k"))["keys"]
    for method in ("private_key_jwt", "self_signed_tls_client_auth"):
        status, body = await _register(
            http, server, token_endpoint_auth_method=method, jwks={"keys": members}
        )
        assert (status, body["error"]) == (400, "invalid_client_metadata"), body
        assert body["error_description"] == problem
    # The admin door refuses the same set the same way.
    with pytest.raises(InvalidClientMetadataError, match=re.escape(problem)):
        await server.add_client("private_key_jwt", jwks={"keys": members})


async def test_registration_accepts_the_largest_set_in_policy(
    server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    keys = [generate_key("RS256", kid=f"k{index}") for index in range(16)]
    status, body = await _register(
        http, server, token_endpoint_auth_method="private_key_jwt", jwks=public_jwks(*keys)
    )
    assert status == 201, body
    assertion = sign(keys[7], "RS256", claims_for(body["client_id"], server.issuer))
    status, body = await _token(http, server, assertion_form(assertion))
    assert status == 200, body


# --- finding 3: one key per assertion ---------------------------------------------------------------


async def test_several_keys_that_fit_need_a_kid_and_only_that_key_is_tried(
    server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    keys = [generate_key("ES256", kid=f"k{index}") for index in range(3)]
    client = await server.add_client("private_key_jwt", jwks=public_jwks(*keys))
    claims = claims_for(client.client_id, server.issuer)
    with access_log() as lines:
        status, body = await _token(http, server, assertion_form(sign(keys[1], "ES256", claims, kid=None)))
    assert status == 401, body
    check_refusal(lines[-1], body, "3 of the client's keys can verify alg ES256")
    assert "kid" in lines[-1]["detail"]
    # Twin: naming the key.
    status, body = await _token(http, server, assertion_form(sign(keys[1], "ES256", claims)))
    assert status == 200, body
    # Naming another of the client's keys: that one alone is tried, and refuses.
    forged = sign(keys[1], "ES256", claims_for(client.client_id, server.issuer), kid="k2")
    with access_log() as lines:
        status, body = await _token(http, server, assertion_form(forged))
    assert status == 401, body
    assert check_refusal(lines[-1], body, "client_assertion signature is invalid") is Reason.BAD_SIGNATURE


async def test_a_set_registered_before_the_policy_is_refused_cheaply(
    server: CertboundTestServer, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's attack against a client stored before this change: 230 huge-exponent keys and
    a junk signature. It is refused by counting, without a single key decoded or RSA operation."""
    client_id = "legacy-client"
    metadata = {
        "token_endpoint_auth_method": "private_key_jwt",
        "grant_types": ["client_credentials"],
        "jwks": {"keys": [_huge_exponent_jwk()] * 230},
    }
    await server.running.context.store.create_client(Client(client_id, metadata, int(time.time())))
    junk = compact({"alg": "RS256"}, claims_for(client_id, server.issuer), b"\x01" * 384)
    imported: list[object] = []
    original = keyset.public_key_from_jwk

    def counting(member: object) -> Any:
        imported.append(member)
        return original(member)

    monkeypatch.setattr(keyset, "public_key_from_jwk", counting)
    for _ in range(5):
        with access_log() as lines:
            status, body = await _token(http, server, assertion_form(junk))
        assert status == 401, body
        check_refusal(lines[-1], body, "client's registered jwks holds 230 keys; at most 16 are accepted")
    assert imported == []


# --- finding 13: x5c must certify the JWK's own key --------------------------------------------------


async def test_registration_refuses_an_x5c_of_another_key(
    server: CertboundTestServer, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    mine, other = make_ca(CLIENT), make_ca(CLIENT)
    jwk = public_jwk(mine.key.public_key())
    for method in ("self_signed_tls_client_auth", "private_key_jwt"):
        status, body = await _register(
            http, server, token_endpoint_auth_method=method, jwks={"keys": [{**jwk, "x5c": [x5c_of(other)]}]}
        )
        assert (status, body["error"]) == (400, "invalid_client_metadata"), body
        assert "x5c[0] certificate that holds another key than the JWK" in body["error_description"]
    # Twin: the JWK's own certificate registers, and authenticates with that certificate.
    status, body = await _register(
        http,
        server,
        token_endpoint_auth_method="self_signed_tls_client_auth",
        jwks={"keys": [{**jwk, "x5c": [x5c_of(mine)]}]},
    )
    assert status == 201, body
    context = server.client_ssl_context()
    mine.configure_cert(context, tmp_path)
    status, token = await _token(
        http, server, {"grant_type": "client_credentials", "client_id": body["client_id"]}, context
    )
    assert status == 200, token


# --- finding 7: jwks_uri literals -------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "[64:ff9b::a00:1]",
        "[64:ff9b:1::a00:1]",
        "[::a00:1]",
        "[::ffff:0:a00:1]",
        "[::ffff:10.0.0.1]",
        "[fec0::1]",
    ],
)
async def test_registration_refuses_a_jwks_uri_that_embeds_or_reaches_a_private_address(
    server: CertboundTestServer, http: aiohttp.ClientSession, host: str
) -> None:
    status, body = await _register(
        http, server, token_endpoint_auth_method="private_key_jwt", jwks_uri=f"https://{host}/jwks"
    )
    assert (status, body["error"]) == (400, "invalid_client_metadata"), body
    assert body["error_description"] == f"jwks_uri host {host.strip('[]')} is not a public address"


async def test_registration_accepts_a_public_jwks_uri(
    server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    status, body = await _register(
        http, server, token_endpoint_auth_method="private_key_jwt", jwks_uri="https://[64:ff9b::808:808]/jwks"
    )
    assert status == 201, body


# --- finding 4: abusive chains ----------------------------------------------------------------------


def _same_name_chain(count: int) -> Issued:
    """A leaf sent with `count` self-issued intermediates that share one name and one key, each a
    valid issuer of every other (issue 9 finding 4 used 8; fewer already branch)."""
    key = new_key()
    loop = [make_ca(name((NameOID.COMMON_NAME, "Loop CA")), key=key) for _ in range(count)]
    leaf = issue(loop[0], CLIENT, send_chain=False)
    return Issued(leaf.cert, leaf.key, tuple(ca.cert for ca in loop))


async def test_a_chain_of_same_name_intermediates_is_refused_before_path_building(
    server: CertboundTestServer, http: aiohttp.ClientSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[object] = []
    original = TrustStore._validate

    def counting(self: TrustStore, *args: Any) -> Any:
        built.append(args)
        return original(self, *args)

    monkeypatch.setattr(TrustStore, "_validate", counting)
    client = await server.add_client("tls_client_auth", tls_client_auth_subject_dn="CN=client")
    context = server.client_ssl_context()
    _same_name_chain(4).configure_cert(context, tmp_path)
    form = {"grant_type": "client_credentials", "client_id": client.client_id}
    for _ in range(3):  # one keep-alive connection, and the refusal is remembered
        with access_log() as lines:
            status, body = await _token(http, server, form, context)
        assert status == 401, body
        check_refusal(lines[-1], body, "two of the intermediate certificates sent have the same subject")
    assert built == []
    # Twin: a certificate of the trusted CA through one intermediate is validated and accepted.
    good = issue(
        make_ca(name((NameOID.COMMON_NAME, "Issuing CA")), parent=from_trustme(server.client_ca)), CLIENT
    )
    context = server.client_ssl_context()
    good.configure_cert(context, tmp_path)
    status, body = await _token(http, server, form, context)
    assert status == 200, body
    assert len(built) == 1


@pytest.mark.parametrize(
    ("alg", "pooled"), [("ES256", False), ("EdDSA", False), ("ES384", True), ("ES512", True)]
)
async def test_signatures_dear_to_verify_run_on_the_cpu_pool(
    server: CertboundTestServer,
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
    alg: str,
    pooled: bool,
) -> None:
    pool = server.running.context.cpu
    jobs: list[object] = []
    original = pool.run

    async def recording(function: Any, *args: Any) -> Any:
        jobs.append(function)
        return await original(function, *args)

    monkeypatch.setattr(pool, "run", recording)
    key = generate_key(alg, kid="k")
    client = await server.add_client("private_key_jwt", jwks=public_jwks(key))
    status, body = await _token(
        http, server, assertion_form(sign(key, alg, claims_for(client.client_id, server.issuer)))
    )
    assert status == 200, body
    assert len(jobs) == (1 if pooled else 0)
    # A forged signature is refused the same way on either side of the threshold.
    forged = sign(generate_key(alg, kid="k"), alg, claims_for(client.client_id, server.issuer))
    with access_log() as lines:
        status, body = await _token(http, server, assertion_form(forged))
    assert status == 401, body
    assert check_refusal(lines[-1], body, "client_assertion signature is invalid") is Reason.BAD_SIGNATURE
