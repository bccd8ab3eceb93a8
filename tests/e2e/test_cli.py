"""The command line as a user meets it (SPEC §3, issue 10 part 5): help that shows every option's
default, choices and environment variable; --version; usage when a command is missing; `--data -`;
CERTBOUND_URL choosing the admin API; warnings about valid but doubtful registrations; PEM files
as --jwks-file."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from importlib.metadata import version
from pathlib import Path

import aiohttp
import pytest

from certbound.config import OPTIONS
from certbound.devpki import write_dev_pki
from certbound.testing import CertboundTestServer
from tests.e2e.processes import run_cli

ADMIN_TOKEN = "cli-admin-token-0123456789abcdef"
SAFE_SECRET = "plain-secret-0123456789abcdefghijkl"
UNSAFE_SECRET = "a secret+with:100%-of-the-bad-characters"


def words(text: str) -> str:
    """argparse wraps help at spaces: compare with whitespace collapsed."""
    return " ".join(text.split())


def shown(value: object) -> str:
    return " ".join(str(item) for item in value) if isinstance(value, tuple) else str(value)


def test_serve_help_shows_every_options_default_choices_and_environment_variable() -> None:
    result = run_cli("serve", "--help")
    assert result.returncode == 0, result.stderr
    text = words(result.stdout)
    for option in OPTIONS:
        assert option.flag in text
        assert f"env {option.env_var}" in text, option.name
        if option.default not in (None, (), False):
            assert f"default: {shown(option.default)}" in text, option.name
        if option.choices:
            assert f"{option.flag} {{{','.join(option.choices)}}}" in text, option.name
    assert "env CERTBOUND_CONFIG" in text


def test_a_value_outside_the_shown_choices_is_refused_by_the_options_parser() -> None:
    result = run_cli("serve", "--registration", "sometimes")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "certbound: error: invalid value for --registration: must be one of open, token, closed"
    ]


@pytest.mark.parametrize("command", [("clients", "list"), ("keys", "list"), ("tui",)])
def test_management_help_names_the_admin_api_variables(command: tuple[str, ...]) -> None:
    text = words(run_cli(*command, "--help").stdout)
    for name in ("CERTBOUND_URL", "CERTBOUND_ADMIN_TOKEN", "CERTBOUND_CACERT", "CERTBOUND_DB"):
        assert f"env {name}" in text


def test_version() -> None:
    result = run_cli("--version")
    assert (result.returncode, result.stdout) == (0, f"certbound {version('certbound')}\n")


@pytest.mark.parametrize(
    ("command", "subcommands"),
    [
        ((), ["serve", "certs", "clients", "keys", "demo-resource", "tui"]),
        (("clients",), ["add", "list", "legacy-audience", "update", "show", "delete", "rotate-secret"]),
        (("keys",), ["list", "rotate"]),
        (("certs",), ["dev"]),
    ],
)
def test_a_command_group_alone_prints_usage_naming_its_commands(
    command: tuple[str, ...], subcommands: list[str]
) -> None:
    result = run_cli(*command)
    assert (result.returncode, result.stdout) == (2, "")
    *usage, error = result.stderr.splitlines()
    assert usage[0].startswith(f"usage: {' '.join(('certbound', *command))} ")
    assert (
        error
        == f"certbound: error: {' '.join(('certbound', *command))} needs a command: {', '.join(subcommands)}"
    )
    assert "_command" not in result.stderr
    for name in subcommands:
        assert any(line.split()[:1] == [name] for line in usage), name


def test_an_unknown_command_is_one_error_line() -> None:
    result = run_cli("clients", "frobnicate")
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1
    assert "invalid choice: 'frobnicate'" in result.stderr


# --data -
def test_data_dash_reads_the_metadata_from_stdin(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/c.db"
    metadata = {"client_name": "From stdin", "scope": "read"}
    added = run_cli("clients", "add", "--db", db, "--data", "-", "--json", stdin=json.dumps(metadata))
    assert added.returncode == 0, added.stderr
    client_id = json.loads(added.stdout)["client_id"]
    shown_client = json.loads(run_cli("clients", "show", client_id, "--db", db, "--json").stdout)
    assert (shown_client["client_name"], shown_client["scope"]) == ("From stdin", "read")


def test_data_dash_with_something_else_than_an_object_is_refused(tmp_path: Path) -> None:
    refused = run_cli("clients", "add", "--db", f"sqlite:///{tmp_path}/c.db", "--data", "-", stdin="[1, 2]")
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == ["certbound: error: --data file - must hold a JSON object"]


# CERTBOUND_URL
@pytest.fixture
async def admin_server(tmp_path: Path) -> AsyncIterator[tuple[CertboundTestServer, dict[str, str]]]:
    """A server with an admin API, and the environment that points `certbound clients` at it."""
    async with CertboundTestServer(admin_token=ADMIN_TOKEN) as server:
        env = {
            "CERTBOUND_URL": server.url,
            "CERTBOUND_ADMIN_TOKEN": ADMIN_TOKEN,
            "CERTBOUND_CACERT": str(server.server_ca_file),
        }
        yield server, env


async def cli(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> tuple[int, str, str]:
    """Run the CLI in a thread: the server it may talk to runs on this event loop."""
    result = await asyncio.to_thread(run_cli, *args, env=env, stdin=stdin)
    return result.returncode, result.stdout, result.stderr


async def test_certbound_url_selects_the_admin_api(
    admin_server: tuple[CertboundTestServer, dict[str, str]], tmp_path: Path
) -> None:
    server, env = admin_server
    on_server = await server.add_client(client_id="on-the-server")
    local_db = f"sqlite:///{tmp_path}/local.db"
    assert (await cli("clients", "add", "--client-id", "in-the-file", "--db", local_db))[0] == 0

    status, stdout, stderr = await cli("clients", "list", "--json", env=env)
    assert status == 0, stderr
    assert [client["client_id"] for client in json.loads(stdout)] == [on_server.client_id]
    # The twin: a --db flag beats CERTBOUND_URL.
    status, stdout, _ = await cli("clients", "list", "--json", "--db", local_db, env=env)
    assert [client["client_id"] for client in json.loads(stdout)] == ["in-the-file"]


async def test_certbound_url_without_a_token_or_trust_is_refused(
    admin_server: tuple[CertboundTestServer, dict[str, str]],
) -> None:
    _, env = admin_server
    no_token = {name: value for name, value in env.items() if name != "CERTBOUND_ADMIN_TOKEN"}
    status, stdout, stderr = await cli("clients", "list", env=no_token)
    assert (status, stdout) == (2, "")
    assert stderr.splitlines() == [
        "certbound: error: --url (CERTBOUND_URL) needs --admin-token (or CERTBOUND_ADMIN_TOKEN)"
    ]
    untrusted = {name: value for name, value in env.items() if name != "CERTBOUND_CACERT"}
    status, _, stderr = await cli("clients", "list", env=untrusted)
    assert status == 2
    assert stderr.startswith("certbound: error: cannot reach")


# warnings
def test_a_secret_basic_clients_send_unencoded_is_accepted_with_a_warning(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/c.db"
    result = run_cli("clients", "add", "--db", db, "--client-id", "svc", "--secret", UNSAFE_SECRET)
    assert result.returncode == 0
    assert result.stdout == "client_id: svc\n"  # a secret the operator chose is not printed back
    (warning,) = result.stderr.splitlines()
    assert warning.startswith(
        "certbound: warning: client svc: the chosen client_secret contains space '%' '+' ':'"
    )
    assert "Authlib and requests" in warning
    # The twins: a safe secret, and the same secret for client_secret_post (form-encoded by everyone).
    safe = run_cli("clients", "add", "--db", db, "--secret", SAFE_SECRET)
    post = run_cli("clients", "add", "--db", db, "--method", "client_secret_post", "--secret", UNSAFE_SECRET)
    assert (safe.returncode, safe.stderr, post.returncode, post.stderr) == (0, "", 0, "")


def test_a_non_ascii_secret_is_warned_about_too(tmp_path: Path) -> None:
    result = run_cli(
        "clients",
        "add",
        "--db",
        f"sqlite:///{tmp_path}/c.db",
        "--secret",
        "pässwörd-0123456789abcdefghijklmn",
    )
    assert result.returncode == 0
    assert "contains 'ä' 'ö'" in result.stderr


def test_a_reversed_subject_dn_is_accepted_with_a_warning(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/c.db"
    pasted = "C = US, O = Acme, CN = svc"  # `openssl x509 -noout -subject` without -nameopt RFC2253
    result = run_cli(
        "clients", "add", "--db", db, "--method", "tls_client_auth", "--subject-dn", pasted, "--json"
    )
    assert result.returncode == 0
    assert json.loads(result.stdout)["tls_client_auth_subject_dn"] == pasted
    (warning,) = result.stderr.splitlines()
    assert warning.startswith("certbound: warning: client ")
    assert "-nameopt RFC2253" in warning
    rfc4514 = run_cli(
        "clients", "add", "--db", db, "--method", "tls_client_auth", "--subject-dn", "CN=svc,O=Acme,C=US"
    )
    assert (rfc4514.returncode, rfc4514.stderr) == (0, "")


async def test_through_the_admin_api_the_cli_warns_and_the_server_logs(
    admin_server: tuple[CertboundTestServer, dict[str, str]], caplog: pytest.LogCaptureFixture
) -> None:
    _, env = admin_server
    status, stdout, stderr = await cli(
        "clients",
        "add",
        "--method",
        "tls_client_auth",
        "--subject-dn",
        "DC=com,DC=acme,CN=svc",
        "--json",
        env=env,
    )
    assert status == 0, stderr
    created = json.loads(stdout)
    assert not any("warning" in name for name in created)  # no non-standard member in the answer
    assert stderr.startswith(f"certbound: warning: client {created['client_id']}: tls_client_auth_subject_dn")
    logged = [record.getMessage() for record in caplog.records if record.name == "certbound.clients"]
    assert logged == [stderr.removeprefix("certbound: warning: ").rstrip("\n")]


async def test_registration_logs_a_reversed_dn_and_answers_only_standard_members(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metadata = {
        "token_endpoint_auth_method": "tls_client_auth",
        "tls_client_auth_subject_dn": "C=US,O=Acme,CN=svc",
    }
    async with (
        CertboundTestServer(registration="open") as server,
        aiohttp.ClientSession() as http,
        http.post(server.url + "/register", json=metadata, ssl=server.client_ssl_context()) as response,
    ):
        body = await response.json()
    assert response.status == 201
    assert not any("warning" in name for name in body)
    (record,) = [record for record in caplog.records if record.name == "certbound.clients"]
    assert record.levelname == "WARNING"
    assert record.getMessage().startswith(
        f"client {body['client_id']}: tls_client_auth_subject_dn 'C=US,O=Acme,CN=svc'"
    )


# --jwks-file PEM
async def test_a_pem_certificate_as_jwks_file_authenticates_self_signed_tls_client_auth(
    admin_server: tuple[CertboundTestServer, dict[str, str]], tmp_path: Path
) -> None:
    server, env = admin_server
    pki = write_dev_pki(tmp_path / "certs").directory
    status, stdout, stderr = await cli(
        "clients", "add", "--method", "self_signed_tls_client_auth",
        "--jwks-file", str(pki / "selfsigned.pem"), "--json", env=env,
    )  # fmt: skip
    assert status == 0, stderr
    created = json.loads(stdout)
    (key,) = created["jwks"]["keys"]
    assert key["kty"] == "EC"
    assert len(key["x5c"]) == 1
    # The JWK Set `certs dev` wrote is the same key.
    assert json.loads((pki / "selfsigned.jwks.json").read_text()) == created["jwks"]

    async def token_status(cert: str) -> int:
        context = server.client_ssl_context()
        context.load_cert_chain(pki / f"{cert}.pem", pki / f"{cert}.key")
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                server.url + "/token",
                data={"grant_type": "client_credentials", "client_id": created["client_id"]},
                ssl=context,
            ) as response,
        ):
            return response.status

    assert await token_status("selfsigned") == 200
    assert await token_status("client1") == 401  # twin: another certificate's key is not registered


def test_a_private_key_as_jwks_file_is_refused(tmp_path: Path) -> None:
    pki = write_dev_pki(tmp_path / "certs").directory
    result = run_cli(
        "clients", "add", "--db", f"sqlite:///{tmp_path}/c.db", "--method", "self_signed_tls_client_auth",
        "--jwks-file", str(pki / "selfsigned.key"),
    )  # fmt: skip
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [
        f"certbound: error: --jwks-file {pki / 'selfsigned.key'}: PEM block 1 is a private key: "
        "give the certificate or the public key"
    ]
