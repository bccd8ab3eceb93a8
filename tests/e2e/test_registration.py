"""RFC 7591 registration and RFC 7592 management over real TLS (SPEC §9)."""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from certbound.jose import public_jwk
from certbound.testing import CertboundTestServer
from certbound.tokens import reference_token_hash
from tests.assertion_kit import assertion_form, claims_for, generate_key, hmac_compact, public_jwks, sign
from tests.helpers import basic_auth, jwt_parts

INITIAL_TOKEN = "initial-access-token-0123456789"
#: RFC 7592 §2.2: an update must not carry these; a read response has them.
READ_ONLY = (
    "registration_access_token",
    "registration_client_uri",
    "client_secret_expires_at",
    "client_id_issued_at",
)


class Reply:
    def __init__(self, status: int, body: Any, headers: Any) -> None:
        self.status = status
        self.body = body
        self.headers = headers


async def call(
    http: aiohttp.ClientSession,
    server: CertboundTestServer,
    method: str,
    path: str,
    *,
    json_body: Any = None,
    data: bytes | None = None,
    token: str | None = None,
) -> Reply:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    if path.startswith(server.issuer):
        path = path.removeprefix(server.issuer)
    async with http.request(
        method,
        server.url + path,
        json=json_body,
        data=data,
        headers=headers,
        ssl=server.client_ssl_context(),
    ) as response:
        raw = await response.read()
        return Reply(response.status, json.loads(raw) if raw else None, response.headers)


async def register(http: aiohttp.ClientSession, server: CertboundTestServer, **metadata: Any) -> Reply:
    return await call(http, server, "POST", "/register", json_body=metadata)


async def put_registration(
    http: aiohttp.ClientSession,
    server: CertboundTestServer,
    registered: dict[str, Any],
    *,
    json_body: Any = None,
    data: bytes | None = None,
) -> Reply:
    """RFC 7592 §2.2: PUT to the client's configuration endpoint with its registration token."""
    return await call(
        http,
        server,
        "PUT",
        registered["registration_client_uri"],
        json_body=json_body,
        data=data,
        token=registered["registration_access_token"],
    )


async def token_request(
    http: aiohttp.ClientSession, server: CertboundTestServer, client: dict[str, Any]
) -> Reply:
    form = {"grant_type": "client_credentials"}
    headers: dict[str, str] = {}
    method = client["token_endpoint_auth_method"]
    if method == "client_secret_basic":
        headers["Authorization"] = basic_auth(client["client_id"], client["client_secret"])
    elif method == "client_secret_post":
        form |= {"client_id": client["client_id"], "client_secret": client["client_secret"]}
    else:
        form["client_id"] = client["client_id"]
    async with http.post(
        server.url + "/token", data=form, headers=headers, ssl=server.client_ssl_context()
    ) as response:
        return Reply(response.status, await response.json(), response.headers)


def update_body(information: dict[str, Any], **changes: Any) -> dict[str, Any]:
    body = {name: value for name, value in information.items() if name not in READ_ONLY}
    body.pop("client_secret", None)
    body.update(changes)
    return body


@pytest.fixture
async def token_mode_server() -> AsyncIterator[CertboundTestServer]:
    async with CertboundTestServer(registration="token", registration_token=INITIAL_TOKEN) as running:
        yield running


# RFC 7591 §3.2.1: the response
async def test_registration_answers_201_with_defaults_and_credentials(server, http) -> None:
    before = int(time.time())
    reply = await register(http, server, client_name="Billing", software_id="b-1", x_custom={"a": [1]})
    assert reply.status == 201, reply.body
    assert reply.headers["Cache-Control"] == "no-store"
    body = reply.body
    assert body["token_endpoint_auth_method"] == "client_secret_basic"
    assert body["grant_types"] == ["client_credentials"]
    assert body["scope"] == "read write"
    assert body["access_token_as_jwt"] is True
    assert body["tls_client_certificate_bound_access_tokens"] is False
    assert body["client_name"] == "Billing"
    assert body["x_custom"] == {"a": [1]}  # RFC 7591 §2: unknown metadata kept and returned
    assert len(body["client_secret"]) == 43  # 256 bits, base64url
    assert body["client_secret_expires_at"] == 0
    assert before <= body["client_id_issued_at"] <= int(time.time())
    assert len(body["registration_access_token"]) >= 43
    assert body["registration_client_uri"] == f"{server.issuer}/register/{body['client_id']}"


