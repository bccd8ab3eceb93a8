"""`certbound tui` against a running server: the admin-API back end in Textual's pilot, and the real
command in a pseudo-terminal."""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import time
from pathlib import Path

from cryptography import x509

from certbound.cli.adminclient import AdminClient
from certbound.devpki import write_dev_pki
from certbound.store import open_store
from certbound.testing import CertboundTestServer
from certbound.tui.dialogs import ConfirmScreen
from tests.e2e.processes import CERTBOUND, ServerProcess, free_port, run_cli, server_env
from tests.helpers import ADMIN_TOKEN, token_status
from tests.tui_kit import (
    choose_method,
    client_certificate_pem,
    fill,
    make_app,
    note,
    open_form,
    read_subject_from,
    save,
    select_row,
    store_as_before_the_rules,
    table_rows,
    take_secret,
    until,
    wait_for_list,
)


async def test_the_admin_api_back_end(
    admin_server_ca: tuple[CertboundTestServer, Path], tmp_path: Path
) -> None:
    server, cacert = admin_server_ca
    cert_file = tmp_path / "client.pem"
    cert_file.write_bytes(client_certificate_pem(x509.DNSName("svc.example.com")))
    app = make_app(AdminClient(server.url, ADMIN_TOKEN, cacert))
    async with app.run_test() as pilot:
        await wait_for_list(pilot, app, [])
        # create: a secret client and an mTLS client
        await open_form(pilot, app, "a")
        await fill(pilot, app, "client_id", "billing")
        await fill(pilot, app, "client_name", "Billing")
        await save(pilot, app)
        _, secret = await take_secret(pilot, app)
        assert await token_status(server, "billing", secret) == 200
        await open_form(pilot, app, "a")
        await choose_method(pilot, app, "tls_client_auth")
        await fill(pilot, app, "client_id", "svc")
        await read_subject_from(pilot, app, "tls_client_auth_san_dns", str(cert_file))
        await save(pilot, app)
        await wait_for_list(pilot, app, ["billing", "svc"])
        # a server validation error lands on its field
        await select_row(pilot, app, "billing")
        await open_form(pilot, app, "e")
        await fill(pilot, app, "scope", "read nonsense")
        await save(pilot, app)
        assert note(app, "scope") == "scope includes values this server does not offer: nonsense"
        # edit
        await fill(pilot, app, "scope", "read")
        await fill(pilot, app, "client_name", "Billing EU")
        await save(pilot, app)
        await until(
            pilot,
            lambda: ["billing", "client_secret_basic", "Billing EU"] in table_rows(app, "#clients"),
            "edit",
        )
        # rotate the secret
        await select_row(pilot, app, "billing")
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
        await pilot.press("y")
        _, new_secret = await take_secret(pilot, app)
        assert await token_status(server, "billing", secret) == 401
        assert await token_status(server, "billing", new_secret) == 200
        # delete
        await wait_for_list(pilot, app, ["billing", "svc"])
        await select_row(pilot, app, "billing")
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
        await pilot.press("y")
        await wait_for_list(pilot, app, ["svc"])
        assert await token_status(server, "billing", new_secret) == 401
        # keys: rotate, and the server publishes the new key at once
        [old] = server.running.context.keys.jwks["keys"]
        await pilot.press("k")
        await until(
            pilot, lambda: bool(app.screen.query("#keys")) and len(table_rows(app, "#keys")) == 1, "keys"
        )
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
        await pilot.press("y")
        await until(pilot, lambda: len(table_rows(app, "#keys")) == 2, "the new key")
        rows = table_rows(app, "#keys")
        assert [row[2] for row in rows] == ["active", "retired"]
        assert rows[1][0] == old["kid"]
        assert {key["kid"] for key in server.running.context.keys.jwks["keys"]} == {rows[0][0], old["kid"]}
    stored = await server.running.context.store.get_client("svc")
    assert stored is not None
    assert stored.metadata["tls_client_auth_san_dns"] == "svc.example.com"


# the real command in a pseudo-terminal
_PTY_TIMEOUT = 60.0


def _read_until(fd: int, process: subprocess.Popen[bytes], needle: bytes, seen: bytearray) -> None:
    deadline = time.monotonic() + _PTY_TIMEOUT
    while needle not in seen:
        if time.monotonic() > deadline or process.poll() is not None:
            raise AssertionError(f"{needle!r} never appeared; the screen so far: {bytes(seen[-2000:])!r}")
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                seen += os.read(fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                break


async def _store_name(db: str, client_id: str, client_name: str) -> None:
    store = await open_store(db)
    try:
        await store_as_before_the_rules(store, client_id, client_name=client_name)
    finally:
        await store.close()


def test_certbound_tui_in_a_pty_shows_clients_and_quits(tmp_path: Path) -> None:
    pki = write_dev_pki(tmp_path / "pki").directory
    db = f"sqlite:///{tmp_path}/tui.db"
    port = free_port()
    serve = (
        "--port", str(port), "--issuer", f"https://localhost:{port}",
        "--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key"),
        "--db", db, "--admin-token", ADMIN_TOKEN,
    )  # fmt: skip
    with ServerProcess(*serve) as server:
        target = ("--url", server.url, "--admin-token", ADMIN_TOKEN, "--cacert", str(pki / "server-ca.pem"))
        added = run_cli("clients", "add", "--client-id", "existing-client-42", "--name", "Evil", *target)
        assert added.returncode == 0, added.stderr
        # Registration refuses control characters in a name; one stored before that rule is shown.
        asyncio.run(_store_name(db, "existing-client-42", "\x1b]0;pwned\x07\x1b[2J[bold]Evil"))
        controller, terminal = pty.openpty()
        fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        env = {**server_env(), "TERM": "xterm-256color"}
        process = subprocess.Popen(
            [*CERTBOUND, "tui", *target], stdin=terminal, stdout=terminal, stderr=terminal, env=env
        )
        os.close(terminal)
        seen = bytearray()
        try:
            _read_until(controller, process, b"existing-client-42", seen)
            _read_until(controller, process, b"[bold]Evil", seen)
            os.write(controller, b"q")
            assert process.wait(timeout=_PTY_TIMEOUT) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            os.close(controller)
        # The name is on screen with its escapes spelled out; none reached the terminal.
        assert b"\\x1b]0;pwned\\x07\\x1b[2J[bold]Evil" in seen
        assert b"\x1b]0;pwned" not in seen
        assert b"pwned\x07" not in seen
        code, _ = server.stop()
        assert code == 0


async def test_a_wrong_token_or_target_is_one_error_line(
    admin_server_ca: tuple[CertboundTestServer, Path],
) -> None:
    server, cacert = admin_server_ca
    wrong = await asyncio.to_thread(
        run_cli, "tui", "--url", server.url, "--admin-token", "wrong", "--cacert", str(cacert)
    )
    assert wrong.returncode == 2
    assert wrong.stdout == ""
    assert wrong.stderr.splitlines() == ["certbound: error: invalid_token: the admin token is not valid"]
    both = await asyncio.to_thread(
        run_cli, "tui", "--url", server.url, "--db", "sqlite:///x.db", "--admin-token", ADMIN_TOKEN
    )
    assert both.returncode == 2
    assert both.stderr.splitlines() == ["certbound: error: use either --url or --db, not both"]
