#!/usr/bin/env python3
"""Benchmark certbound's token endpoint against node-oidc-provider, same run, same load (the bench anchor).

Our speed is always quoted as a ratio against oidc-provider measured in the same run: the machine is
shared and noisy, so numbers from different runs are never compared. The load comes from the anchor's
own harness (`scripts/bench.py`: ApacheBench, or `loadgen.mjs` for private_key_jwt), with its
[defaults] (32 connections, 3 s warm-up, 12 s measured); the DPoP scenario `f-dpop-ka` (a fresh
proof per request) is ours: scripts/dpop_loadgen.mjs, measured with the harness's own CPU window.
Two pairings, each the same number of processes on both sides (`bench_pairings`): `1v1` is
`certbound serve` against oidc-provider in one node process (`op1`), `2v2` is `certbound serve
--workers 2` against oidc-provider on node:cluster x2 (`op2`), on the keep-alive scenarios. A pairing's
two servers run at the same time on 127.0.0.1 with the anchor's PKI and the same clients; every rep
measures each scenario on both back to back, alternating which one goes first. The pairings run one
after the other, each pair stopped before the next starts; the report has a table per pairing,
judged by the targets of issue 15.

    scripts/bench_anchor.py                 # both pairings, 21 runs per rep x 3 reps (about 18 min)
    scripts/bench_anchor.py --quick         # 1 rep of 5 s each (about 3.5 min), for development
    scripts/bench_anchor.py --pairings 1v1 --only a-,c- --reps 5
    scripts/bench_anchor.py --pairings 2v2  # certbound --workers 2 vs node:cluster x2 alone
    scripts/bench_anchor.py --only a-,c-,d- --backends sqlite,postgresql,postgresql-2nodes
                                            # also certbound on PostgreSQL, and two PostgreSQL nodes
                                            # behind HAProxy (mode tcp), in the same run
    scripts/bench_anchor.py --pairings 1v1 --quick --only d-,g-
                                            # federated_jwt (a platform token with a fresh jti per
                                            # request) against private_key_jwt, certbound only

`g-federated-ka` has no oidc-provider side (it has no such method): it is the anchor's `d-pkjwt-ka`
load (loadgen.mjs, an ES256 JWT with a fresh jti per request) sent as a federated_jwt client's
platform token, issued by a `--federation` issuer whose key set is the pkjwt key (a `jwks_file`), and
is compared with certbound's own `d-pkjwt-ka` in the same run.

Stdlib only (plus the `certbound` CLI, run as `python -m certbound`, and the anchor's node tools).
Writes run/bench-<timestamp>.md (tables) and run/bench-<timestamp>.jsonl (one line per rep).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import http.client
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import threading
import time
import tomllib
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

from bench_pairings import DEFAULT_PAIRINGS, PAIRINGS, Pairing, Side, parse_pairings
from bench_report import Outcome, render_certbound_only, render_deployments, render_pairing

__all__ = [
    "BenchError",
    "Servers",
    "check_prerequisites",
    "client_of",
    "client_specs",
    "load_anchor_harness",
    "main",
    "measure_own_tool",
    "port_in_use",
    "prepare_workdir",
    "probe_token",
    "register_clients",
    "unwind_on_sigterm",
]

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ANCHOR = Path(os.environ.get("CERTBOUND_BENCH_ANCHOR", "/work/shared/bench-anchor"))
DEFAULT_WORKDIR = ROOT / "run" / "bench-anchor"
DEFAULT_POSTGRES = os.environ.get("CERTBOUND_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
#: Scenarios of certbound alone (oidc-provider has no such method): name -> (the anchor scenario
#: whose load it reuses, the certbound scenario it is compared with, the client it authenticates).
CERTBOUND_ONLY = {"g-federated-ka": ("d-pkjwt-ka", "d-pkjwt-ka", "fed-client")}
#: The `--federation` issuer of `g-federated-ka`: loadgen.mjs signs iss = sub = the client_id.
FEDERATED_ISSUER = "bench-platform"
_BUSY_OTHER_CPU = 25.0  # % of a core used by other tenants above which a run is flagged as noisy

CB_PORT = 9443  # certbound's in `1v1`; a pairing's `port_offset` moves it (`2v2`: 9444)
SCOPES = "openid api:read api:write"  # the anchor's oidc-provider scopes
CLIENT_SCOPE = "api:read api:write"
TOKEN_LIFETIME = 3600  # the anchor's ClientCredentials TTL

# `certbound clients add` refuses a method the server cannot verify yet with this text (clientmeta.py).
_NOT_SUPPORTED = "not supported by this server"
# DER prefix of a P-256 SubjectPublicKeyInfo, up to the uncompressed point marker 0x04 (RFC 5480).
_P256_SPKI_PREFIX = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d03010703420004")
_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


#: Ours, not the anchor's: a DPoP token request (RFC 9449 §5) carries a fresh proof header, which
#: neither ab nor the anchor's loadgen.mjs can send. scripts/dpop_loadgen.mjs does, from a copy in
#: the work directory (its node_modules has undici); it is measured with the anchor harness's own
#: CPU window (_run_own_tool), the same way for both servers. Its server and port are rewritten
#: for each side (_side_scenario), like the anchor's scenarios.
DPOP_SCENARIO: dict[str, Any] = {
    "name": "f-dpop-ka",
    "desc": "(f) DPoP, client_secret_basic, fresh ES256 proof per request, JWT AT, keep-alive",
    "server": "op1",
    "tool": "dpop",
    "mode": "keepalive",
    "url": "https://127.0.0.1:8443/token",
    "basic": "basic-client:bench-secret",
    "body": "grant_type=client_credentials&scope=api%3Aread",
}
DPOP_LOADGEN = ROOT / "scripts" / "dpop_loadgen.mjs"
#: Our node load generators and the closed loop they share, copied into the anchor's work directory.
OWN_TOOLS = ("closed_loop.mjs", "dpop_loadgen.mjs", "secret_jwt_loadgen.mjs")
OWN_TOOLS_DIR = "certbound-tools"


class BenchError(Exception):
    """A problem that stops the run; the message says what to do."""


# ---------------------------------------------------------------- prerequisites and setup


def _install_ab() -> str | None:
    """ApacheBench from Debian's apache2-utils, when this script may install packages (root with
    apt-get, as .ci/run installs haproxy); returns why not, or None once `ab` is there."""
    command = "apt-get update && apt-get install -y apache2-utils"
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return f"ab (ApacheBench): {command} (as root)"
    print(f"== ab (ApacheBench) is missing: {command}", flush=True)
    for step in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "apache2-utils"]):
        result = subprocess.run(step, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            return f"ab (ApacheBench): `{shlex.join(step)}` failed: {result.stderr.strip()[-500:]}"
    return None if shutil.which("ab") else f"ab (ApacheBench): still missing after {command}"


def check_prerequisites(anchor: Path, work: Path) -> None:
    """Name every missing prerequisite at once; `ab` is installed here when we are root on Debian."""
    missing: list[str] = []
    if shutil.which("ab") is None and (why := _install_ab()) is not None:
        missing.append(why)
    for tool, hint in (
        ("node", "Node.js >= 20 (the anchor runs oidc-provider 9 on Node 20)"),
        ("npm", "npm (comes with Node.js)"),
        ("openssl", "apt-get install -y openssl (the anchor's scripts/make-pki.sh uses it)"),
        ("curl", "apt-get install -y curl (the anchor's scripts/servers.sh waits with it)"),
        ("timeout", "coreutils `timeout` (bounds every server's lifetime)"),
    ):
        if shutil.which(tool) is None:
            missing.append(f"{tool}: {hint}")
    if not (work / "scripts" / "bench.py").is_file() and not (anchor / "scripts" / "bench.py").is_file():
        missing.append(
            f"the bench anchor: {anchor}/scripts/bench.py not found (set --anchor or CERTBOUND_BENCH_ANCHOR)"
        )
    probe = subprocess.run(
        [sys.executable, "-m", "certbound", "--help"], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    if probe.returncode != 0:
        missing.append(f"certbound CLI ({sys.executable} -m server): run `make` targets from the venv")
    if missing:
        raise BenchError("missing prerequisites:\n  - " + "\n  - ".join(missing))


def _run_step(cmd: Sequence[str], cwd: Path, timeout: float, what: str) -> None:
    print(f"== {what}: {' '.join(cmd)}", flush=True)
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise BenchError(
            f"{what} failed ({result.returncode}):\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
        )


def prepare_workdir(anchor: Path, work: Path) -> None:
    """Copy the (read-only) anchor once, then `npm ci` and its PKI once; later runs reuse them."""
    if not (work / "scripts" / "bench.py").is_file():
        print(f"== copying the anchor {anchor} -> {work}", flush=True)
        shutil.copytree(
            anchor, work, ignore=shutil.ignore_patterns("node_modules", "run", "pki"), symlinks=True
        )
    else:
        print(f"== reusing the anchor copy in {work}", flush=True)
    if not (work / "node_modules" / "oidc-provider" / "package.json").is_file():
        _run_step(["npm", "ci", "--no-audit", "--no-fund"], work, 900, "npm ci")
    if not (work / "pki" / "client-ca.crt").is_file():
        _run_step(["scripts/make-pki.sh"], work, 300, "make PKI")
    (work / "run").mkdir(exist_ok=True)
    # Copied every run, so an edit takes effect; beside the anchor's node_modules (undici).
    (work / OWN_TOOLS_DIR).mkdir(exist_ok=True)
    for tool in OWN_TOOLS:
        shutil.copy(ROOT / "scripts" / tool, work / OWN_TOOLS_DIR / tool)


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


# ---------------------------------------------------------------- servers


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@dataclass(frozen=True)
class Deployment:
    """A certbound set-up measured under the same load (`--backends`): its database, its nodes."""

    name: str
    side: Side
    nodes: int = 1
    postgres: bool = False

    def settings(self, cb_dir: Path, database_url: str | None) -> list[str]:
        """The settings `serve` and `clients add` must agree on (database, master key, scopes, the
        federation file of `g-federated-ka`, written by `write_federation`)."""
        federation = ["--federation", str(cb_dir / "federation.toml")]
        if database_url is None:
            return ["--db", f"sqlite:///{cb_dir / 'bench.db'}", "--scopes", SCOPES, *federation]
        return [
            "--db",
            database_url,
            "--master-key-file",
            str(cb_dir / "master.key"),
            "--scopes",
            SCOPES,
            *federation,
        ]


def deployments(names: Sequence[str], port: int, pairing: Pairing) -> list[Deployment]:
    """certbound on SQLite (the default), on PostgreSQL, and two PostgreSQL nodes behind HAProxy
    (mode tcp), each with the pairing's workers per node, labelled for the pairing; each on its own
    port from `port` on (a cluster's nodes take the ports after it)."""
    known = {
        "sqlite": ("certbound", 1, False),
        "postgresql": ("certbound-pg", 1, True),
        "postgresql-2nodes": ("certbound-pg-x2", 2, True),
    }
    chosen: list[Deployment] = []
    for name in names:
        if name not in known:
            raise BenchError(f"unknown backend {name!r}: choose from {', '.join(known)}")
        base, nodes, postgres = known[name]
        label = pairing.certbound_label(base)
        chosen.append(Deployment(name, Side(label, label, port), nodes, postgres))
        port += 1 + (nodes if nodes > 1 else 0)
    return chosen


def postgres_sql(admin_url: str, sql: str) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "postgres_sql.py"), admin_url, sql],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0:
        raise BenchError(f"PostgreSQL at {admin_url}: {sql}: {result.stderr.strip()}")