async def test_client_chosen_id_and_secret_are_ignored(server, http) -> None:
    reply = await register(http, server, client_id="mine", client_secret="chosen-secret-123")
    assert reply.status == 201
    assert reply.body["client_id"] != "mine"
    assert reply.body["client_secret"] != "chosen-secret-123"


async def test_secret_lifetime_sets_expiry() -> None:
    async with (
        CertboundTestServer(client_secret_lifetime=3600) as server,
        aiohttp.ClientSession() as http,
    ):
        reply = await register(http, server)
    assert reply.status == 201
    assert reply.body["client_secret_expires_at"] - reply.body["client_id_issued_at"] in (3600, 3601)


async def test_public_client_gets_no_secret(server, http) -> None:
    reply = await register(http, server, token_endpoint_auth_method="none")
    assert reply.status == 201
    assert reply.body["grant_types"] == []
    assert "client_secret" not in reply.body
    assert "client_secret_expires_at" not in reply.body
    assert "registration_access_token" in reply.body


# RFC 7591 §3.2.2: errors
@pytest.mark.parametrize(
    ("metadata", "error", "field"),
    [
        ({"redirect_uris": ["https://app.example.com/cb#frag"]}, "invalid_redirect_uri", "redirect_uris"),
        ({"redirect_uris": ["/relative"]}, "invalid_redirect_uri", "redirect_uris"),
        ({"redirect_uris": "https://app.example.com/cb"}, "invalid_redirect_uri", "redirect_uris"),
        ({"token_endpoint_auth_method": "magic"}, "invalid_client_metadata", "token_endpoint_auth_method"),
        (
            {"jwks": {"keys": []}, "jwks_uri": "https://app.example.com/jwks"},
            "invalid_client_metadata",
            "jwks",
        ),
        ({"token_endpoint_auth_signing_alg": "none"}, "invalid_client_metadata", "signing_alg"),
        ({"token_endpoint_auth_signing_alg": "HS1024"}, "invalid_client_metadata", "signing_alg"),
        ({"scope": "read delete"}, "invalid_client_metadata", "scope"),
        ({"grant_types": "client_credentials"}, "invalid_client_metadata", "grant_types"),
        ({"grant_types": ["password"]}, "invalid_client_metadata", "grant_types"),
        ({"response_types": ["token"]}, "invalid_client_metadata", "response_types"),
        (
            {"token_endpoint_auth_method": "none", "grant_types": ["client_credentials"]},
            "invalid_client_metadata",
            "grant_types",
        ),
        ({"access_token_as_jwt": "no"}, "invalid_client_metadata", "access_token_as_jwt"),
        ({"client_uri": "javascript:alert(1)"}, "invalid_client_metadata", "client_uri"),
        ({"contacts": "ops@example.com"}, "invalid_client_metadata", "contacts"),
    ],
)
async def test_invalid_metadata_is_refused_naming_the_field(
    server, http, metadata: dict[str, Any], error: str, field: str
) -> None:
    reply = await register(http, server, **metadata)
    assert reply.status == 400
    assert reply.body["error"] == error
    assert field in reply.body["error_description"]
    assert reply.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    "raw",
    [b"", b"not json", b"[]", b'"string"', b"42", b"null", b'{"a": 1', b"\xff\xfe{}"],
    ids=["empty", "text", "array", "string", "number", "null", "truncated", "not-utf8"],
)
async def test_body_that_is_not_a_json_object_is_invalid_client_metadata(server, http, raw: bytes) -> None:
    reply = await call(http, server, "POST", "/register", data=raw)
    assert reply.status == 400
    assert reply.body["error"] == "invalid_client_metadata"


