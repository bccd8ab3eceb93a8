"""Run `certbound` as a real subprocess: the black-box view SPEC §3 describes."""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

CERTBOUND = [sys.executable, "-m", "certbound"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def run_cli(
    *args: str, cwd: Path | None = None, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`certbound ARGS` with no CERTBOUND_* variable but those in `env`."""
    return subprocess.run(
        [*CERTBOUND, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        input=stdin,
        timeout=60,
        env={**server_env(), **(env or {})},
    )


def server_env() -> dict[str, str]:
    """The environment certbound runs with in tests: none of the developer's CERTBOUND_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTBOUND_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    return env


class ServerProcess:
    """`certbound serve ...` (or another serving `command`) started and awaited until it prints its
    ready line."""

    def __init__(
        self, *args: str, cwd: Path | None = None, timeout: float = 30.0, command: str = "serve"
    ) -> None:
        self.process = subprocess.Popen(
            [*CERTBOUND, command, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=cwd,
            env=server_env(),
            start_new_session=True,  # its own process group: __exit__ ends its workers too
        )
        # The server logs a line per request on stderr: read it all the time, or a test making
        # many requests fills the pipe and the server blocks writing its access log.
        self._stderr: list[str] = []
        self._stderr_reader = threading.Thread(target=self._drain_stderr, daemon=True)
        self._stderr_reader.start()
        self.ready_line = self._read_ready_line(timeout)
        self.url = self.ready_line.removeprefix("listening on ").strip()

    def _drain_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._stderr.append(line)

    def stderr_so_far(self) -> str:
        """What the server has written on stderr until now."""
        return "".join(self._stderr)

    def _stderr_to_end(self) -> str:
        self._stderr_reader.join(timeout=30)
        return "".join(self._stderr)

    def _read_ready_line(self, timeout: float) -> str:
        assert self.process.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(self.process.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if selector.select(timeout=0.2):
                line = self.process.stdout.readline()
                if line.startswith("listening on "):
                    return line
                if not line and self.process.poll() is not None:
                    break
        self._kill_group()
        self.process.wait()
        raise RuntimeError(f"server did not start: {self._stderr_to_end()}")

    def following_lines(self, count: int) -> list[str]:
        """The next `count` lines on stdout (those the server prints with its ready line)."""
        assert self.process.stdout is not None
        return [self.process.stdout.readline().rstrip("\n") for _ in range(count)]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> tuple[int, str]:
        """Signal the server by PID; return (exit status, stderr). What it printed on stdout and
        nobody read is left in `unread_stdout`."""
        assert self.process.stdout is not None
        self.process.send_signal(sig)
        # Not communicate(): it reads the pipe underneath the lines readline() already buffered.
        # The server writes little to stdout, so reading it to its end cannot block the server.
        self.unread_stdout = self.process.stdout.read()
        self.process.wait(timeout=timeout)
        return self.process.returncode, self._stderr_to_end()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        """Kill whatever is left of the server, workers included (a test that failed midway must
        not leave orphaned workers serving, or holding the output pipes open)."""
        self._kill_group()
        if self.process.stdout is not None:
            self.process.stdout.read()
        self.process.wait()
        self._stderr_reader.join(timeout=30)

    def _kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)


def https_json(
    url: str, ca_file: Path, *, data: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    context = ssl.create_default_context(cafile=str(ca_file))
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def https_request(
    url: str,
    ca_file: Path,
    *,
    method: str | None = None,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
    cert: tuple[Path, Path] | None = None,
) -> tuple[int, dict[str, str], Any]:
    """One request on a new connection, presenting `cert` (certificate, key) when given:
    (status, headers, the JSON body or None when there is none)."""
    context = ssl.create_default_context(cafile=str(ca_file))
    if cert is not None:
        context.load_cert_chain(cert[0], cert[1])
    request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, context=context, timeout=30) as response:
            status, response_headers, body = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        status, response_headers, body = exc.code, dict(exc.headers), exc.read()
    return status, response_headers, json.loads(body) if body else None