def database_url(admin_url: str, name: str) -> str:
    parts = urllib.parse.urlsplit(admin_url)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))


# One process whose children are the given commands, so the anchor harness samples the CPU of a
# whole cluster (its nodes and HAProxy) under one PID; SIGTERM is passed on to every child.
_PROCESS_GROUP = """
import json, signal, subprocess, sys
children = [
    subprocess.Popen(c["cmd"], stdout=open(c["out"], "wb"), stderr=open(c["err"], "wb"))
    for c in json.loads(sys.argv[1])
]
def stop(signum, frame):
    for child in children:
        child.terminate()
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
for child in children:
    child.wait()
"""


def _haproxy_config(port: int, node_ports: Sequence[int]) -> str:
    """TCP passthrough (mTLS ends at certbound), round robin over the nodes' connections."""
    servers = "\n".join(f"    server n{n} 127.0.0.1:{p}" for n, p in enumerate(node_ports, 1))
    return (
        "global\n    maxconn 4096\n"
        "defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 65s\n    timeout server 65s\n"
        f"frontend certbound\n    bind 127.0.0.1:{port}\n    default_backend nodes\n"
        f"backend nodes\n    balance roundrobin\n{servers}\n"
    )


@dataclass
class _Started:
    """A certbound deployment's root process (under `timeout`) and where its output goes."""

    process: subprocess.Popen[bytes]
    log: Path
    what: str


