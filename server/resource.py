"""The resource-server side: verify certbound access tokens (RFC 9068 §4, RFC 7662 §2) and their
certificate binding (RFC 8705 §3), and protect aiohttp handlers with them (RFC 6750 §2.1, §3).

    verifier = TokenVerifier(issuer="https://as.example", ca_file="as-ca.pem")
    app = web.Application()
    install_token_verifier(app, verifier)

    @bearer_required
    async def resource(request: web.Request) -> web.Response:
        token: VerifiedToken = request[TOKEN_KEY]
        ...

    server = await start_resource_server(app, tls_cert="rs.pem", tls_key="rs.key")

`TokenVerifier` is the framework-free core: `verify(token, certificate)` returns a VerifiedToken or
raises InvalidTokenError with a description for the RFC 6750 error. JWT access tokens are checked
against the AS's published keys (JWK Set found by RFC 8414 discovery); with introspection
credentials, tokens are introspected instead (any token kind, and revocation is seen within the
short cache TTL). `bearer_required` is the aiohttp glue; `start_resource_server` serves an app
behind certbound's own TLS layer, which asks for a client certificate and accepts any: the
token's `cnf` decides.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import json
import logging
import re
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote_plus, urlsplit

import aiohttp
from aiohttp import hdrs, web
from aiohttp.typedefs import Handler
from cryptography import x509
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry, Key

from certbound.clientcert import get_client_certificate
from certbound.config import Settings
from certbound.endpoints.http import NO_STORE
from certbound.errors import InvalidTokenError
from certbound.httpguard import connection_admission, handler_factory
from certbound.middleware import error_response
from certbound.tls import PeerCertificates, build_server_context, start_tls_server
from certbound.tokenstate import read_access_token_jwt, verified_claims

__all__ = [
    "TOKEN_KEY",
    "TOKEN_VERIFIER",
    "AuthorizationServerError",
    "ResourceServer",
    "TokenVerifier",
    "VerifiedToken",
    "basic_authorization",
    "bearer_required",
    "certificate_thumbprint",
    "install_token_verifier",
    "start_resource_server",
]

log = logging.getLogger("certbound.resource")

#: Larger answers from the AS (metadata, JWK Set, introspection) are refused.
_MAX_RESPONSE_BYTES = 256 * 1024
#: Introspection answers cached at most; tokens are attacker-chosen, so memory must be bounded.
_MAX_CACHED_ANSWERS = 10_000
#: RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_X5T_S256 = "x5t#S256"


class AuthorizationServerError(Exception):
    """The authorization server could not be reached or answered something unusable: the token's
    validity is unknown, which is not the token's fault (bearer_required answers 503)."""


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """An access token that passed every check; `claims` is the JWT's claims or the
    introspection answer, as received."""

    client_id: str
    subject: str | None
    scope: str
    audience: tuple[str, ...]
    issuer: str | None
    expires_at: int | None
    jti: str | None
    #: RFC 8705 §3.1 `{"x5t#S256": ...}` of a bound token (already matched), else None.
    cnf: dict[str, str] | None
    claims: Mapping[str, Any]

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(self.scope.split())


def certificate_thumbprint(certificate: x509.Certificate | PeerCertificates) -> str:
    """RFC 8705 §3.1: base64url of the SHA-256 of the certificate's DER encoding."""
    if isinstance(certificate, PeerCertificates):
        return certificate.x5t_s256
    return PeerCertificates.from_certs(certificate, ()).x5t_s256


def _binding(cnf: object, certificate: x509.Certificate | PeerCertificates | None) -> dict[str, str] | None:
    """RFC 8705 §3: a bound token is accepted only from the connection with its certificate."""
    if cnf is None:
        return None
    if not isinstance(cnf, dict) or set(cnf) != {_X5T_S256} or not isinstance(cnf[_X5T_S256], str):
        raise InvalidTokenError("the token's confirmation (cnf) is not a certificate thumbprint")
    if certificate is None:
        raise InvalidTokenError("the token is bound to a client certificate: present it over mutual TLS")
    expected: str = cnf[_X5T_S256]
    if not hmac.compare_digest(certificate_thumbprint(certificate).encode(), expected.encode()):
        raise InvalidTokenError("the client certificate does not match the token's binding (cnf)")
    return {_X5T_S256: expected}


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidTokenError(f"the token's {name} is not a number")
    return value


