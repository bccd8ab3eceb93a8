"""client_secret_jwt and private_key_jwt end to end (SPEC §7): a real server over TLS, a real
HTTPS client, keys inline or at a jwks_uri served over HTTPS (trustme) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import signal
import socket
import ssl
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.jwk import Key, RSAKey

from certbound.jose import b64url_decode, public_jwk
from certbound.jwks import FETCH_FAILED, FetchLimits
from certbound.reasons import GENERIC_REFUSAL, Reason
from certbound.testing import CertboundTestServer, TestClient
from tests.assertion_kit import (
    JwksServer,
    assertion_form,
    claims_for,
    compact,
    generate_key,
    hmac_compact,
    public_jwks,
    sign,
)
from tests.helpers import access_log, check_refusal
from tests.unit.pki.builders import huge_exponent_key


async def _token(
    http: aiohttp.ClientSession, server: CertboundTestServer, form: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    async with http.post(server.url + "/token", data=form, ssl=server.client_ssl_context()) as response:
        return response.status, await response.json()


async def _accepted(
    http: aiohttp.ClientSession, server: CertboundTestServer, assertion: str
) -> dict[str, Any]:
    status, body = await _token(http, server, assertion_form(assertion))
    assert status == 200, body
    assert body["token_type"] == "Bearer"
    return body


async def _refused(
    http: aiohttp.ClientSession, server: CertboundTestServer, assertion: str, match: str, **extra: str
) -> None:
    with access_log() as lines:
        status, body = await _token(http, server, assertion_form(assertion, **extra))
    assert status == 401, body
    (line,) = lines
    check_refusal(line, body, match)


async def _key_client(
    server: CertboundTestServer, alg: str = "ES256", **metadata: Any
) -> tuple[TestClient, Key]:
    key = generate_key(alg, kid=f"{alg}-1")
    client = await server.add_client("private_key_jwt", jwks=public_jwks(key), **metadata)
    return client, key


async def _secret_client(server: CertboundTestServer, **metadata: Any) -> TestClient:
    return await server.add_client("client_secret_jwt", **metadata)


def _hs256(client: TestClient, aud: Any, **claims: Any) -> str:
    assert client.secret is not None
    return hmac_compact(client.secret.encode(), "HS256", claims_for(client.client_id, aud, **claims))


# --- successes -------------------------------------------------------------------------------------


async def test_client_secret_jwt_hs256(server: CertboundTestServer, http: aiohttp.ClientSession) -> None:
    client = await _secret_client(server)
    await _accepted(http, server, _hs256(client, server.issuer))


@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES256", "EdDSA", "ES384", "PS512"])
async def test_private_key_jwt_each_alg_family(
    server: CertboundTestServer, http: aiohttp.ClientSession, alg: str
) -> None:
    client, key = await _key_client(server, alg)
    await _accepted(http, server, sign(key, alg, claims_for(client.client_id, server.issuer)))


async def test_issuer_in_a_one_element_array_and_typ_client_authentication(
    server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    client, key = await _key_client(server)
    claims = claims_for(client.client_id, [server.issuer])
    await _accepted(http, server, sign(key, "ES256", claims, typ="client-authentication+jwt"))


async def test_client_id_parameter_equal_to_sub_is_accepted(
    server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    client, key = await _key_client(server)
    assertion = sign(key, "ES256", claims_for(client.client_id, server.issuer))
    status, body = await _token(http, server, assertion_form(assertion, client_id=client.client_id))
    assert status == 200, body


async def test_nbf_within_the_clock_skew_is_accepted(
    server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    client, key = await _key_client(server)
    await _accepted(
        http, server, sign(key, "ES256", claims_for(client.client_id, server.issuer, nbf=time.time() + 8))
    )


async def test_token_endpoint_audience_only_in_legacy_mode(
    server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    async with CertboundTestServer(assertion_audience="legacy") as legacy:
        client, key = await _key_client(legacy)
        endpoint = legacy.issuer + "/token"
        await _accepted(http, legacy, sign(key, "ES256", claims_for(client.client_id, endpoint)))
        await _accepted(http, legacy, sign(key, "ES256", claims_for(client.client_id, [endpoint])))
        await _refused(
            http, legacy, sign(key, "ES256", claims_for(client.client_id, [legacy.issuer, endpoint])), "aud"
        )
    client, key = await _key_client(server)
    strict = sign(key, "ES256", claims_for(client.client_id, server.issuer + "/token"))
    await _refused(http, server, strict, f"aud must be {server.issuer}")


async def test_discovery_lists_both_methods_and_signing_algs(
    server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    url = server.url + "/.well-known/oauth-authorization-server"
    async with http.get(url, ssl=server.client_ssl_context()) as response:
        metadata = await response.json()
    assert {"client_secret_jwt", "private_key_jwt"} <= set(metadata["token_endpoint_auth_methods_supported"])
    expected = {f"{family}{bits}" for family in ("HS", "RS", "PS", "ES") for bits in (256, 384, 512)} | {
        "EdDSA"
    }
    for endpoint in ("token", "introspection", "revocation"):
        algs = metadata[f"{endpoint}_endpoint_auth_signing_alg_values_supported"]
        assert set(algs) == expected
        assert "none" not in algs


# --- refusals: claims --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("claims", "match"),
    [
        ({"aud": "https://elsewhere.example"}, "aud must be"),
        ({"aud": ["{issuer}", "https://elsewhere.example"]}, "exactly one value"),
        ({"nbf": 61.5}, "nbf is in the future"),
        ({"iat": 90}, "iat is in the future"),
        ({"exp": None}, "has no exp"),
        ({"exp": -120, "iat": -300}, "expired"),
        ({"exp": 3600}, "too long-lived"),
        ({"iss": "someone-else"}, "iss must be the client_id"),
        ({"jti": None}, "has no jti"),
    ],
)
async def test_bad_claims_are_invalid_client(
    server: CertboundTestServer, http: aiohttp.ClientSession, claims: dict[str, Any], match: str
) -> None:
    client, key = await _key_client(server)
    now = time.time()
    resolved: dict[str, Any] = {}
    for name, value in claims.items():
        if name in ("nbf", "iat", "exp") and value is not None:
            value = now + value
        elif name == "aud":
            value = (
                [item.format(issuer=server.issuer) for item in value] if isinstance(value, list) else value
            )
        resolved[name] = value
    await _refused(
        http,
        server,
        sign(key, "ES256", claims_for(client.client_id, resolved.pop("aud", server.issuer), **resolved)),
        match,
    )
    await _accepted(http, server, sign(key, "ES256", claims_for(client.client_id, server.issuer)))


async def test_sub_other_than_the_client_id_parameter_is_refused(
    server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    client, key = await _key_client(server)
    other = await server.add_client("client_secret_basic")
    assertion = sign(key, "ES256", claims_for(client.client_id, server.issuer, sub=other.client_id))
    await _refused(http, server, assertion, "sub", client_id=client.client_id)


async def test_typ_of_an_access_token_is_refused(
    server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    client, key = await _key_client(server)
    assertion = sign(key, "ES256", claims_for(client.client_id, server.issuer), typ="at+jwt")
    await _refused(http, server, assertion, "not a client authentication JWT")


# --- refusals: replay ----------------------------------------------------------------------------------


async def test_a_jti_is_accepted_once(server: CertboundTestServer, http: aiohttp.ClientSession) -> None:
    client, key = await _key_client(server)
    assertion = sign(key, "ES256", claims_for(client.client_id, server.issuer))
    await _accepted(http, server, assertion)
    await _refused(http, server, assertion, "already been used")
    # Same jti, new signature: still a replay.
    again = sign(
        key, "ES256", claims_for(client.client_id, server.issuer, jti=json.loads(_payload(assertion))["jti"])
    )
    await _refused(http, server, again, "already been used")


def _payload(assertion: str) -> bytes:
    return b64url_decode(assertion.split(".")[1])


async def test_two_concurrent_requests_with_one_jti_exactly_one_wins(
    server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    client, key = await _key_client(server)
    for _ in range(3):
        assertion = sign(key, "ES256", claims_for(client.client_id, server.issuer))
        results = await asyncio.gather(*(_token(http, server, assertion_form(assertion)) for _ in range(2)))
        assert sorted(status for status, _ in results) == [200, 401]


async def test_a_forged_assertion_does_not_burn_the_clients_jti(
    server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    client, key = await _key_client(server)
    claims = claims_for(client.client_id, server.issuer)
    forged = sign(generate_key("ES256", kid=key.kid), "ES256", claims)
    await _refused(http, server, forged, "signature is invalid")
    await _accepted(http, server, sign(key, "ES256", claims))


async def test_a_same_jti_from_another_client_is_not_a_replay(
    server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    first, first_key = await _key_client(server)
    second, second_key = await _key_client(server)
    await _accepted(
        http, server, sign(first_key, "ES256", claims_for(first.client_id, server.issuer, jti="shared"))
    )
    await _accepted(
        http, server, sign(second_key, "ES256", claims_for(second.client_id, server.issuer, jti="shared"))
    )


# --- refusals: algorithms and keys -------------------------------------------------------------------


async def test_alg_none_is_refused(server: CertboundTestServer, http: aiohttp.ClientSession) -> None:
    client, _ = await _key_client(server)
    unsigned = compact({"alg": "none"}, claims_for(client.client_id, server.issuer), b"")
    await _refused(http, server, unsigned, "alg none")
    secret_client = await _secret_client(server)
    unsigned = compact({"alg": "none"}, claims_for(secret_client.client_id, server.issuer), b"")
    await _refused(http, server, unsigned, "alg none")


async def test_hs256_keyed_by_the_public_key_pem_is_refused(
    server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    client, key = await _key_client(server, "RS256")
    assert isinstance(key, RSAKey)
    pem = key.as_pem(private=False)
    forged = hmac_compact(pem, "HS256", claims_for(client.client_id, server.issuer), kid=key.kid)
    await _refused(http, server, forged, "alg HS256 is not allowed for private_key_jwt")


async def test_a_public_key_pem_as_client_secret_never_keys_an_hmac(
    server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    key = generate_key("RS256")
    assert isinstance(key, RSAKey)
    pem = key.as_pem(private=False)
    client = await server.add_client("client_secret_jwt", secret=pem.decode())
    forged = hmac_compact(pem, "HS256", claims_for(client.client_id, server.issuer))
    await _refused(http, server, forged, "public key")


async def test_asymmetric_assertion_for_a_client_secret_jwt_client_is_refused(
    server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    client = await _secret_client(server)
    assertion = sign(generate_key("ES256"), "ES256", claims_for(client.client_id, server.issuer))
    await _refused(http, server, assertion, "alg ES256 is not allowed for client_secret_jwt")


async def test_hmac_assertion_for_a_private_key_jwt_client_is_refused(
    server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    client, _ = await _key_client(server)
    assertion = hmac_compact(
        b"guessable-shared-secret-material!!", "HS256", claims_for(client.client_id, server.issuer)
    )
    await _refused(http, server, assertion, "alg HS256 is not allowed for private_key_jwt")


async def test_alg_other_than_the_registered_one_is_refused(
    server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    rsa_key = generate_key("RS256", kid="r")
    client = await server.add_client(
        "private_key_jwt", jwks=public_jwks(rsa_key), token_endpoint_auth_signing_alg="PS256"
    )
    claims = claims_for(client.client_id, server.issuer)
    await _refused(http, server, sign(rsa_key, "RS256", claims), "differs from the registered")
    await _accepted(http, server, sign(rsa_key, "PS256", claims))


async def test_hmac_alg_other_than_the_registered_one_is_refused(
    server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    client = await _secret_client(server, token_endpoint_auth_signing_alg="HS512")
    assert client.secret is not None
    claims = claims_for(client.client_id, server.issuer)
    await _refused(
        http, server, hmac_compact(client.secret.encode(), "HS256", claims), "differs from the registered"
    )
    await _accepted(http, server, hmac_compact(client.secret.encode(), "HS512", claims))


async def test_expired_client_secret_is_refused(
    server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    registered = await _secret_client(server)
    context = server.running.context
    stored = await context.store.get_client(registered.client_id)
    assert stored is not None
    await context.store.update_client(dataclasses.replace(stored, secret_expires_at=int(time.time()) - 1))
    context.clients.invalidate(registered.client_id)
    await _refused(http, server, _hs256(registered, server.issuer), "secret has expired")


async def test_wrong_client_assertion_type_is_refused(
    server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    client, key = await _key_client(server)
    assertion = sign(key, "ES256", claims_for(client.client_id, server.issuer))
    form = assertion_form(
        assertion, client_assertion_type="urn:ietf:params:oauth:client-assertion-type:saml2-bearer"
    )
    status, body = await _token(http, server, form)
    assert (status, body["error"]) == (401, "invalid_client")
    assert "client_assertion_type must be" in body["error_description"]


@pytest.mark.parametrize("garbage", ["not-a-jwt", "a.b.c", "eyJhbGciOiJFUzI1NiJ9.e30.", "x" * 30000])
async def test_malformed_jwt_is_refused(
    server: CertboundTestServer, http: aiohttp.ClientSession, garbage: str
) -> None:
    client, _ = await _key_client(server)
    await _refused(http, server, garbage, "client_assertion", client_id=client.client_id)


# --- jwks_uri -----------------------------------------------------------------------------------------------


async def test_jwks_uri_keys_and_rotation_without_restart(
    fetching_server: CertboundTestServer, jwks_server: JwksServer, http: aiohttp.ClientSession
) -> None:
    old, new = generate_key("ES256", kid="2025"), generate_key("RS256", kid="2026")
    jwks_server.jwks = public_jwks(old)
    client = await fetching_server.add_client("private_key_jwt", jwks_uri=jwks_server.url)
    issuer = fetching_server.issuer
    await _accepted(http, fetching_server, sign(old, "ES256", claims_for(client.client_id, issuer)))
    await _accepted(http, fetching_server, sign(old, "ES256", claims_for(client.client_id, issuer)))
    assert jwks_server.requests == 1  # cached

    jwks_server.jwks = public_jwks(new)
    await _accepted(http, fetching_server, sign(new, "RS256", claims_for(client.client_id, issuer)))
    assert jwks_server.requests == 2  # one refetch for the unknown kid


async def test_unknown_kid_after_refetch_is_refused_and_floods_fetch_nothing(
    fetching_server: CertboundTestServer, jwks_server: JwksServer, http: aiohttp.ClientSession
) -> None:
    key = generate_key("ES256", kid="registered")
    jwks_server.jwks = public_jwks(key)
    client = await fetching_server.add_client("private_key_jwt", jwks_uri=jwks_server.url)
    issuer = fetching_server.issuer
    await _accepted(http, fetching_server, sign(key, "ES256", claims_for(client.client_id, issuer)))
    for _ in range(5):
        stranger = sign(generate_key("ES256"), "ES256", claims_for(client.client_id, issuer), kid="unknown")
        await _refused(http, fetching_server, stranger, "kid 'unknown' matches none")
    assert jwks_server.requests == 2  # the first fetch and one refetch, then the cooldown


async def test_jwks_uri_on_a_private_address_needs_the_flag(
    server: CertboundTestServer,
    jwks_server: JwksServer,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = generate_key("ES256", kid="k")
    jwks_server.jwks = public_jwks(key)
    client = await server.add_client("private_key_jwt", jwks_uri=jwks_server.url)
    assertion = sign(key, "ES256", claims_for(client.client_id, server.issuer))
    await _refused_fetch(http, server, assertion, caplog, "--allow-private-fetch")
    assert jwks_server.requests == 0


async def _refused_fetch(
    http: aiohttp.ClientSession,
    server: CertboundTestServer,
    assertion: str,
    caplog: pytest.LogCaptureFixture,
    detail: str,
) -> None:
    """Issue 9 finding 7: the client is told nothing of the fetch (its refusal is not disclosed);
    the access line says the jwks_uri could not be used, and the certbound.jwks log what went wrong."""
    caplog.set_level(logging.WARNING, logger="certbound.jwks")
    with access_log() as lines:
        status, body = await _token(http, server, assertion_form(assertion))
    assert status == 401, body
    reason = check_refusal(lines[-1], body, f"cannot use the client's jwks_uri: {FETCH_FAILED}")
    assert reason is Reason.JWKS_UNAVAILABLE
    assert body["error_description"] == GENERIC_REFUSAL
    assert detail in caplog.text


async def test_slow_jwks_uri_is_refused(
    fetching_server: CertboundTestServer,
    jwks_server: JwksServer,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fetching_server.running.context.client_keys.limits = FetchLimits(timeout=0.5)
    key = generate_key("ES256", kid="k")
    jwks_server.jwks = public_jwks(key)
    jwks_server.delay = 6.0
    client = await fetching_server.add_client("private_key_jwt", jwks_uri=jwks_server.url)
    assertion = sign(key, "ES256", claims_for(client.client_id, fetching_server.issuer))
    await _refused_fetch(http, fetching_server, assertion, caplog, "did not answer within 0.5 s")


async def test_ten_megabyte_jwks_uri_is_refused(
    fetching_server: CertboundTestServer,
    jwks_server: JwksServer,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    jwks_server.body = b"[" + b" " * (10 * 1024 * 1024) + b"]"
    jwks_server.chunked = True
    key = generate_key("ES256", kid="k")
    client = await fetching_server.add_client("private_key_jwt", jwks_uri=jwks_server.url)
    assertion = sign(key, "ES256", claims_for(client.client_id, fetching_server.issuer))
    await _refused_fetch(http, fetching_server, assertion, caplog, "more than 65536 bytes")


async def test_closed_port_timeout_and_tls_failure_read_the_same_to_the_client(
    fetching_server: CertboundTestServer,
    jwks_server: JwksServer,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 9 finding 7: no port-scanner oracle. Three clients whose jwks_uri fail three ways get
    the same description; the server log tells the operator which way."""
    fetching_server.running.context.client_keys.limits = FetchLimits(timeout=0.5)
    key = generate_key("ES256", kid="k")
    with socket.socket() as silent, socket.socket() as closed:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # accepts, never speaks TLS: the fetch times out
        closed.bind(("127.0.0.1", 0))  # not listening: connection refused
        uris = {
            "cannot connect": f"https://localhost:{closed.getsockname()[1]}/jwks",
            "did not answer within 0.5 s": f"https://localhost:{silent.getsockname()[1]}/jwks",
        }
        # A server that does not trust the JWKS server's CA: the TLS handshake fails.
        async with CertboundTestServer(allow_private_fetch=True) as strict:
            strict.running.context.client_keys.limits = FetchLimits(timeout=0.5)
            jwks_server.jwks = public_jwks(key)
            client = await strict.add_client("private_key_jwt", jwks_uri=jwks_server.url)
            await _refused_fetch(
                http, strict, sign(key, "ES256", claims_for(client.client_id, strict.issuer)), caplog,
                "TLS certificate not trusted",
            )  # fmt: skip
        for detail, uri in uris.items():
            client = await fetching_server.add_client("private_key_jwt", jwks_uri=uri)
            assertion = sign(key, "ES256", claims_for(client.client_id, fetching_server.issuer))
            await _refused_fetch(http, fetching_server, assertion, caplog, detail)


