#!/usr/bin/env python3
"""Memory of one `certbound serve` worker holding N idle keep-alive mutual-TLS connections (issue 15).

The target: "RSS per worker with 1,000 idle keep-alive mTLS connections < 100 MB". One worker on
127.0.0.1 (the dev PKI from certs/, a fresh SQLite database in run/idle/, a tls_client_auth client
for certs/client1.pem) is given N connections from this process (asyncio + ssl, a client
certificate on each, `--concurrency` handshakes at a time); each gets one token request (HTTP/1.1
keep-alive) and is then left idle. The worker's VmRSS (/proc/PID/status) is read when it is ready,
after one warm-up request, once the N connections are open, after `--idle` seconds of idleness, and
after the connections are closed. Then a second request on every connection checks that the server
kept them all.

All connections come from 127.0.0.1, so the per-address caps of `serve` (`--max-connections-per-ip`,
default 256 per worker) are raised to N, and `--max-connections` (1024) to N plus a margin; the
handshakes in flight stay under `--max-handshakes-per-ip` (64). `--keepalive-timeout` is set beyond
the idle time so that the server does not close the connections being measured.

    .venv/bin/python scripts/idle_connections.py                    # 1,000 connections, 10 s idle
    .venv/bin/python scripts/idle_connections.py --connections 2000 --idle 30

Exit status: 0 PASS, 1 FAIL (over the limit, or connections refused or dropped), 2 could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import signal
import ssl
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench_anchor import ROOT, port_in_use, unwind_on_sigterm

__all__ = ["Measurement", "main", "measure"]

CERTS = ROOT / "certs"
DEFAULT_PORT = 19450
CLIENT_ID = "idle-mtls"
BODY = f"grant_type=client_credentials&client_id={CLIENT_ID}".encode()
LIMIT_MB = 100.0  # issue 15: MB = 10^6 bytes, the stricter reading
_MB = 1_000_000
_MIB = 1024 * 1024
#: Open file descriptors this process needs besides the connections (stdio, the server's pipes, ...).
_FD_MARGIN = 64


#: `--tracemalloc`: `certbound serve` run by this wrapper traces Python allocations and writes a
#: snapshot to $IDLE_SNAPSHOT.N on each SIGUSR1 (written aside, then renamed: complete when seen).
_TRACED_SERVE = """
import os, signal, sys, tracemalloc
tracemalloc.start(int(os.environ["IDLE_TRACE_FRAMES"]))
taken = 0
def dump(signum, frame):
    global taken
    taken += 1
    path = f"{os.environ['IDLE_SNAPSHOT']}.{taken}"
    tracemalloc.take_snapshot().dump(path + ".part")
    os.rename(path + ".part", path)
signal.signal(signal.SIGUSR1, dump)
from certbound.cli import main
sys.exit(main(sys.argv[1:]))
"""
_TRACE_FRAMES = 12


class IdleError(Exception):
    """A problem that stops the run; the message says what to do."""


@dataclass(frozen=True)
class Measurement:
    """The worker's resident set at one moment of the run (KiB, from /proc/PID/status)."""

    moment: str
    rss_kib: int
    anon_kib: int
    file_kib: int

    @property
    def mib(self) -> float:
        return self.rss_kib * 1024 / _MIB


def measure(pid: int, moment: str) -> Measurement:
    """VmRSS of `pid` and its anonymous (heap) and file-backed (code, shared libraries) parts: the
    file-backed pages are shared between the workers of one `serve --workers N`."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "RssAnon", "RssFile"):
            fields[name] = int(value.split()[0])
    if "VmRSS" not in fields:
        raise IdleError(f"no VmRSS in /proc/{pid}/status (a kernel thread?)")
    return Measurement(moment, fields["VmRSS"], fields.get("RssAnon", 0), fields.get("RssFile", 0))


# ---------------------------------------------------------------- set-up


def _check_prerequisites() -> None:
    missing = [
        str(path.relative_to(ROOT))
        for path in (CERTS / name for name in ("server.pem", "server.key", "client-ca.pem", "client1.pem"))
        if not path.is_file()
    ]
    if missing:
        raise IdleError(f"the dev PKI is missing ({', '.join(missing)}): run `make certs/server.pem`")
    if shutil.which("timeout") is None:
        raise IdleError("coreutils `timeout` is missing (it bounds the server's lifetime)")
    probe = subprocess.run(
        [sys.executable, "-m", "certbound", "--help"], capture_output=True, cwd=ROOT, timeout=60, check=False
    )
    if probe.returncode != 0:
        raise IdleError(
            f"{sys.executable} cannot run certbound: `make .venv/.installed-stamp`, use .venv/bin/python"
        )


def _raise_fd_limit(needed: int) -> int:
    """Raise this process's soft RLIMIT_NOFILE towards the hard one (the server inherits it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise IdleError(
                f"{needed} file descriptors needed, the hard limit is {hard}: raise it (ulimit -Hn, "
                "limits.conf) or ask for fewer --connections"
            )
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft


def _client_subject() -> str:
    """The RFC 4514 subject of certs/client1.pem, as `tls_client_auth_subject_dn` wants it."""
    from cryptography import x509  # the project's dependency: the script runs with its venv

    return x509.load_pem_x509_certificate((CERTS / "client1.pem").read_bytes()).subject.rfc4514_string()


def _serve_cmd(args: argparse.Namespace, settings: list[str], lifetime: int) -> list[str]:
    max_connections = args.connections + _FD_MARGIN
    python = (
        [sys.executable, "-c", _TRACED_SERVE] if args.tracemalloc else [sys.executable, "-m", "certbound"]
    )
    return [
        "timeout", str(lifetime), *python, "serve", *settings,
        "--issuer", f"https://localhost:{args.port}", "--host", "127.0.0.1", "--port", str(args.port),
        "--tls-cert", str(CERTS / "server.pem"), "--tls-key", str(CERTS / "server.key"),
        "--client-ca", str(CERTS / "client-ca.pem"),
        "--max-connections", str(max(1024, max_connections)),
        "--max-connections-per-ip", str(max(256, max_connections)),
        "--keepalive-timeout", str(int(args.idle) + 120),
        "--drain-timeout", "2",
    ]  # fmt: skip


def _register_client(settings: list[str], work: Path) -> None:
    metadata = {
        "client_name": CLIENT_ID,
        "token_endpoint_auth_method": "tls_client_auth",
        "tls_client_auth_subject_dn": _client_subject(),
        "grant_types": ["client_credentials"],
    }
    data = work / f"{CLIENT_ID}.json"
    data.write_text(json.dumps(metadata))
    cmd = [sys.executable, "-m", "certbound", "clients", "add", *settings, "--client-id", CLIENT_ID]
    result = subprocess.run(
        [*cmd, "--data", str(data)], capture_output=True, text=True, cwd=ROOT, timeout=60, check=False
    )
    if result.returncode != 0:
        raise IdleError(f"clients add failed: {result.stderr.strip() or result.stdout.strip()}")