@pytest.mark.parametrize(
    "raw",
    [
        b'{"x":' * 40_000 + b"1" + b"}" * 40_000,
        b"[" * 250_000,
        b'{"jwks": {"keys": ' + b"[" * 20 + b"]" * 20 + b"}}",
        b'{"a": NaN}',
        b'{"a": 1e999}',
    ],
    ids=["nested-objects", "unclosed-arrays", "21-levels", "nan", "infinity"],
)
async def test_nested_or_non_json_numbers_are_invalid_client_metadata(server, http, raw: bytes) -> None:
    # Issue 9 finding 9: deep nesting was a RecursionError and a 500.
    reply = await call(http, server, "POST", "/register", data=raw)
    assert reply.status == 400
    assert reply.body["error"] == "invalid_client_metadata"
    created = (await register(http, server)).body
    update = await put_registration(http, server, created, data=raw)
    assert update.status == 400
    assert update.body["error"] == "invalid_client_metadata"
    still = await register(http, server, x_nested={"a": [{"b": [{"c": 1.5}]}]})
    assert still.status == 201, still.body


async def test_body_over_256_kib_is_413(server, http) -> None:
    padding = "x" * (256 * 1024)
    reply = await register(http, server, client_name=padding)
    assert reply.status == 413
    just_under = await register(http, server, client_name="x" * (250 * 1024))
    assert just_under.status == 201


# registration modes
async def test_token_mode_without_token_is_401_bearer(token_mode_server, http) -> None:
    reply = await register(http, token_mode_server)
    assert reply.status == 401
    assert reply.body["error"] == "invalid_token"
    # RFC 6750 §3.1: no credentials at all, so the challenge carries no error code.
    assert reply.headers["WWW-Authenticate"] == "Bearer"


async def test_token_mode_with_wrong_token_is_401(token_mode_server, http) -> None:
    reply = await call(http, token_mode_server, "POST", "/register", json_body={}, token=INITIAL_TOKEN + "x")
    assert reply.status == 401
    assert reply.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
    basic = await call(http, token_mode_server, "POST", "/register", json_body={}, token=None)
    assert basic.status == 401


async def test_token_mode_with_the_token_registers(token_mode_server, http) -> None:
    reply = await call(http, token_mode_server, "POST", "/register", json_body={}, token=INITIAL_TOKEN)
    assert reply.status == 201, reply.body


async def test_closed_mode_is_403_access_denied(http) -> None:
    async with CertboundTestServer(registration="closed") as closed:
        reply = await register(http, closed)
        assert reply.status == 403
        assert reply.body["error"] == "access_denied"
        assert await closed.running.context.store.list_clients() == []


# SPEC §3: --registration-scopes bounds what a client can give itself
async def test_registration_scopes_bound_registration_update_and_tokens(http) -> None:
    bounded = CertboundTestServer(scopes=("read", "write", "admin"), registration_scopes=("read",))
    async with bounded as server:
        defaulted = await register(http, server)
        assert defaulted.status == 201, defaulted.body
        assert defaulted.body["scope"] == "read"  # not everything the server offers
        refused = await register(http, server, scope="read admin")
        assert refused.status == 400
        assert refused.body["error"] == "invalid_client_metadata"
        assert "may not hold: admin" in refused.body["error_description"]

        client_id = defaulted.body["client_id"]
        token = await token_request(http, server, defaulted.body)
        assert (token.status, token.body["scope"]) == (200, "read")
        async with http.post(
            server.url + "/token",
            data={"grant_type": "client_credentials", "scope": "admin"},
            headers={"Authorization": basic_auth(client_id, defaulted.body["client_secret"])},
            ssl=server.client_ssl_context(),
        ) as response:
            assert (response.status, (await response.json())["error"]) == (400, "invalid_scope")

        widen = update_body(defaulted.body, scope="read admin")
        reply = await put_registration(http, server, defaulted.body, json_body=widen)
        assert reply.status == 400
        assert reply.body["error"] == "invalid_client_metadata"
        stored = await server.manager().get(defaulted.body["client_id"])
        assert stored is not None
        assert stored.scopes == ("read",)


