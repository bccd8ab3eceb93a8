"""The README run as written (issue 10 part 4), so it cannot drift from what works.

One server for the module, started the way `make run` serves (the dev PKI, `data/certbound.db`,
closed registration) in a directory laid out like a checkout after `make run` (`.venv` is this
interpreter's environment). Every command of the Quickstart runs in one shell, in order, with the
output the README promises after it; then the client-library recipes get tokens with the method each
shows (httpx, requests-oauthlib, Authlib, openid-client when node and npm are here), and the
plain-JWT resource recipe checks `cnf`. Each has its failing twin: the traps the README warns about
fail as it says. The only change to the README's text is the ports, which the kernel picks.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import ssl
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from joserfc.jwk import ECKey

from certbound.announce import DEMO_CLIENT_ID, DEMO_SECRET
from certbound.devpki import write_dev_pki
from certbound.testing import CertboundServerThread
from tests.helpers import sign_jwt
from tests.readme import (
    Command,
    CommandResult,
    assert_promised_output,
    promised_python_output,
    readme_blocks,
    readme_code_blocks,
    run_commands,
    shell_commands,
    substitute,
)

#: The addresses the README uses: `make run`'s issuer and demo-resource's `--port 9443`.
README_ISSUER = "https://localhost:8443"
README_RESOURCE = "https://localhost:9443"
README_CHECKOUT = "/path/to/certbound"


@dataclass
class Checkout:
    """A checkout after `make run`, its server, and how the README's addresses map to this run's."""

    root: Path
    server: CertboundServerThread
    replacements: dict[str, str]

    def path(self, name: str) -> str:
        return str(self.root / name)


@dataclass(frozen=True)
class Quickstart:
    results: list[CommandResult]
    stderr: str
    demo_resource_log: Path


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Checkout]:
    root = tmp_path_factory.mktemp("checkout")
    (root / ".venv").symlink_to(sys.prefix)
    pki = write_dev_pki(root / "certs")
    with CertboundServerThread(
        db=f"sqlite:///{root}/data/certbound.db",  # the CLI's default, seen from the checkout
        tls_cert=pki.server_cert,
        tls_key=pki.server_key,
        client_ca=[pki.client_ca],
        registration="closed",
    ) as server:
        yield Checkout(root, server, {README_ISSUER: server.issuer})


def _start_demo_resource(command: Command, checkout: Checkout, log: Path) -> subprocess.Popen[str]:
    """The README's long-running `demo-resource` on a port the kernel picks; its URL joins the
    replacements once it prints `listening on`."""
    text = substitute(command.text, checkout.replacements).replace("--port 9443", "--port 0")
    assert text != command.text
    with log.open("w") as stderr:
        process = subprocess.Popen(
            ["bash", "-c", f"exec {text}"],
            cwd=checkout.root,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    assert process.stdout is not None
    ready = process.stdout.readline()
    assert ready.startswith("listening on https://127.0.0.1:"), (ready, log.read_text())
    checkout.replacements[README_RESOURCE] = "https://localhost:" + ready.strip().rsplit(":", 1)[1]
    return process


@pytest.fixture(scope="module")
def quickstart(checkout: Checkout) -> Iterator[Quickstart]:
    """Every shell block of the Quickstart, in order, as a user pastes them."""
    results: list[CommandResult] = []
    stderr = ""
    log = checkout.root / "demo-resource.log"
    demo_resource: subprocess.Popen[str] | None = None
    try:
        for block in readme_blocks("## Quickstart"):
            if block.language != "sh":
                continue
            commands = shell_commands(block)
            if any(" demo-resource " in command.text for command in commands):
                assert len(commands) == 1, "the long-running demo-resource has a block of its own"
                demo_resource = _start_demo_resource(commands[0], checkout, log)
                continue
            ran, errors = run_commands(commands, cwd=checkout.root, replacements=checkout.replacements)
            results += ran
            stderr += errors
        yield Quickstart(results, stderr, log)
    finally:
        if demo_resource is not None:
            demo_resource.terminate()
            demo_resource.wait(10)


def test_every_quickstart_command_runs_as_written(quickstart: Quickstart) -> None:
    for result in quickstart.results:
        what = f"README command {result.command.text!r}"
        assert result.status == 0, f"{what} exited {result.status}: {result.output}\n{quickstart.stderr}"
        assert_promised_output(result.command.promised, result.output, what)
    promises = [line for result in quickstart.results for line in result.command.promised]
    assert len(quickstart.results) >= 10
    assert promises.count("HTTP/1.1 401 Unauthorized") == 2  # the bound token refused twice
    assert "JWT mode cannot see revocation" in quickstart.demo_resource_log.read_text()


# --- the token check: claims, not only the signature ------------------------------------------


def _server_signed_token(checkout: Checkout, **changes: Any) -> str:
    """An access token signed with the server's own key, with `changes` to its claims."""
    now = int(time.time())
    issuer = checkout.server.issuer
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": DEMO_CLIENT_ID,
        "client_id": DEMO_CLIENT_ID,
        "aud": issuer,
        "iat": now - 60,
        "exp": now + 600,
        "jti": "readme-check",
        "scope": "read",
    }
    claims.update(changes)
    return sign_jwt(checkout.server.server.running.context.keys.active, "at+jwt", claims)


