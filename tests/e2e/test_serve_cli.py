"""`certbound serve` and friends as a user runs them (SPEC §3): ready line, signals, bad
configuration, persistence across restarts, key rotation, the dev PKI."""

from __future__ import annotations

import json
import shlex
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from certbound.devpki import write_dev_pki
from certbound.vault import Vault, load_or_create_master_key
from tests.e2e.processes import CERTBOUND, ServerProcess, free_port, https_json, run_cli, server_env
from tests.helpers import basic_auth

FORM = b"grant_type=client_credentials"
FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dev_pki(tmp_path_factory.mktemp("pki")).directory


def serve_args(pki: Path, db: str, port: int) -> list[str]:
    return [
        "--port", str(port),
        "--issuer", f"https://localhost:{port}",
        "--tls-cert", str(pki / "server.pem"),
        "--tls-key", str(pki / "server.key"),
        "--client-ca", str(pki / "client-ca.pem"),
        "--db", db,
    ]  # fmt: skip


def get_token(url: str, pki: Path, client_id: str, secret: str) -> tuple[int, dict[str, object]]:
    status, body = https_json(
        url + "/token",
        pki / "server-ca.pem",
        data=FORM,
        headers={**FORM_HEADERS, "Authorization": basic_auth(client_id, secret)},
    )
    return status, body


def add_client(db: str) -> tuple[str, str]:
    result = run_cli("clients", "add", "--method", "client_secret_basic", "--db", db)
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(": ", 1) for line in result.stdout.strip().splitlines())
    return lines["client_id"], lines["client_secret"]


