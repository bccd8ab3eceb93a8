"""The admin API over real TLS, every live answer validated against its own OpenAPI 3.1 document."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from certbound.testing import CertboundTestServer
from tests.assertion_kit import assertion_form, claims_for, generate_key, public_jwks, sign
from tests.helpers import basic_auth

ADMIN_TOKEN = "admin-token-for-tests-0123456789"
_DOC_URI = "urn:certbound:admin-openapi"


class OpenAPIChecker:
    """Finds the documented schema for a live exchange and validates the body against it."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self._registry: Registry[Any] = Registry().with_resource(
            _DOC_URI, Resource.from_contents(document, default_specification=DRAFT202012)
        )
        self._templates = [
            (re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"), template)
            for template in document["paths"]
        ]

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]]:
        for pattern, template in self._templates:
            if pattern.match(path):
                operation = self.document["paths"][template].get(method.lower())
                assert operation is not None, f"{method} {template} is not documented"
                return template, operation
        raise AssertionError(f"{path} is not documented")

    def _validate(self, pointer: str, value: Any) -> None:
        validator = Draft202012Validator({"$ref": f"{_DOC_URI}#{pointer}"}, registry=self._registry)
        errors = sorted(validator.iter_errors(value), key=str)
        assert not errors, f"{pointer}: {errors[0].message}"

    def check(self, method: str, path: str, request_body: Any, status: int, body: Any) -> None:
        template, operation = self.operation(method, path)
        base = "/paths/" + template.replace("~", "~0").replace("/", "~1") + "/" + method.lower()
        if request_body is not None and status < 300:
            assert "requestBody" in operation, f"{method} {template} takes no body"
            self._validate(base + "/requestBody/content/application~1json/schema", request_body)
        response = operation["responses"].get(str(status))
        assert response is not None, f"{method} {template} does not document status {status}"
        if "content" not in response:
            assert body is None, f"{method} {template} {status} has an undocumented body"
            return
        self._validate(f"{base}/responses/{status}/content/application~1json/schema", body)


class Reply:
    def __init__(self, status: int, body: Any, headers: Any) -> None:
        self.status = status
        self.body = body
        self.headers = headers


class Admin:
    """Calls the admin API and checks each exchange against the OpenAPI document."""

    def __init__(self, http: aiohttp.ClientSession, server: CertboundTestServer, checker: OpenAPIChecker):
        self.http = http
        self.server = server
        self.checker = checker

    async def __call__(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = ADMIN_TOKEN,
        data: bytes | None = None,
    ) -> Reply:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        async with self.http.request(
            method,
            self.server.url + path,
            json=body,
            data=data,
            headers=headers,
            ssl=self.server.client_ssl_context(),
        ) as response:
            raw = await response.read()
            reply = Reply(response.status, json.loads(raw) if raw else None, response.headers)
        self.checker.check(method, urlsplit(path).path, body, reply.status, reply.body)
        if reply.status != 204:
            assert reply.headers["Content-Type"].startswith("application/json")
        return reply


async def fetch_document(http: aiohttp.ClientSession, server: CertboundTestServer) -> dict[str, Any]:
    async with http.get(server.url + "/admin/openapi.json", ssl=server.client_ssl_context()) as response:
        assert response.status == 200
        document: dict[str, Any] = await response.json()
    return document


@pytest.fixture
async def admin_server() -> AsyncIterator[CertboundTestServer]:
    async with CertboundTestServer(admin_token=ADMIN_TOKEN) as running:
        yield running


@pytest.fixture
async def admin(admin_server: CertboundTestServer, http: aiohttp.ClientSession) -> Admin:
    return Admin(http, admin_server, OpenAPIChecker(await fetch_document(http, admin_server)))


async def client_credentials(
    http: aiohttp.ClientSession, server: CertboundTestServer, client_id: str, secret: str
) -> int:
    async with http.post(
        server.url + "/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": basic_auth(client_id, secret)},
        ssl=server.client_ssl_context(),
    ) as response:
        return response.status


def client_path(client_id: str, *rest: str) -> str:
    return "/".join(("/admin/clients", quote(client_id, safe=""), *rest))


