"""`certbound clients ...` as a subprocess (SPEC §3): on the database directly, and through a
running server's admin API with --url."""

from __future__ import annotations

import asyncio
import json
import subprocess
import unicodedata
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.jwk import ECKey

from certbound.jose import public_jwk
from certbound.models import Client
from certbound.store import Store, open_store
from certbound.testing import CertboundTestServer
from tests.assertion_kit import assertion_form, claims_for, sign
from tests.e2e.processes import run_cli
from tests.helpers import ADMIN_TOKEN, token_status


def ok(*args: str) -> str:
    result = run_cli("clients", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def fails(status: int, *args: str) -> str:
    """The exit status and the one `certbound: error:` line; nothing on stdout."""
    result = run_cli("clients", *args)
    assert result.returncode == status, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("certbound: error: ")
    return lines[0]


def credentials(stdout: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in stdout.strip().splitlines())


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/clients.db"


@pytest.fixture
def jwks_file(tmp_path: Path) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [{**public_jwk(key.public_key()), "kid": "k1"}]}))
    return path


# on the database
def test_add_each_method_and_list_as_json(db: str, jwks_file: Path) -> None:
    basic = credentials(ok("add", "--db", db, "--name", "Billing", "--scope", "read"))
    assert len(basic["client_secret"]) == 43
    post = credentials(ok("add", "--db", db, "--method", "client_secret_post"))
    hmac = credentials(ok("add", "--db", db, "--method", "client_secret_jwt", "--signing-alg", "HS256"))
    assert "client_secret" in hmac
    keyed = credentials(ok("add", "--db", db, "--method", "private_key_jwt", "--jwks-file", str(jwks_file)))
    assert "client_secret" not in keyed
    public = credentials(ok("add", "--db", db, "--method", "none", "--client-id", "spa"))
    assert public == {"client_id": "spa"}

    listed = json.loads(ok("list", "--db", db, "--json"))
    by_id = {client["client_id"]: client for client in listed}
    assert set(by_id) == {basic["client_id"], post["client_id"], hmac["client_id"], keyed["client_id"], "spa"}
    assert by_id[basic["client_id"]]["client_name"] == "Billing"
    assert by_id[basic["client_id"]]["scope"] == "read"
    assert by_id[hmac["client_id"]]["token_endpoint_auth_signing_alg"] == "HS256"
    assert by_id[keyed["client_id"]]["jwks"]["keys"][0]["kid"] == "k1"
    assert by_id["spa"]["grant_types"] == []
    assert all("client_secret" not in client for client in listed)

    only_public = json.loads(ok("list", "--db", db, "--json", "--method", "none"))
    assert [client["client_id"] for client in only_public] == ["spa"]
    table = ok("list", "--db", db).splitlines()
    assert table[0].split() == ["CLIENT_ID", "METHOD", "GRANT_TYPES", "SCOPE", "NAME"]
    assert len(table) == 6


def test_add_mtls_methods(db: str, jwks_file: Path) -> None:
    pki = credentials(ok("add", "--db", db, "--method", "tls_client_auth", "--subject-dn", "CN=svc,O=Acme"))
    assert "client_secret" not in pki
    own = credentials(
        ok("add", "--db", db, "--method", "self_signed_tls_client_auth", "--jwks-file", str(jwks_file))
    )
    shown = json.loads(ok("show", pki["client_id"], "--db", db, "--json"))
    assert shown["tls_client_auth_subject_dn"] == "CN=svc,O=Acme"
    assert shown["tls_client_certificate_bound_access_tokens"] is True
    # one subject field: a flag replaces the one registered before
    switched = json.loads(
        ok("update", pki["client_id"], "--db", db, "--san-dns", "svc.example.com", "--json")
    )
    assert switched["tls_client_auth_san_dns"] == "svc.example.com"
    assert "tls_client_auth_subject_dn" not in switched
    listed = json.loads(ok("list", "--db", db, "--json", "--method", "self_signed_tls_client_auth"))
    assert [client["client_id"] for client in listed] == [own["client_id"]]
    assert "tls_client_auth" in fails(2, "add", "--db", db, "--method", "tls_client_auth")


