"""Start a real certbound in-process for tests (ours and other projects'; SPEC §1 "test suites").

    async with CertboundTestServer() as server:              # on the running event loop
        client = await server.new_client("tls_client_auth")   # any of the seven RFC methods
        access_token = await client.fetch_token(scope="read")
        dpop_token = await client.fetch_token(dpop=True)       # DPoP-bound (RFC 9449)
        headers = client.dpop_headers("GET", "https://api.example/x", dpop_token)

    with CertboundServerThread() as server:                  # on its own loop in a thread
        client = server.new_client("tls_client_auth")         # from synchronous code
        access_token = server.run(client.fetch_token())

The server listens on 127.0.0.1 on a port the kernel picks (bound once and kept: no race with
parallel runs), with a trustme CA for its certificate and another for client certificates, and an
in-memory SQLite database unless `db` is given. Unlike `certbound serve` (closed by default, SPEC §3),
dynamic registration is open unless `registration` says otherwise: the server is a throwaway on
loopback, and suites testing RFC 7591 clients need it. Other keyword arguments are `certbound serve`
options (certbound.config.OPTIONS), checked by the same parsers; `mtls_port=0` adds an --mtls-port
listener on another kernel-picked port. `new_client` registers a client and hands back a
`ReadyClient`: its credentials, the certificate and key its method needs (objects and files), an
SSL context that trusts the server and presents that certificate, and a DPoP key of its own
(`dpop_key`, certbound.dpop.DPoPKey) for DPoP-bound tokens and the proofs of resource calls.
`add_client` only registers. The pytest plugin (certbound.pytest_plugin) wraps CertboundServerThread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
import ssl
import tempfile
import threading
import time
from collections.abc import Coroutine, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import aiohttp
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey

from certbound.authmethods import MTLS_METHODS
from certbound.config import Settings, build_settings, parse_options
from certbound.dpop import DPOP_HEADER, NONCE_HEADER, DPoPKey
from certbound.jose import public_jwk
from certbound.management import ClientManager, CreatedClient
from certbound.resource import basic_authorization
from certbound.runtime import RunningServer, bind_listener, start_server

__all__ = ["CertboundServerThread", "CertboundTestServer", "ReadyClient", "TestClient", "TokenRequestError"]

#: RFC 7523 §2.2.
_JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_ASSERTION_LIFETIME = 60
#: How long CertboundServerThread waits for its loop to start, stop or register a client.
_THREAD_TIMEOUT = 60.0

_T = TypeVar("_T")


@dataclasses.dataclass(frozen=True)
class TestClient:
    """A registered client and what it needs to authenticate."""

    __test__ = False  # not a pytest test class

    client_id: str
    secret: str | None
    metadata: dict[str, Any]


class TokenRequestError(Exception):
    """The token endpoint refused a `ReadyClient.fetch_token` request."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"token request failed with {status}: {body}")
        self.status = status
        self.body = body