# the document
async def test_document_is_valid_openapi_31_and_covers_every_admin_route(admin_server, http) -> None:
    document = await fetch_document(http, admin_server)
    validate_openapi(document)
    assert document["openapi"].startswith("3.1")
    assert document["servers"] == [{"url": admin_server.issuer}]
    app = admin_server.running.runner.app
    routed = {
        (route.resource.canonical, route.method.lower())
        for route in app.router.routes()
        if route.resource is not None
        and route.resource.canonical.startswith("/admin")
        and route.method != "HEAD"
    }
    documented = {
        (path, method)
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "put", "post", "delete", "patch")
    }
    assert routed == documented


async def test_checker_catches_an_undocumented_shape(admin_server, http) -> None:
    checker = OpenAPIChecker(await fetch_document(http, admin_server))
    with pytest.raises(AssertionError, match="client_id"):
        checker.check("GET", "/admin/clients/x", None, 200, {"token_endpoint_auth_method": "none"})
    with pytest.raises(AssertionError, match="status 418"):
        checker.check("GET", "/admin/clients/x", None, 418, {"error": "teapot"})


# round trip
async def test_round_trip(admin, admin_server, http) -> None:
    created = await admin("POST", "/admin/clients", {"client_name": "Billing", "scope": "read"})
    assert created.status == 201, created.body
    assert created.headers["Cache-Control"] == "no-store"
    client_id, secret = created.body["client_id"], created.body["client_secret"]
    assert created.headers["Location"] == client_path(client_id)
    assert created.body["client_secret_expires_at"] == 0
    assert "registration_access_token" not in created.body
    assert await client_credentials(http, admin_server, client_id, secret) == 200

    shown = await admin("GET", client_path(client_id))
    assert shown.status == 200
    assert "client_secret" not in shown.body
    assert shown.body["client_name"] == "Billing"

    listed = await admin("GET", "/admin/clients")
    assert [client["client_id"] for client in listed.body["clients"]] == [client_id]
    assert listed.body["next"] is None

    replaced = await admin("PUT", client_path(client_id), {"client_id": client_id, "scope": "write"})
    assert replaced.status == 200, replaced.body
    assert replaced.body["scope"] == "write"
    assert "client_name" not in replaced.body  # PUT replaces
    assert "client_secret" not in replaced.body
    assert await client_credentials(http, admin_server, client_id, secret) == 200

    rotated = await admin("POST", client_path(client_id, "rotate-secret"))
    assert rotated.status == 200
    new_secret = rotated.body["client_secret"]
    assert new_secret != secret
    assert await client_credentials(http, admin_server, client_id, secret) == 401
    assert await client_credentials(http, admin_server, client_id, new_secret) == 200

    deleted = await admin("DELETE", client_path(client_id))
    assert deleted.status == 204
    assert (await admin("GET", client_path(client_id))).status == 404
    assert (await admin("DELETE", client_path(client_id))).status == 404
    assert await client_credentials(http, admin_server, client_id, new_secret) == 401


async def test_dpop_bound_access_tokens_round_trip(admin, admin_server, http) -> None:
    # RFC 9449 §5.2 metadata, documented in the OpenAPI schema the checker validates against.
    created = await admin("POST", "/admin/clients", {"dpop_bound_access_tokens": True})
    assert created.status == 201, created.body
    assert created.body["dpop_bound_access_tokens"] is True
    client_id, secret = created.body["client_id"], created.body["client_secret"]
    assert await client_credentials(http, admin_server, client_id, secret) == 400  # no proof
    replaced = await admin("PUT", client_path(client_id), {"dpop_bound_access_tokens": False})
    assert replaced.body["dpop_bound_access_tokens"] is False
    assert await client_credentials(http, admin_server, client_id, secret) == 200


async def test_admin_chooses_client_id_and_secret(admin, admin_server, http) -> None:
    secret = "pässwört"  # 8 characters of Unicode text: accepted (with a warning in the log)
    created = await admin("POST", "/admin/clients", {"client_id": "billing/eu 1", "client_secret": secret})
    assert created.status == 201, created.body
    assert created.body["client_id"] == "billing/eu 1"
    assert created.body["client_secret"] == secret
    assert await client_credentials(http, admin_server, "billing/eu 1", secret) == 200
    assert (await admin("GET", client_path("billing/eu 1"))).status == 200
    taken = await admin("POST", "/admin/clients", {"client_id": "billing/eu 1"})
    assert taken.status == 400
    assert taken.body["error"] == "invalid_client_metadata"