def test_add_from_a_data_file_with_flags_on_top(db: str, tmp_path: Path) -> None:
    data = tmp_path / "client.json"
    data.write_text(json.dumps({"client_name": "From file", "scope": "read", "x_team": "payments"}))
    created = json.loads(ok("add", "--db", db, "--data", str(data), "--scope", "write", "--opaque", "--json"))
    assert created["client_name"] == "From file"
    assert created["scope"] == "write"
    assert created["x_team"] == "payments"
    assert created["access_token_as_jwt"] is False
    assert len(created["client_secret"]) == 43
    assert "dpop_bound_access_tokens" not in created
    dpop = json.loads(ok("update", created["client_id"], "--db", db, "--dpop-bound", "--json"))
    assert dpop["dpop_bound_access_tokens"] is True
    undone = json.loads(ok("update", created["client_id"], "--db", db, "--no-dpop-bound", "--json"))
    assert undone["dpop_bound_access_tokens"] is False


async def test_rotate_secret_and_delete_take_effect_on_a_server(db: str) -> None:
    created = credentials(ok("add", "--db", db, "--client-id", "svc"))
    rotated = credentials(await asyncio.to_thread(ok, "rotate-secret", "svc", "--db", db))
    assert rotated["client_id"] == "svc"
    assert rotated["client_secret"] != created["client_secret"]
    async with CertboundTestServer(db=db) as server:
        assert await token_status(server, "svc", rotated["client_secret"]) == 200
        assert await token_status(server, "svc", created["client_secret"]) == 401
    assert ok("delete", "svc", "--db", db).strip() == "deleted svc"
    async with CertboundTestServer(db=db) as server:
        assert await token_status(server, "svc", rotated["client_secret"]) == 401


def test_show_and_update_merge(db: str, tmp_path: Path) -> None:
    ok("add", "--db", db, "--client-id", "svc", "--name", "Old", "--scope", "read")
    shown = json.loads(ok("show", "svc", "--db", db, "--json"))
    assert shown["client_name"] == "Old"
    updated = json.loads(ok("update", "svc", "--db", db, "--scope", "write", "--opaque", "--json"))
    assert updated["client_name"] == "Old"  # merged, not replaced
    assert updated["scope"] == "write"
    assert updated["access_token_as_jwt"] is False
    patch = tmp_path / "patch.json"
    patch.write_text(json.dumps({"client_name": None, "software_id": "s-1"}))
    patched = json.loads(ok("update", "svc", "--db", db, "--data", str(patch), "--json"))
    assert "client_name" not in patched
    assert patched["software_id"] == "s-1"
    human = ok("show", "svc", "--db", db)
    assert "software_id" in human
    assert "s-1" in human


def test_update_method_change_issues_a_secret_once(db: str, jwks_file: Path) -> None:
    ok("add", "--db", db, "--client-id", "svc", "--method", "private_key_jwt", "--jwks-file", str(jwks_file))
    changed = json.loads(ok("update", "svc", "--db", db, "--method", "client_secret_basic", "--json"))
    assert len(changed["client_secret"]) == 43
    assert changed["grant_types"] == ["client_credentials"]
    again = json.loads(ok("update", "svc", "--db", db, "--name", "n", "--json"))
    assert "client_secret" not in again


def test_not_found_is_exit_1(db: str) -> None:
    ok("list", "--db", db)
    for command in ("show", "delete", "rotate-secret"):
        assert fails(1, command, "nobody", "--db", db) == "certbound: error: no client nobody"
    assert fails(1, "update", "nobody", "--db", db, "--scope", "read") == "certbound: error: no client nobody"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--scope", "delete"), "invalid_client_metadata: scope"),
        (("--method", "magic"), "argument --method: invalid choice: 'magic'"),
        (("--secret", "short"), "client_secret"),
        (("--method", "none", "--grant-type", "client_credentials"), "grant_types"),
        (("--redirect-uri", "https://x.example/#frag"), "invalid_redirect_uri"),
        (("--data", "/nonexistent/client.json"), "cannot read --data file"),
        (("--jwks-file", "/nonexistent/jwks.json"), "cannot read --jwks-file"),
        (("--signing-alg", "none"), "token_endpoint_auth_signing_alg"),
    ],
)
def test_bad_input_is_exit_2_with_one_line(db: str, args: tuple[str, ...], message: str) -> None:
    assert message in fails(2, "add", "--db", db, *args)