@dataclass
class Servers:
    """The servers under test; `stop()` ends each by the PID this script recorded, nothing else."""

    work: Path
    op: Side | None = None
    op_pid: int | None = None
    certbound: list[_Started] = field(default_factory=list)

    @property
    def cb_process(self) -> subprocess.Popen[bytes] | None:
        """The first certbound started (the one compared with oidc-provider)."""
        return self.certbound[0].process if self.certbound else None

    def start_oidc_provider(self, op: Side, lifetime: int) -> None:
        """The anchor's `op1` or `op2` (its scripts/servers.sh fixes their ports, 8443 and 8444)."""
        env = {**os.environ, "LIFETIME": str(lifetime)}
        print(f"== starting oidc-provider ({op.server}) on 127.0.0.1:{op.port}", flush=True)
        self.op = op
        result = subprocess.run(
            ["scripts/servers.sh", "start", op.server],
            cwd=self.work,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        with contextlib.suppress(OSError, ValueError):
            self.op_pid = int(self._op_file("pid").read_text().split()[0])
        if result.returncode != 0 or self.op_pid is None or not _alive(self.op_pid):
            raise BenchError(f"oidc-provider did not start:\n{result.stdout}{result.stderr}")
        print(f"   {result.stdout.strip()}", flush=True)

    def start_certbound(
        self,
        cb_dir: Path,
        pki: Path,
        port: int,
        lifetime: int,
        workers: int = 1,
        settings: Sequence[str] | None = None,
    ) -> None:
        """One `certbound serve` (SQLite in `cb_dir` unless `settings` names another database)."""
        cmd = ["timeout", str(lifetime), *_serve_cmd(pki, port, port, workers, settings, cb_dir)]
        print(f"== starting certbound on 127.0.0.1:{port}", flush=True)
        self._start(cmd, cb_dir, f"certbound on :{port}", [cb_dir / "stdout.log"])

    def start_cluster(
        self,
        cb_dir: Path,
        pki: Path,
        port: int,
        lifetime: int,
        settings: Sequence[str],
        nodes: int,
        workers: int = 1,
    ) -> None:
        """`nodes` certbound nodes on the ports after `port`, behind HAProxy (mode tcp) on `port`,
        all children of one process (its pidfile covers the cluster's CPU)."""
        node_ports = [port + n for n in range(1, nodes + 1)]
        (cb_dir / "haproxy.cfg").write_text(_haproxy_config(port, node_ports))
        children: list[dict[str, Any]] = [
            {
                "cmd": _serve_cmd(pki, node_port, port, workers, settings, cb_dir),
                "out": str(cb_dir / f"node{n}.stdout.log"),
                "err": str(cb_dir / f"node{n}.stderr.log"),
            }
            for n, node_port in enumerate(node_ports, 1)
        ]
        children.append(
            {
                "cmd": ["haproxy", "-db", "-f", str(cb_dir / "haproxy.cfg")],
                "out": str(cb_dir / "haproxy.log"),
                "err": str(cb_dir / "haproxy.log"),
            }
        )
        cmd = ["timeout", str(lifetime), sys.executable, "-c", _PROCESS_GROUP, json.dumps(children)]
        print(f"== starting {nodes} certbound nodes on :{node_ports} behind HAProxy on :{port}", flush=True)
        ready = [Path(child["out"]) for child in children[:-1]]
        self._start(cmd, cb_dir, f"certbound x{nodes} behind HAProxy on :{port}", ready)
        deadline = time.monotonic() + 30
        while not port_in_use(port):
            if time.monotonic() > deadline:
                raise BenchError(f"HAProxy is not listening on :{port}; see {cb_dir / 'haproxy.log'}")
            time.sleep(0.1)

    def start_command(self, cmd: list[str], directory: Path, what: str) -> None:
        """Another server process (scripts/http_ceiling.py's devices), stopped and checked like
        certbound: it prints `listening on` to stdout when ready."""
        self._start(cmd, directory, what, [directory / "stdout.log"])

    def _start(self, cmd: list[str], cb_dir: Path, what: str, ready: list[Path]) -> None:
        log = cb_dir / "stderr.log"
        with (cb_dir / "stdout.log").open("wb") as out, log.open("wb") as err:
            process = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=ROOT)
        started = _Started(process, log, what)
        self.certbound.append(started)
        (cb_dir / "certbound.pid").write_text(f"{process.pid}\n")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if all(path.is_file() and "listening on" in path.read_text(errors="replace") for path in ready):
                print(f"   {what} up (pid {process.pid}, logs in {cb_dir})", flush=True)
                return
            if process.poll() is not None:
                break
            time.sleep(0.1)
        logs = "".join(path.read_text(errors="replace")[-2000:] for path in cb_dir.glob("*.log"))
        raise BenchError(f"{what} did not print `listening on`; logs:\n{logs}")

    def check_alive(self) -> None:
        if self.op_pid is not None and not _alive(self.op_pid):
            log = self._op_file("log").read_text(errors="replace")[-2000:]
            raise BenchError(f"oidc-provider (pid {self.op_pid}) died during the run; log:\n{log}")
        for started in self.certbound:
            if started.process.poll() is not None:
                log = started.log.read_text(errors="replace")[-3000:]
                raise BenchError(
                    f"{started.what} (pid {started.process.pid}) died during the run; log:\n{log}"
                )

    def stop(self) -> None:
        for started in self.certbound:
            if started.process.poll() is None:
                # SIGTERM to the `timeout` wrapper, which forwards it: certbound drains and exits 0.
                started.process.terminate()
                try:
                    started.process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    started.process.kill()
                    started.process.wait(timeout=5)
                print(f"== stopped {started.what} (pid {started.process.pid})", flush=True)
        if self.op_pid is not None and _alive(self.op_pid):
            os.kill(self.op_pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while _alive(self.op_pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(self.op_pid):
                os.kill(self.op_pid, signal.SIGKILL)
            print(f"== stopped oidc-provider (pid {self.op_pid})", flush=True)
        if self.op_pid is not None:
            self._op_file("pid").unlink(missing_ok=True)

    def _op_file(self, suffix: str) -> Path:
        """servers.sh's run/NAME.pid and run/NAME.log of the oidc-provider started."""
        assert self.op is not None
        return self.work / "run" / f"{self.op.server}.{suffix}"


def _serve_cmd(
    pki: Path, port: int, issuer_port: int, workers: int, settings: Sequence[str] | None, cb_dir: Path
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "certbound",
        "serve",
        *(settings if settings is not None else _certbound_settings(cb_dir)),
        "--issuer",
        f"https://localhost:{issuer_port}",
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
        "--tls-cert",
        str(pki / "server.crt"),
        "--tls-key",
        str(pki / "server.key"),
        "--client-ca",
        str(pki / "client-ca.crt"),
        "--token-lifetime",
        str(TOKEN_LIFETIME),
        "--drain-timeout",
        "2",
        *(["--workers", str(workers)] if workers != 1 else []),
    ]


def _certbound_settings(cb_dir: Path) -> list[str]:
    """The settings `serve` and `clients add` must agree on (database, scopes), with SQLite."""
    return Deployment("sqlite", Side("certbound", "certbound", CB_PORT)).settings(cb_dir, None)


# ---------------------------------------------------------------- clients


def _openssl(*args: str) -> str:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, check=True, timeout=30).stdout


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _p256_jwk(spki_pem: str) -> dict[str, Any]:
    """Public JWK (RFC 7518 §6.2) of a P-256 key given as a PEM SubjectPublicKeyInfo."""
    body = "".join(line for line in spki_pem.splitlines() if line and not line.startswith("-----"))
    der = base64.b64decode(body)
    if len(der) != len(_P256_SPKI_PREFIX) + 64 or not der.startswith(_P256_SPKI_PREFIX):
        raise BenchError("expected an uncompressed P-256 public key (the anchor's PKI is ECDSA P-256)")
    point = der[len(_P256_SPKI_PREFIX) :]
    return {"kty": "EC", "crv": "P-256", "x": _b64url(point[:32]), "y": _b64url(point[32:])}


def _cert_der(pem_file: Path) -> bytes:
    match = _PEM_CERT.search(pem_file.read_bytes())
    if match is None:
        raise BenchError(f"no certificate in {pem_file}")
    return ssl.PEM_cert_to_DER_cert(match.group(0).decode("ascii"))


@dataclass(frozen=True)
class ClientSpec:
    method: str
    metadata: dict[str, Any]
    secret: str | None = None


def _pkjwt_key(pki: Path, scenarios: Sequence[dict[str, Any]]) -> dict[str, Any]:
    key = _p256_jwk(_openssl("pkey", "-in", str(pki / "pkjwt-client.key"), "-pubout"))
    kid = next((str(s["pkjwt_kid"]) for s in scenarios if s.get("pkjwt_kid")), "pkjwt-1")
    key.update(use="sig", alg="ES256", kid=kid)
    return key


def write_federation(cb_dir: Path, pki: Path, scenarios: Sequence[dict[str, Any]]) -> None:
    """The `--federation` file of `g-federated-ka`: one issuer whose tokens loadgen.mjs signs with
    the pkjwt key (iss = the client_id), its key set a `jwks_file`; audience: the server's issuer."""
    client_id = CERTBOUND_ONLY["g-federated-ka"][2]
    (cb_dir / "platform-jwks.json").write_text(json.dumps({"keys": [_pkjwt_key(pki, scenarios)]}))
    (cb_dir / "federation.toml").write_text(
        f'[[issuer]]\nname = "{FEDERATED_ISSUER}"\nissuer = "{client_id}"\njwks_file = "platform-jwks.json"\n'
    )


def client_specs(pki: Path, scenarios: Sequence[dict[str, Any]]) -> dict[str, ClientSpec]:
    """The anchor's four clients (its server.mjs), as RFC 7591 metadata for `certbound clients add`,
    and `fed-client` (federated_jwt) for `g-federated-ka`."""
    common = {"grant_types": ["client_credentials"], "scope": CLIENT_SCOPE}
    subject = _openssl("x509", "-in", str(pki / "client1.crt"), "-noout", "-subject", "-nameopt", "RFC2253")
    selfsigned_key = _p256_jwk(_openssl("x509", "-in", str(pki / "selfsigned.crt"), "-noout", "-pubkey"))
    selfsigned_key.update(
        use="sig", x5c=[base64.b64encode(_cert_der(pki / "selfsigned.crt")).decode("ascii")]
    )
    pkjwt_key = _pkjwt_key(pki, scenarios)
    secret = next((str(s["basic"]).split(":", 1)[1] for s in scenarios if s.get("basic")), "bench-secret")
    specs = {
        "mtls-client": ClientSpec(
            "tls_client_auth",
            {"tls_client_auth_subject_dn": subject.strip().removeprefix("subject="), **common},
        ),
        "selfsigned-client": ClientSpec(
            "self_signed_tls_client_auth", {"jwks": {"keys": [selfsigned_key]}, **common}
        ),
        "basic-client": ClientSpec("client_secret_basic", dict(common), secret=secret),
        "pkjwt-client": ClientSpec(
            "private_key_jwt",
            {"jwks": {"keys": [pkjwt_key]}, "token_endpoint_auth_signing_alg": "ES256", **common},
        ),
        "fed-client": ClientSpec(
            "federated_jwt",
            {"federated_issuer": FEDERATED_ISSUER, "federated_claims": {"sub": "fed-client"}, **common},
        ),
    }
    for client_id, spec in specs.items():
        spec.metadata["token_endpoint_auth_method"] = spec.method
        spec.metadata.setdefault("client_name", client_id)
    return specs


def register_clients(
    cb_dir: Path, specs: dict[str, ClientSpec], wanted: set[str], settings: Sequence[str] | None = None
) -> dict[str, str]:
    """Register each wanted client; returns client_id -> reason for the ones that could not be."""
    settings = settings if settings is not None else _certbound_settings(cb_dir)
    refused: dict[str, str] = {}
    for client_id in sorted(wanted):
        spec = specs.get(client_id)
        if spec is None:
            refused[client_id] = "unknown client (not one of the anchor's four)"
            continue
        data = cb_dir / f"{client_id}.json"
        data.write_text(json.dumps(spec.metadata, indent=2))
        cmd = [sys.executable, "-m", "certbound", "clients", "add", *settings]
        cmd += ["--client-id", client_id, "--data", str(data)]
        if spec.secret is not None:
            cmd += ["--secret", spec.secret]
        result = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=60)
        if result.returncode == 0:
            print(f"   registered {client_id} ({spec.method})", flush=True)
        elif _NOT_SUPPORTED in result.stderr:
            refused[client_id] = f"skipped: method not supported yet ({spec.method})"
            print(f"   {client_id}: {refused[client_id]}", flush=True)
        else:
            refused[client_id] = f"registration failed: {result.stderr.strip() or result.stdout.strip()}"
            print(f"   !!! {client_id}: {refused[client_id]}", flush=True)
    return refused


