"""`certbound demo-resource` in front of `certbound serve`, both as real subprocesses (SPEC §3): a
tls_client_auth client's bound token is accepted only with its certificate; RFC 6750 refusals;
introspection mode sees a revocation; bad configuration; the dev PKI when no TLS flag is given."""

from __future__ import annotations

import base64
import hashlib
import json
import signal
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from certbound.devpki import write_dev_pki
from certbound.dpop import DPoPKey
from tests.e2e.processes import ServerProcess, free_port, run_cli
from tests.helpers import basic_auth


class DemoResourceProcess(ServerProcess):
    """`certbound demo-resource ...`, awaited until it prints its ready line."""

    def __init__(self, *args: str, cwd: Path | None = None, timeout: float = 30.0) -> None:
        super().__init__(*args, cwd=cwd, timeout=timeout, command="demo-resource")


def https(
    url: str, pki: Path, *, cert: str | None = None, token: str | None = None, form: str | None = None,
    authorization: str | None = None, headers: dict[str, str] | None = None,
) -> tuple[int, Any, str | None]:  # fmt: skip
    """One HTTPS request trusting the dev server CA, presenting `cert` (a dev PKI name) if given."""
    context = ssl.create_default_context(cafile=str(pki / "server-ca.pem"))
    if cert is not None:
        context.load_cert_chain(pki / f"{cert}.pem", pki / f"{cert}.key")
    headers = dict(headers or {})
    if form is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if authorization is not None:
        headers["Authorization"] = authorization
    request = urllib.request.Request(url, data=form.encode() if form else None, headers=headers)
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            status, body, challenge = response.status, response.read(), None
    except urllib.error.HTTPError as exc:
        status, body, challenge = exc.code, exc.read(), exc.headers.get("WWW-Authenticate")
    return status, json.loads(body) if body else None, challenge


def add_client(db: str, *args: str) -> dict[str, Any]:
    result = run_cli("clients", "add", *args, "--json", "--db", db)
    assert result.returncode == 0, result.stderr
    created: dict[str, Any] = json.loads(result.stdout)
    return created


def fetch_token(as_url: str, pki: Path, client: dict[str, Any], cert: str, **params: str) -> str:
    form = "&".join(
        f"{name}={value}" for name, value in {"grant_type": "client_credentials", **params}.items()
    )
    if client["token_endpoint_auth_method"] == "tls_client_auth":
        form += f"&client_id={client['client_id']}"
        authorization = None
    else:
        authorization = basic_auth(client["client_id"], client["client_secret"])
    status, body, _ = https(as_url + "/token", pki, cert=cert, form=form, authorization=authorization)
    assert status == 200, body
    token: str = body["access_token"]
    return token


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dev_pki(tmp_path_factory.mktemp("pki")).directory


def tls_flags(pki: Path) -> list[str]:
    return [
        "--tls-cert", str(pki / "server.pem"),
        "--tls-key", str(pki / "server.key"),
        "--client-ca", str(pki / "client-ca.pem"),
    ]  # fmt: skip


@pytest.fixture
def authorization_server(pki: Path, tmp_path: Path) -> Iterator[tuple[ServerProcess, str]]:
    db = f"sqlite:///{tmp_path}/certbound.db"
    port = free_port()
    with ServerProcess(
        "--port", str(port), "--issuer", f"https://localhost:{port}", "--db", db, *tls_flags(pki)
    ) as server:
        yield server, db


def demo_flags(pki: Path, issuer_port: str, *extra: str) -> list[str]:
    return [
        "--port", str(free_port()), "--issuer", f"https://localhost:{issuer_port}",
        "--as-ca", str(pki / "server-ca.pem"), *tls_flags(pki), *extra,
    ]  # fmt: skip