def test_data_file_must_hold_an_object(db: str, tmp_path: Path) -> None:
    data = tmp_path / "list.json"
    data.write_text("[]")
    assert "must hold a JSON object" in fails(2, "add", "--db", db, "--data", str(data))


def test_update_without_changes_is_bad_input(db: str) -> None:
    ok("add", "--db", db, "--client-id", "svc")
    assert "nothing to update" in fails(2, "update", "svc", "--db", db)


# through the admin API
async def remote(server: CertboundTestServer, cacert: Path, *args: str, token: str = ADMIN_TOKEN) -> Any:
    """Run the CLI in a thread: the server it talks to runs on this event loop."""
    return await asyncio.to_thread(
        run_cli, "clients", *args, "--url", server.url, "--admin-token", token, "--cacert", str(cacert)
    )


def stdout_of(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


async def test_url_mode_round_trip(
    admin_server_ca: tuple[CertboundTestServer, Path], jwks_file: Path
) -> None:
    server, cacert = admin_server_ca
    created = credentials(
        stdout_of(await remote(server, cacert, "add", "--client-id", "svc", "--scope", "read"))
    )
    assert await token_status(server, "svc", created["client_secret"]) == 200
    keyed = json.loads(
        stdout_of(
            await remote(
                server, cacert, "add", "--method", "private_key_jwt", "--jwks-file", str(jwks_file), "--json"
            )
        )
    )
    listed = json.loads(stdout_of(await remote(server, cacert, "list", "--json")))
    assert sorted(client["client_id"] for client in listed) == sorted(["svc", keyed["client_id"]])
    updated = json.loads(stdout_of(await remote(server, cacert, "update", "svc", "--name", "Svc", "--json")))
    assert updated["client_name"] == "Svc"
    assert updated["scope"] == "read"
    rotated = credentials(stdout_of(await remote(server, cacert, "rotate-secret", "svc")))
    assert await token_status(server, "svc", rotated["client_secret"]) == 200
    assert await token_status(server, "svc", created["client_secret"]) == 401
    shown = json.loads(stdout_of(await remote(server, cacert, "show", "svc", "--json")))
    assert shown["client_name"] == "Svc"
    assert stdout_of(await remote(server, cacert, "delete", "svc")).strip() == "deleted svc"
    missing = await remote(server, cacert, "show", "svc")
    assert missing.returncode == 1
    assert missing.stderr.strip() == "certbound: error: no client svc"
    assert await token_status(server, "svc", rotated["client_secret"]) == 401


async def test_url_mode_refusals(admin_server_ca: tuple[CertboundTestServer, Path]) -> None:
    server, cacert = admin_server_ca
    wrong = await remote(server, cacert, "list", token="not-the-token")
    assert wrong.returncode == 2
    assert wrong.stderr.splitlines() == ["certbound: error: invalid_token: the admin token is not valid"]
    invalid = await remote(server, cacert, "add", "--scope", "delete")
    assert invalid.returncode == 2
    assert invalid.stderr.startswith("certbound: error: invalid_client_metadata: scope")
    untrusted = await asyncio.to_thread(
        run_cli, "clients", "list", "--url", server.url, "--admin-token", ADMIN_TOKEN
    )
    assert untrusted.returncode == 2
    assert untrusted.stderr.startswith("certbound: error: cannot reach")
    no_token = await asyncio.to_thread(
        run_cli, "clients", "list", "--url", server.url, "--cacert", str(cacert)
    )
    assert no_token.returncode == 2
    assert "--admin-token" in no_token.stderr
    plain = await asyncio.to_thread(
        run_cli, "clients", "list", "--url", "http://127.0.0.1:1", "--admin-token", ADMIN_TOKEN
    )
    assert plain.returncode == 2
    assert "https" in plain.stderr


# Issue 9 finding 10: stored metadata never acts on the operator's terminal
HOSTILE = {
    "token_endpoint_auth_method": "client_secret_basic",
    "client_name": "evil\x1b]0;owned\x07\x1b[2J\x9b31m\u202eevil",  # stored before registration refused it
    "x_note": "\x1b[8mhidden\u2028\ud800",  # unknown members are kept as sent (RFC 7591 §2)
    "scope": "read",
}


def assert_terminal_safe(output: str) -> None:
    unsafe = [char for char in output if unicodedata.category(char) in {"Cc", "Cf", "Cs", "Zl", "Zp"}]
    assert set(unsafe) <= {"\n"}, unsafe


async def store_hostile_client(store: Store) -> None:
    await store.create_client(Client("hostile", HOSTILE, 1, secret_hash=b"h" * 32))


async def test_stored_escapes_never_reach_the_terminal(db: str) -> None:
    store = await open_store(db)
    try:
        await store_hostile_client(store)
    finally:
        await store.close()
    for args in (("list",), ("show", "hostile")):
        table = ok(*args, "--db", db)
        assert_terminal_safe(table)
        assert "\\x1b]0;owned\\x07" in table
        as_json = ok(*args, "--db", db, "--json")
        assert_terminal_safe(as_json)
        shown = json.loads(as_json)
        shown = shown[0] if isinstance(shown, list) else shown
        assert (shown["client_name"], shown["x_note"]) == (HOSTILE["client_name"], HOSTILE["x_note"])


async def test_escapes_from_a_server_never_reach_the_terminal(
    admin_server_ca: tuple[CertboundTestServer, Path],
) -> None:
    server, cacert = admin_server_ca
    await store_hostile_client(server.running.context.store)
    for args in (("list",), ("show", "hostile"), ("list", "--json"), ("show", "hostile", "--json")):
        assert_terminal_safe(stdout_of(await remote(server, cacert, *args)))
    missing = await remote(server, cacert, "show", "no\x1b[2Jsuch")
    assert missing.returncode == 1
    assert missing.stderr == "certbound: error: no client no\\x1b[2Jsuch\n"


# Issue 9 finding 15: secrets and tokens off the command line (where /proc shows them to everyone)
async def test_a_chosen_secret_from_stdin_or_a_file(db: str, tmp_path: Path) -> None:
    from_stdin = await asyncio.to_thread(
        run_cli,
        "clients",
        "add",
        "--db",
        db,
        "--client-id",
        "piped",
        "--secret",
        "-",
        stdin="piped-secret-1\n",
    )
    assert from_stdin.returncode == 0, from_stdin.stderr
    assert credentials(from_stdin.stdout) == {"client_id": "piped"}  # not echoed back
    secret_file = tmp_path / "secret"
    secret_file.write_text("secret-from-a-file\n")
    ok("add", "--db", db, "--client-id", "filed", "--secret-file", str(secret_file))
    updated = run_cli(
        "clients", "update", "filed", "--db", db, "--secret", "-", stdin="updated-from-stdin\r\n"
    )
    assert updated.returncode == 0, updated.stderr
    async with CertboundTestServer(db=db) as server:
        assert await token_status(server, "piped", "piped-secret-1") == 200
        assert await token_status(server, "filed", "updated-from-stdin") == 200
        assert await token_status(server, "filed", "secret-from-a-file") == 401


def test_secret_input_refusals(db: str, tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("secret-from-a-file\n")
    both = ("add", "--db", db, "--secret", "x" * 10, "--secret-file", str(secret_file))
    assert "give --secret or --secret-file, not both" in fails(2, *both)
    empty = run_cli("clients", "add", "--db", db, "--secret", "-", stdin="")
    assert empty.returncode == 2
    assert empty.stderr == "certbound: error: --secret -: no secret on stdin\n"
    missing = fails(2, "add", "--db", db, "--secret-file", str(tmp_path / "nope"))
    assert "cannot read --secret file" in missing


async def test_url_mode_reads_the_admin_token_from_a_file(
    admin_server_ca: tuple[CertboundTestServer, Path], tmp_path: Path
) -> None:
    server, cacert = admin_server_ca
    token_file = tmp_path / "admin-token"
    token_file.write_text(ADMIN_TOKEN + "\n")
    args = (
        "list",
        "--json",
        "--url",
        server.url,
        "--admin-token-file",
        str(token_file),
        "--cacert",
        str(cacert),
    )
    listed = await asyncio.to_thread(run_cli, "clients", *args)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []


# workload identity clients (SPEC §13) and the legacy-audience report (SPEC §7)
def _federated(*target: str, issuer: str, rules: str) -> tuple[str, ...]:
    """`clients add` arguments of a federated_jwt client."""
    return (
        "add",
        *target,
        "--method",
        "federated_jwt",
        "--federated-issuer",
        issuer,
        "--federated-claims",
        rules,
    )


def test_workload_identity_clients_from_the_command_line(db: str, tmp_path: Path) -> None:
    federation = tmp_path / "federation.toml"
    federation.write_text(
        '[[issuer]]\nname = "ci"\nissuer = "https://ci.example"\n\n'
        '[[spiffe]]\ntrust_domain = "example.org"\nbundle_url = "https://spire.example/bundle"\n'
    )
    fed = ("--db", db, "--federation", str(federation))
    rules = '{"repository_id": "123", "ref": "refs/heads/*"}'
    added = credentials(ok(*_federated(*fed, issuer="ci", rules=rules)))
    assert "client_secret" not in added
    view = json.loads(ok("show", added["client_id"], "--db", db, "--json"))
    assert (view["federated_issuer"], view["federated_claims"]) == ("ci", json.loads(rules))
    # An update replaces the rule set whole: a rule left out is gone.
    ok("update", added["client_id"], *fed, "--federated-claims", '{"repository_id": "456"}')
    updated = json.loads(ok("show", added["client_id"], "--db", db, "--json"))
    assert updated["federated_claims"] == {"repository_id": "456"}

    svid = credentials(
        ok("add", *fed, "--method", "tls_client_auth", "--spiffe-id", "spiffe://example.org/api")
    )
    stored = json.loads(ok("show", svid["client_id"], "--db", db, "--json"))
    assert stored["spiffe_id"] == "spiffe://example.org/api"
    assert stored["tls_client_certificate_bound_access_tokens"] is True

    assert "'gitlab' is not an issuer" in fails(2, *_federated(*fed, issuer="gitlab", rules=rules))
    spiffe = ("--method", "spiffe_jwt", "--spiffe-id", "spiffe://other.org/a")
    assert "'other.org' is not a trust domain" in fails(2, "add", *fed, *spiffe)
    assert "must not be '*' alone" in fails(2, *_federated(*fed, issuer="ci", rules='{"sub": "*"}'))
    # Without the federation file the CLI checks the shape only (the server checks the names).
    credentials(ok(*_federated("--db", db, issuer="gitlab", rules=rules)))


async def test_the_legacy_audience_report(tmp_path: Path) -> None:
    cacert = tmp_path / "server-ca.pem"
    async with CertboundTestServer(admin_token=ADMIN_TOKEN, assertion_audience="legacy") as server:
        server.server_ca.cert_pem.write_to_path(str(cacert))
        key = ec.generate_private_key(ec.SECP256R1())
        jwks = {"keys": [{**public_jwk(key.public_key()), "kid": "k1"}]}
        legacy = await server.add_client("private_key_jwt", jwks=jwks, client_name="old-sdk")
        modern = await server.add_client("private_key_jwt", jwks=jwks)
        signer = ECKey.import_key(key)
        for client, aud in ((legacy, server.settings.token_endpoint), (modern, server.issuer)):
            form = assertion_form(sign(signer, "ES256", claims_for(client.client_id, aud), kid="k1"))
            async with (
                aiohttp.ClientSession() as http,
                http.post(server.url + "/token", data=form, ssl=server.client_ssl_context()) as response,
            ):
                assert response.status == 200
        await server.running.context.legacy_audience.flush(server.running.context.store)

        url = ("--url", server.url, "--admin-token", ADMIN_TOKEN, "--cacert", str(cacert))
        report = await asyncio.to_thread(run_cli, "clients", "legacy-audience", *url)
        assert report.returncode == 0, report.stderr
        lines = report.stdout.splitlines()
        assert lines[0].split() == ["CLIENT_ID", "LEGACY_ASSERTIONS", "LAST_SEEN", "NAME"]
        assert [line.split()[:2] for line in lines[1:]] == [[legacy.client_id, "1"]]
        assert lines[1].split()[3] == "old-sdk"
        as_json = await asyncio.to_thread(run_cli, "clients", "legacy-audience", *url, "--json")
        (row,) = json.loads(as_json.stdout)
        assert (row["client_id"], row["legacy_audience_assertions"]) == (legacy.client_id, 1)
        shown = await asyncio.to_thread(run_cli, "clients", "show", modern.client_id, *url, "--json")
        assert json.loads(shown.stdout)["legacy_audience_assertions"] == 0
