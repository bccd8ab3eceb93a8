"""Run `certbound` as a real subprocess: the black-box view SPEC §3 describes."""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import ssl
import subprocess
import sys
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
    """`certbound ARGS`; `env` adds variables (CERTBOUND_* ones included) to server_env()."""
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
        )
        self.ready_line = self._read_ready_line(timeout)
        self.url = self.ready_line.removeprefix("listening on ").strip()

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
        self.process.kill()
        _, stderr = self.process.communicate()
        raise RuntimeError(f"server did not start: {stderr}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> tuple[int, str]:
        """Signal the server by PID; return (exit status, stderr)."""
        self.process.send_signal(sig)
        _, stderr = self.process.communicate(timeout=timeout)
        return self.process.returncode, stderr

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()


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