@pytest.mark.parametrize(
    ("served", "rule"),
    # 64 KiB (the fetch cap) holds ~50 huge-exponent keys (issue 9 finding 3).
    [("50-huge-exponent", "50 keys; at most 16"), ("weak-rsa", "RSA key of 1024 bits")],
)
async def test_a_fetched_set_out_of_policy_is_refused_naming_the_rule(
    fetching_server: CertboundTestServer,
    jwks_server: JwksServer,
    http: aiohttp.ClientSession,
    served: str,
    rule: str,
) -> None:
    if served == "weak-rsa":
        jwks_server.jwks = {"keys": [public_jwk(rsa.generate_private_key(65537, 1024).public_key())]}
    else:
        jwks_server.jwks = {"keys": [public_jwk(huge_exponent_key(2048).public_key())] * 50}
    client = await fetching_server.add_client("private_key_jwt", jwks_uri=jwks_server.url)
    assertion = compact({"alg": "RS256"}, claims_for(client.client_id, fetching_server.issuer), b"\x01" * 256)
    with access_log() as lines:
        status, body = await _token(http, fetching_server, assertion_form(assertion))
    assert status == 401, body
    check_refusal(lines[-1], body, "cannot use the client's jwks_uri: its JWK Set is refused: ")
    assert rule in lines[-1]["detail"]
    assert body["error_description"] == GENERIC_REFUSAL