def test_restart_keeps_clients_and_signing_keys(pki: Path, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/certbound.db"
    client_id, secret = add_client(db)
    port = free_port()
    with ServerProcess(*serve_args(pki, db, port)) as first:
        assert first.ready_line == f"listening on https://127.0.0.1:{port}\n"
        status, body = get_token(first.url, pki, client_id, secret)
        assert status == 200, body
        old_token = str(body["access_token"])
        code, stderr = first.stop(signal.SIGTERM)
        assert code == 0, stderr
        assert "Traceback" not in stderr
    assert (tmp_path / "certbound.db.key").exists()
    with ServerProcess(*serve_args(pki, db, port)) as second:
        status, jwks = https_json(second.url + "/jwks", pki / "server-ca.pem")
        assert status == 200
        assert jwt.decode(old_token, KeySet.import_key_set(jwks)).claims["client_id"] == client_id
        status, body = get_token(second.url, pki, client_id, secret)
        assert status == 200, body
        code, _ = second.stop(signal.SIGINT)
        assert code == 0


def test_keys_rotate_is_published_and_old_key_kept(pki: Path, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/certbound.db"
    client_id, secret = add_client(db)
    port = free_port()
    with ServerProcess(*serve_args(pki, db, port)) as server:
        _, body = get_token(server.url, pki, client_id, secret)
        listed = run_cli("keys", "list", "--db", db)
        assert listed.returncode == 0
        assert "active" in listed.stdout
        rotated = run_cli("keys", "rotate", "--db", db)
        assert rotated.returncode == 0, rotated.stderr
        new_kid = rotated.stdout.strip()
        server.stop()
    with ServerProcess(*serve_args(pki, db, port)) as server:
        _, jwks = https_json(server.url + "/jwks", pki / "server-ca.pem")
        kids = {key["kid"] for key in jwks["keys"]}
        assert new_kid in kids
        assert len(kids) == 2
        jwt.decode(str(body["access_token"]), KeySet.import_key_set(jwks))
        _, fresh = get_token(server.url, pki, client_id, secret)
        assert jwt.decode(str(fresh["access_token"]), KeySet.import_key_set(jwks)).header["kid"] == new_kid
        server.stop()


def _assert_one_error_line(result: subprocess.CompletedProcess[str], needle: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("certbound: error: ")
    assert needle in lines[0]


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (
            ["--tls-cert", "/nonexistent/cert.pem", "--tls-key", "/nonexistent/key.pem"],
            "/nonexistent/cert.pem",
        ),
        (["--assertion-audience", "sloppy"], "--assertion-audience"),
        (["--trusted-proxy", "10.0.0.0/33"], "--trusted-proxy"),
        (["--bogus-flag"], "--bogus-flag"),
        (["--client-ca", "/nonexistent/ca.pem"], "/nonexistent/ca.pem"),
    ],
)
def test_bad_configuration_exits_2_with_one_line(
    pki: Path, tmp_path: Path, extra: list[str], needle: str
) -> None:
    args = serve_args(pki, f"sqlite:///{tmp_path}/x.db", free_port())
    # later flags win in argparse, so the bad value replaces the good one
    _assert_one_error_line(run_cli("serve", *args, *extra), needle)


def test_key_that_does_not_match_the_certificate(pki: Path, tmp_path: Path) -> None:
    args = serve_args(pki, f"sqlite:///{tmp_path}/x.db", free_port())
    _assert_one_error_line(run_cli("serve", *args, "--tls-key", str(pki / "client1.key")), "server.pem")


def test_unreadable_key(pki: Path, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.key"
    garbage.write_text("not a key")
    args = serve_args(pki, f"sqlite:///{tmp_path}/x.db", free_port())
    _assert_one_error_line(run_cli("serve", *args, "--tls-key", str(garbage)), "garbage.key")


def test_unknown_toml_key(pki: Path, tmp_path: Path) -> None:
    config = tmp_path / "certbound.toml"
    config.write_text('prot = 8443\ndb = "sqlite:///x.db"\n')
    _assert_one_error_line(run_cli("serve", "--config", str(config)), "prot")


def test_port_in_use(pki: Path, tmp_path: Path) -> None:
    port = free_port()
    db = f"sqlite:///{tmp_path}/x.db"
    with ServerProcess(*serve_args(pki, db, port)) as running:
        _assert_one_error_line(
            run_cli("serve", *serve_args(pki, f"sqlite:///{tmp_path}/y.db", port)), str(port)
        )
        running.stop()


def test_serve_without_tls_flags_creates_the_dev_pki(tmp_path: Path) -> None:
    port = free_port()
    with ServerProcess("--port", str(port), "--db", "sqlite:///data/x.db", cwd=tmp_path) as server:
        assert (tmp_path / "certs" / "server.pem").exists()
        assert (tmp_path / "certs" / "client-ca.pem").exists()
        status, metadata = https_json(
            server.url + "/.well-known/openid-configuration", tmp_path / "certs" / "server-ca.pem"
        )
        assert status == 200
        assert metadata["issuer"] == f"https://localhost:{port}"
        # SPEC §3: closed by default; the development set-up says what it is.
        status, refused = https_json(
            server.url + "/register",
            tmp_path / "certs" / "server-ca.pem",
            data=b"{}",
            headers={"Content-Type": "application/json"},
        )
        assert (status, refused["error"]) == (403, "access_denied")
        code, stderr = server.stop()
        assert code == 0
    assert "development PKI" in stderr
    assert "not for production" in stderr
    assert "registration is open" not in stderr
    # SPEC §3: the database and master key are private to the server's user.
    assert (tmp_path / "data").stat().st_mode & 0o777 == 0o700
    assert {path.stat().st_mode & 0o777 for path in (tmp_path / "data").iterdir()} == {0o600}


def test_start_up_warns_about_open_registration_and_short_tokens(pki: Path, tmp_path: Path) -> None:
    token_file = tmp_path / "admin.token"
    token_file.write_text("short-admin-token\n")
    token_file.chmod(0o644)
    args = serve_args(pki, f"sqlite:///{tmp_path}/x.db", free_port())
    extra = ["--registration", "open", "--registration-scopes", "read", "--admin-token-file", str(token_file)]
    with ServerProcess(*args, *extra) as server:
        status, clients = https_json(
            server.url + "/admin/clients",
            pki / "server-ca.pem",
            headers={"Authorization": "Bearer short-admin-token"},
        )
        assert (status, clients["clients"]) == (200, [])
        code, stderr = server.stop()
    assert code == 0, stderr
    assert "dynamic registration is open" in stderr
    assert "holding the scopes read (--registration-scopes)" in stderr
    assert "--admin-token has fewer than 32 characters" in stderr
    assert f"--admin-token-file {token_file} is accessible by other users (mode 644)" in stderr
    assert "short-admin-token" not in stderr


def test_debug_logging_shows_no_secret_hash_or_sql_parameter(pki: Path, tmp_path: Path) -> None:
    # Issue 9 finding 15: aiosqlite logged every statement with its parameters at DEBUG.
    admin_token = "debug-admin-token-0123456789abcdef"
    headers = {"Authorization": f"Bearer {admin_token}", "Content-Type": "application/json"}
    args = serve_args(pki, f"sqlite:///{tmp_path}/certbound.db", free_port())
    with ServerProcess(*args, "--log-level", "debug", "--admin-token", admin_token) as server:
        chosen = b'{"client_id": "chosen", "client_secret": "debug-chosen-secret"}'
        status, _ = https_json(
            server.url + "/admin/clients", pki / "server-ca.pem", data=chosen, headers=headers
        )
        assert status == 201
        status, generated = https_json(
            server.url + "/admin/clients", pki / "server-ca.pem", data=b"{}", headers=headers
        )
        assert status == 201
        assert get_token(server.url, pki, "chosen", "debug-chosen-secret")[0] == 200
        assert get_token(server.url, pki, generated["client_id"], generated["client_secret"])[0] == 200
        with socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1]))) as garbage:
            garbage.sendall(b"not TLS\r\n\r\n")  # a handshake failure: logged at DEBUG
            garbage.recv(1024)
        code, stderr = server.stop()
    assert code == 0, stderr
    assert " DEBUG certbound.tls" in stderr  # debug logging was on
    stored_hmac = Vault(load_or_create_master_key(tmp_path / "certbound.db.key")).hash_secret(
        generated["client_secret"]
    )
    for needle in (
        generated["client_secret"],
        "debug-chosen-secret",
        admin_token,
        repr(stored_hmac)[2:-1],
        stored_hmac.hex(),
        "$scrypt$",
        "INSERT INTO",
        "UPDATE clients",
        "private_key_ciphertext",
    ):
        assert needle not in stderr