def _check_token(checkout: Checkout, token: str) -> tuple[CommandResult, str]:
    """The README's check, given `token` instead of the one it fetches."""
    (block,) = [block for block in readme_blocks("### Check the token") if block.language == "sh"]
    fetch, check = shell_commands(block)
    assert fetch.text.startswith("TOKEN=$(curl")
    ran, stderr = run_commands(
        [Command(f"TOKEN='{token}'"), check], cwd=checkout.root, replacements=checkout.replacements
    )
    return ran[1], stderr


def test_the_token_check_passes_a_valid_token(checkout: Checkout) -> None:
    """The twin of the refusals below: the same forged-by-the-server token, valid claims."""
    result, stderr = _check_token(checkout, _server_signed_token(checkout))
    assert result.status == 0, stderr
    assert_promised_output(result.command.promised, result.output, "the token check")


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"exp": int(time.time()) - 120, "iat": int(time.time()) - 720}, "expired"),
        ({"aud": "https://elsewhere.example"}, '"aud"'),
        ({"iss": "https://elsewhere.example"}, '"iss"'),
    ],
)
def test_the_token_check_refuses_what_a_signature_alone_would_pass(
    checkout: Checkout, changes: dict[str, Any], error: str
) -> None:
    result, stderr = _check_token(checkout, _server_signed_token(checkout, **changes))
    assert result.status != 0
    assert error in stderr, stderr
    assert "demo read" not in result.output


# --- client libraries ---------------------------------------------------------------------------


def _python_recipe(section: str) -> str:
    (code,) = readme_code_blocks(section, "python")
    return code


