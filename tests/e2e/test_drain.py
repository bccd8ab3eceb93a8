"""SPEC §3 drain (issue 9, finding 16): on SIGTERM a request whose headers were read is in flight and
gets its answer, even when its body arrives after the signal; with one worker or several."""

from __future__ import annotations

import signal
import socket
import ssl
import time
from pathlib import Path

import pytest

from certbound.devpki import write_dev_pki
from tests.e2e.processes import ServerProcess, free_port

_HEADERS = (
    b"POST /token HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    b"Content-Length: 29\r\n\r\n"
)
_BODY = b"grant_type=client_credentials"


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    return write_dev_pki(tmp_path / "pki").directory


def _connect(pki: Path, port: int) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=str(pki / "server-ca.pem"))
    raw = socket.create_connection(("127.0.0.1", port), timeout=8)
    return context.wrap_socket(raw, server_hostname="localhost")


def _read_to_eof(tls: ssl.SSLSocket) -> bytes:
    chunks = []
    try:
        while chunk := tls.recv(65536):
            chunks.append(chunk)
    except (ssl.SSLEOFError, ConnectionResetError):
        pass  # the server closed; what arrived before counts
    return b"".join(chunks)


def _serve(pki: Path, tmp_path: Path, workers: int) -> ServerProcess:
    args = ["--port", str(free_port()), "--db", f"sqlite:///{tmp_path}/db.sqlite", "--drain-timeout", "20"]
    args += ["--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key")]
    return ServerProcess(*args, "--workers", str(workers))


@pytest.mark.parametrize("workers", [1, 2])
def test_a_request_whose_body_arrives_after_sigterm_is_answered(
    pki: Path, tmp_path: Path, workers: int
) -> None:
    with _serve(pki, tmp_path, workers) as server:
        port = int(server.url.rsplit(":", 1)[1])
        in_flight = _connect(pki, port)
        in_flight.sendall(_HEADERS)
        # Twin: a request whose headers are not complete at SIGTERM is not in flight.
        partial = _connect(pki, port)
        partial.sendall(_HEADERS[:20])
        time.sleep(0.5)  # both reach the server before the signal
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        in_flight.sendall(_BODY)
        answer = _read_to_eof(in_flight)
        assert answer.startswith(b"HTTP/1.1 401"), answer  # answered (no client authentication)
        assert b"invalid_client" in answer
        assert _read_to_eof(partial) == b""
        code, stderr = server.stop(signal.SIGTERM)
        assert code == 0, stderr
        assert time.monotonic() - started < 10  # well within --drain-timeout 20
        in_flight.close()
        partial.close()
