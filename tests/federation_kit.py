"""Test issuers for workload identity (SPEC §13): a small HTTPS issuer on 127.0.0.1 with its own
trustme CA that serves OpenID discovery, a JWK Set and a SPIFFE bundle, mints platform tokens and
JWT-SVIDs, and issues X.509-SVIDs; plus the federation file that trusts it.

    async with TestIssuer(tmp_path) as issuer:
        fed = issuer.federation_file(tmp_path, issuer_name="ci", spiffe=True)
        async with CertboundTestServer(federation=fed, **issuer.server_options()) as server:
            token = issuer.mint({"sub": "repo:org/app", "aud": server.issuer})
"""

from __future__ import annotations

import base64
import json
import ssl
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import trustme
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from joserfc.jwk import Key

from certbound.authmethods import JWT_BEARER, JWT_SPIFFE
from certbound.jose import PublicKey, public_jwk
from certbound.reasons import GENERIC_REFUSAL, Reason
from certbound.testing import CertboundTestServer
from tests.assertion_kit import generate_key, serve_https, sign
from tests.helpers import access_log, post_token
from tests.unit.pki.builders import Issued, issue, key_usage, make_ca, name

__all__ = ["TestIssuer", "expect_refusal", "svid_form", "token_form", "toml_string"]

TRUST_DOMAIN = "example.org"


def toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a TOML basic string


def token_form(client_id: str, token: str, **extra: str) -> dict[str, str]:
    """A client_credentials request authenticating with a platform token (federated_jwt)."""
    return {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_assertion_type": JWT_BEARER,
        "client_assertion": token,
        **extra,
    }


def svid_form(client_id: str, token: str) -> dict[str, str]:
    """A client_credentials request authenticating with a JWT-SVID (spiffe_jwt)."""
    return token_form(client_id, token, client_assertion_type=JWT_SPIFFE)


async def expect_refusal(
    http: aiohttp.ClientSession,
    server: CertboundTestServer,
    form: dict[str, str],
    detail: str,
    reason: Reason,
    *,
    context: ssl.SSLContext | None = None,
    disclosed: bool = True,
) -> dict[str, Any]:
    """A 401 invalid_client whose access line names `reason` and `detail`; the client reads that
    detail too (SPEC §13) once the client is known to be a workload identity client, else the
    generic sentence. Neither carries the token."""
    with access_log() as lines:
        status, body = await post_token(http, server, form, context)
    assert status == 401, body
    (line,) = lines
    assert (body["error"], line["error"]) == ("invalid_client", "invalid_client")
    assert detail in line["detail"], line
    assert Reason(line["reason"]) is reason
    assert body["error_description"] == (line["detail"] if disclosed else GENERIC_REFUSAL)
    token = form.get("client_assertion")
    assert token is None or token not in json.dumps(body) + json.dumps(line)
    return body


