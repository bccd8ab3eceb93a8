"""`certbound serve --workers N`: one port, N processes, one ready line, clean stop, self-repair."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from certbound.devpki import write_dev_pki
from tests.e2e.processes import ServerProcess, free_port, https_json, run_cli
from tests.helpers import basic_auth


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