def _wait_ready(process: subprocess.Popen[bytes], log: Path) -> int:
    """Wait for `listening on`; the PID of the python process under the `timeout` wrapper."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise IdleError(f"certbound serve exited ({process.returncode}):\n{log.read_text()[-2000:]}")
        if "listening on" in log.read_text(errors="replace"):
            children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
            if len(children) != 1:
                raise IdleError(f"expected one server process under timeout, found {children}")
            return int(children[0])
        time.sleep(0.1)
    raise IdleError(f"certbound serve did not print `listening on`:\n{log.read_text()[-2000:]}")


# ---------------------------------------------------------------- the connections


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter


def _tls_context() -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(CERTS / "server-ca.pem"))
    context.load_cert_chain(CERTS / "client1.pem", CERTS / "client1.key")
    return context


async def _token_request(connection: _Connection, port: int) -> int:
    """One keep-alive POST /token; the HTTP status (the body is read, so the connection is reusable)."""
    head = (
        f"POST /token HTTP/1.1\r\nHost: localhost:{port}\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(BODY)}\r\n\r\n"
    )
    connection.writer.write(head.encode("ascii") + BODY)
    await connection.writer.drain()
    response = await connection.reader.readuntil(b"\r\n\r\n")
    lines = response.decode("latin-1").split("\r\n")
    length = next(
        (int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:")), None
    )
    if length is None:
        raise IdleError(f"no Content-Length in the answer: {lines[0]}")
    await connection.reader.readexactly(length)
    return int(lines[0].split()[1])


async def _open(port: int, context: ssl.SSLContext, gate: asyncio.Semaphore) -> _Connection:
    async with gate:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="localhost"), 30
        )
        connection = _Connection(reader, writer)
        status = await asyncio.wait_for(_token_request(connection, port), 30)
        if status != 200:
            writer.close()
            raise IdleError(f"token request answered HTTP {status}")
        return connection


@dataclass
class _Outcome:
    measurements: list[Measurement]
    opened: int
    failures: list[str]
    dropped_while_idle: int
    served_after_idle: int
    snapshots: list[Path]


async def _snapshot(pid: int, prefix: Path, number: int) -> Path:
    """Ask the traced server for its tracemalloc snapshot number `number` and wait for the file."""
    os.kill(pid, signal.SIGUSR1)
    path = Path(f"{prefix}.{number}")
    deadline = time.monotonic() + 120
    while not await asyncio.to_thread(path.is_file):
        if time.monotonic() > deadline:
            raise IdleError(f"the server wrote no tracemalloc snapshot {path}")
        await asyncio.sleep(0.2)
    return path


async def _exercise(args: argparse.Namespace, pid: int, snapshot_prefix: Path | None) -> _Outcome:
    context = _tls_context()
    snapshots: list[Path] = []
    measurements = [measure(pid, "ready (no connection yet)")]
    warm = await _open(args.port, context, asyncio.Semaphore(1))
    warm.writer.close()
    await warm.writer.wait_closed()
    await asyncio.sleep(0.5)
    measurements.append(measure(pid, "after one token request (warm)"))
    if snapshot_prefix is not None:
        snapshots.append(await _snapshot(pid, snapshot_prefix, 1))

    gate = asyncio.Semaphore(args.concurrency)
    started = time.monotonic()
    results = await asyncio.gather(
        *(_open(args.port, context, gate) for _ in range(args.connections)), return_exceptions=True
    )
    connections = [result for result in results if isinstance(result, _Connection)]
    failures = [
        f"{type(result).__name__}: {result}" for result in results if isinstance(result, BaseException)
    ]
    print(
        f"   {len(connections)} connections open and served in {time.monotonic() - started:.1f} s"
        + (f", {len(failures)} failed (first: {failures[0]})" if failures else ""),
        flush=True,
    )
    measurements.append(measure(pid, f"{len(connections)} connections open, each served once"))
    await asyncio.sleep(args.idle)
    measurements.append(measure(pid, f"after {args.idle:g} s idle"))
    dropped = sum(connection.reader.at_eof() for connection in connections)
    if snapshot_prefix is not None:
        snapshots.append(await _snapshot(pid, snapshot_prefix, 2))

    async def again(connection: _Connection) -> bool:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, IdleError):
            return await asyncio.wait_for(_token_request(connection, args.port), 30) == 200
        return False

    gate_again = asyncio.Semaphore(args.concurrency)

    async def again_gated(connection: _Connection) -> bool:
        async with gate_again:
            return await again(connection)

    served = sum(await asyncio.gather(*(again_gated(connection) for connection in connections)))
    measurements.append(measure(pid, "after a second request on each"))
    for connection in connections:
        connection.writer.close()
    await asyncio.gather(
        *(connection.writer.wait_closed() for connection in connections), return_exceptions=True
    )
    await asyncio.sleep(2)
    measurements.append(measure(pid, "2 s after closing them all"))
    return _Outcome(measurements, len(connections), failures, dropped, served, snapshots)


def _traced_growth(outcome: _Outcome, top: int = 15) -> list[str]:
    """Where the Python allocations that grew between the warm and the idle snapshots were made,
    against the RSS growth over the same time: the rest was allocated outside Python's allocators
    (OpenSSL, libc buffers)."""
    before, after = (tracemalloc.Snapshot.load(str(path)) for path in outcome.snapshots)
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__)]
    before, after = before.filter_traces(ignore), after.filter_traces(ignore)
    stats = after.compare_to(before, "lineno")
    traced = sum(stat.size_diff for stat in stats)
    rss = (outcome.measurements[3].rss_kib - outcome.measurements[1].rss_kib) * 1024
    per = max(outcome.opened, 1)
    lines = [
        "",
        f"## tracemalloc: warm -> {outcome.opened} connections idle",
        "",
        f"RSS grew {rss / _MIB:.1f} MiB ({rss / per / 1024:.1f} KiB per connection); Python allocations "
        f"traced by tracemalloc grew {traced / _MIB:.1f} MiB ({traced / per / 1024:.1f} KiB per connection); "
        f"the other {(rss - traced) / _MIB:.1f} MiB ({(rss - traced) / per / 1024:.1f} KiB per connection) "
        "is outside Python's allocators (OpenSSL's SSL objects and buffers, libc, allocator overhead) "
        "or tracemalloc's own bookkeeping: compare the traced figure with a run without --tracemalloc.",
        "",
        "| bytes per connection | blocks per connection | allocated at |",
        "|---|---|---|",
    ]
    for stat in stats[:top]:
        frame = stat.traceback[0]
        where = f"{_short_path(frame.filename)}:{frame.lineno}"
        lines.append(f"| {stat.size_diff / per:.0f} | {stat.count_diff / per:.1f} | `{where}` |")
    return lines


def _short_path(filename: str) -> str:
    """A path from the package on (`aiohttp/web_protocol.py`), not the virtualenv's prefix."""
    for marker in ("/site-packages/", "/lib/python3.11/", "/src/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


# ---------------------------------------------------------------- main


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--connections", type=int, default=1000, help="idle connections to hold (default 1000)"
    )
    parser.add_argument("--idle", type=float, default=10.0, help="seconds to leave them idle (default 10)")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=32,
        help="handshakes in flight (default 32, under serve's 64 per address)",
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"the server's port (default {DEFAULT_PORT})"
    )
    parser.add_argument(
        "--limit-mb",
        type=float,
        default=LIMIT_MB,
        help=f"PASS below this RSS, MB = 10^6 bytes (default {LIMIT_MB:g})",
    )
    parser.add_argument(
        "--cycles",
        type=int,
        default=1,
        help="open, idle and close the connections this many times in one server (a leak grows "
        "with each cycle; memory the allocator keeps does not); the table shows the first",
    )
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="diagnose: run serve under tracemalloc and show where the Python memory the connections "
        "hold was allocated (tracing slows the server and adds to its RSS: not for the PASS figure)",
    )
    args = parser.parse_args(argv)
    if args.connections < 1 or args.idle < 0 or args.cycles < 1 or not 1 <= args.concurrency <= 64:
        parser.error("--connections >= 1, --idle >= 0, --cycles >= 1, 1 <= --concurrency <= 64")
    return args


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()  # the `timeout` wrapper forwards SIGTERM: certbound drains and exits
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    print(f"== stopped certbound serve (pid {process.pid})", flush=True)