def _run_python(checkout: Checkout, code: str) -> str:
    finished = subprocess.run(
        [sys.executable, "-c", substitute(code, checkout.replacements)],
        cwd=checkout.root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    return finished.stdout


@pytest.fixture(scope="module")
def recipe_clients(quickstart: Quickstart, checkout: Checkout) -> None:
    """The clients the recipes use: the quickstart's, and those their own shell blocks register."""
    for block in readme_blocks("## Client libraries"):
        if block.language == "sh" and " clients add " in block.text:
            ran, stderr = run_commands(shell_commands(block), cwd=checkout.root, replacements={})
            assert all(result.status == 0 for result in ran), (ran, stderr)


@pytest.mark.parametrize(
    "section",
    [
        "### httpx: mutual TLS with an SSLContext",
        "### requests-oauthlib",
        "### Authlib: private_key_jwt",
    ],
)
def test_a_client_library_recipe_gets_tokens_as_shown(
    recipe_clients: None, checkout: Checkout, section: str
) -> None:
    """Each client is registered with the one method the recipe uses: a token proves that method."""
    code = _python_recipe(section)
    assert_promised_output(promised_python_output(code), _run_python(checkout, code), section)


def test_httpx_with_cert_and_a_string_verify_sends_no_certificate(
    quickstart: Quickstart, checkout: Checkout
) -> None:
    """The trap the httpx recipe warns about, as the README describes it: a 401."""
    cert = (checkout.path("certs/client1.pem"), checkout.path("certs/client1.key"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with httpx.Client(cert=cert, verify=checkout.path("certs/server-ca.pem")) as http:
            response = http.post(
                checkout.server.issuer + "/token",
                data={"grant_type": "client_credentials", "client_id": "svc-mtls"},
            )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def _authlib_refusal(checkout: Checkout, auth: PrivateKeyJWT, *, accepted_first: bool = False) -> str:
    """What the server answers a session using `auth` (after one accepted request, if so)."""
    key = ECKey.import_key(Path(checkout.path("certs/svc-jwt.key")).read_text())
    session = OAuth2Session("svc-jwt", key, token_endpoint_auth_method=auth)

    def fetch() -> object:
        return session.fetch_token(
            checkout.server.issuer + "/token",
            grant_type="client_credentials",
            verify=checkout.path("certs/server-ca.pem"),
        )

    if accepted_first:
        fetch()
    with pytest.raises(OAuthError) as refused:
        fetch()
    return str(refused.value)


def test_authlib_defaults_are_refused_with_the_flag_that_relaxes_each_check(
    recipe_clients: None, checkout: Checkout
) -> None:
    """What the Authlib recipe works around, each refusal as the README quotes it."""
    issuer = checkout.server.issuer
    assert "a server run with --assertion-audience legacy also accepts the token endpoint URL" in (
        _authlib_refusal(checkout, PrivateKeyJWT(alg="ES256"))
    )
    assert "(too long-lived: the server's --assertion-max-lifetime)" in (
        _authlib_refusal(checkout, PrivateKeyJWT(issuer, alg="ES256"))
    )
    fixed_claims = PrivateKeyJWT(issuer, claims={"exp": int(time.time()) + 60}, alg="ES256")
    assert "jti has already been used (replay): each assertion needs a new jti" in (
        _authlib_refusal(checkout, fixed_claims, accepted_first=True)
    )


NODE_TOOLS = shutil.which("node") is not None and shutil.which("npm") is not None


def _openid_client_project(request: pytest.FixtureRequest, install: Command) -> Path:
    """A Node.js project with openid-client, installed once by the README's command and cached."""
    assert request.config.cache is not None
    project = Path(request.config.cache.mkdir("readme-openid-client"))
    if not (project / "node_modules" / "openid-client" / "package.json").is_file():
        (ran,), stderr = run_commands([install], cwd=project, replacements={}, timeout=300)
        assert ran.status == 0, (ran.output, stderr)
    return project


@pytest.mark.skipif(not NODE_TOOLS, reason="node and npm are needed for the openid-client recipe")
def test_the_openid_client_recipe_gets_a_token_by_discovery(
    quickstart: Quickstart, checkout: Checkout, request: pytest.FixtureRequest
) -> None:
    section = "### openid-client (Node.js)"
    (script,) = readme_code_blocks(section, "js")
    (block,) = [block for block in readme_blocks(section) if block.language == "sh"]
    install, run = shell_commands(block)
    project = _openid_client_project(request, install)
    replacements = {**checkout.replacements, README_CHECKOUT: str(checkout.root)}

    (project / "token.mjs").write_text(substitute(script, replacements))
    (ran,), stderr = run_commands([run], cwd=project, replacements=replacements)
    assert ran.status == 0, stderr
    assert_promised_output(run.promised, ran.output, section)

    # The twin: discovery at the address serve listens on, not the issuer, fails as the README says.
    listening = checkout.server.issuer.replace("localhost", "127.0.0.1")
    (project / "token.mjs").write_text(substitute(script, {README_ISSUER: listening}))
    (ran,), stderr = run_commands([run], cwd=project, replacements=replacements)
    assert ran.status != 0
    assert "issuer does not match" in stderr


# --- the plain-JWT resource server --------------------------------------------------------------


def _der(checkout: Checkout, name: str) -> bytes:
    pem = Path(checkout.path(f"certs/{name}")).read_bytes()
    return x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)


def _fetch_token(checkout: Checkout, form: dict[str, str], *, cert: str | None = None) -> str:
    tls = ssl.create_default_context(cafile=checkout.path("certs/server-ca.pem"))
    headers = {}
    if cert is not None:
        tls.load_cert_chain(checkout.path(f"certs/{cert}.pem"), checkout.path(f"certs/{cert}.key"))
    else:
        basic = base64.b64encode(f"{DEMO_CLIENT_ID}:{DEMO_SECRET}".encode()).decode()
        headers["Authorization"] = f"Basic {basic}"
    body = urllib.parse.urlencode({"grant_type": "client_credentials", **form}).encode()
    token_request = urllib.request.Request(checkout.server.issuer + "/token", body, headers)
    with urllib.request.urlopen(token_request, context=tls) as response:
        token: str = json.load(response)["access_token"]
    return token


@pytest.fixture
def pyjwt_verify(
    quickstart: Quickstart, checkout: Checkout, monkeypatch: pytest.MonkeyPatch
) -> Callable[[str, bytes | None], dict[str, Any]]:
    """The README's `verify`, defined by running its block in the checkout."""
    monkeypatch.chdir(checkout.root)
    namespace: dict[str, Any] = {}
    exec(
        substitute(_python_recipe("### Any stack: PyJWT and the `cnf` check"), checkout.replacements),
        namespace,
    )
    verify: Callable[[str, bytes | None], dict[str, Any]] = namespace["verify"]
    return verify


def test_the_pyjwt_recipe_accepts_a_bound_token_with_its_certificate(
    pyjwt_verify: Callable[[str, bytes | None], dict[str, Any]], checkout: Checkout
) -> None:
    token = _fetch_token(checkout, {"client_id": "svc-mtls"}, cert="client1")
    claims = pyjwt_verify(token, _der(checkout, "client1.pem"))
    thumbprint = base64.urlsafe_b64encode(hashlib.sha256(_der(checkout, "client1.pem")).digest())
    assert claims["cnf"] == {"x5t#S256": thumbprint.rstrip(b"=").decode()}
    unbound = _fetch_token(checkout, {"scope": "read"})
    assert pyjwt_verify(unbound, None)["client_id"] == DEMO_CLIENT_ID


@pytest.mark.parametrize("certificate", ["client2.pem", None])
def test_the_pyjwt_recipe_refuses_a_bound_token_without_its_certificate(
    pyjwt_verify: Callable[[str, bytes | None], dict[str, Any]], checkout: Checkout, certificate: str | None
) -> None:
    token = _fetch_token(checkout, {"client_id": "svc-mtls"}, cert="client1")
    with pytest.raises(jwt.InvalidTokenError, match="bound to another client certificate"):
        pyjwt_verify(token, None if certificate is None else _der(checkout, certificate))


@pytest.mark.parametrize(
    ("changes", "refusal"),
    [
        ({"exp": int(time.time()) - 120}, jwt.ExpiredSignatureError),
        ({"aud": "https://elsewhere.example"}, jwt.InvalidAudienceError),
        ({"iss": "https://elsewhere.example"}, jwt.InvalidIssuerError),
    ],
)
def test_the_pyjwt_recipe_checks_the_claims(
    pyjwt_verify: Callable[[str, bytes | None], dict[str, Any]],
    checkout: Checkout,
    changes: dict[str, Any],
    refusal: type[Exception],
) -> None:
    with pytest.raises(refusal):
        pyjwt_verify(_server_signed_token(checkout, **changes), None)


def test_the_pyjwt_recipe_refuses_a_jwt_that_is_not_an_access_token(
    pyjwt_verify: Callable[[str, bytes | None], dict[str, Any]], checkout: Checkout
) -> None:
    token = _server_signed_token(checkout)
    assert pyjwt_verify(token, None)["client_id"] == DEMO_CLIENT_ID
    header, payload, _ = token.split(".")
    other = sign_jwt(
        checkout.server.server.running.context.keys.active,
        "JWT",
        json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))),
    )
    assert other.split(".")[0] != header
    with pytest.raises(jwt.InvalidTokenError, match="not an RFC 9068 access token"):
        pyjwt_verify(other, None)