def client_of(scenario: dict[str, Any]) -> str:
    if scenario.get("pkjwt_client"):
        return str(scenario["pkjwt_client"])
    if scenario.get("basic"):
        return str(scenario["basic"]).split(":", 1)[0]
    ids = urllib.parse.parse_qs(str(scenario["body"])).get("client_id")
    if not ids:
        raise BenchError(f"{scenario['name']}: cannot tell which client it uses")
    return ids[0]


# ---------------------------------------------------------------- one functional request per scenario


@dataclass(frozen=True)
class Probe:
    ok: bool
    detail: str


def _probe(work: Path, scenario: dict[str, Any]) -> Probe:
    """One request shaped like the scenario's load; a 200 must be an ES256 JWT, cert-bound when mTLS."""
    url = urllib.parse.urlsplit(str(scenario["url"]))
    context = ssl.create_default_context(cafile=str(work / "pki" / "server-ca.crt"))
    cert_file: Path | None = None
    if scenario.get("cert_pem"):
        cert_file = work / str(scenario["cert_pem"])
        context.load_cert_chain(cert_file)
    elif scenario.get("cert") and scenario.get("key"):
        cert_file = work / str(scenario["cert"])
        context.load_cert_chain(cert_file, work / str(scenario["key"]))
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if scenario.get("basic"):
        headers["Authorization"] = "Basic " + base64.b64encode(str(scenario["basic"]).encode()).decode()
    jkt: str | None = None
    if scenario.get("tool") == "dpop":
        made = json.loads(
            subprocess.run(
                ["node", _dpop_loadgen(work), "--print-proof", "--htu", str(scenario["htu"])],
                capture_output=True,
                text=True,
                check=True,
                timeout=30,
            ).stdout
        )
        headers["DPoP"], jkt = made["proof"], made["jkt"]
        headers["Host"] = urllib.parse.urlsplit(str(scenario["htu"])).netloc
    body = str(scenario["body"])
    if scenario.get("pkjwt_client"):
        assertion = subprocess.run(
            ["node", "scripts/make-assertion.mjs", str(scenario["pkjwt_client"]), str(scenario["pkjwt_aud"])],
            cwd=work,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()
        body += "&" + urllib.parse.urlencode(
            {
                "client_id": scenario["pkjwt_client"],
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": assertion,
            }
        )
    return probe_token(url, context, headers, body, cert_file, jkt)


def probe_token(
    url: urllib.parse.SplitResult,
    context: ssl.SSLContext,
    headers: dict[str, str],
    body: str,
    cert_file: Path | None,
    jkt: str | None,
) -> Probe:
    """POST one token request; ok for a 200 with an ES256 JWT access token, bound to the client
    certificate in `cert_file` (mTLS) or to the DPoP key `jkt` when given. bench_methods.py's
    probes use it too."""
    connection = http.client.HTTPSConnection(
        url.hostname or "127.0.0.1", url.port, context=context, timeout=10
    )
    try:
        connection.request("POST", url.path, body=body, headers=headers)
        response = connection.getresponse()
        status, text = response.status, response.read().decode(errors="replace")
    except (OSError, http.client.HTTPException) as exc:
        return Probe(False, f"request failed: {exc}")
    finally:
        connection.close()
    if status != 200:
        return Probe(False, f"HTTP {status}: {text[:300]}")
    return _check_token(text, cert_file, jkt)


def _check_token(text: str, cert_file: Path | None, jkt: str | None = None) -> Probe:
    try:
        answer = json.loads(text)
        token = answer["access_token"]
        header_b64, payload_b64, _ = token.split(".")
        header = json.loads(base64.urlsafe_b64decode(header_b64 + "=" * (-len(header_b64) % 4)))
        claims = json.loads(base64.urlsafe_b64decode(payload_b64 + "=" * (-len(payload_b64) % 4)))
    except (ValueError, KeyError, TypeError) as exc:
        return Probe(False, f"200 but not a JWT access token response ({exc}): {text[:200]}")
    notes = [f"200, {header.get('alg')} JWT, {len(text)} bytes"]
    ok = header.get("alg") == "ES256"
    if cert_file is not None:
        expected = _b64url(hashlib.sha256(_cert_der(cert_file)).digest())
        bound = claims.get("cnf", {}).get("x5t#S256")
        ok = ok and bound == expected
        notes.append(
            "cnf.x5t#S256 matches the client cert" if bound == expected else f"cnf is {claims.get('cnf')}"
        )
    if jkt is not None:
        dpop_bound = (
            str(answer.get("token_type")).lower() == "dpop" and claims.get("cnf", {}).get("jkt") == jkt
        )
        ok = ok and dpop_bound
        notes.append(
            "token_type DPoP, cnf.jkt matches the proof's key"
            if dpop_bound
            else f"cnf is {claims.get('cnf')}"
        )
    return Probe(ok, ", ".join(notes))


# ---------------------------------------------------------------- load runs


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"cannot write {value!r} to TOML")