# --- replay across processes --------------------------------------------------------------------------------


def _certbound() -> list[str]:
    script = Path(sys.executable).with_name("certbound")
    return [str(script)] if script.exists() else [sys.executable, "-m", "certbound"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _ready(process: asyncio.subprocess.Process) -> str:
    assert process.stdout is not None
    while True:
        line = (await process.stdout.readline()).decode()
        if not line:
            raise RuntimeError("certbound serve exited before it was ready")
        if line.startswith("listening on "):
            return line.removeprefix("listening on ").strip()


async def test_a_jti_used_on_one_process_is_refused_by_another_sharing_the_database(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    cert, key_file = tmp_path / "server.pem", tmp_path / "server.key"
    leaf.private_key_pem.write_to_path(str(key_file))
    cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    db = f"sqlite:///{tmp_path / 'shared.db'}"
    first_port, second_port = _free_port(), _free_port()
    issuer = f"https://localhost:{first_port}"
    env = {name: value for name, value in os.environ.items() if not name.startswith("CERTBOUND_")}

    signing_key = generate_key("ES256", kid="k")
    data = tmp_path / "client.json"
    data.write_text(
        json.dumps({"token_endpoint_auth_method": "private_key_jwt", "jwks": public_jwks(signing_key)})
    )
    add = await asyncio.create_subprocess_exec(
        *_certbound(),
        "clients",
        "add",
        "--db",
        db,
        "--data",
        str(data),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=tmp_path,
    )
    out, err = await asyncio.wait_for(add.communicate(), 60)
    assert add.returncode == 0, err.decode()
    client_id = next(
        line.split(":", 1)[1].strip() for line in out.decode().splitlines() if line.startswith("client_id")
    )

    processes = [
        await asyncio.create_subprocess_exec(
            *_certbound(),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--db",
            db,
            "--tls-cert",
            str(cert),
            "--tls-key",
            str(key_file),
            "--issuer",
            issuer,
            "--drain-timeout",
            "1",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env=env,
            cwd=tmp_path,
        )
        for port in (first_port, second_port)
    ]
    try:
        urls = [await asyncio.wait_for(_ready(process), 60) for process in processes]
        tls = ssl.create_default_context()
        ca.configure_trust(tls)

        async def post(url: str, assertion: str) -> tuple[int, dict[str, Any]]:
            async with http.post(url + "/token", data=assertion_form(assertion), ssl=tls) as response:
                return response.status, await response.json()

        assertion = sign(signing_key, "ES256", claims_for(client_id, issuer))
        assert (await post(urls[0], assertion))[0] == 200
        status, body = await post(urls[1], assertion)
        assert (status, body["error"]) == (401, "invalid_client")
        assert "already been used" in body["error_description"]
        # The other process does accept a fresh assertion: the refusal was the replay.
        assert (await post(urls[1], sign(signing_key, "ES256", claims_for(client_id, issuer))))[0] == 200
    finally:
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                await asyncio.wait_for(process.wait(), 20)
            except TimeoutError:
                process.kill()
                await process.wait()
    assert [process.returncode for process in processes] == [0, 0]