def test_with_the_dev_pki_the_ready_lines_give_the_issuer_and_next_commands_that_work(tmp_path: Path) -> None:
    port = free_port()
    with ServerProcess("--port", str(port), cwd=tmp_path) as server:
        issuer, intro, add_client, curl = server.following_lines(4)
        assert server.ready_line.strip() == f"listening on https://127.0.0.1:{port}"
        assert issuer.startswith(f"issuer https://localhost:{port} ")
        assert intro.endswith("try in another terminal:")
        added = subprocess.run(
            shlex.split(add_client), cwd=tmp_path, capture_output=True, text=True, env=server_env()
        )
        assert added.returncode == 0, added.stderr
        answer = subprocess.run(shlex.split(curl), cwd=tmp_path, capture_output=True, text=True, timeout=30)
        assert json.loads(answer.stdout)["token_type"] == "Bearer", answer
        assert server.stop()[0] == 0


def test_with_its_own_certificate_the_server_names_the_issuer_and_suggests_nothing(
    pki: Path, tmp_path: Path
) -> None:
    port = free_port()
    with ServerProcess(*serve_args(pki, f"sqlite:///{tmp_path}/x.db", port), cwd=tmp_path) as server:
        assert server.stop()[0] == 0
        assert server.unread_stdout.splitlines() == [
            f"issuer https://localhost:{port} (the URL clients use; metadata at "
            f"https://localhost:{port}/.well-known/openid-configuration)"
        ]