# registered clients at the token endpoint
@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
async def test_registered_secret_client_gets_a_token(server, http, method: str) -> None:
    registered = await register(http, server, token_endpoint_auth_method=method, scope="read")
    assert registered.status == 201
    reply = await token_request(http, server, registered.body)
    assert reply.status == 200, reply.body
    assert reply.body["scope"] == "read"


async def test_registered_public_client_is_unauthorized_for_client_credentials(server, http) -> None:
    registered = await register(http, server, token_endpoint_auth_method="none")
    reply = await token_request(http, server, registered.body)
    assert reply.status == 400
    assert reply.body["error"] == "unauthorized_client"


# RFC 7592
async def test_read_returns_the_registration(server, http) -> None:
    created = (await register(http, server, client_name="Reader")).body
    reply = await call(
        http, server, "GET", created["registration_client_uri"], token=created["registration_access_token"]
    )
    assert reply.status == 200
    assert reply.headers["Cache-Control"] == "no-store"
    expected = {name: value for name, value in created.items() if name != "client_secret"}
    assert reply.body == expected


async def test_wrong_or_missing_registration_token_is_401_and_hides_existence(server, http) -> None:
    first = (await register(http, server)).body
    second = (await register(http, server)).body
    uri = first["registration_client_uri"]
    for method in ("GET", "PUT", "DELETE"):
        body = update_body(first) if method == "PUT" else None
        other = await call(
            http, server, method, uri, json_body=body, token=second["registration_access_token"]
        )
        missing = await call(http, server, method, uri, json_body=body)
        unknown = await call(
            http, server, method, "/register/no-such-client", json_body=body, token="made-up-token"
        )
        for reply in (other, missing, unknown):
            assert reply.status == 401, (method, reply.body)
            assert reply.body["error"] == "invalid_token"
            assert reply.headers["WWW-Authenticate"].startswith("Bearer")
        assert other.body == unknown.body
    still_there = await call(http, server, "GET", uri, token=first["registration_access_token"])
    assert still_there.status == 200


async def test_update_replaces_metadata_keeps_secret_and_rotates_the_registration_token(server, http) -> None:
    created = (await register(http, server, client_name="Old", software_id="s")).body
    uri, old_token = created["registration_client_uri"], created["registration_access_token"]
    body = update_body(created, client_name="New", client_secret=created["client_secret"])
    del body["software_id"]
    reply = await call(http, server, "PUT", uri, json_body=body, token=old_token)
    assert reply.status == 200, reply.body
    assert reply.headers["Cache-Control"] == "no-store"
    updated = reply.body
    assert updated["client_name"] == "New"
    assert "software_id" not in updated  # a replacement, not a merge (RFC 7592 §2.2)
    assert "client_secret" not in updated
    assert updated["registration_access_token"] != old_token
    assert (await call(http, server, "GET", uri, token=old_token)).status == 401
    assert (await call(http, server, "GET", uri, token=updated["registration_access_token"])).status == 200
    token = await token_request(http, server, {**updated, "client_secret": created["client_secret"]})
    assert token.status == 200, token.body


async def test_update_can_rotate_the_secret(server, http) -> None:
    created = (await register(http, server)).body
    reply = await call(
        http,
        server,
        "PUT",
        created["registration_client_uri"] + "?rotate_secret=true",
        json_body=update_body(created),
        token=created["registration_access_token"],
    )
    assert reply.status == 200, reply.body
    new_secret = reply.body["client_secret"]
    assert new_secret != created["client_secret"]
    assert (await token_request(http, server, reply.body)).status == 200
    assert (await token_request(http, server, created)).status == 401


