"""`certbound serve --workers N`: one port, N processes, one ready line, clean stop, self-repair."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from certbound.devpki import write_dev_pki
from tests.e2e.processes import ServerProcess, free_port, https_json, https_request, run_cli
from tests.helpers import basic_auth

ADMIN_TOKEN = "admin-token-for-the-worker-tests-0123456789"
#: Consecutive refusals on new connections that show every worker refuses: the kernel picks one of
#: two workers at random per connection, and a request takes a few ms, so shorter runs from one
#: worker alone happen by chance within a second; 40 in a row from one worker (2**-39) do not.
_EVERY_WORKER = 40


def _children(pid: int) -> list[int]:
    result = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(line) for line in result.stdout.split()]


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    return write_dev_pki(tmp_path / "pki").directory


def test_two_workers_serve_one_port_and_stop_cleanly(pki: Path, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/db.sqlite"
    added = run_cli(
        "clients", "add", "--db", db, "--client-id", "svc", "--secret", "a-long-enough-secret-0123456789"
    )
    assert added.returncode == 0, added.stderr
    port = free_port()
    args = ["--workers", "2", "--port", str(port), "--db", db]
    args += ["--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key")]
    with ServerProcess(*args) as server:
        assert server.ready_line == f"listening on https://127.0.0.1:{port}\n"
        workers = _children(server.process.pid)
        assert len(workers) == 2
        auth = {"Authorization": basic_auth("svc", "a-long-enough-secret-0123456789")}
        headers = {**auth, "Content-Type": "application/x-www-form-urlencoded"}
        kids = set()
        for _ in range(6):
            status, body = https_json(
                server.url + "/token",
                pki / "server-ca.pem",
                data=b"grant_type=client_credentials",
                headers=headers,
            )
            assert status == 200, body
            kids.add(body["access_token"].split(".")[0])
        assert len(kids) == 1  # every worker signs with the one key the supervisor created

        os.kill(workers[0], signal.SIGKILL)  # a worker dies: the supervisor replaces it
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(set(_children(server.process.pid)) - {workers[0]}) < 2:
            time.sleep(0.2)
        assert len(set(_children(server.process.pid)) - {workers[0]}) == 2
        for _ in range(4):
            status, _ = https_json(
                server.url + "/token",
                pki / "server-ca.pem",
                data=b"grant_type=client_credentials",
                headers=headers,
            )
            assert status == 200

        code, stderr = server.stop(signal.SIGTERM)
        assert code == 0, stderr
        assert "Traceback" not in stderr


def test_workers_need_a_shared_database(tmp_path: Path) -> None:
    result = run_cli(
        "serve", "--workers", "2", "--port", str(free_port()), "--db", "sqlite://:memory:", cwd=tmp_path
    )
    assert result.returncode == 2
    assert result.stderr.startswith("certbound: error: ")
    assert "--workers" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def _refused_by_every_worker_after(
    changed_at: float, request: Callable[[], int], *, refused: int = 401
) -> float:
    """Seconds from `changed_at` to the start of the first run of _EVERY_WORKER consecutive
    refusals (requests on new connections, back to back); fails after 10 s."""
    run_started: float | None = None
    run = 0
    while time.monotonic() - changed_at < 10:
        sent = time.monotonic()
        if request() == refused:
            run_started = sent if run == 0 else run_started
            run += 1
            if run == _EVERY_WORKER and run_started is not None:
                return run_started - changed_at
        else:
            run = 0
    raise AssertionError("some worker still accepted the client 10 s after the change")


def test_a_client_changed_on_one_worker_is_refused_by_every_worker_within_1s(
    pki: Path, tmp_path: Path
) -> None:
    """SPEC §3: a deleted client or a rotated secret stops working on every worker within 1 s,
    though the change reached only the worker that answered the admin request."""
    port = free_port()
    args = ["--workers", "2", "--port", str(port), "--db", f"sqlite:///{tmp_path}/db.sqlite"]
    args += ["--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key")]
    args += ["--admin-token", ADMIN_TOKEN]
    ca = pki / "server-ca.pem"
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}
    with ServerProcess(*args) as server:

        def add_client() -> tuple[str, str]:
            status, _, created = https_request(
                server.url + "/admin/clients", ca, data=b'{"client_name": "w"}', headers=admin
            )
            assert status == 201, created
            return created["client_id"], created["client_secret"]

        def token(client_id: str, secret: str) -> int:
            status, _, _ = https_request(
                server.url + "/token",
                ca,
                data=b"grant_type=client_credentials",
                headers={
                    "Authorization": basic_auth(client_id, secret),
                    "Content-Type": "application/x-www-form-urlencoded",
                },
            )
            return status

        deleted = add_client()
        assert all(token(*deleted) == 200 for _ in range(_EVERY_WORKER))  # cached by both workers
        changed_at = time.monotonic()
        status, _, _ = https_request(
            f"{server.url}/admin/clients/{deleted[0]}", ca, method="DELETE", headers=admin
        )
        assert status == 204
        assert _refused_by_every_worker_after(changed_at, lambda: token(*deleted)) <= 1.0

        client_id, old_secret = add_client()
        assert all(token(client_id, old_secret) == 200 for _ in range(_EVERY_WORKER))
        changed_at = time.monotonic()
        status, _, rotated = https_request(
            f"{server.url}/admin/clients/{client_id}/rotate-secret", ca, method="POST", headers=admin
        )
        assert status == 200, rotated
        assert _refused_by_every_worker_after(changed_at, lambda: token(client_id, old_secret)) <= 1.0
        assert all(token(client_id, rotated["client_secret"]) == 200 for _ in range(_EVERY_WORKER))

        code, stderr = server.stop(signal.SIGTERM)
        assert code == 0, stderr