async def test_admin_sets_a_secret_on_update(admin, admin_server, http) -> None:
    created = (await admin("POST", "/admin/clients", {})).body
    chosen = "a-brand-new-secret-of-some-length"
    reply = await admin("PUT", client_path(created["client_id"]), {"client_secret": chosen})
    assert reply.status == 200
    assert reply.body["client_secret"] == chosen
    assert await client_credentials(http, admin_server, created["client_id"], chosen) == 200
    assert await client_credentials(http, admin_server, created["client_id"], created["client_secret"]) == 401


@pytest.mark.parametrize("secret", ["1234567", "", "ü" * 7])
async def test_short_secret_is_invalid_client_metadata(admin, secret: str) -> None:
    reply = await admin("POST", "/admin/clients", {"client_secret": secret})
    assert reply.status == 400
    assert reply.body["error"] == "invalid_client_metadata"
    assert "client_secret" in reply.body["error_description"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"client_secret": 12345678}, "client_secret"),
        ({"client_id": ["x"]}, "client_id"),
        ({"token_endpoint_auth_method": "none", "client_secret": "x" * 40}, "client_secret"),
        ({"scope": "everything"}, "scope"),
        ({"jwks": {"keys": []}, "jwks_uri": "https://example.com/jwks"}, "jwks"),
        ({"dpop_bound_access_tokens": "yes"}, "dpop_bound_access_tokens"),
    ],
)
async def test_create_refusals(admin, body: dict[str, Any], field: str) -> None:
    reply = await admin("POST", "/admin/clients", body)
    assert reply.status == 400
    assert reply.body["error"] == "invalid_client_metadata"
    assert field in reply.body["error_description"]


async def test_bodies_that_are_not_objects_or_too_large(admin) -> None:
    for raw in (b"[1]", b"nope", b""):
        reply = await admin("POST", "/admin/clients", data=raw)
        assert reply.status == 400
        assert reply.body["error"] == "invalid_client_metadata"
    huge = await admin("POST", "/admin/clients", {"client_name": "x" * (256 * 1024)})
    assert huge.status == 413


async def test_deeply_nested_bodies_are_400_and_the_api_keeps_serving(admin) -> None:
    # Issue 9 finding 9: 40,000 levels were a RecursionError and a 500.
    client_id = (await admin("POST", "/admin/clients", {})).body["client_id"]
    for raw in (b'{"x":' * 40_000 + b"1" + b"}" * 40_000, b"[" * 200_000):
        for method, path in (("POST", "/admin/clients"), ("PUT", client_path(client_id))):
            reply = await admin(method, path, data=raw)
            assert reply.status == 400, reply.body
            assert reply.body["error"] == "invalid_client_metadata"
    nested = {"x_extension": [[[[[[[[{"deep": [1]}]]]]]]]]}  # 12 levels in all: accepted
    created = await admin("POST", "/admin/clients", nested)
    assert created.status == 201, created.body
    assert created.body["x_extension"] == nested["x_extension"]


async def test_update_refusals(admin) -> None:
    client_id = (await admin("POST", "/admin/clients", {})).body["client_id"]
    mismatch = await admin("PUT", client_path(client_id), {"client_id": "other"})
    assert mismatch.status == 400
    assert mismatch.body["error"] == "invalid_request"
    invalid = await admin("PUT", client_path(client_id), {"redirect_uris": ["http://evil.example/cb"]})
    assert invalid.status == 400
    assert invalid.body["error"] == "invalid_redirect_uri"
    public = (await admin("POST", "/admin/clients", {"token_endpoint_auth_method": "none"})).body
    no_secret = await admin("POST", client_path(public["client_id"], "rotate-secret"))
    assert no_secret.status == 400
    assert no_secret.body["error"] == "invalid_client_metadata"


async def test_unknown_client_is_404(admin) -> None:
    for method, path, body in (
        ("GET", client_path("nobody"), None),
        ("PUT", client_path("nobody"), {}),
        ("DELETE", client_path("nobody"), None),
        ("POST", client_path("nobody", "rotate-secret"), None),
    ):
        reply = await admin(method, path, body)
        assert reply.status == 404, (method, path)
        assert reply.body["error"] == "not_found"


async def test_method_change_drops_and_issues_secrets(admin, admin_server, http) -> None:
    created = (await admin("POST", "/admin/clients", {})).body
    path = client_path(created["client_id"])
    public = await admin("PUT", path, {"token_endpoint_auth_method": "none"})
    assert public.status == 200
    assert public.body["grant_types"] == []
    assert "client_secret_expires_at" not in public.body
    confidential = await admin("PUT", path, {"token_endpoint_auth_method": "client_secret_basic"})
    assert confidential.status == 200
    secret = confidential.body["client_secret"]
    assert await client_credentials(http, admin_server, created["client_id"], secret) == 200


