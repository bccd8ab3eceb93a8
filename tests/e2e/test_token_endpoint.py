"""SPEC §6 over real TLS: the token endpoint's successes and every refusal it lists."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import aiohttp
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from certbound.jose import b64url_encode
from certbound.testing import CertboundTestServer
from tests.helpers import access_log, basic_auth, check_refusal, jwt_parts

FORM = {"grant_type": "client_credentials"}


async def post_token(
    http: aiohttp.ClientSession,
    server: CertboundTestServer,
    data: Any = None,
    *,
    headers: dict[str, str] | None = None,
    cert: Any = None,
) -> tuple[int, dict[str, Any], aiohttp.typedefs.LooseHeaders]:
    async with http.post(
        server.url + "/token",
        data=FORM if data is None else data,
        headers=headers,
        ssl=server.client_ssl_context(cert),
    ) as response:
        return response.status, json.loads(await response.read()), response.headers


async def test_basic_client_gets_a_jwt_that_verifies_against_jwks(server, http) -> None:
    client = await server.add_client("client_secret_basic")
    status, body, headers = await post_token(
        http, server, headers={"Authorization": basic_auth(client.client_id, client.secret)}
    )
    assert status == 200, body
    assert headers["Cache-Control"] == "no-store"
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 600
    assert body["scope"] == "read write"
    async with http.get(server.url + "/jwks", ssl=server.client_ssl_context()) as response:
        jwks = KeySet.import_key_set(await response.json())
    token = jwt.decode(body["access_token"], jwks)
    assert token.header["typ"] == "at+jwt"
    assert token.header["alg"] == "ES256"
    claims = token.claims
    assert claims["iss"] == server.issuer
    assert claims["sub"] == claims["client_id"] == client.client_id
    assert claims["aud"] == server.issuer
    assert claims["exp"] - claims["iat"] == 600
    assert claims["scope"] == "read write"
    assert "cnf" not in claims
    assert len(claims["jti"]) >= 16


async def test_post_client_gets_a_token(server, http) -> None:
    client = await server.add_client("client_secret_post")
    data = {**FORM, "client_id": client.client_id, "client_secret": client.secret, "scope": "read"}
    status, body, _ = await post_token(http, server, data)
    assert status == 200, body
    assert jwt_parts(body["access_token"])[1]["scope"] == "read"


@pytest.mark.parametrize(
    "secret", ["a:b:c-secret", "100%-secret", "plus+secret", "with space s", "ünïcødé-秘密"]
)
async def test_basic_secrets_are_form_urlencoded(server, http, secret: str) -> None:
    client = await server.add_client("client_secret_basic", secret=secret, client_id="id:with %+ ü")
    status, body, _ = await post_token(
        http, server, headers={"Authorization": basic_auth(client.client_id, secret)}
    )
    assert status == 200, body


async def test_wrong_secret_is_invalid_client_with_basic_challenge(server, http) -> None:
    client = await server.add_client("client_secret_basic")
    status, body, headers = await post_token(
        http, server, headers={"Authorization": basic_auth(client.client_id, "wrong")}
    )
    assert (status, body["error"]) == (401, "invalid_client")
    assert headers["WWW-Authenticate"].startswith("Basic")
    assert headers["Cache-Control"] == "no-store"


async def test_wrong_post_secret_has_no_basic_challenge(server, http) -> None:
    client = await server.add_client("client_secret_post")
    status, body, headers = await post_token(
        http, server, {**FORM, "client_id": client.client_id, "client_secret": "wrong"}
    )
    assert (status, body["error"]) == (401, "invalid_client")
    assert "WWW-Authenticate" not in headers


async def test_unknown_client(server, http) -> None:
    status, body, headers = await post_token(
        http, server, headers={"Authorization": basic_auth("nobody", "x")}
    )
    assert (status, body["error"]) == (401, "invalid_client")
    assert "WWW-Authenticate" in headers


async def test_no_client_authentication_at_all(server, http) -> None:
    status, body, _ = await post_token(http, server)
    assert (status, body["error"]) == (401, "invalid_client")


async def test_malformed_basic_header(server, http) -> None:
    status, body, headers = await post_token(http, server, headers={"Authorization": "Basic %%%not-base64"})
    assert (status, body["error"]) == (401, "invalid_client")
    assert "WWW-Authenticate" in headers


@pytest.mark.parametrize(
    ("registered", "used"), [("client_secret_basic", "post"), ("client_secret_post", "basic")]
)
async def test_method_mismatch_is_invalid_client_even_with_the_right_secret(
    server, http, registered: str, used: str
) -> None:
    client = await server.add_client(registered)
    with access_log() as lines:
        if used == "basic":
            result = await post_token(
                http, server, headers={"Authorization": basic_auth(client.client_id, client.secret)}
            )
        else:
            result = await post_token(
                http, server, {**FORM, "client_id": client.client_id, "client_secret": client.secret}
            )
    status, body, _ = result
    assert status == 401
    # The registered method is named in the log only: the answer must not reveal it.
    assert check_refusal(lines[-1], body, registered) == "method_mismatch"
    assert registered not in body["error_description"]


async def test_two_methods_in_one_request(server, http) -> None:
    client = await server.add_client("client_secret_basic")
    status, body, _ = await post_token(
        http,
        server,
        {**FORM, "client_secret": client.secret},
        headers={"Authorization": basic_auth(client.client_id, client.secret)},
    )
    assert (status, body["error"]) == (400, "invalid_request")


async def test_secret_and_assertion_in_one_request(server, http) -> None:
    client = await server.add_client("client_secret_post")
    data = {
        **FORM,
        "client_id": client.client_id,
        "client_secret": client.secret,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": "a.b.c",
    }
    status, body, _ = await post_token(http, server, data)
    assert (status, body["error"]) == (400, "invalid_request")


async def test_get_is_405(server, http) -> None:
    async with http.get(server.url + "/token", ssl=server.client_ssl_context()) as response:
        assert response.status == 405
        assert (await response.json())["error"] == "invalid_request"
        assert response.headers["Allow"] == "POST"


async def test_json_body_is_invalid_request(server, http) -> None:
    client = await server.add_client("client_secret_basic")
    async with http.post(
        server.url + "/token",
        json=FORM,
        headers={"Authorization": basic_auth(client.client_id, client.secret)},
        ssl=server.client_ssl_context(),
    ) as response:
        assert response.status == 400
        assert (await response.json())["error"] == "invalid_request"
        assert response.headers["Cache-Control"] == "no-store"


async def test_repeated_parameter_is_invalid_request(server, http) -> None:
    client = await server.add_client("client_secret_basic")
    status, body, _ = await post_token(
        http,
        server,
        "grant_type=client_credentials&scope=read&scope=write",
        headers={
            "Authorization": basic_auth(client.client_id, client.secret),
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    assert (status, body["error"]) == (400, "invalid_request")
    assert "scope" in body["error_description"]


async def test_unsupported_grant_type(server, http) -> None:
    client = await server.add_client("client_secret_basic")
    status, body, _ = await post_token(
        http,
        server,
        {"grant_type": "password"},
        headers={"Authorization": basic_auth(client.client_id, client.secret)},
    )
    assert (status, body["error"]) == (400, "unsupported_grant_type")


async def test_missing_grant_type(server, http) -> None:
    client = await server.add_client("client_secret_basic")
    status, body, _ = await post_token(
        http,
        server,
        {"scope": "read"},
        headers={"Authorization": basic_auth(client.client_id, client.secret)},
    )
    assert (status, body["error"]) == (400, "invalid_request")


async def test_scope_outside_the_clients_is_invalid_scope(server, http) -> None:
    client = await server.add_client("client_secret_basic", scope="read")
    status, body, _ = await post_token(
        http,
        server,
        {**FORM, "scope": "read write"},
        headers={"Authorization": basic_auth(client.client_id, client.secret)},
    )
    assert (status, body["error"]) == (400, "invalid_scope")


async def test_client_not_registered_for_the_grant(server, http) -> None:
    client = await server.add_client("client_secret_basic", grant_types=[])
    status, body, _ = await post_token(
        http, server, headers={"Authorization": basic_auth(client.client_id, client.secret)}
    )
    assert (status, body["error"]) == (400, "unauthorized_client")


async def test_none_client_is_refused_client_credentials(server, http) -> None:
    client = await server.add_client("none")
    status, body, _ = await post_token(http, server, {**FORM, "client_id": client.client_id})
    assert (status, body["error"]) == (400, "unauthorized_client")


async def test_expired_secret_is_invalid_client(server, http) -> None:
    client = await server.add_client("client_secret_basic")
    context = server.running.context
    stored = await context.store.get_client(client.client_id)
    assert stored is not None
    from dataclasses import replace

    await context.store.update_client(replace(stored, secret_expires_at=int(time.time()) - 1))
    context.clients.invalidate(client.client_id)
    status, body, _ = await post_token(
        http, server, headers={"Authorization": basic_auth(client.client_id, client.secret)}
    )
    assert (status, body["error"]) == (401, "invalid_client")
    assert "expired" in body["error_description"]


async def test_resource_parameter_sets_the_audience(server, http) -> None:
    client = await server.add_client("client_secret_basic")
    auth = {"Authorization": basic_auth(client.client_id, client.secret)}
    status, body, _ = await post_token(
        http, server, {**FORM, "resource": "https://api.example.com/"}, headers=auth
    )
    assert status == 200, body
    assert jwt_parts(body["access_token"])[1]["aud"] == "https://api.example.com/"
    status, body, _ = await post_token(http, server, {**FORM, "resource": "not a uri"}, headers=auth)
    assert (status, body["error"]) == (400, "invalid_request")


async def test_reference_token_for_a_client_that_wants_one(server, http) -> None:
    client = await server.add_client("client_secret_basic", access_token_as_jwt=False)
    status, body, _ = await post_token(
        http, server, headers={"Authorization": basic_auth(client.client_id, client.secret)}
    )
    assert status == 200, body
    assert body["access_token"].count(".") == 0
    from certbound.tokens import reference_token_hash

    stored = await server.running.context.store.get_reference_token(
        reference_token_hash(body["access_token"])
    )
    assert stored is not None
    assert stored.client_id == client.client_id


async def test_bound_client_gets_cnf_of_the_presented_certificate(server, http) -> None:
    client = await server.add_client("client_secret_basic", tls_client_certificate_bound_access_tokens=True)
    cert = server.issue_client_cert("bound.example")
    status, body, _ = await post_token(
        http, server, headers={"Authorization": basic_auth(client.client_id, client.secret)}, cert=cert
    )
    assert status == 200, body
    from cryptography import x509

    der = x509.load_pem_x509_certificate(cert.cert_chain_pems[0].bytes()).public_bytes(
        __import__("cryptography.hazmat.primitives.serialization", fromlist=["Encoding"]).Encoding.DER
    )
    expected = b64url_encode(hashlib.sha256(der).digest())
    assert jwt_parts(body["access_token"])[1]["cnf"] == {"x5t#S256": expected}


async def test_bound_client_without_certificate_is_refused(server, http) -> None:
    client = await server.add_client("client_secret_basic", tls_client_certificate_bound_access_tokens=True)
    status, body, _ = await post_token(
        http, server, headers={"Authorization": basic_auth(client.client_id, client.secret)}
    )
    assert (status, body["error"]) == (400, "invalid_request")


async def test_unbound_client_with_certificate_gets_no_cnf(server, http) -> None:
    client = await server.add_client("client_secret_basic")
    status, body, _ = await post_token(
        http,
        server,
        headers={"Authorization": basic_auth(client.client_id, client.secret)},
        cert=server.issue_client_cert("x.example"),
    )
    assert status == 200, body
    assert "cnf" not in jwt_parts(body["access_token"])[1]


async def test_body_over_64_kib_is_413(server, http) -> None:
    client = await server.add_client("client_secret_basic")
    status, body, _ = await post_token(
        http,
        server,
        {**FORM, "padding": "x" * (65 * 1024)},
        headers={"Authorization": basic_auth(client.client_id, client.secret)},
    )
    assert status == 413
    assert body["error"] == "invalid_request"


async def test_discovery_lists_what_works(server, http) -> None:
    for path in ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"):
        async with http.get(server.url + path, ssl=server.client_ssl_context()) as response:
            assert response.status == 200
            metadata = await response.json()
        assert metadata["issuer"] == server.issuer
        assert metadata["token_endpoint"] == server.issuer + "/token"
        assert metadata["jwks_uri"] == server.issuer + "/jwks"
        assert "client_credentials" in metadata["grant_types_supported"]
        methods = set(metadata["token_endpoint_auth_methods_supported"])
        assert {"client_secret_basic", "client_secret_post", "none"} <= methods
        assert "none" not in metadata["introspection_endpoint_auth_methods_supported"]
        assert metadata["scopes_supported"] == ["read", "write"]


async def test_jwks_kid_is_the_rfc7638_thumbprint(server, http) -> None:
    from certbound.jose import rfc7638_thumbprint

    async with http.get(server.url + "/jwks", ssl=server.client_ssl_context()) as response:
        keys = (await response.json())["keys"]
    assert keys
    for key in keys:
        assert key["kid"] == rfc7638_thumbprint(key)
        assert "d" not in key


async def test_healthz_and_metrics(server, http) -> None:
    client = await server.add_client("client_secret_basic")
    await post_token(http, server, headers={"Authorization": basic_auth(client.client_id, client.secret)})
    async with http.get(server.url + "/healthz", ssl=server.client_ssl_context()) as response:
        assert response.status == 200
    async with http.get(server.url + "/metrics", ssl=server.client_ssl_context()) as response:
        text = await response.text()
    assert (
        'certbound_tokens_issued_total{auth_method="client_secret_basic",grant_type="client_credentials"} 1.0'
        in text
    )
    assert 'certbound_request_duration_seconds_count{route="/token"} 1.0' in text