async def test_update_to_a_public_method_drops_the_secret_and_back_issues_one(server, http) -> None:
    created = (await register(http, server)).body
    uri = created["registration_client_uri"]
    public = await call(
        http,
        server,
        "PUT",
        uri,
        json_body=update_body(created, token_endpoint_auth_method="none", grant_types=[]),
        token=created["registration_access_token"],
    )
    assert public.status == 200, public.body
    assert "client_secret" not in public.body
    assert "client_secret_expires_at" not in public.body
    assert (await token_request(http, server, created)).status == 401
    back = await call(
        http,
        server,
        "PUT",
        uri,
        json_body=update_body(
            public.body, token_endpoint_auth_method="client_secret_post", grant_types=["client_credentials"]
        ),
        token=public.body["registration_access_token"],
    )
    assert back.status == 200, back.body
    assert back.body["client_secret"] != created["client_secret"]
    assert (await token_request(http, server, back.body)).status == 200


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"client_id": "someone-else"}, "client_id"),
        ({"client_id": None}, "client_id"),
        ({"registration_access_token": "x"}, "registration_access_token"),
        ({"registration_client_uri": "https://x"}, "registration_client_uri"),
        ({"client_id_issued_at": 1}, "client_id_issued_at"),
        ({"client_secret_expires_at": 0}, "client_secret_expires_at"),
        ({"client_secret": "a-secret-the-client-chose"}, "client_secret"),
    ],
)
async def test_update_request_rules(server, http, change: dict[str, Any], field: str) -> None:
    created = (await register(http, server)).body
    body = update_body(created)
    body.update(change)
    if body.get("client_id") is None:
        body.pop("client_id")
    reply = await put_registration(http, server, created, json_body=body)
    assert reply.status == 400
    assert reply.body["error"] == "invalid_request"
    assert field in reply.body["error_description"]


async def test_update_is_validated_like_registration(server, http) -> None:
    created = (await register(http, server)).body
    reply = await put_registration(
        http, server, created, json_body=update_body(created, redirect_uris=["https://x.example/#f"])
    )
    assert reply.status == 400
    assert reply.body["error"] == "invalid_redirect_uri"
    unchanged = await call(
        http, server, "GET", created["registration_client_uri"], token=created["registration_access_token"]
    )
    assert unchanged.status == 200


async def test_delete_ends_the_client_its_tokens_and_its_registration(server, http) -> None:
    created = (await register(http, server, access_token_as_jwt=False)).body
    issued = await token_request(http, server, created)
    assert issued.status == 200
    store = server.running.context.store
    token_hash = reference_token_hash(issued.body["access_token"])
    assert await store.get_reference_token(token_hash) is not None
    uri, token = created["registration_client_uri"], created["registration_access_token"]
    reply = await call(http, server, "DELETE", uri, token=token)
    assert reply.status == 204
    assert reply.headers["Cache-Control"] == "no-store"
    assert await store.get_reference_token(token_hash) is None
    after = await token_request(http, server, created)
    assert after.status == 401
    assert after.body["error"] == "invalid_client"
    assert (await call(http, server, "GET", uri, token=token)).status == 401
    assert (await call(http, server, "DELETE", uri, token=token)).status == 401


# the JWT assertion methods (RFC 7523)
async def post_assertion(http: aiohttp.ClientSession, server: CertboundTestServer, assertion: str) -> Reply:
    async with http.post(
        server.url + "/token", data=assertion_form(assertion), ssl=server.client_ssl_context()
    ) as response:
        return Reply(response.status, await response.json(), response.headers)


