"""`certbound serve --workers N`: N processes serving one port, each with its own event loop.

The supervisor (this process) prepares everything that must happen exactly once — configuration
checks, the dev PKI, the master key, the schema and the first signing key — binds one
SO_REUSEPORT socket per worker and listener (so the kernel balances connections across workers and
a busy port is reported once), refuses to start when another process listens on the port too
(certbound.portcheck), makes the directory where workers keep their metrics (certbound.metrics),
forks the workers, prints the ready line once every worker is
serving, forwards SIGTERM/SIGINT/SIGHUP, and replaces a worker that dies unexpectedly (its sockets
stay open here, so connections the kernel queued for it are served by its replacement).

Everything workers must agree on lives in the database: assertion replay, revocation, keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from certbound.announce import announce_ready
from certbound.app import master_key_path, open_database, open_vault
from certbound.config import Settings
from certbound.errors import ConfigError
from certbound.federation import Federation
from certbound.keys import KeyRing
from certbound.metrics import share_across_processes
from certbound.portcheck import require_sole_listeners
from certbound.runtime import ListenerContexts, bind_listeners, resolve_tls_files, run_server
from certbound.weaksettings import warn_about_weak_settings

__all__ = ["run_event_loop", "serve"]

log = logging.getLogger("certbound.workers")

_READY_TIMEOUT = 60.0
_RESTART_BACKOFF = 1.0
_FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def run_event_loop(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop when it is installed (faster sockets and timers), else on asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(coroutine)
    else:
        uvloop.run(coroutine)


def serve(settings: Settings) -> None:
    """Serve until SIGTERM/SIGINT; with workers > 1, as a supervisor of worker processes."""
    master_key_path(settings)  # PostgreSQL without --master-key-file: refused before anything is made
    warn_about_weak_settings(settings)
    if settings.workers == 1:
        run_event_loop(run_server(settings))
        return
    if settings.sqlite_path == ":memory:":
        raise ConfigError("--workers needs a shared database: an in-memory SQLite one is per process")
    settings = resolve_tls_files(settings)
    ListenerContexts(settings)  # the TLS files are usable: fail here, once, not in N workers
    Federation(settings)  # and so is the federation file
    metrics_directory = Path(tempfile.mkdtemp(prefix="certbound-metrics-"))
    try:
        # Bind (and check that the port is ours alone) before touching the database.
        supervisor = _Supervisor(settings, metrics_directory)
        asyncio.run(_prepare_database(settings))  # closes its loop and threads: safe to fork after
        supervisor.run()
    finally:
        shutil.rmtree(metrics_directory, ignore_errors=True)


async def _prepare_database(settings: Settings) -> None:
    vault = open_vault(settings)  # creates the master key file before workers race to read it
    store = await open_database(settings)
    try:
        ring = KeyRing(store, vault, alg=settings.signing_alg, publish_after_retirement=0)
        await ring.ensure_active_key()
    finally:
        await store.close()


@dataclass
class _Worker:
    index: int
    pid: int
    ready_fd: int


class _Supervisor:
    def __init__(self, settings: Settings, metrics_directory: Path) -> None:
        if settings.port == 0:
            raise ConfigError("--workers needs a fixed --port")
        self._settings = settings
        self._metrics_directory = metrics_directory
        self._sockets: list[list[socket.socket]] = []
        try:
            for _ in range(settings.workers):
                self._sockets.append(bind_listeners(settings, reuse_port=True))
            require_sole_listeners([sock for sockets in self._sockets for sock in sockets])
        except ConfigError:
            for sockets in self._sockets:
                for sock in sockets:
                    sock.close()
            raise
        self._workers: dict[int, _Worker] = {}
        self._pending_signals: list[int] = []
        self._stopping = False

    def run(self) -> None:
        for signum in _FORWARDED:
            signal.signal(signum, self._on_signal)
        for index in range(self._settings.workers):
            self._spawn(index)
        self._await_ready()
        host = self._settings.host
        port = self._sockets[0][0].getsockname()[1]
        announce_ready(f"https://{f'[{host}]' if ':' in host else host}:{port}", self._settings)
        self._supervise()

    def _on_signal(self, signum: int, frame: object) -> None:
        self._pending_signals.append(signum)

    def _spawn(self, index: int) -> _Worker:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the worker
            os.close(read_fd)
            for signum in _FORWARDED:
                signal.signal(signum, signal.SIG_DFL)
            for other, sockets in enumerate(self._sockets):
                if other != index:
                    for sock in sockets:
                        sock.close()
            os._exit(_worker_main(self._settings, self._sockets[index], write_fd, self._metrics_directory))
        os.close(write_fd)
        worker = self._workers[pid] = _Worker(index, pid, read_fd)
        return worker

    def _await_ready(self) -> None:
        """Every worker writes one byte when it serves; one that exits first failed to start."""
        deadline = time.monotonic() + _READY_TIMEOUT
        waiting = {worker.ready_fd: worker for worker in self._workers.values()}
        while waiting:
            remaining = deadline - time.monotonic()
            readable, _, _ = select.select(list(waiting), [], [], max(remaining, 0))
            if not readable:
                self._terminate_all()
                raise ConfigError("workers did not start within 60 s")
            for fd in readable:
                waiting.pop(fd)
                ready = os.read(fd, 1) == b"R"
                os.close(fd)
                if not ready:  # end of file: the worker exited; it said why on stderr
                    self._terminate_all()
                    raise SystemExit(2)

    def _supervise(self) -> None:
        while self._workers:
            while self._pending_signals:
                signum = self._pending_signals.pop(0)
                if signum in (signal.SIGTERM, signal.SIGINT):
                    self._stopping = True
                    log.info("stopping %d workers", len(self._workers))
                for pid in self._workers:
                    os.kill(pid, signal.SIGTERM if signum == signal.SIGINT else signum)
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                time.sleep(0.1)
                continue
            worker = self._workers.pop(pid, None)
            if worker is None or self._stopping:
                continue
            log.error("worker %d (pid %d) exited with status %d; starting another", worker.index, pid, status)
            time.sleep(_RESTART_BACKOFF)
            # Nobody waits for a replacement's ready byte: its announce tolerates the closed pipe.
            os.close(self._spawn(worker.index).ready_fd)

    def _terminate_all(self) -> None:
        for pid in list(self._workers):
            os.kill(pid, signal.SIGTERM)
        for pid in list(self._workers):
            os.waitpid(pid, 0)
        self._workers.clear()


def _worker_main(
    settings: Settings, sockets: list[socket.socket], ready_fd: int, metrics_directory: Path
) -> int:
    def announce(url: str) -> None:
        with contextlib.suppress(OSError):
            os.write(ready_fd, b"R")
        os.close(ready_fd)

    try:
        share_across_processes(metrics_directory)
        run_event_loop(
            run_server(settings, sockets=sockets, announce=announce, metrics_directory=metrics_directory)
        )
    except ConfigError as exc:
        sys.stderr.write(f"certbound: error: {exc}\n")
        return 2
    except Exception:
        log.exception("worker failed")
        return 1
    return 0