# listing
async def test_pagination_and_method_filter(admin) -> None:
    ids = [f"client-{n}" for n in range(5)]
    for client_id in ids:
        assert (await admin("POST", "/admin/clients", {"client_id": client_id})).status == 201
    public = await admin(
        "POST", "/admin/clients", {"client_id": "public-1", "token_endpoint_auth_method": "none"}
    )
    assert public.status == 201
    seen: list[str] = []
    path = "/admin/clients?limit=2&token_endpoint_auth_method=client_secret_basic"
    pages = 0
    while True:
        page = await admin("GET", path)
        assert page.status == 200
        assert len(page.body["clients"]) <= 2
        seen += [client["client_id"] for client in page.body["clients"]]
        pages += 1
        if page.body["next"] is None:
            break
        path = (
            f"/admin/clients?limit=2&token_endpoint_auth_method=client_secret_basic&after={page.body['next']}"
        )
    assert seen == ids
    assert pages == 3
    only_public = await admin("GET", "/admin/clients?token_endpoint_auth_method=none")
    assert [client["client_id"] for client in only_public.body["clients"]] == ["public-1"]


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=501", "limit=ten", "limit=-1", "token_endpoint_auth_method=magic"]
)
async def test_bad_list_parameters(admin, query: str) -> None:
    reply = await admin("GET", f"/admin/clients?{query}")
    assert reply.status == 400
    assert reply.body["error"] == "invalid_request"


# signing keys
async def jwks_kids(http: aiohttp.ClientSession, server: CertboundTestServer) -> list[str]:
    async with http.get(server.url + "/jwks", ssl=server.client_ssl_context()) as response:
        return [key["kid"] for key in (await response.json())["keys"]]


async def test_keys_list_and_rotate(admin, admin_server, http) -> None:
    listed = await admin("GET", "/admin/keys")
    assert listed.status == 200
    [first] = listed.body["keys"]
    assert first["state"] == "active"
    assert first["retired_at"] is None
    assert await jwks_kids(http, admin_server) == [first["kid"]]

    rotated = await admin("POST", "/admin/keys/rotate")
    assert rotated.status == 200
    assert rotated.headers["Cache-Control"] == "no-store"
    new = rotated.body
    assert new["kid"] != first["kid"]
    assert new["state"] == "active"

    after = (await admin("GET", "/admin/keys")).body["keys"]
    assert [key["kid"] for key in after] == [new["kid"], first["kid"]]
    assert [key["state"] for key in after] == ["active", "retired"]
    assert after[1]["retired_at"] >= first["created_at"]
    # The rotating node publishes the new key at once and keeps the retired one.
    assert set(await jwks_kids(http, admin_server)) == {new["kid"], first["kid"]}
    created = (await admin("POST", "/admin/clients", {})).body
    async with http.post(
        admin_server.url + "/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": basic_auth(created["client_id"], created["client_secret"])},
        ssl=admin_server.client_ssl_context(),
    ) as response:
        token = (await response.json())["access_token"]
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["kid"] == new["kid"]


# authorization
OPERATIONS = [
    ("GET", "/admin/clients", None),
    ("POST", "/admin/clients", {}),
    ("GET", "/admin/clients/some-client", None),
    ("PUT", "/admin/clients/some-client", {}),
    ("DELETE", "/admin/clients/some-client", None),
    ("POST", "/admin/clients/some-client/rotate-secret", None),
    ("GET", "/admin/keys", None),
    ("POST", "/admin/keys/rotate", None),
]


@pytest.mark.parametrize(("method", "path", "body"), OPERATIONS)
async def test_without_or_with_a_wrong_admin_token_is_401(admin, method: str, path: str, body: Any) -> None:
    for token in (None, ADMIN_TOKEN + "x", "", ADMIN_TOKEN[:-1]):
        reply = await admin(method, path, body, token=token)
        assert reply.status == 401, (method, path, token)
        assert reply.body["error"] == "invalid_token"
        assert reply.headers["WWW-Authenticate"].startswith("Bearer")
    store = admin.server.running.context.store
    assert await store.list_clients() == []
    assert len(await store.list_signing_keys()) == 1