async def test_registered_client_secret_jwt_client_gets_a_token(server, http) -> None:
    registered = await register(
        http, server, token_endpoint_auth_method="client_secret_jwt", token_endpoint_auth_signing_alg="HS256"
    )
    assert registered.status == 201, registered.body
    body = registered.body
    assertion = hmac_compact(
        body["client_secret"].encode(), "HS256", claims_for(body["client_id"], server.issuer)
    )
    reply = await post_assertion(http, server, assertion)
    assert reply.status == 200, reply.body
    forged = hmac_compact(b"not-the-secret", "HS256", claims_for(body["client_id"], server.issuer))
    assert (await post_assertion(http, server, forged)).status == 401


async def test_registered_private_key_jwt_client_gets_a_token(server, http) -> None:
    key = generate_key("ES256", kid="k1")
    registered = await register(
        http, server, token_endpoint_auth_method="private_key_jwt", jwks=public_jwks(key)
    )
    assert registered.status == 201, registered.body
    assert "client_secret" not in registered.body
    client_id = registered.body["client_id"]
    reply = await post_assertion(http, server, sign(key, "ES256", claims_for(client_id, server.issuer)))
    assert reply.status == 200, reply.body
    stranger = generate_key("ES256", kid="k1")
    refused = await post_assertion(
        http, server, sign(stranger, "ES256", claims_for(client_id, server.issuer))
    )
    assert refused.status == 401


@pytest.mark.parametrize(
    ("metadata", "field"),
    [
        ({"token_endpoint_auth_method": "private_key_jwt"}, "jwks"),
        (
            {
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks": {"keys": [{"kty": "EC", "crv": "P-256"}]},
            },
            "jwks",
        ),
        ({"token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": ["not a key"]}}, "jwks"),
        (
            {
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]},
            },
            "jwks",
        ),
        (
            {"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "http://client.example.com/jwks"},
            "jwks_uri",
        ),
        (
            {"token_endpoint_auth_method": "client_secret_jwt", "token_endpoint_auth_signing_alg": "ES256"},
            "token_endpoint_auth_signing_alg",
        ),
    ],
)
async def test_assertion_method_metadata_rules(server, http, metadata: dict[str, Any], field: str) -> None:
    reply = await register(http, server, **metadata)
    assert reply.status == 400, reply.body
    assert reply.body["error"] == "invalid_client_metadata"
    assert field in reply.body["error_description"]


async def test_private_key_jwt_with_a_private_key_in_jwks_is_refused(server, http) -> None:
    key = generate_key("ES256", kid="k1")
    reply = await register(
        http, server, token_endpoint_auth_method="private_key_jwt", jwks={"keys": [key.as_dict(private=True)]}
    )
    assert reply.status == 400
    assert reply.body["error"] == "invalid_client_metadata"


async def test_rfc7592_round_trip_with_a_change_to_private_key_jwt(server, http) -> None:
    created = (await register(http, server, client_name="Moving")).body
    uri, token = created["registration_client_uri"], created["registration_access_token"]
    assert (await token_request(http, server, created)).status == 200
    read = await call(http, server, "GET", uri, token=token)
    assert read.status == 200
    key = generate_key("ES256", kid="new")
    changed = await call(
        http,
        server,
        "PUT",
        uri,
        json_body=update_body(read.body, token_endpoint_auth_method="private_key_jwt", jwks=public_jwks(key)),
        token=token,
    )
    assert changed.status == 200, changed.body
    assert changed.body["token_endpoint_auth_method"] == "private_key_jwt"
    assert "client_secret" not in changed.body
    assert "client_secret_expires_at" not in changed.body
    client_id = created["client_id"]
    stored = await server.running.context.store.get_client(client_id)
    assert stored is not None
    assert stored.secret_hash is None
    assert (await token_request(http, server, created)).status == 401  # the old secret is gone
    reply = await post_assertion(http, server, sign(key, "ES256", claims_for(client_id, server.issuer)))
    assert reply.status == 200, reply.body
    new_token = changed.body["registration_access_token"]
    assert (await call(http, server, "DELETE", uri, token=new_token)).status == 204
    again = await post_assertion(http, server, sign(key, "ES256", claims_for(client_id, server.issuer)))
    assert again.status == 401
    assert again.body["error"] == "invalid_client"