def test_jwt_mode_accepts_a_bound_token_only_with_its_certificate(pki, authorization_server) -> None:
    server, db = authorization_server
    issuer_port = server.url.rsplit(":", 1)[1]
    # client1.pem from the dev PKI carries SAN DNS client1.certbound.test.
    client = add_client(db, "--method", "tls_client_auth", "--san-dns", "client1.certbound.test")
    token = fetch_token(server.url, pki, client, "client1", scope="read")
    elsewhere = fetch_token(server.url, pki, client, "client1", resource="https://elsewhere.example/")

    with DemoResourceProcess(*demo_flags(pki, issuer_port)) as demo:
        assert demo.ready_line == f"listening on {demo.url}\n"
        assert demo.url.startswith("https://127.0.0.1:")
        resource = demo.url + "/resource"

        status, body, _ = https(resource, pki, cert="client1", token=token)
        assert status == 200, body
        assert body["client_id"] == client["client_id"]
        assert body["scope"] == "read"
        assert set(body["cnf"]) == {"x5t#S256"}

        for cert, presented in (("client2", "another certificate"), (None, "no certificate")):
            status, body, challenge = https(resource, pki, cert=cert, token=token)
            assert (status, body["error"]) == (401, "invalid_token"), presented
            assert challenge is not None
            assert challenge.startswith('Bearer error="invalid_token"'), presented

        status, body, challenge = https(resource, pki, cert="client1", token=elsewhere)
        assert (status, body["error"]) == (401, "invalid_token")
        assert "audience" in body["error_description"]

        assert https(resource, pki, cert="client1") == (401, None, "Bearer")
        status, stderr = demo.stop(signal.SIGTERM)
        assert status == 0
        # Issue 9 finding 17: the start-up line says what JWT mode means for revoked tokens.
        assert "JWT mode cannot see revocation" in stderr


def test_dpop_bound_tokens_from_a_server_requiring_nonces(pki, tmp_path) -> None:
    """SPEC §12 through the command line: `serve --dpop-nonce` and `clients add --dpop-bound`; the
    demo API takes the token with a proof, and refuses it as Bearer, with DPoP challenges."""
    db, port = f"sqlite:///{tmp_path}/certbound.db", free_port()
    issuer = f"https://localhost:{port}"
    flags = ["--port", str(port), "--issuer", issuer, "--db", db, "--dpop-nonce", *tls_flags(pki)]
    with ServerProcess(*flags) as server:
        client = add_client(db, "--method", "client_secret_basic", "--dpop-bound")
        authorization = basic_auth(client["client_id"], client["client_secret"])
        form = "grant_type=client_credentials"
        status, body, _ = https(server.url + "/token", pki, form=form, authorization=authorization)
        assert (status, body["error"]) == (400, "invalid_request")  # dpop_bound_access_tokens
        key = DPoPKey()
        token_request = {"Authorization": authorization}
        proof = {"DPoP": key.proof("POST", issuer + "/token")}
        nonce = server_nonce(server.url + "/token", pki, {**token_request, **proof})
        proof = {"DPoP": key.proof("POST", issuer + "/token", nonce=nonce)}
        status, body, _ = https(server.url + "/token", pki, form=form, headers={**token_request, **proof})
        assert (status, body["token_type"]) == (200, "DPoP"), body
        token = body["access_token"]
        with DemoResourceProcess(*demo_flags(pki, str(port))) as demo:
            resource = demo.url + "/resource"
            dpop = {"Authorization": f"DPoP {token}", "DPoP": key.proof("GET", resource, access_token=token)}
            status, body, _ = https(resource, pki, headers=dpop)
            assert (status, body["cnf"]) == (200, {"jkt": key.jkt}), body
            status, body, challenge = https(resource, pki, token=token)
            assert (status, body["error"]) == (401, "invalid_token")
            assert challenge is not None
            assert challenge.startswith('DPoP error="invalid_token"')


def server_nonce(url: str, pki: Path, headers: dict[str, str]) -> str:
    """The DPoP-Nonce of a token request refused with use_dpop_nonce (RFC 9449 §8)."""
    context = ssl.create_default_context(cafile=str(pki / "server-ca.pem"))
    request = urllib.request.Request(
        url,
        data=b"grant_type=client_credentials",
        headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, context=context, timeout=10)
    assert (refused.value.code, json.loads(refused.value.read())["error"]) == (400, "use_dpop_nonce")
    nonce: str = refused.value.headers["DPoP-Nonce"]
    return nonce