def _write_scenarios(
    path: Path, defaults: dict[str, Any], pidfiles: dict[str, Path], runs: list[dict[str, Any]]
) -> None:
    lines = ["# Written by certbound scripts/bench_anchor.py for one rep; see run/bench-*.md.", "[defaults]"]
    lines += [f"{key} = {_toml_value(value)}" for key, value in defaults.items()]
    for server, pidfile in pidfiles.items():
        lines += ["", f"[servers.{server}]", f"pidfile = {_toml_value(str(pidfile))}"]
    for run in runs:
        lines += ["", "[[scenario]]"]
        lines += [f"{key} = {_toml_value(value)}" for key, value in run.items() if not key.startswith("_")]
    path.write_text("\n".join(lines) + "\n")


def _side_scenario(base: dict[str, Any], side: Side) -> dict[str, Any]:
    run = dict(base)
    run["name"] = f"{base['name']}@{side.label}"
    run["desc"] = f"{side.label}: {base.get('desc', '')}"
    run["server"] = side.server
    url = urllib.parse.urlsplit(str(base["url"]))
    run["url"] = urllib.parse.urlunsplit(url._replace(netloc=f"{url.hostname}:{side.port}"))
    if "pkjwt_aud" in base:
        run["pkjwt_aud"] = f"https://localhost:{side.port}"
    if run["tool"] == "dpop":
        # The URL both servers see (the loadgen sends Host: localhost:PORT): oidc-provider expects
        # the request's own URL, certbound its token endpoint under the issuer, the same here.
        run["htu"] = f"https://localhost:{side.port}/token"
    return run


def _dpop_loadgen(work: Path) -> str:
    return str(work / OWN_TOOLS_DIR / DPOP_LOADGEN.name)


def load_anchor_harness(work: Path) -> ModuleType:
    """The anchor's scripts/bench.py as a module: its CPU window and child runner measure our own
    tool exactly as they measure loadgen.mjs (and profile_token.py drives the benchmark's load)."""
    spec = importlib.util.spec_from_file_location("anchor_bench", work / "scripts" / "bench.py")
    if spec is None or spec.loader is None:
        raise BenchError(f"cannot load {work / 'scripts' / 'bench.py'}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_own_tool(
    work: Path, harness: ModuleType, run: dict[str, Any], defaults: dict[str, Any], pidfile: Path
) -> dict[str, Any]:
    """One measured run of dpop_loadgen.mjs, recorded like the harness records loadgen.mjs runs:
    the server's CPU over the measured window (sampling starts after the warm-up, +0.3 s for node
    to start), the load generator's CPU from its rusage."""
    duration, warmup = float(defaults["duration"]), float(defaults["warmup"])
    cmd = [
        "node", _dpop_loadgen(work), "--url", str(run["url"]), "--htu", str(run["htu"]),
        "--basic", str(run["basic"]), "--body", str(run["body"]), "--conns", str(defaults["conns"]),
        "--duration", str(duration), "--warmup", str(warmup),
    ]  # fmt: skip
    roots = [int(pidfile.read_text().split()[0])]
    record: dict[str, Any] = {key: run.get(key) for key in ("name", "desc", "tool", "mode", "url", "server")}
    record["conns"] = defaults["conns"]
    return measure_own_tool(harness, cmd, roots, warmup, duration, record)