def _optional_str(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidTokenError(f"the token's {name} is not a string")
    return value


class _PublishedKeys:
    """The AS's JWK Set: fetched on first use and when older than `max_age`, and refetched on an
    unknown kid at most once per `cooldown` (a flood of made-up kids is not a flood of fetches).
    When a refetch fails, the keys fetched before stay in use."""

    def __init__(self, fetch: Callable[[], Awaitable[object]], *, cooldown: float, max_age: float) -> None:
        self._fetch = fetch
        self._cooldown = cooldown
        self._max_age = max_age
        self._keys: dict[str, Key] = {}
        self._fetched_at = float("-inf")
        self._attempted_at = float("-inf")
        self._failure: AuthorizationServerError | None = None
        self._lock = asyncio.Lock()

    async def get(self, kid: str) -> Key | None:
        key = self._keys.get(kid)
        if key is None or time.monotonic() - self._fetched_at > self._max_age:
            await self._refresh()
            key = self._keys.get(kid)
        return key

    async def _refresh(self) -> None:
        async with self._lock:
            # Whoever waited on the lock finds the fetch just made and does not repeat it.
            if time.monotonic() - self._attempted_at < self._cooldown:
                if self._failure is not None and not self._keys:
                    raise self._failure
                return
            self._attempted_at = time.monotonic()
            try:
                self._keys = _parse_jwks(await self._fetch())
            except AuthorizationServerError as exc:
                self._failure = exc
                if not self._keys:
                    raise
                log.warning("keeping the JWK Set fetched before: %s", exc)
                return
            self._fetched_at, self._failure = self._attempted_at, None


def _parse_jwks(document: object) -> dict[str, Key]:
    """Signature keys by kid (RFC 7517 §5); keys this verifier cannot use are skipped."""
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise AuthorizationServerError("the JWK Set is not a JSON object with a keys array")
    keys: dict[str, Key] = {}
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
            continue
        # Public-key types only: a shared secret has no business in a published key set.
        if entry.get("kty") not in ("RSA", "EC", "OKP") or entry.get("use", "sig") != "sig":
            continue
        try:
            keys[entry["kid"]] = JWKRegistry.import_key(entry)
        except (JoseError, ValueError, TypeError) as exc:
            log.warning("skipping JWK %s the verifier cannot use: %s", entry["kid"], exc)
    return keys


def basic_authorization(client_id: str, secret: str) -> str:
    """client_secret_basic credentials (RFC 6749 §2.3.1): form-urlencode both parts, then base64."""
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def _metadata_url(issuer: str) -> str:
    """RFC 8414 §3.1: the well-known suffix goes between the host and the issuer's path."""
    parts = urlsplit(issuer)
    return f"{parts.scheme}://{parts.netloc}/.well-known/oauth-authorization-server{parts.path.rstrip('/')}"


class TokenVerifier:
    """Verifies access tokens issued by `issuer` for `audience` (default: the issuer).

    JWT mode (default): RFC 9068 §4 checks against the AS's JWK Set. Introspection mode (when
    given introspection client credentials, sent with client_secret_basic): RFC 7662, with answers
    cached for at most `introspection_cache_ttl` seconds and never past the token's exp. Either
    way: iss, aud, exp/nbf with `clock_skew` seconds of leeway, and the certificate binding.
    `ca_file` adds a CA trusted for the AS's TLS certificate to the system's.
    """

    def __init__(
        self,
        *,
        issuer: str,
        audience: str | None = None,
        ca_file: str | Path | None = None,
        clock_skew: int = 60,
        introspection_client_id: str | None = None,
        introspection_client_secret: str | None = None,
        introspection_cache_ttl: float = 5.0,
        jwks_refresh_cooldown: float = 10.0,
        jwks_max_age: float = 300.0,
        timeout: float = 10.0,
    ) -> None:
        if (introspection_client_id is None) != (introspection_client_secret is None):
            raise ValueError("introspection needs both a client_id and a client secret")
        self.issuer = issuer
        self.audience = audience or issuer
        self._leeway = clock_skew
        self._introspection_auth = (
            basic_authorization(introspection_client_id, introspection_client_secret)
            if introspection_client_id is not None and introspection_client_secret is not None
            else None
        )
        self._cache_ttl = introspection_cache_ttl
        self._answers: dict[bytes, tuple[float, dict[str, Any]]] = {}
        self._ssl = ssl.create_default_context()
        if ca_file is not None:
            self._ssl.load_verify_locations(cafile=str(ca_file))
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._metadata: dict[str, Any] | None = None
        self._keys = _PublishedKeys(self._fetch_jwks, cooldown=jwks_refresh_cooldown, max_age=jwks_max_age)

    @property
    def uses_introspection(self) -> bool:
        return self._introspection_auth is not None

    async def verify(
        self, token: str, certificate: x509.Certificate | PeerCertificates | None = None
    ) -> VerifiedToken:
        """The verified token, or InvalidTokenError saying what is wrong with it;
        AuthorizationServerError when the AS is needed and cannot answer."""
        if self._introspection_auth is not None:
            answer = await self._introspect(token)
            if answer["active"] is not True:
                raise InvalidTokenError("the token is not active (expired, revoked or unknown)")
            return self._accept(answer, certificate, required=("client_id",))
        signed = read_access_token_jwt(token)
        key = await self._keys.get(signed.headers()["kid"])
        if key is None:
            raise InvalidTokenError("the token is signed by a key the authorization server does not publish")
        claims = verified_claims(signed, key)
        # RFC 9068 §2.2 lists the claims every JWT access token carries.
        return self._accept(claims, certificate, required=("iss", "exp", "aud", "client_id", "iat", "jti"))

    def _accept(
        self,
        claims: Mapping[str, Any],
        certificate: x509.Certificate | PeerCertificates | None,
        *,
        required: Sequence[str],
    ) -> VerifiedToken:
        missing = [name for name in required if claims.get(name) is None]
        if missing:
            raise InvalidTokenError(f"the token has no {', '.join(missing)}")
        issuer = _optional_str(claims, "iss")
        if issuer is not None and issuer != self.issuer:
            raise InvalidTokenError("the token was issued by another authorization server")
        now = time.time()
        expires_at = _number(claims, "exp")
        if expires_at is not None and now >= expires_at + self._leeway:
            raise InvalidTokenError("the token has expired")
        not_before = _number(claims, "nbf")
        if not_before is not None and not_before > now + self._leeway:
            raise InvalidTokenError("the token is not valid yet")
        aud = claims.get("aud")
        audience = (aud,) if isinstance(aud, str) else tuple(aud) if isinstance(aud, list) else ()
        if self.audience not in audience:
            raise InvalidTokenError("the token is meant for another audience")
        client_id = _optional_str(claims, "client_id")
        if client_id is None:
            raise InvalidTokenError("the token names no client_id")
        return VerifiedToken(
            client_id=client_id,
            subject=_optional_str(claims, "sub"),
            scope=_optional_str(claims, "scope") or "",
            audience=tuple(str(item) for item in audience),
            issuer=issuer,
            expires_at=int(expires_at) if expires_at is not None else None,
            jti=_optional_str(claims, "jti"),
            cnf=_binding(claims.get("cnf"), certificate),
            claims=claims,
        )

    async def _introspect(self, token: str) -> dict[str, Any]:
        cache_key = hashlib.sha256(token.encode("utf-8")).digest()
        cached = self._answers.get(cache_key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        endpoint = await self._endpoint("introspection_endpoint")
        answer = await self._request_json(
            endpoint,
            data={"token": token, "token_type_hint": "access_token"},
            headers={hdrs.AUTHORIZATION: self._introspection_auth or ""},
        )
        if not isinstance(answer, dict) or not isinstance(answer.get("active"), bool):
            raise AuthorizationServerError("the introspection answer has no boolean active member")
        ttl = self._cache_ttl
        exp = answer.get("exp")
        if answer["active"] and isinstance(exp, int | float):
            ttl = min(ttl, exp - time.time())
        if ttl > 0:
            if len(self._answers) >= _MAX_CACHED_ANSWERS:
                self._answers.clear()
            self._answers[cache_key] = (time.monotonic() + ttl, answer)
        return answer

    async def _fetch_jwks(self) -> object:
        return await self._request_json(await self._endpoint("jwks_uri"))

    async def _endpoint(self, name: str) -> str:
        """An endpoint from the AS's metadata (RFC 8414), fetched once."""
        if self._metadata is None:
            metadata = await self._request_json(_metadata_url(self.issuer))
            if not isinstance(metadata, dict) or metadata.get("issuer") != self.issuer:
                # RFC 8414 §3.3: the metadata must name the issuer it was fetched for.
                raise AuthorizationServerError("the authorization server's metadata names another issuer")
            self._metadata = metadata
        value = self._metadata.get(name)
        if not isinstance(value, str) or not value.startswith("https://"):
            raise AuthorizationServerError(f"the authorization server's metadata has no https {name}")
        return value

    async def _request_json(
        self, url: str, *, data: Mapping[str, str] | None = None, headers: Mapping[str, str] | None = None
    ) -> object:
        """GET `url` (POST when `data` is given) and parse the JSON of a 200 answer."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl), timeout=self._timeout
            )
        method = hdrs.METH_GET if data is None else hdrs.METH_POST
        try:
            async with self._session.request(
                method, url, data=data, headers=headers, allow_redirects=False
            ) as response:
                body = bytearray()
                async for chunk in response.content.iter_chunked(16384):
                    body += chunk
                    if len(body) > _MAX_RESPONSE_BYTES:
                        raise AuthorizationServerError(
                            f"{url} answered more than {_MAX_RESPONSE_BYTES} bytes"
                        )
                if response.status != 200:
                    raise AuthorizationServerError(f"{url} answered HTTP {response.status}")
                return json.loads(body)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise AuthorizationServerError(f"{url}: {exc or type(exc).__name__}") from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> TokenVerifier:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


TOKEN_VERIFIER = web.AppKey("certbound.token_verifier", TokenVerifier)
#: Where `bearer_required` leaves the VerifiedToken: `request[TOKEN_KEY]` (a typed key, as aiohttp
#: recommends for request storage).
TOKEN_KEY = web.RequestKey("token", VerifiedToken)


def install_token_verifier(app: web.Application, verifier: TokenVerifier) -> None:
    """Make `verifier` the one `bearer_required` handlers of `app` use; closed with the app."""
    app[TOKEN_VERIFIER] = verifier

    async def close(app: web.Application) -> None:
        await app[TOKEN_VERIFIER].close()

    app.on_cleanup.append(close)


def _bearer_token(request: web.Request) -> str | None:
    """RFC 6750 §2.1: the token of an `Authorization: Bearer` header; None without one."""
    scheme, _, value = request.headers.get(hdrs.AUTHORIZATION, "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = value.strip()
    if not token:
        return None
    if not _B64TOKEN.fullmatch(token):
        raise InvalidTokenError("the bearer token is malformed")
    return token


def bearer_required(handler: Handler) -> Handler:
    """Protect an aiohttp handler: it runs only for a verified token, found at request[TOKEN_KEY].

    No token: 401 with a bare `WWW-Authenticate: Bearer` (RFC 6750 §3.1: no error code when the
    request has no authentication). A token that fails: 401 invalid_token with its description.
    """

    @functools.wraps(handler)
    async def protected(request: web.Request) -> web.StreamResponse:
        try:
            token = _bearer_token(request)
            if token is None:
                return web.Response(status=401, headers={**NO_STORE, hdrs.WWW_AUTHENTICATE: "Bearer"})
            verifier = request.app[TOKEN_VERIFIER]
            request[TOKEN_KEY] = await verifier.verify(token, get_client_certificate(request))
        except InvalidTokenError as exc:
            log.info("%s %s -> invalid_token: %s", request.method, request.path, exc.description)
            return error_response(exc)
        except AuthorizationServerError as exc:
            log.warning("cannot verify a token for %s %s: %s", request.method, request.path, exc)
            raise web.HTTPServiceUnavailable(text="the authorization server cannot be reached") from exc
        return await handler(request)

    return protected


@dataclass
class ResourceServer:
    """An app served over certbound's TLS layer (see start_resource_server)."""

    runner: web.AppRunner
    listener: asyncio.Server
    host: str

    @property
    def port(self) -> int:
        port: int = self.listener.sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        return f"https://{f'[{self.host}]' if ':' in self.host else self.host}:{self.port}"

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish, close."""
        self.listener.close()
        await self.runner.cleanup()
        await self.listener.wait_closed()


async def start_resource_server(
    app: web.Application,
    *,
    tls_cert: str | Path,
    tls_key: str | Path,
    client_ca: Sequence[str | Path] = (),
    host: str = "127.0.0.1",
    port: int = 9443,
    handshake_timeout: float = 10.0,
) -> ResourceServer:
    """Serve `app` on host:port over TLS that asks for a client certificate and accepts any
    (RFC 8705 §3: the token's binding decides, not the handshake). `client_ca` subjects are only
    advertised, to help clients choose a certificate. Raises certbound.tls.TLSConfigError for
    unusable files and OSError when the port cannot be bound."""
    tls = build_server_context(
        Path(tls_cert),
        Path(tls_key),
        request_client_certificate=True,
        client_ca_names=[Path(path) for path in client_ca],
    )
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    try:
        if runner.server is None:
            raise RuntimeError("aiohttp runner did not create its server")
        # The same slow-client deadlines and connection caps as `serve`, at their defaults.
        guards = Settings()
        listener = await start_tls_server(
            handler_factory(runner.server, guards),
            tls,
            host,
            port,
            handshake_timeout=handshake_timeout,
            admission=connection_admission(guards),
        )
    except BaseException:
        await runner.cleanup()
        raise
    return ResourceServer(runner, listener, host)