@dataclasses.dataclass(frozen=True)
class ReadyClient:
    """A registered client with what its method needs to authenticate, ready to call the server.

    `ssl_context` trusts the server's CA and presents `certificate` (for the mTLS methods, and for
    clients with certificate-bound tokens): pass it to your own HTTP client, or use `session()`.
    """

    __test__ = False

    client_id: str
    secret: str | None
    metadata: dict[str, Any]
    ssl_context: ssl.SSLContext
    certificate: x509.Certificate | None
    #: Where requests go: the server's URL (its mTLS listener when it has one and we hold a cert).
    base_url: str
    issuer: str
    #: PEM of the CA that issued the server's certificate (`verify=` for requests and httpx).
    ca_file: Path
    #: PEM files of `certificate` and its private key (`cert=(cert_file, key_file)`), or None.
    cert_file: Path | None = None
    key_file: Path | None = None
    #: The private key (a joserfc key) private_key_jwt assertions are signed with.
    signing_key: ECKey | None = None
    #: The URL of the token endpoint as the server names it (the `htu` of token requests' DPoP
    #: proofs): under the issuer, or the mTLS alias when `base_url` is the mTLS listener.
    token_endpoint: str = ""
    #: The client's DPoP key (RFC 9449): `fetch_token(dpop=True)` binds tokens to it.
    dpop_key: DPoPKey = dataclasses.field(default_factory=DPoPKey)

    @property
    def method(self) -> str:
        return str(self.metadata["token_endpoint_auth_method"])

    def session(self, **kwargs: Any) -> aiohttp.ClientSession:
        """A new aiohttp session over this client's TLS context; close it (`async with`)."""
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self.ssl_context), **kwargs)

    def authentication(self) -> tuple[dict[str, str], dict[str, str]]:
        """The headers and form fields that authenticate this client by its registered method, at
        the token, introspection or revocation endpoint (RFC 6749 §2.3.1, RFC 7523 §2.2,
        RFC 8705 §2). A JWT assertion is fresh on every call (its jti is single-use)."""
        method = self.method
        if method == "client_secret_basic" and self.secret is not None:
            return {"Authorization": basic_authorization(self.client_id, self.secret)}, {}
        if method == "client_secret_post" and self.secret is not None:
            return {}, {"client_id": self.client_id, "client_secret": self.secret}
        if method in ("client_secret_jwt", "private_key_jwt"):
            return {}, {
                "client_id": self.client_id,
                "client_assertion_type": _JWT_BEARER,
                "client_assertion": self._assertion(),
            }
        # none and the mTLS methods: the client_id names the client, the certificate (if any) proves it.
        return {}, {"client_id": self.client_id}

    def _assertion(self) -> str:
        now = int(time.time())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.issuer,  # SPEC §7: the issuer identifier as the sole audience
            "iat": now,
            "exp": now + _ASSERTION_LIFETIME,
            "jti": secrets.token_urlsafe(16),
        }
        if self.signing_key is not None:
            return jwt.encode({"alg": "ES256", "kid": self.signing_key.kid}, claims, self.signing_key)
        if self.secret is None:
            raise RuntimeError(f"client {self.client_id} has no key to sign an assertion with")
        return jwt.encode({"alg": "HS256"}, claims, OctKey.import_key(self.secret))

    async def post(
        self, path: str, form: Mapping[str, str], *, headers: Mapping[str, str] | None = None
    ) -> tuple[int, Any]:
        """POST `form` to `path` (e.g. "/introspect"), authenticated as this client, with `headers`
        added; returns the status and the JSON body (None when the body is empty)."""
        status, body, _ = await self._post(path, form, headers or {})
        return status, body

    async def _post(
        self, path: str, form: Mapping[str, str], extra_headers: Mapping[str, str]
    ) -> tuple[int, Any, Mapping[str, str]]:
        headers, credentials = self.authentication()
        async with (
            self.session() as http,
            http.post(
                self.base_url + path, data={**form, **credentials}, headers={**headers, **extra_headers}
            ) as response,
        ):
            body = await response.read()
            return response.status, json.loads(body) if body else None, response.headers

    async def fetch_token(
        self, *, scope: str | None = None, resource: str | None = None, dpop: bool = False
    ) -> str:
        """A client_credentials access token (RFC 6749 §4.4); TokenRequestError when refused.
        `dpop=True` sends a DPoP proof of `dpop_key` (RFC 9449 §5), and once more with the
        server's nonce when it answers `use_dpop_nonce` (§8): the token is then DPoP-bound."""
        form = {"grant_type": "client_credentials"}
        if scope is not None:
            form["scope"] = scope
        if resource is not None:
            form["resource"] = resource
        if not dpop:
            status, body, _ = await self._post("/token", form, {})
        else:
            proof = self.dpop_key.proof("POST", self.token_endpoint)
            status, body, headers = await self._post("/token", form, {DPOP_HEADER: proof})
            nonce = headers.get(NONCE_HEADER)
            if status == 400 and isinstance(body, dict) and body.get("error") == "use_dpop_nonce" and nonce:
                proof = self.dpop_key.proof("POST", self.token_endpoint, nonce=nonce)
                status, body, _ = await self._post("/token", form, {DPOP_HEADER: proof})
        if status != 200:
            raise TokenRequestError(status, body)
        access_token: str = body["access_token"]
        return access_token

    def dpop_headers(self, method: str, url: str, access_token: str) -> dict[str, str]:
        """The headers of a resource request with a DPoP-bound token (RFC 9449 §7.1): the token
        in `Authorization: DPoP` and a fresh proof of `dpop_key` for `method url`."""
        return {
            "Authorization": f"DPoP {access_token}",
            DPOP_HEADER: self.dpop_key.proof(method, url, access_token=access_token),
        }