def _report(
    args: argparse.Namespace, outcome: _Outcome, serve_flags: str, fd_limit: int
) -> tuple[bool, list[str]]:
    by_moment = outcome.measurements
    warm, opened, idle = by_moment[1], by_moment[2], by_moment[3]
    per_connection_kib = (opened.rss_kib - warm.rss_kib) / max(outcome.opened, 1)
    idle_mb = idle.rss_kib * 1024 / _MB
    lines = [
        f"# certbound idle mTLS connections, {time.strftime('%Y-%m-%d %H:%M:%S')}",
        "",
        f"- one `certbound serve` worker on 127.0.0.1:{args.port}, dev PKI, SQLite; {serve_flags}",
        f"- {args.connections} mutual-TLS connections (certs/client1.pem, tls_client_auth), "
        f"{args.concurrency} handshakes at a time, one token request each, then {args.idle:g} s idle; "
        f"this process's RLIMIT_NOFILE {fd_limit}",
        "",
        "| moment | worker VmRSS MiB | anonymous MiB | file-backed MiB |",
        "|---|---|---|---|",
        *(
            f"| {m.moment} | {m.mib:.1f} | {m.anon_kib / 1024:.1f} | {m.file_kib / 1024:.1f} |"
            for m in by_moment
        ),
        "",
        f"- per connection (open - warm) / {outcome.opened}: {per_connection_kib:.1f} KiB",
        f"- connections the server closed while idle: {outcome.dropped_while_idle}; "
        f"served again after the idle time: {outcome.served_after_idle} / {outcome.opened}",
    ]
    problems = []
    if outcome.failures:
        problems.append(
            f"{len(outcome.failures)} connections failed to open or get a token ({outcome.failures[0]})"
        )
    if outcome.dropped_while_idle or outcome.served_after_idle != outcome.opened:
        problems.append("the server did not keep every connection")
    over = idle_mb >= args.limit_mb
    if over:
        problems.append(f"RSS after idle {idle_mb:.1f} MB >= {args.limit_mb:g} MB")
    verdict = "FAIL" if problems else "PASS"
    lines += [
        "",
        f"**{verdict}**: RSS per worker with {outcome.opened} idle keep-alive mTLS connections "
        f"{idle_mb:.1f} MB ({idle.mib:.1f} MiB), limit {args.limit_mb:g} MB"
        + (f"; {'; '.join(problems)}" if problems else ""),
    ]
    return not problems, lines


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    unwind_on_sigterm()
    work = ROOT / "run" / "idle"
    try:
        _check_prerequisites()
        fd_limit = _raise_fd_limit(args.connections + _FD_MARGIN)
        if port_in_use(args.port):
            raise IdleError(f"127.0.0.1:{args.port} is already in use: free it or pass --port")
    except IdleError as exc:
        print(f"idle_connections: {exc}", file=sys.stderr)
        return 2
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    settings = ["--db", f"sqlite:///{work / 'idle.db'}"]
    lifetime = int(
        args.cycles * (args.idle + 120) + 600
    )  # the server dies on its own even if this script is killed
    cmd = _serve_cmd(args, settings, lifetime)
    serve_flags = " ".join(cmd[cmd.index("--max-connections") : cmd.index("--drain-timeout")])
    log = work / "serve.log"
    snapshot_prefix = work / "tracemalloc.snapshot" if args.tracemalloc else None
    env = {**os.environ, "IDLE_SNAPSHOT": str(snapshot_prefix), "IDLE_TRACE_FRAMES": str(_TRACE_FRAMES)}
    try:
        _register_client(settings, work)
        shown = cmd[2:] if not args.tracemalloc else ["(tracemalloc wrapper)", *cmd[cmd.index("serve") :]]
        print(f"== starting: {' '.join(shown)}", flush=True)
        with log.open("wb") as out:
            process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    except IdleError as exc:
        print(f"idle_connections: {exc}", file=sys.stderr)
        return 2
    try:
        pid = _wait_ready(process, log)
        print(
            f"   certbound serve pid {pid} (under timeout {process.pid}), log {log.relative_to(ROOT)}",
            flush=True,
        )
        outcomes = [asyncio.run(_exercise(args, pid, snapshot_prefix))]
        for cycle in range(2, args.cycles + 1):
            print(f"== cycle {cycle}/{args.cycles}: the same again in the same server", flush=True)
            outcomes.append(asyncio.run(_exercise(args, pid, None)))
    except IdleError as exc:
        print(f"idle_connections: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("idle_connections: interrupted", file=sys.stderr)
        return 130
    finally:
        _stop(process)
    outcome = outcomes[0]
    passed, lines = _report(args, outcome, f"serve flags `{serve_flags}`", fd_limit)
    if len(outcomes) > 1:
        idle = [cycle.measurements[3].mib for cycle in outcomes]
        held = outcome.measurements[3].mib - outcome.measurements[1].mib
        later = (idle[-1] - idle[0]) / (len(idle) - 1)
        lines[-2:-2] = [
            f"- RSS after the idle time in each of {len(idle)} cycles (open, idle, close) in one server: "
            f"{', '.join(f'{value:.1f}' for value in idle)} MiB: {later:+.1f} MiB per later cycle, against "
            f"{held:.1f} MiB held by the first cycle's connections (a leak would add about as much each time)"
        ]
        passed = passed and all(cycle.opened == args.connections for cycle in outcomes)
    if outcome.snapshots:
        lines += _traced_growth(outcome)
        lines += [
            "",
            "(--tracemalloc: the RSS above includes tracing's own memory; rerun without it for PASS/FAIL)",
        ]
    print("\n" + "\n".join(lines))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