# the mTLS methods (RFC 8705)
def self_signed_context(
    server: CertboundTestServer, directory: Path
) -> tuple[ssl.SSLContext, dict[str, Any]]:
    """A TLS context presenting a self-signed certificate, and the JWK Set of its key."""
    own = trustme.CA(organization_name="self-signed client")  # a CA certificate is self-signed
    certificate = x509.load_pem_x509_certificate(own.cert_pem.bytes())
    public_key = certificate.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    cert_file, key_file = directory / "self.pem", directory / "self.key"
    cert_file.write_bytes(own.cert_pem.bytes())
    key_file.write_bytes(own.private_key_pem.bytes())
    context = server.client_ssl_context()
    context.load_cert_chain(cert_file, key_file)
    return context, {"keys": [public_jwk(public_key)]}


async def post_with_context(
    http: aiohttp.ClientSession, server: CertboundTestServer, client_id: str, context: ssl.SSLContext
) -> Reply:
    async with http.post(
        server.url + "/token",
        data={"grant_type": "client_credentials", "client_id": client_id},
        ssl=context,
    ) as response:
        return Reply(response.status, await response.json(), response.headers)


async def test_registered_tls_client_auth_client_gets_a_bound_token(server, http) -> None:
    registered = await register(
        http, server, token_endpoint_auth_method="tls_client_auth", tls_client_auth_san_dns="svc.example.com"
    )
    assert registered.status == 201, registered.body
    assert "client_secret" not in registered.body
    assert registered.body["tls_client_certificate_bound_access_tokens"] is True
    client_id = registered.body["client_id"]
    leaf = server.issue_client_cert("svc.example.com")
    reply = await post_with_context(http, server, client_id, server.client_ssl_context(leaf))
    assert reply.status == 200, reply.body
    assert "x5t#S256" in jwt_parts(reply.body["access_token"])[1]["cnf"]
    other = server.issue_client_cert("other.example.com")
    refused = await post_with_context(http, server, client_id, server.client_ssl_context(other))
    assert refused.status == 401


async def test_registered_self_signed_client_gets_a_token(server, http, tmp_path: Path) -> None:
    context, jwks = self_signed_context(server, tmp_path)
    registered = await register(
        http, server, token_endpoint_auth_method="self_signed_tls_client_auth", jwks=jwks
    )
    assert registered.status == 201, registered.body
    client_id = registered.body["client_id"]
    reply = await post_with_context(http, server, client_id, context)
    assert reply.status == 200, reply.body
    stranger, _ = self_signed_context(server, tmp_path)
    assert (await post_with_context(http, server, client_id, stranger)).status == 401


@pytest.mark.parametrize(
    "metadata",
    [
        {"token_endpoint_auth_method": "tls_client_auth"},
        {
            "token_endpoint_auth_method": "tls_client_auth",
            "tls_client_auth_subject_dn": "CN=svc,O=Acme",
            "tls_client_auth_san_dns": "svc.example.com",
        },
        {"token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "CN=svc,,=x"},
        {"token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_ip": "not-an-ip"},
        {"token_endpoint_auth_method": "self_signed_tls_client_auth"},
        {"token_endpoint_auth_method": "self_signed_tls_client_auth", "jwks": {"keys": [{"kty": "RSA"}]}},
    ],
    ids=["no-subject", "two-subjects", "bad-dn", "bad-ip", "self-signed-no-keys", "self-signed-bad-key"],
)
async def test_mtls_metadata_rules(server, http, metadata: dict[str, Any]) -> None:
    reply = await register(http, server, **metadata)
    assert reply.status == 400, reply.body
    assert reply.body["error"] == "invalid_client_metadata"