def measure_own_tool(
    harness: ModuleType,
    cmd: list[str],
    roots: list[int],
    warmup: float,
    duration: float,
    record: dict[str, Any],
) -> dict[str, Any]:
    """Run one of our node load generators (`cmd`, which prints a JSON summary last) and add to
    `record` what the anchor's harness records for loadgen.mjs: the servers' CPU (`roots` and their
    descendants) over the measured window, sampled from the end of the warm-up (+0.3 s for node to
    start), and the generator's own CPU from its rusage. bench_methods.py measures with it too."""
    record.update(ts=time.strftime("%Y-%m-%dT%H:%M:%S"), duration=duration, warmup=warmup)
    window: dict[str, Any] = {}

    def sample() -> None:
        time.sleep(warmup + 0.3)
        window["cpu"] = harness.CpuWindow(roots).__enter__()

    sampler = threading.Thread(target=sample)
    sampler.start()
    started = time.monotonic()
    rc, out, err, cpu = harness.run_child(cmd, duration + warmup + 60)
    wall = time.monotonic() - started
    sampler.join()
    measured = window["cpu"].stop()
    try:
        record.update(json.loads(out.strip().splitlines()[-1]))
    except (ValueError, IndexError):
        record["requests"] = 0
    record["failed"] = record.pop("errors", 0)
    record["loadgen_cpu_pct"] = round(100.0 * cpu / wall, 1)
    record.update({key: value for key, value in measured.items() if key != "window_s"})
    record.update(rc=rc, cmd=shlex.join(cmd))
    if rc != 0 or not record.get("requests"):
        record["stderr_tail"] = (err or out)[-500:]
    return record


@contextlib.contextmanager
def _child_group(cmd: Sequence[str], cwd: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run the harness in its own process group so that an abort stops it and its ab/node children."""
    process = subprocess.Popen(cmd, cwd=cwd, start_new_session=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)


def _run_harness(
    work: Path,
    toml_path: Path,
    rep_out: Path,
    defaults: dict[str, Any],
    pidfiles: dict[str, Path],
    runs: list[dict[str, Any]],
    rep: int,
    per_run: float,
) -> None:
    """The anchor's own harness (ab, loadgen.mjs) for one rep of `runs`, into `rep_out`."""
    _write_scenarios(toml_path, defaults, pidfiles, runs)
    cmd = [sys.executable, "scripts/bench.py", "run", str(toml_path), "--out", str(rep_out), "--reps", "1"]
    with _child_group(cmd, work) as process:
        try:
            process.wait(timeout=per_run * len(runs) + 60)
        except subprocess.TimeoutExpired as exc:
            raise BenchError(f"rep {rep} overran its time budget") from exc
    if process.returncode != 0:
        raise BenchError(f"the anchor harness failed in rep {rep} (exit {process.returncode})")


def _run_reps(
    work: Path,
    servers: Servers,
    groups: list[list[dict[str, Any]]],
    defaults: dict[str, Any],
    pidfiles: dict[str, Path],
    reps: int,
    out: Path,
    pairing: str,
) -> None:
    """Each group is one scenario on every server (oidc-provider first, then each certbound); each
    record is appended to `out` with its rep and pairing."""
    per_run = float(defaults["warmup"]) + float(defaults["duration"]) + 70
    for rep in range(1, reps + 1):
        # Rotate which server goes first, so none always follows another's load.
        runs = [
            run
            for group in groups
            for run in group[(rep - 1) % len(group) :] + group[: (rep - 1) % len(group)]
        ]
        toml_path = work / "run" / "certbound-vs-op.toml"
        rep_out = work / "run" / f"rep-{rep}.jsonl"
        rep_out.unlink(missing_ok=True)
        own = [run for run in runs if run["tool"] == "dpop"]
        runs = [run for run in runs if run["tool"] != "dpop"]
        print(f"== rep {rep}/{reps}: {len(runs) + len(own)} runs", flush=True)
        if runs:
            _run_harness(work, toml_path, rep_out, defaults, pidfiles, runs, rep, per_run)
        if own:
            harness = load_anchor_harness(work)
            with rep_out.open("a") as records:
                for run in own:
                    record = _run_own_tool(work, harness, run, defaults, pidfiles[run["server"]])
                    records.write(json.dumps(record) + "\n")
                    print(
                        f"[rep {rep}] {run['name']:<28} {record.get('rps') or 0:>9.1f} req/s  "
                        f"p50 {record.get('p50_ms')}  p99 {record.get('p99_ms')} ms  "
                        f"fail {record.get('failed')} non2xx {record.get('non2xx')}  "
                        f"srvCPU {record.get('server_cpu_pct')}%  genCPU {record.get('loadgen_cpu_pct')}%",
                        file=sys.stderr,
                        flush=True,
                    )
        with out.open("a") as merged:
            for line in rep_out.read_text().splitlines():
                if line.strip():
                    record = json.loads(line)
                    record.update(rep=rep, pairing=pairing)
                    merged.write(json.dumps(record) + "\n")
        servers.check_alive()


def _describe(deployment: Deployment) -> str:
    database = "PostgreSQL" if deployment.postgres else "SQLite"
    return f"{database}, {deployment.nodes} nodes behind HAProxy" if deployment.nodes > 1 else database


def _version(cmd: Sequence[str], cwd: Path = ROOT) -> str:
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return (result.stdout.strip() or result.stderr.strip()).splitlines()[0] if result.returncode == 0 else "?"


def _environment(work: Path, defaults: dict[str, Any], reps: int, pairings: Sequence[Pairing]) -> list[str]:
    commit = _version(["git", "describe", "--always", "--dirty"])
    node = _version(["node", "--version"])
    op_version = _version(
        ["node", "-p", "require('./node_modules/oidc-provider/package.json').version"], work
    )
    ab_version = re.search(r"Version (\S+)", _version(["ab", "-V"]))
    ab = f"ab {ab_version.group(1) if ab_version else '?'}"
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    return [
        f"- certbound `{commit}` (Python {sys.version.split()[0]}) vs oidc-provider {op_version} on "
        f"Node {node}; {ab}",
        *(f"- pairing {pairing.name}: {pairing.describe()}" for pairing in pairings),
        f"- load: {defaults['conns']} connections closed loop, {defaults['warmup']} s warm-up + "
        f"{defaults['duration']} s measured, {reps} rep(s), scenarios interleaved, server order rotating "
        "per rep; medians (min-max); one pairing after the other, never two at once",
        f"- machine: {os.cpu_count()} CPUs, load average at start {load}",
        "- tokens/s counts HTTP 200 responses only; CPU ms/token = server process-tree CPU / tokens",
    ]


# ---------------------------------------------------------------- main


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--pairings",
        default=DEFAULT_PAIRINGS,
        help=f"comma-separated, run in turn (default {DEFAULT_PAIRINGS}): "
        + "; ".join(f"{pairing.name} = {pairing.describe()}" for pairing in PAIRINGS.values()),
    )
    parser.add_argument("--reps", type=int, help="repetitions (default 3; 1 with --quick)")
    parser.add_argument(
        "--only", help="comma-separated scenario-name prefixes, e.g. a-,c- (within each pairing's scenarios)"
    )
    parser.add_argument("--quick", action="store_true", help="development mode: 1 rep of 5 s measured")
    parser.add_argument("--duration", type=float, help="measured seconds per run (anchor default 12)")
    parser.add_argument("--warmup", type=float, help="warm-up seconds per run (anchor default 3)")
    parser.add_argument(
        "--port",
        type=int,
        default=CB_PORT,
        help=f"certbound's port in 1v1 (default {CB_PORT}); 2v2 uses the port after it",
    )
    parser.add_argument(
        "--backends",
        default="sqlite",
        help="certbound deployments measured in the same run, in each pairing, comma-separated: sqlite "
        "(default), postgresql, postgresql-2nodes (two nodes behind HAProxy, mode tcp); the first is "
        "compared with oidc-provider in the pairing's table, all of them in a second one",
    )
    parser.add_argument(
        "--postgres",
        default=DEFAULT_POSTGRES,
        metavar="URL",
        help="PostgreSQL server the postgresql backends create their (fresh, then dropped) databases on "
        f"(default {DEFAULT_POSTGRES}, or CERTBOUND_BENCH_POSTGRES)",
    )
    parser.add_argument("--anchor", type=Path, default=DEFAULT_ANCHOR, help="the shared anchor (read only)")
    parser.add_argument(
        "--workdir", type=Path, default=DEFAULT_WORKDIR, help="git-ignored copy of the anchor"
    )
    args = parser.parse_args(argv)
    try:
        args.pairings = parse_pairings(args.pairings)
    except ValueError as exc:
        parser.error(f"--pairings: {exc}")
    if args.reps is None:
        args.reps = 1 if args.quick else 3
    if args.quick and args.duration is None:
        args.duration = 5.0
    if args.reps < 1:
        parser.error("--reps must be >= 1")
    return args