class CertboundTestServer:
    """A certbound serving on the running event loop; `async with` starts and stops it."""

    __test__ = False

    def __init__(self, *, db: str = "sqlite://:memory:", **options: Any) -> None:
        ephemeral_mtls = options.get("mtls_port") == 0
        if ephemeral_mtls:
            del options["mtls_port"]
        # ConfigError (naming the option) now, in the test's set-up, not at start.
        self._options = parse_options({"db": db, **options}, source="certbound test server options")
        self._ephemeral_mtls = ephemeral_mtls
        self.server_ca = trustme.CA()
        self.client_ca = trustme.CA()
        self._tmp = tempfile.TemporaryDirectory(prefix="certbound-test-")
        self.directory = Path(self._tmp.name)
        self._running: RunningServer | None = None

    @property
    def running(self) -> RunningServer:
        if self._running is None:
            raise RuntimeError("server is not started")
        return self._running

    @property
    def url(self) -> str:
        return self.running.url

    @property
    def settings(self) -> Settings:
        return self.running.settings

    @property
    def issuer(self) -> str:
        return self.running.settings.issuer

    @property
    def server_ca_file(self) -> Path:
        """PEM of the CA that issued the server's certificate: what a client must trust."""
        return self.directory / "server-ca.pem"

    async def start(self) -> CertboundTestServer:
        leaf = self.server_ca.issue_cert("localhost", "127.0.0.1", "::1")
        cert_file, key_file = self.directory / "server.pem", self.directory / "server.key"
        client_ca_file = self.directory / "client-ca.pem"
        cert_file.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
        key_file.write_bytes(leaf.private_key_pem.bytes())
        client_ca_file.write_bytes(self.client_ca.cert_pem.bytes())
        self.server_ca.cert_pem.write_to_path(str(self.server_ca_file))
        values: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": 0,
            "tls_cert": cert_file,
            "tls_key": key_file,
            "client_ca": (client_ca_file,),
            "registration": "open",
        }
        values.update(self._options)
        # Bind first and keep the sockets: the issuer must name the port before the server starts.
        sockets = [bind_listener(values["host"], values["port"])]
        try:
            values["port"] = sockets[0].getsockname()[1]
            if self._ephemeral_mtls:
                sockets.append(bind_listener(values["host"], 0))
                values["mtls_port"] = sockets[1].getsockname()[1]
            elif values.get("mtls_port") is not None:
                sockets.append(bind_listener(values["host"], values["mtls_port"]))
            values.setdefault("issuer", f"https://localhost:{values['port']}")
            self._running = await start_server(build_settings(values), sockets)
        except BaseException:
            for sock in sockets:
                sock.close()
            raise
        return self

    async def stop(self) -> None:
        if self._running is not None:
            await self._running.stop()
            self._running = None
        self._tmp.cleanup()

    async def __aenter__(self) -> CertboundTestServer:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def manager(self) -> ClientManager:
        return ClientManager.for_context(self.running.context)

    async def add_client(
        self,
        method: str = "client_secret_basic",
        *,
        secret: str | None = None,
        client_id: str | None = None,
        **metadata: Any,
    ) -> TestClient:
        created: CreatedClient = await self.manager().create(
            {"token_endpoint_auth_method": method, **metadata}, client_id=client_id, secret=secret
        )
        return TestClient(created.client.client_id, created.secret, dict(created.client.metadata))

    def issue_client_cert(self, *identities: str, **kwargs: Any) -> trustme.LeafCert:
        """A client certificate from the server's trusted client CA."""
        return self.client_ca.issue_cert(*identities, **kwargs)

    def client_ssl_context(self, cert: trustme.LeafCert | None = None) -> ssl.SSLContext:
        """An SSL context that trusts the server and presents `cert`, if given."""
        context = ssl.create_default_context()
        self.server_ca.configure_trust(context)
        if cert is not None:
            cert.configure_cert(context)
        return context

    async def new_client(
        self, method: str = "client_secret_basic", *, certificate: bool | None = None, **metadata: Any
    ) -> ReadyClient:
        """Register a client of any of the seven RFC methods and return it ready to use (a
        workload identity client needs a platform's token: register it with `add_client`).

        The harness supplies what the method needs: a secret for the secret methods, a P-256 key
        registered as `jwks` for private_key_jwt, a certificate from the client CA registered by
        `tls_client_auth_san_dns` for tls_client_auth, a self-signed certificate whose key is
        registered as `jwks` for self_signed_tls_client_auth. `certificate` (default: when the
        method or `tls_client_certificate_bound_access_tokens` needs one) gives other methods a
        certificate from the client CA, or none.
        """
        label = secrets.token_hex(8)
        context = self.client_ssl_context()
        cert_pem: bytes | None = None
        cert_file: Path | None = None
        key_file: Path | None = None
        signing_key: ECKey | None = None
        if method == "self_signed_tls_client_auth":
            # A trustme CA certificate is self-signed: exactly what this method presents.
            own = trustme.CA(organization_name=f"self-signed client {label}")
            cert_pem, key_pem = own.cert_pem.bytes(), own.private_key_pem.bytes()
            public_key = x509.load_pem_x509_certificate(cert_pem).public_key()
            if not isinstance(public_key, ec.EllipticCurvePublicKey):
                raise RuntimeError("trustme made a CA key that is not EC")
            metadata = {"jwks": {"keys": [public_jwk(public_key)]}, **metadata}
        else:
            bound = bool(metadata.get("tls_client_certificate_bound_access_tokens", method in MTLS_METHODS))
            if certificate if certificate is not None else bound:
                name = f"{label}.client.certbound.test"
                leaf = self.issue_client_cert(name)
                cert_pem = b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
                key_pem = leaf.private_key_pem.bytes()
                if method == "tls_client_auth":
                    metadata = {"tls_client_auth_san_dns": name, **metadata}
        if cert_pem is not None:
            cert_file, key_file = self.directory / f"{label}.pem", self.directory / f"{label}.key"
            cert_file.write_bytes(cert_pem)
            key_file.write_bytes(key_pem)
            context.load_cert_chain(cert_file, key_file)
        if method == "private_key_jwt":
            signing_key = ECKey.generate_key("P-256", auto_kid=True)
            metadata = {"jwks": {"keys": [signing_key.as_dict(private=False)]}, **metadata}
        registered = await self.add_client(method, **metadata)
        # With --mtls-port only that listener asks for a certificate (RFC 8705 §5).
        mtls = cert_pem is not None and self.settings.mtls_port is not None
        alias = self.settings.mtls_base_url
        return ReadyClient(
            client_id=registered.client_id,
            secret=registered.secret,
            metadata=registered.metadata,
            ssl_context=context,
            certificate=x509.load_pem_x509_certificate(cert_pem) if cert_pem is not None else None,
            base_url=self._mtls_url() if mtls else self.url,
            issuer=self.issuer,
            ca_file=self.server_ca_file,
            cert_file=cert_file,
            key_file=key_file,
            signing_key=signing_key,
            token_endpoint=alias + "/token" if mtls and alias is not None else self.settings.token_endpoint,
        )

    def _mtls_url(self) -> str:
        """The --mtls-port listener as this process reaches it (the host the server listens on)."""
        return f"https://{self.settings.host}:{self.settings.mtls_port}"


