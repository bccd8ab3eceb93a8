"""Start a real certbound in-process for tests (ours and other projects').

    async with CertboundTestServer() as server:
        client = await server.new_client("tls_client_auth")   # any of the seven methods
        access_token = await client.fetch_token(scope="read")

The server listens on 127.0.0.1 on an ephemeral port, with a trustme CA for its certificate and
another for client certificates, and an in-memory SQLite database unless `db` is given. Unlike
`certbound serve` (closed by default, SPEC §3), dynamic registration is open unless `registration`
says otherwise: the server is a throwaway on loopback, and suites testing RFC 7591 clients need it.
`new_client` registers a client and hands back a `ReadyClient`: its credentials, the certificate
and key material its method needs, and an SSL context that trusts the server and presents that
certificate. `add_client` only registers. The pytest plugin (certbound.pytest_plugin) wraps both.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import socket
import ssl
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey

from certbound.config import Settings
from certbound.jose import public_jwk
from certbound.management import ClientManager, CreatedClient
from certbound.models import MTLS_METHODS
from certbound.resource import basic_authorization
from certbound.runtime import RunningServer, start_server

__all__ = ["CertboundTestServer", "ReadyClient", "TestClient", "TokenRequestError"]

#: RFC 7523 §2.2.
_JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_ASSERTION_LIFETIME = 60


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
    #: The private key (a joserfc key) private_key_jwt assertions are signed with.
    signing_key: ECKey | None = None

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

    async def post(self, path: str, form: Mapping[str, str]) -> tuple[int, Any]:
        """POST `form` to `path` (e.g. "/introspect"), authenticated as this client; returns the
        status and the JSON body (None when the body is empty)."""
        headers, credentials = self.authentication()
        async with (
            self.session() as http,
            http.post(self.base_url + path, data={**form, **credentials}, headers=headers) as response,
        ):
            body = await response.read()
            return response.status, json.loads(body) if body else None

    async def fetch_token(self, *, scope: str | None = None, resource: str | None = None) -> str:
        """A client_credentials access token (RFC 6749 §4.4); TokenRequestError when refused."""
        form = {"grant_type": "client_credentials"}
        if scope is not None:
            form["scope"] = scope
        if resource is not None:
            form["resource"] = resource
        status, body = await self.post("/token", form)
        if status != 200:
            raise TokenRequestError(status, body)
        access_token: str = body["access_token"]
        return access_token


def _free_port() -> int:
    """A port free on 127.0.0.1 now: the issuer must name the port before the server starts."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class CertboundTestServer:
    __test__ = False

    def __init__(self, *, db: str = "sqlite://:memory:", **settings: Any) -> None:
        self.server_ca = trustme.CA()
        self.client_ca = trustme.CA()
        self._db = db
        self._overrides = settings
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
            "port": _free_port(),
            "tls_cert": cert_file,
            "tls_key": key_file,
            "client_ca": (client_ca_file,),
            "db": self._db,
            "registration": "open",
        }
        values.update(self._overrides)
        values.setdefault("issuer", f"https://localhost:{values['port']}")
        self._running = await start_server(Settings(**values))
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
        """Register a client of any method and return it ready to use.

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
        signing_key: ECKey | None = None
        if method == "self_signed_tls_client_auth":
            # A trustme CA certificate is self-signed: exactly what this method presents.
            own = trustme.CA(organization_name=f"self-signed client {label}")
            cert_pem, key_pem = own.cert_pem.bytes(), own.private_key_pem.bytes()
            public_key = x509.load_pem_x509_certificate(cert_pem).public_key()
            if not isinstance(public_key, ec.EllipticCurvePublicKey):
                raise RuntimeError("trustme made a CA key that is not EC")
            metadata = {"jwks": {"keys": [public_jwk(public_key)]}, **metadata}
            cert_file, key_file = self.directory / f"{label}.pem", self.directory / f"{label}.key"
            cert_file.write_bytes(cert_pem)
            key_file.write_bytes(key_pem)
            context.load_cert_chain(cert_file, key_file)
        else:
            bound = bool(metadata.get("tls_client_certificate_bound_access_tokens", method in MTLS_METHODS))
            if certificate if certificate is not None else bound:
                name = f"{label}.client.certbound.test"
                leaf = self.issue_client_cert(name)
                leaf.configure_cert(context)
                cert_pem = leaf.cert_chain_pems[0].bytes()
                if method == "tls_client_auth":
                    metadata = {"tls_client_auth_san_dns": name, **metadata}
        if method == "private_key_jwt":
            signing_key = ECKey.generate_key("P-256", auto_kid=True)
            metadata = {"jwks": {"keys": [signing_key.as_dict(private=False)]}, **metadata}
        registered = await self.add_client(method, **metadata)
        # With --mtls-port only that listener asks for a certificate (RFC 8705 §5).
        mtls = cert_pem is not None and self.settings.mtls_port is not None
        return ReadyClient(
            client_id=registered.client_id,
            secret=registered.secret,
            metadata=registered.metadata,
            ssl_context=context,
            certificate=x509.load_pem_x509_certificate(cert_pem) if cert_pem is not None else None,
            base_url=self._mtls_url() if mtls else self.url,
            issuer=self.issuer,
            signing_key=signing_key,
        )

    def _mtls_url(self) -> str:
        """The --mtls-port listener as this process reaches it (the host the server listens on)."""
        return f"https://{self.settings.host}:{self.settings.mtls_port}"