def _catalogue(work: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The anchor's [defaults] and every scenario by name: its own, ours (`f-dpop-ka`) and
    certbound's alone (`g-federated-ka`)."""
    config = tomllib.loads((work / "scenarios" / "oidc-provider.toml").read_text())
    by_name = {scenario["name"]: scenario for scenario in config["scenario"]}
    by_name[DPOP_SCENARIO["name"]] = DPOP_SCENARIO
    for name, (load, _, client_id) in CERTBOUND_ONLY.items():
        if load in by_name:
            by_name[name] = {
                **by_name[load],
                "name": name,
                "desc": f"federated_jwt: {by_name[load].get('desc', load)}, as a platform token",
                "pkjwt_client": client_id,
            }
    return dict(config["defaults"]), by_name


@dataclass(frozen=True)
class _Plan:
    """What one pairing measures: its scenarios (after `--only`) and its certbound deployments."""

    pairing: Pairing
    bases: list[dict[str, Any]]
    deployments: list[Deployment]

    @property
    def ports(self) -> list[int]:
        return [self.pairing.op.port] + [
            d.side.port + n for d in self.deployments for n in range(d.nodes + (d.nodes > 1))
        ]

    @property
    def runs_per_rep(self) -> int:
        """A run per scenario and server (oidc-provider sits out certbound's own scenarios)."""
        sides = len(self.deployments)
        return sum(sides + (base["name"] not in CERTBOUND_ONLY) for base in self.bases)


def _plans(args: argparse.Namespace, catalogue: dict[str, dict[str, Any]]) -> list[_Plan]:
    prefixes = args.only.split(",") if args.only else [""]
    plans: list[_Plan] = []
    for pairing in args.pairings:
        names = [name for name in pairing.scenarios if any(name.startswith(p) for p in prefixes)]
        if not names:
            print(f"== pairing {pairing.name}: --only {args.only} selects none of its scenarios "
                  f"({', '.join(pairing.scenarios)}); skipped", flush=True)  # fmt: skip
            continue
        missing = [name for name in names if name not in catalogue]
        if missing:
            raise BenchError(f"the anchor has no scenario {', '.join(missing)}")
        port = args.port + pairing.port_offset
        chosen = deployments(args.backends.split(","), port, pairing)
        plans.append(_Plan(pairing, [catalogue[name] for name in names], chosen))
    if not plans:
        every = dict.fromkeys(name for pairing in args.pairings for name in pairing.scenarios)
        raise BenchError(f"--only {args.only} selects none of {', '.join(every)}")
    return plans


@dataclass(frozen=True)
class _Context:
    """What every pairing of the run shares."""

    work: Path
    defaults: dict[str, Any]
    reps: int
    raw: Path
    postgres: str

    @property
    def seconds_per_run(self) -> float:
        return float(self.defaults["warmup"]) + float(self.defaults["duration"]) + 2


def _measure(ctx: _Context, plan: _Plan) -> dict[str, Outcome]:
    """One pairing: start its two servers (and the other `--backends`), register the clients,
    check each scenario with one request per server, run the reps, stop every server it started."""
    work, pairing, chosen, bases = ctx.work, plan.pairing, plan.deployments, plan.bases
    pki = work / "pki"
    cb = chosen[0].side
    budget = plan.runs_per_rep * ctx.reps * ctx.seconds_per_run
    lifetime = int(2 * budget + 600)  # servers die on their own even if this script is killed
    print(
        f"== pairing {pairing.name}: {pairing.describe()}; {len(bases)} scenario(s), "
        f"{plan.runs_per_rep * ctx.reps} runs, about {budget / 60:.1f} min of load",
        flush=True,
    )
    servers = Servers(work)
    outcomes = {base["name"]: Outcome(base["name"], pairing.op.label, cb.label) for base in bases}
    databases: list[str] = []
    try:
        servers.start_oidc_provider(pairing.op, lifetime)
        wanted = {client_of(base) for base in bases}
        refused_by: dict[str, dict[str, str]] = {}
        pidfiles = {pairing.op.server: work / "run" / f"{pairing.op.server}.pid"}
        for deployment in chosen:
            cb_dir = work / "certbound" / pairing.name / deployment.name
            cb_dir.mkdir(parents=True)
            write_federation(cb_dir, pki, bases)
            url = None
            if deployment.postgres:
                name = f"certbound_bench_{pairing.name}_{deployment.name.replace('-', '_')}_{os.getpid()}"
                postgres_sql(ctx.postgres, f'CREATE DATABASE "{name}"')
                databases.append(name)
                url = database_url(ctx.postgres, name)
            settings = deployment.settings(cb_dir, url)
            port = deployment.side.port
            if deployment.nodes > 1:
                servers.start_cluster(
                    cb_dir, pki, port, lifetime, settings, deployment.nodes, pairing.workers
                )
            else:
                servers.start_certbound(cb_dir, pki, port, lifetime, pairing.workers, settings)
            refused_by[deployment.side.label] = register_clients(
                cb_dir, client_specs(pki, bases), wanted, settings
            )
            pidfiles[deployment.side.server] = cb_dir / "certbound.pid"
        groups: list[list[dict[str, Any]]] = []
        print("== one request per scenario and server", flush=True)
        for base in bases:
            outcome = outcomes[base["name"]]
            reason = refused_by[cb.label].get(client_of(base))
            if reason:
                outcome.skipped = reason
                print(f"   {base['name']}: {reason}", flush=True)
                continue
            group = []
            if base["name"] not in CERTBOUND_ONLY:
                op_run = _side_scenario(base, pairing.op)
                op_probe = _probe(work, op_run)
                print(f"   {base['name']}: {pairing.op.label} {op_probe.detail}", flush=True)
                if not op_probe.ok:
                    outcome.skipped = f"skipped: oidc-provider answered {op_probe.detail}"
                    continue
                group.append(op_run)
            for deployment in chosen:
                run = _side_scenario(base, deployment.side)
                probe = _probe(work, run)
                print(f"   {base['name']}: {deployment.side.label} {probe.detail}", flush=True)
                if probe.ok and client_of(base) not in refused_by[deployment.side.label]:
                    group.append(run)
                    continue
                print(
                    f"   !!! {base['name']}: {deployment.side.label} DOES NOT ISSUE A VALID TOKEN: "
                    f"{probe.detail}"
                )
                if deployment.side == cb:
                    outcome.skipped = f"skipped: ⚠ certbound answered {probe.detail}"
                    break
            if outcome.skipped is None:
                groups.append(group)
        if groups:
            _run_reps(work, servers, groups, ctx.defaults, pidfiles, ctx.reps, ctx.raw, pairing.name)
            for line in ctx.raw.read_text().splitlines():
                record = json.loads(line)
                if record.get("pairing") == pairing.name:
                    base_name, _, label = record["name"].partition("@")
                    outcomes[base_name].stats(label).add(record)
            for outcome in outcomes.values():
                base = next(b for b in bases if b["name"] == outcome.name)
                for deployment in chosen:
                    if outcome.stats(deployment.side.label).errors:
                        again = _probe(work, _side_scenario(base, deployment.side))
                        print(
                            f"   !!! {outcome.name}: {deployment.side.label} errors; "
                            f"a request now gets: {again.detail}"
                        )
    finally:
        servers.stop()
        for name in databases:
            with contextlib.suppress(BenchError):
                postgres_sql(ctx.postgres, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return outcomes


def _report(
    ctx: _Context, plans: Sequence[_Plan], measured: Sequence[tuple[_Plan, dict[str, Outcome]]]
) -> list[str]:
    lines = [f"# certbound vs oidc-provider, {time.strftime('%Y-%m-%d %H:%M:%S')}", ""]
    lines += _environment(ctx.work, ctx.defaults, ctx.reps, [plan.pairing for plan in plans])
    compared_with = {name: reference for name, (_, reference, _) in CERTBOUND_ONLY.items()}
    for plan, outcomes in measured:
        shared = [outcome for outcome in outcomes.values() if outcome.name not in CERTBOUND_ONLY]
        lines += ["", *render_pairing(plan.pairing, shared), ""]
        lines += render_certbound_only(outcomes, compared_with)
        if len(plan.deployments) > 1:
            described = [(d.side.label, _describe(d)) for d in plan.deployments]
            lines += [
                f"### certbound deployments (`--backends`), pairing {plan.pairing.name}",
                "",
                *render_deployments(list(outcomes.values()), described),
                "",
                "CPU ms/token counts certbound's processes (and HAProxy for a cluster), not the "
                "PostgreSQL server's: a PostgreSQL row costs more CPU than its column says.",
                "",
            ]
    everything = [outcome for _, outcomes in measured for outcome in outcomes.values()]
    other = [
        value
        for outcome in everything
        for stats in (outcome.op, outcome.cb, *outcome.others.values())
        for value in stats.other_cpu
    ]
    if other and statistics.median(other) > _BUSY_OTHER_CPU:
        lines.append(
            f"⚠ the machine was busy with other work (median {statistics.median(other):.0f} % of a core "
            "outside both servers and the load generator): tokens/s and their ratio are noisy in this "
            "run; the per-core (CPU) ratio is the steadier comparison."
        )
    for outcome in everything:
        for label, stats in ((outcome.cb_label, outcome.cb), *outcome.others.items()):
            if stats.errors:
                lines.append(
                    f"**⚠ {label} answered {stats.errors} errors (non-200 or failed) out of "
                    f"{stats.requests} requests in `{outcome.name}`: its tokens/s counts only the 200s.**"
                )
    if ctx.raw.is_file():
        table = subprocess.run(
            [sys.executable, "scripts/bench.py", "table", str(ctx.raw)],
            cwd=ctx.work,
            capture_output=True,
            text=True,
            timeout=60,
        )
        lines += ["", "## Per-server detail (the anchor's `bench.py table`)", "", table.stdout.rstrip()]
        lines += ["", f"Raw: `{ctx.raw.relative_to(ROOT)}`"]
    return lines


def _raise_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def unwind_on_sigterm() -> None:
    """Make SIGTERM raise SystemExit, so the `finally` blocks that stop the servers a benchmark
    started (by their PIDs) run when the benchmark itself is stopped. Every script here uses it."""
    signal.signal(signal.SIGTERM, _raise_on_sigterm)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    unwind_on_sigterm()
    work: Path = args.workdir.resolve()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    report_md = ROOT / "run" / f"bench-{stamp}.md"
    try:
        check_prerequisites(args.anchor, work)
        if "postgresql-2nodes" in args.backends.split(",") and shutil.which("haproxy") is None:
            raise BenchError("haproxy is missing (apt-get install -y haproxy): postgresql-2nodes needs it")
        prepare_workdir(args.anchor, work)
        defaults, catalogue = _catalogue(work)
        for key in ("duration", "warmup"):
            if getattr(args, key) is not None:
                defaults[key] = getattr(args, key)
        defaults["reps"] = 1
        plans = _plans(args, catalogue)
        for port in sorted({port for plan in plans for port in plan.ports}):
            if port_in_use(port):
                raise BenchError(
                    f"127.0.0.1:{port} is already in use (a leftover server? `make run`?): free it first"
                )
    except BenchError as exc:
        print(f"bench_anchor: {exc}", file=sys.stderr)
        return 2

    shutil.rmtree(work / "certbound", ignore_errors=True)  # fresh databases and clients every run
    ctx = _Context(work, defaults, args.reps, ROOT / "run" / f"bench-{stamp}.jsonl", args.postgres)
    ctx.raw.parent.mkdir(parents=True, exist_ok=True)
    runs = sum(plan.runs_per_rep for plan in plans) * args.reps
    print(
        f"== pairings {', '.join(plan.pairing.name for plan in plans)}: {runs} runs of "
        f"{ctx.seconds_per_run:.0f} s, about {runs * ctx.seconds_per_run / 60:.1f} min of load"
    )
    measured: list[tuple[_Plan, dict[str, Outcome]]] = []
    failure: str | None = None
    try:
        for plan in plans:
            measured.append((plan, _measure(ctx, plan)))
    except BenchError as exc:
        failure = str(exc)
        print(f"bench_anchor: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        print("bench_anchor: interrupted", file=sys.stderr)
        return 130
    if not measured:
        return 2

    lines = _report(ctx, plans, measured)
    if failure is not None:
        not_run = [plan.pairing.name for plan in plans[len(measured) :]]
        lines.append(f"\n⚠ pairing {', '.join(not_run)} was not measured: {failure.splitlines()[0]}")
    text = "\n".join(lines) + "\n"
    report_md.write_text(text)
    print("\n" + text)
    print(f"written to {report_md.relative_to(ROOT)}")
    if failure is not None:
        return 2
    return 1 if any(outcome.cb_errors for _, outcomes in measured for outcome in outcomes.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