def test_introspection_mode_sees_a_revocation(pki, authorization_server, tmp_path) -> None:
    server, db = authorization_server
    issuer_port = server.url.rsplit(":", 1)[1]
    resource_server = add_client(db, "--method", "client_secret_basic")
    client = add_client(db, "--method", "client_secret_basic", "--opaque", "--certificate-bound")
    kept = fetch_token(server.url, pki, client, "client2")
    revoked = fetch_token(server.url, pki, client, "client2")
    assert "." not in kept  # reference tokens: only introspection can check them

    status, _, _ = https(
        server.url + "/revoke",
        pki,
        form=f"token={revoked}",
        authorization=basic_auth(client["client_id"], client["client_secret"]),
    )
    assert status == 200

    # The `=` form: a generated client_id may start with "-". The secret from a file, off the
    # command line (issue 9 finding 15).
    secret_file = tmp_path / "introspection-secret"
    secret_file.write_text(resource_server["client_secret"] + "\n")
    flags = demo_flags(
        pki,
        issuer_port,
        f"--introspection-client-id={resource_server['client_id']}",
        "--introspection-client-secret-file",
        str(secret_file),
    )
    with DemoResourceProcess(*flags) as demo:
        resource = demo.url + "/resource"
        status, body, _ = https(resource, pki, cert="client2", token=kept)
        assert (status, body["client_id"]) == (200, client["client_id"])
        status, body, _ = https(resource, pki, cert="client2", token=revoked)
        assert (status, body["error"]) == (401, "invalid_token")
        assert "not active" in body["error_description"]
        status, body, _ = https(resource, pki, cert="client1", token=kept)
        assert (status, body["error"]) == (401, "invalid_token")
        status, stderr = demo.stop(signal.SIGINT)
        assert status == 0
        assert "answers not cached, so a revoked token is refused at once" in stderr


@pytest.mark.parametrize("cache_ttl", [None, "30"], ids=["default", "cached"])
def test_introspection_answers_are_cached_only_when_asked(
    pki, authorization_server, cache_ttl: str | None
) -> None:
    """SPEC §3: no cache unless --introspection-cache-ttl, so a revocation is seen at once; with a
    cache, a token revoked after its first use passes until the cached answer expires."""
    server, db = authorization_server
    resource_server = add_client(db, "--method", "client_secret_basic")
    client = add_client(db, "--method", "client_secret_basic", "--opaque")
    token = fetch_token(server.url, pki, client, "client2")
    flags = [
        f"--introspection-client-id={resource_server['client_id']}",
        f"--introspection-client-secret={resource_server['client_secret']}",
        *(["--introspection-cache-ttl", cache_ttl] if cache_ttl else []),
    ]
    with DemoResourceProcess(*demo_flags(pki, server.url.rsplit(":", 1)[1], *flags)) as demo:
        resource = demo.url + "/resource"
        assert https(resource, pki, token=token)[0] == 200
        revoke = f"token={token}"
        credentials = basic_auth(client["client_id"], client["client_secret"])
        assert https(server.url + "/revoke", pki, form=revoke, authorization=credentials)[0] == 200
        assert https(resource, pki, token=token)[0] == (200 if cache_ttl else 401)
        status, stderr = demo.stop()
    assert status == 0
    assert ("cached up to 30 s" in stderr) == bool(cache_ttl)


def sha256_colons(pki: Path, name: str) -> str:
    """The fingerprint as `openssl x509 -noout -fingerprint -sha256` prints it."""
    der = x509.load_pem_x509_certificate((pki / f"{name}.pem").read_bytes()).public_bytes(Encoding.DER)
    return ":".join(f"{byte:02X}" for byte in hashlib.sha256(der).digest())


def client_cert_header(pki: Path, name: str) -> str:
    der = x509.load_pem_x509_certificate((pki / f"{name}.pem").read_bytes()).public_bytes(Encoding.DER)
    return ":" + base64.b64encode(der).decode("ascii") + ":"


def test_behind_a_pinned_proxy(pki, authorization_server) -> None:
    """The test client plays a proxy on 127.0.0.1 whose own certificate is client2 (pinned); it
    forwards client1's certificate. Without the pinned certificate the header is ignored."""
    server, db = authorization_server
    client = add_client(db, "--method", "tls_client_auth", "--san-dns", "client1.certbound.test")
    token = fetch_token(server.url, pki, client, "client1")
    flags = demo_flags(
        pki,
        server.url.rsplit(":", 1)[1],
        "--trusted-proxy", "127.0.0.1",
        "--trusted-proxy-cert-sha256", sha256_colons(pki, "client2"),
    )  # fmt: skip
    forwarded = {"Client-Cert": client_cert_header(pki, "client1")}
    with DemoResourceProcess(*flags) as demo:
        resource = demo.url + "/resource"
        status, body, _ = https(resource, pki, cert="client2", token=token, headers=forwarded)
        assert (status, body["client_id"]) == (200, client["client_id"])
        status, body, _ = https(resource, pki, token=token, headers=forwarded)
        assert (status, body["error"]) == (401, "invalid_token")
        assert "present it over mutual TLS" in body["error_description"]
        status, stderr = demo.stop()
    assert status == 0
    assert "trusted proxy range" not in stderr