def test_certs_dev_prints_the_files_it_wrote(tmp_path: Path) -> None:
    result = run_cli("certs", "dev", "--out", str(tmp_path / "pki"))
    assert result.returncode == 0, result.stderr
    assert "not for production" in result.stderr
    printed = {Path(line).name for line in result.stdout.split()}
    expected = {"server-ca.pem", "server.pem", "server.key", "client-ca.pem", "client1.pem", "client1.key"}
    assert expected | {"client2.pem", "selfsigned.pem", "selfsigned.key", "selfsigned.jwks.json"} <= printed
    for name in printed:
        assert (tmp_path / "pki" / name).stat().st_size > 0


def test_a_running_server_publishes_a_rotated_key_within_30_seconds(pki: Path, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/certbound.db"
    port = free_port()
    with ServerProcess(*serve_args(pki, db, port)) as server:
        _, before = https_json(server.url + "/jwks", pki / "server-ca.pem")
        rotated = run_cli("keys", "rotate", "--db", db)
        assert rotated.returncode == 0, rotated.stderr
        new_kid = rotated.stdout.strip()
        deadline = time.monotonic() + 30
        kids: set[str] = set()
        while time.monotonic() < deadline and new_kid not in kids:
            time.sleep(1)
            _, jwks = https_json(server.url + "/jwks", pki / "server-ca.pem")
            kids = {key["kid"] for key in jwks["keys"]}
        assert new_kid in kids
        assert {key["kid"] for key in before["keys"]} <= kids  # the old key stays published
        server.stop()


def test_nodes_starting_together_on_an_empty_database_share_one_signing_key(
    pki: Path, tmp_path: Path
) -> None:
    db = f"sqlite:///{tmp_path}/fresh.db"
    ports = [free_port() for _ in range(3)]
    starting = [
        subprocess.Popen(
            [*CERTBOUND, "serve", *serve_args(pki, db, port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=server_env(),
        )
        for port in ports
    ]
    try:
        kids: set[str] = set()
        for process, port in zip(starting, ports, strict=True):
            assert process.stdout is not None
            line = process.stdout.readline()
            assert line == f"listening on https://127.0.0.1:{port}\n", (
                process.stderr.read() if process.stderr else ""
            )
            _, jwks = https_json(f"https://127.0.0.1:{port}/jwks", pki / "server-ca.pem")
            kids |= {key["kid"] for key in jwks["keys"]}
        assert len(kids) == 1
    finally:
        for process in starting:
            process.send_signal(signal.SIGTERM)
        for process in starting:
            assert process.wait(timeout=20) == 0


def test_a_registration_that_returned_201_survives_kill_9(pki: Path, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/certbound.db"
    port = free_port()
    body = b'{"token_endpoint_auth_method": "client_secret_basic", "client_name": "durable"}'
    with ServerProcess(*serve_args(pki, db, port), "--registration", "open") as first:
        status, registered = https_json(
            first.url + "/register",
            pki / "server-ca.pem",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        assert status == 201, registered
        first.process.kill()  # SIGKILL: no drain, no clean close of the database
        first.process.wait(timeout=10)
    # Started with the default (closed) registration: RFC 7592 management of existing clients works.
    with ServerProcess(*serve_args(pki, db, port)) as second:
        status, read_back = https_json(
            registered["registration_client_uri"].replace(f"https://localhost:{port}", second.url),
            pki / "server-ca.pem",
            headers={"Authorization": f"Bearer {registered['registration_access_token']}"},
        )
        assert status == 200, read_back
        assert read_back["client_name"] == "durable"
        status, token = get_token(second.url, pki, registered["client_id"], registered["client_secret"])
        assert status == 200, token
        second.stop()
