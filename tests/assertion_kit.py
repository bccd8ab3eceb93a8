"""Test helpers for JWT client assertions: key material, signing (including assertions a correct
client would never send) and an HTTPS JWKS server on 127.0.0.1 with a trustme certificate."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import ssl
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any

import trustme
from aiohttp import web
from joserfc.jwk import ECKey, Key, OKPKey, RSAKey
from joserfc.jws import JWSRegistry

from certbound.clientauth.assertion import ASSERTION_TYPE
from certbound.jose import b64url_encode

__all__ = [
    "ASSERTION_TYPE",
    "JwksServer",
    "assertion_form",
    "claims_for",
    "compact",
    "generate_key",
    "hmac_compact",
    "public_jwks",
    "serve_https",
    "sign",
]

_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}


def generate_key(alg: str, kid: str | None = None) -> Key:
    """A private key for `alg` (RSA keys are 2048 bits)."""
    parameters: Any = {"kid": kid} if kid is not None else None
    if alg[:2] in ("RS", "PS"):
        return RSAKey.generate_key(2048, parameters=parameters)
    if alg in _CURVES:
        return ECKey.generate_key(_CURVES[alg], parameters=parameters)
    if alg == "EdDSA":
        return OKPKey.generate_key("Ed25519", parameters=parameters)
    raise ValueError(f"no key type for {alg}")


def public_jwks(*keys: Key) -> dict[str, Any]:
    return {"keys": [key.as_dict(private=False) for key in keys]}


def claims_for(client_id: str, aud: Any, **overrides: Any) -> dict[str, Any]:
    """Valid assertion claims; an override of None removes that claim."""
    now = time.time()
    claims: dict[str, Any] = {
        "iss": client_id,
        "sub": client_id,
        "aud": aud,
        "iat": int(now),
        "exp": int(now) + 120,
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


def _segment(value: Any) -> str:
    return b64url_encode(json.dumps(value, separators=(",", ":")).encode("utf-8"))


def compact(header: dict[str, Any], claims: Any, signature: bytes) -> str:
    return f"{_segment(header)}.{_segment(claims)}.{b64url_encode(signature)}"


def sign(key: Key, alg: str, claims: Any, **header: Any) -> str:
    """A compact JWS signed with `key`; `header` adds or overrides members (kid defaults to the key's)."""
    protected: dict[str, Any] = {"alg": alg}
    if key.kid is not None:
        protected["kid"] = key.kid
    protected.update(header)
    protected = {name: value for name, value in protected.items() if value is not None}
    signing_input = f"{_segment(protected)}.{_segment(claims)}".encode("ascii")
    signature = JWSRegistry.algorithms[alg].sign(signing_input, key)
    return f"{signing_input.decode('ascii')}.{b64url_encode(signature)}"


def hmac_compact(secret: bytes, alg: str, claims: Any, **header: Any) -> str:
    """An HMAC JWS keyed by raw bytes, which may be anything (a public key PEM included)."""
    protected = {"alg": alg, **header}
    signing_input = f"{_segment(protected)}.{_segment(claims)}".encode("ascii")
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    mac = hmac.new(secret, signing_input, digest).digest()
    return f"{signing_input.decode('ascii')}.{b64url_encode(mac)}"


def assertion_form(assertion: str, **extra: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
        **extra,
    }


async def serve_https(app: web.Application, ca: trustme.CA) -> tuple[web.AppRunner, int]:
    """Serve `app` over HTTPS on 127.0.0.1 (a certificate of `ca` for localhost and 127.0.0.1);
    returns its runner (clean it up) and port."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
    return runner, runner.addresses[0][1]


class JwksServer:
    """An HTTPS server on 127.0.0.1 serving `jwks` at /jwks, with knobs for misbehaviour.

    Its certificate (for `localhost` and 127.0.0.1) comes from its own trustme CA, written to
    `ca_file` so a resolver can be told to trust it.
    """

    def __init__(self, directory: Path, jwks: dict[str, Any] | None = None) -> None:
        self.jwks: dict[str, Any] = jwks if jwks is not None else {"keys": []}
        self.delay = 0.0
        self.status = 200
        self.cache_control: str | None = None
        #: Bytes to stream instead of the JWKS, with or without a Content-Length.
        self.body: bytes | None = None
        self.chunked = False
        self.redirect_to: str | None = None
        self.requests = 0
        self._ca = trustme.CA()
        self.ca_file = directory / "jwks-ca.pem"
        self.ca_file.write_bytes(self._ca.cert_pem.bytes())
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}/jwks"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.redirect_to is not None:
            raise web.HTTPFound(self.redirect_to)
        headers = {"Cache-Control": self.cache_control} if self.cache_control else {}
        if self.body is None:
            return web.json_response(self.jwks, status=self.status, headers=headers)
        response = web.StreamResponse(status=self.status, headers=headers)
        response.content_type = "application/json"
        if not self.chunked:
            response.content_length = len(self.body)
        await response.prepare(request)
        try:
            for start in range(0, len(self.body), 65536):
                await response.write(self.body[start : start + 65536])
        except (ConnectionError, RuntimeError):
            pass  # the client stopped reading: the point of the size-cap tests
        return response

    async def __aenter__(self) -> JwksServer:
        app = web.Application()
        app.router.add_get("/jwks", self._handle)
        self._runner, self.port = await serve_https(app, self._ca)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