def test_request_headers_have_a_deadline(pki, authorization_server) -> None:
    """Issue 9 finding 6: a peer that never finishes its request headers is cut off."""
    server, _ = authorization_server
    flags = demo_flags(pki, server.url.rsplit(":", 1)[1], "--header-timeout", "1")
    with DemoResourceProcess(*flags) as demo:
        port = int(demo.url.rsplit(":", 1)[1])
        context = ssl.create_default_context(cafile=str(pki / "server-ca.pem"))
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            tls.sendall(b"GET /resource HTTP/1.1\r\nHost: localhost\r\n")
            assert tls.recv(1024) == b""  # closed after ~1 s, without an answer
        # Twin: a complete request on a new connection is answered.
        assert https(demo.url + "/resource", pki) == (401, None, "Bearer")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "the following arguments are required: --issuer"),
        (["--issuer", "http://localhost:1"], "must be an https URL"),
        (["--issuer", "https://localhost:1", "--as-ca", "missing.pem"], "--as-ca file not found"),
        (["--issuer", "https://localhost:1", "--client-ca", "missing.pem"], "--client-ca file not found"),
        (["--issuer", "https://localhost:1", "--clock-skew", "-1"], "--clock-skew"),
        (["--issuer", "https://localhost:1", "--introspection-cache-ttl", "-1"], "must be >= 0"),
        (["--issuer", "https://localhost:1", "--introspection-cache-ttl", "nan"], "must be >= 0"),
        (["--issuer", "https://localhost:1", "--trusted-proxy", "10.0.0.0/33"], "not a CIDR"),
        (["--issuer", "https://localhost:1", "--client-cert-header", "x-cert"], "must be one of"),
        (["--issuer", "https://localhost:1", "--header-timeout", "0"], "--header-timeout"),
        (
            [
                "--issuer",
                "https://localhost:1",
                "--trusted-proxy",
                "127.0.0.1",
                "--trusted-proxy-cert-sha256",
                "ab",
            ],
            "64 hex digits",
        ),
        (
            ["--issuer", "https://localhost:1", "--trusted-proxy-cert-sha256", "ab" * 32],
            "--trusted-proxy-cert-sha256 needs --trusted-proxy",
        ),
        (
            ["--issuer", "https://localhost:1", "--introspection-client-id", "rs"],
            "--introspection-client-id and --introspection-client-secret go together",
        ),
        (
            ["--issuer", "https://localhost:1", "--introspection-client-secret-file", "missing"],
            "cannot read --introspection-client-secret file missing",
        ),
        (
            [
                "--issuer",
                "https://localhost:1",
                "--introspection-client-secret",
                "s" * 9,
                "--introspection-client-secret-file",
                "missing",
            ],
            "give --introspection-client-secret or its -file, not both",
        ),
    ],
)
def test_bad_configuration_is_one_error_line(pki, tmp_path, args: list[str], message: str) -> None:
    assert_one_error_line(run_cli("demo-resource", *tls_flags(pki), *args, cwd=tmp_path), message)


def assert_one_error_line(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("certbound: error: ")
    assert result.stderr.count("\n") == 1
    assert message in result.stderr


def test_tls_cert_without_key_is_one_error_line(pki, tmp_path) -> None:
    flags = ["--issuer", "https://localhost:1", "--tls-cert", str(pki / "server.pem")]
    assert_one_error_line(
        run_cli("demo-resource", *flags, cwd=tmp_path), "--tls-cert and --tls-key go together"
    )


def test_unusable_tls_files_are_one_error_line(pki, tmp_path) -> None:
    flags = ["--issuer", "https://localhost:1", "--tls-cert", str(pki / "server.pem")]
    result = run_cli("demo-resource", *flags, "--tls-key", str(pki / "client1.key"), cwd=tmp_path)
    assert_one_error_line(result, "does not match")


def test_without_tls_flags_both_use_the_dev_pki(tmp_path) -> None:
    port = free_port()
    with ServerProcess("--port", str(port), cwd=tmp_path) as server:
        certs = tmp_path / "certs"
        db = f"sqlite:///{tmp_path}/data/certbound.db"
        client = add_client(db, "--method", "client_secret_basic", "--certificate-bound")
        token = fetch_token(server.url, certs, client, "client1")
        with DemoResourceProcess(
            "--port", str(free_port()), "--issuer", f"https://localhost:{port}", cwd=tmp_path
        ) as demo:
            status, body, _ = https(demo.url + "/resource", certs, cert="client1", token=token)
            assert (status, body["client_id"]) == (200, client["client_id"])
            assert demo.stop()[0] == 0