class TestIssuer:
    """An OpenID issuer and SPIFFE trust domain (`example.org`) over HTTPS on 127.0.0.1.

    Serves `/.well-known/openid-configuration`, `/jwks` (its token keys) and `/bundle` (a SPIFFE
    bundle of its jwt-svid keys and its X.509 CA); `status` makes every path answer that instead,
    `requests` counts requests per path.
    """

    __test__ = False

    def __init__(self, directory: Path) -> None:
        self.keys: list[Key] = [generate_key("ES256", kid="key-1")]
        self.svid_keys: list[Key] = [generate_key("ES256", kid="svid-1")]
        self.svid_ca: Issued = make_ca(name((NameOID.COMMON_NAME, "example.org SPIFFE CA")))
        self.status = 200
        self.refresh_hint: int | None = None
        self.discovery_issuer: str | None = None
        self.requests: dict[str, int] = {}
        self._tls = trustme.CA()
        self.ca_file = directory / "issuer-ca.pem"
        self.ca_file.write_bytes(self._tls.cert_pem.bytes())
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    @property
    def issuer(self) -> str:
        """The `iss` of its tokens (its discovery document is at this URL)."""
        return self.url

    def server_options(self) -> dict[str, Any]:
        """What a CertboundTestServer needs to fetch from this issuer on loopback."""
        return {"allow_private_fetch": True, "outbound_ca": (self.ca_file,)}

    # tokens
    def claims(self, **claims: Any) -> dict[str, Any]:
        """Valid platform-token claims (an override of None removes that claim)."""
        now = int(time.time())
        base: dict[str, Any] = {"iss": self.issuer, "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex}
        base.update(claims)
        return {name: value for name, value in base.items() if value is not None}

    def mint(
        self, claims: dict[str, Any], *, key: Key | None = None, alg: str = "ES256", **header: Any
    ) -> str:
        return sign(key or self.keys[0], alg, claims, **header)

    def mint_svid(self, spiffe_id: str, audience: Any, *, key: Key | None = None, **claims: Any) -> str:
        now = int(time.time())
        body: dict[str, Any] = {"sub": spiffe_id, "aud": audience, "iat": now, "exp": now + 300}
        body.update(claims)
        body = {name: value for name, value in body.items() if value is not None}
        return sign(key or self.svid_keys[0], "ES256", body, typ="JWT")

    def rotate(self) -> Key:
        """A new token key, published next to the old one."""
        key = generate_key("ES256", kid=f"key-{len(self.keys) + 1}")
        self.keys.append(key)
        return key

    def issue_svid(self, *uris: str, ca: Issued | None = None, **kwargs: Any) -> Issued:
        """An X.509-SVID leaf (by default: signed by the trust domain's CA) holding `uris`."""
        kwargs.setdefault("usage", key_usage(digital_signature=True))
        return issue(
            ca or self.svid_ca,
            name((NameOID.COMMON_NAME, "workload")),
            sans=[x509.UniformResourceIdentifier(uri) for uri in uris],
            **kwargs,
        )

    # documents
    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.as_dict(private=False) for key in self.keys]}

    def bundle(self) -> dict[str, Any]:
        der = self.svid_ca.cert.public_bytes(Encoding.DER)
        authority = {
            **public_jwk(_public_key(self.svid_ca)),
            "use": "x509-svid",
            "x5c": [base64.b64encode(der).decode("ascii")],
        }
        jwt_keys = [{**key.as_dict(private=False), "use": "jwt-svid"} for key in self.svid_keys]
        document: dict[str, Any] = {"keys": [authority, *jwt_keys], "spiffe_sequence": 1}
        if self.refresh_hint is not None:
            document["spiffe_refresh_hint"] = self.refresh_hint
        return document

    def write_bundle(self, path: Path) -> Path:
        path.write_text(json.dumps(self.bundle()))
        return path

    def write_jwks(self, path: Path) -> Path:
        path.write_text(json.dumps(self.jwks()))
        return path

    def federation_file(
        self,
        directory: Path,
        *,
        issuer_name: str = "ci",
        issuer: dict[str, Any] | None = None,
        spiffe: dict[str, Any] | None = None,
    ) -> Path:
        """A federation file trusting this issuer under `issuer_name` (by OpenID discovery unless
        `issuer` says otherwise) and, when `spiffe` is given, its trust domain (`bundle_url` unless
        `spiffe` says otherwise)."""
        lines = ["[[issuer]]", f"name = {toml_string(issuer_name)}", f"issuer = {toml_string(self.issuer)}"]
        lines += [f"{key} = {_toml(value)}" for key, value in (issuer or {}).items()]
        if spiffe is not None:
            entry = {"trust_domain": TRUST_DOMAIN, **spiffe}
            if "bundle_file" not in entry:
                entry.setdefault("bundle_url", self.url + "/bundle")
            lines += ["", "[[spiffe]]"] + [f"{key} = {_toml(value)}" for key, value in entry.items()]
        path = directory / "federation.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    # server
    def _answer(self, request: web.Request, document: dict[str, Any]) -> web.Response:
        self.requests[request.path] = self.requests.get(request.path, 0) + 1
        if self.status != 200:
            return web.Response(status=self.status, text="test issuer failure")
        return web.json_response(document)

    async def _discovery(self, request: web.Request) -> web.Response:
        issuer = self.discovery_issuer or self.issuer
        return self._answer(request, {"issuer": issuer, "jwks_uri": self.url + "/jwks"})

    async def _jwks(self, request: web.Request) -> web.Response:
        return self._answer(request, self.jwks())

    async def _bundle(self, request: web.Request) -> web.Response:
        return self._answer(request, self.bundle())

    async def __aenter__(self) -> TestIssuer:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/jwks", self._jwks)
        app.router.add_get("/bundle", self._bundle)
        self._runner, self.port = await serve_https(app, self._tls)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def _public_key(issued: Issued) -> PublicKey:
    key = issued.cert.public_key()
    assert isinstance(key, PublicKey)
    return key


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return toml_string(str(value))