async def test_disabled_admin_api_is_404_everywhere(server, http) -> None:
    for method, path, body in [*OPERATIONS, ("GET", "/admin/openapi.json", None)]:
        async with http.request(
            method,
            server.url + path,
            json=body,
            headers={"Authorization": "Bearer anything"},
            ssl=server.client_ssl_context(),
        ) as response:
            assert response.status == 404, (method, path)
            assert (await response.json())["error"] == "not_found"


# -- workload identity clients and the legacy-audience count (SPEC §7, §13) ----------------------


@pytest.fixture
async def legacy_admin(tmp_path: Path, http: aiohttp.ClientSession) -> AsyncIterator[Admin]:
    """A server in --assertion-audience legacy with a federation file (a static key set)."""
    (tmp_path / "keys.json").write_text(json.dumps(public_jwks(generate_key("ES256", kid="k"))))
    federation = tmp_path / "federation.toml"
    federation.write_text('[[issuer]]\nname = "ci"\nissuer = "https://ci.example"\njwks_file = "keys.json"\n')
    async with CertboundTestServer(
        admin_token=ADMIN_TOKEN, assertion_audience="legacy", federation=federation
    ) as server:
        yield Admin(http, server, OpenAPIChecker(await fetch_document(http, server)))


async def _assertion_status(admin: Admin, client_id: str, key: Any, aud: str) -> int:
    form = assertion_form(sign(key, "ES256", claims_for(client_id, aud)))
    async with admin.http.post(
        admin.server.url + "/token", data=form, ssl=admin.server.client_ssl_context()
    ) as response:
        return response.status


async def test_the_legacy_audience_count_is_shown_per_client(legacy_admin: Admin) -> None:
    admin, server = legacy_admin, legacy_admin.server
    key = generate_key("ES256", kid="k1")
    legacy = (
        await admin(
            "POST",
            "/admin/clients",
            {"token_endpoint_auth_method": "private_key_jwt", "jwks": public_jwks(key)},
        )
    ).body
    strict = (
        await admin(
            "POST",
            "/admin/clients",
            {"token_endpoint_auth_method": "private_key_jwt", "jwks": public_jwks(key)},
        )
    ).body
    before = int(time.time())
    for aud in (server.settings.token_endpoint, server.settings.token_endpoint, server.issuer):
        assert await _assertion_status(admin, legacy["client_id"], key, aud) == 200
    assert await _assertion_status(admin, strict["client_id"], key, server.issuer) == 200
    # Counts reach the database every FLUSH_SECONDS; flush now instead of waiting.
    await server.running.context.legacy_audience.flush(server.running.context.store)

    shown = (await admin("GET", client_path(legacy["client_id"]))).body
    assert shown["legacy_audience_assertions"] == 2
    assert before <= shown["legacy_audience_last_seen"] <= int(time.time())
    clean = (await admin("GET", client_path(strict["client_id"]))).body
    assert (clean["legacy_audience_assertions"], clean["legacy_audience_last_seen"]) == (0, None)
    listed = {view["client_id"]: view for view in (await admin("GET", "/admin/clients")).body["clients"]}
    assert listed[legacy["client_id"]]["legacy_audience_assertions"] == 2
    # Server-reported, never stored: a PUT of what GET returned does not make it metadata.
    replaced = (await admin("PUT", client_path(legacy["client_id"]), shown)).body
    assert "legacy_audience_assertions" not in replaced
    assert (await admin("GET", client_path(legacy["client_id"]))).body["legacy_audience_assertions"] == 2


async def test_a_federated_client_through_the_admin_api(legacy_admin: Admin) -> None:
    body = {
        "token_endpoint_auth_method": "federated_jwt",
        "federated_issuer": "ci",
        "federated_claims": {"repository_id": "123", "ref": ["refs/heads/main"], "environment": "prod-*"},
    }
    created = await legacy_admin("POST", "/admin/clients", body)
    assert created.status == 201
    assert created.body["federated_claims"] == body["federated_claims"]
    assert (
        "legacy_audience_assertions"
        not in (await legacy_admin("GET", client_path(created.body["client_id"]))).body
    )
    unknown = await legacy_admin("POST", "/admin/clients", {**body, "federated_issuer": "gitlab"})
    assert (unknown.status, unknown.body["error"]) == (400, "invalid_client_metadata")
    assert unknown.body["error_description"].startswith("federated_issuer: 'gitlab' is not an issuer")
