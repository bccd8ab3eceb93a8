"""self_signed_tls_client_auth end to end (RFC 8705 §2.2): no chain check, the certificate's key
must be one of the client's registered keys, inline `jwks` or a `jwks_uri` served over HTTPS."""

from __future__ import annotations

import base64
import hashlib
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from certbound.jose import public_jwk
from certbound.testing import CertboundTestServer
from tests.assertion_kit import JwksServer
from tests.helpers import access_log, check_refusal, jwt_parts
from tests.unit.pki.builders import Issued, name, new_key, self_signed

SUBJECT = name((NameOID.COMMON_NAME, "self-signed client"))


def jwks_of(*certs: Issued) -> dict[str, Any]:
    return {"keys": [public_jwk(issued.key.public_key()) for issued in certs]}


def x5t_s256(issued: Issued) -> str:
    digest = hashlib.sha256(issued.cert.public_bytes(Encoding.DER)).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


async def token_request(
    http: aiohttp.ClientSession, server: CertboundTestServer, client_id: str, context: ssl.SSLContext
) -> tuple[int, dict[str, Any]]:
    form = {"grant_type": "client_credentials", "client_id": client_id}
    async with http.post(server.url + "/token", data=form, ssl=context) as response:
        return response.status, await response.json()


def presenting(server: CertboundTestServer, issued: Issued | None, directory: Path) -> ssl.SSLContext:
    context = server.client_ssl_context()
    if issued is not None:
        issued.configure_cert(context, directory)
    return context


@pytest.mark.parametrize("kind", ["rsa", "ec", "ed25519"])
async def test_inline_jwks_each_key_type(
    server: CertboundTestServer, http: aiohttp.ClientSession, tmp_path: Path, kind: str
) -> None:
    mine = self_signed(SUBJECT, new_key(kind))
    client = await server.add_client("self_signed_tls_client_auth", jwks=jwks_of(mine))
    status, body = await token_request(http, server, client.client_id, presenting(server, mine, tmp_path))
    assert status == 200, body
    assert jwt_parts(body["access_token"])[1]["cnf"] == {"x5t#S256": x5t_s256(mine)}
    # Twin: a certificate with the same subject and another key of the same type.
    impostor = self_signed(SUBJECT, new_key(kind))
    with access_log() as lines:
        status, body = await token_request(
            http, server, client.client_id, presenting(server, impostor, tmp_path)
        )
    assert status == 401, body
    assert check_refusal(lines[-1], body, "not one of the client's registered keys") == "key_not_registered"


async def test_a_jwk_with_x5c_counts_by_its_certificate(
    server: CertboundTestServer, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    mine = self_signed(SUBJECT)
    jwk = {
        **public_jwk(mine.key.public_key()),
        "x5c": [base64.b64encode(mine.cert.public_bytes(Encoding.DER)).decode()],
    }
    client = await server.add_client("self_signed_tls_client_auth", jwks={"keys": [jwk]})
    status, body = await token_request(http, server, client.client_id, presenting(server, mine, tmp_path))
    assert status == 200, body


async def test_no_certificate_is_invalid_client(
    server: CertboundTestServer, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    client = await server.add_client("self_signed_tls_client_auth", jwks=jwks_of(self_signed(SUBJECT)))
    status, body = await token_request(http, server, client.client_id, presenting(server, None, tmp_path))
    assert (status, body["error"]) == (401, "invalid_client"), body


async def test_a_ca_issued_certificate_needs_its_key_registered_too(
    server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    # A perfectly trusted certificate proves nothing for this method unless its key is registered.
    trusted = server.issue_client_cert("client.example")
    client = await server.add_client("self_signed_tls_client_auth", jwks=jwks_of(self_signed(SUBJECT)))
    status, body = await token_request(http, server, client.client_id, server.client_ssl_context(trusted))
    assert (status, body["error"]) == (401, "invalid_client"), body


@pytest.mark.parametrize(
    "metadata",
    [
        {},
        {"jwks": {"keys": []}},
        {"jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}},
        {"jwks": {"keys": [{"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"}]}},
        {"jwks_uri": "http://client.example/jwks"},
    ],
    ids=["no-keys", "empty-set", "symmetric", "bad-point", "http-uri"],
)
async def test_registration_needs_usable_keys(
    server: CertboundTestServer, http: aiohttp.ClientSession, metadata: dict[str, Any]
) -> None:
    async with http.post(
        server.url + "/register",
        json={"token_endpoint_auth_method": "self_signed_tls_client_auth", **metadata},
        ssl=server.client_ssl_context(),
    ) as response:
        body = await response.json()
    assert (response.status, body["error"]) == (400, "invalid_client_metadata"), body


async def test_registration_refuses_a_malformed_x5c(
    server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    jwk = {**public_jwk(self_signed(SUBJECT).key.public_key()), "x5c": ["bm90IGEgY2VydGlmaWNhdGU="]}
    async with http.post(
        server.url + "/register",
        json={"token_endpoint_auth_method": "self_signed_tls_client_auth", "jwks": {"keys": [jwk]}},
        ssl=server.client_ssl_context(),
    ) as response:
        body = await response.json()
    assert (response.status, body["error"]) == (400, "invalid_client_metadata"), body
    assert "x5c" in body["error_description"]


# -- jwks_uri -----------------------------------------------------------------------------------


async def test_jwks_uri_and_key_rotation(
    fetching_server: CertboundTestServer, jwks_server: JwksServer, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    server = fetching_server
    first, second = self_signed(SUBJECT, new_key("ec")), self_signed(SUBJECT, new_key("rsa"))
    jwks_server.jwks = jwks_of(first)
    client = await server.add_client("self_signed_tls_client_auth", jwks_uri=jwks_server.url)
    status, body = await token_request(http, server, client.client_id, presenting(server, first, tmp_path))
    assert status == 200, body
    # The client rotates: the unknown key triggers one refetch.
    jwks_server.jwks = jwks_of(second)
    status, body = await token_request(http, server, client.client_id, presenting(server, second, tmp_path))
    assert status == 200, body
    assert jwks_server.requests == 2
    # Twin: a key the URI does not list.
    stranger = self_signed(SUBJECT, new_key("ec"))
    status, body = await token_request(http, server, client.client_id, presenting(server, stranger, tmp_path))
    assert (status, body["error"]) == (401, "invalid_client"), body