class CertboundServerThread:
    """A CertboundTestServer on its own event loop in a daemon thread (`with` starts and stops it).

    It serves synchronous tests (requests, httpx, urllib) and async tests on any event loop, in
    any pytest-asyncio mode, since it never touches the caller's loop. Its methods block until
    the server thread has done the work; `run(coroutine)` runs any coroutine there, e.g.
    `server.run(client.fetch_token())` from synchronous code.
    """

    __test__ = False

    def __init__(self, *, db: str = "sqlite://:memory:", **options: Any) -> None:
        self.server = CertboundTestServer(db=db, **options)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def run(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        """Run `coroutine` on the server's event loop and return its result (or raise its error)."""
        if self._loop is None:
            coroutine.close()
            raise RuntimeError("server thread is not started")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(_THREAD_TIMEOUT)

    def start(self) -> CertboundServerThread:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="certbound-test-server", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            self.run(self.server.start())
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            self.run(self.server.stop())
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(_THREAD_TIMEOUT)
            loop.close()
            self._loop = self._thread = None

    def __enter__(self) -> CertboundServerThread:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def issuer(self) -> str:
        return self.server.issuer

    @property
    def settings(self) -> Settings:
        return self.server.settings

    @property
    def server_ca_file(self) -> Path:
        """PEM of the CA that issued the server's certificate: what a client must trust."""
        return self.server.server_ca_file

    def client_ssl_context(self, cert: trustme.LeafCert | None = None) -> ssl.SSLContext:
        """An SSL context that trusts the server and presents `cert`, if given."""
        return self.server.client_ssl_context(cert)

    def issue_client_cert(self, *identities: str, **kwargs: Any) -> trustme.LeafCert:
        """A client certificate from the server's trusted client CA."""
        return self.server.issue_client_cert(*identities, **kwargs)

    def add_client(
        self,
        method: str = "client_secret_basic",
        *,
        secret: str | None = None,
        client_id: str | None = None,
        **metadata: Any,
    ) -> TestClient:
        """CertboundTestServer.add_client, from any thread."""
        return self.run(self.server.add_client(method, secret=secret, client_id=client_id, **metadata))

    def new_client(
        self, method: str = "client_secret_basic", *, certificate: bool | None = None, **metadata: Any
    ) -> ReadyClient:
        """CertboundTestServer.new_client, from any thread: a registered client ready to use."""
        return self.run(self.server.new_client(method, certificate=certificate, **metadata))
