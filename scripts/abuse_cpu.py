#!/usr/bin/env python3
"""Server CPU per abusive request (issue 9 findings 3 and 4), from /proc of a real `certbound serve`.

Starts `certbound serve` (one process, 127.0.0.1, a fresh SQLite database, trustme PKI) from a
source tree (this checkout by default; `--source DIR` for another, e.g. an unpacked older commit),
stores the attacker's client *directly in the database*, so that the same client is attacked
before and after a change that would refuse to register it, reports whether `certbound clients
add` accepts that client, then sends the attack sequentially and reads the server's utime+stime
from /proc/<pid>/stat around each round. Prints each round's CPU per request and the median.

Attacks:
  assertion-230    private_key_jwt, 230 copies of a huge-exponent RSA-3072 JWK (no kid), RS256
                   assertions without kid and with a junk signature (the issue's attack)
  assertion-max    the worst the key policy admits: 16 RSA-8192 keys with e = 2^32 + 1, each with a
                   kid; assertions name one kid and carry a junk signature (one verification each)
  assertion-nokid  the same 16 keys, assertions without kid (refused before any verification now)
  chain-8          tls_client_auth, a leaf sent with 8 self-issued intermediates that share one
                   name and one huge-exponent RSA-3072 key (the issue's path-building attack); all
                   requests of a round on one keep-alive connection
  chain-8-fresh    the same chain shape, a new leaf and a new TLS connection per request (so no
                   cache can answer); includes the handshake, so compare with `baseline-fresh`
  baseline-fresh   a valid tls_client_auth client through one intermediate, a new connection per
                   request: the handshake + token cost the chain-8-fresh figure contains

    .venv/bin/python scripts/abuse_cpu.py --attack assertion-230 --requests 10 --rounds 5
    .venv/bin/python scripts/abuse_cpu.py --attack chain-8 --source /tmp/cb-base

Every round opens one connection (a new one per request for the `-fresh` attacks); the request
that opens a keep-alive connection is not counted, so the assertion and chain-8 figures hold no
handshake. CPU time comes in clock ticks (10 ms): use enough requests per round for cheap attacks.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import secrets
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trustme
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the test suite's certificate builders make the attacker's PKI

from tests.unit.pki.builders import Issued, huge_exponent_key, issue, make_ca, name  # noqa: E402

ATTACKS = ("assertion-230", "assertion-max", "assertion-nokid", "chain-8", "chain-8-fresh", "baseline-fresh")
_TICKS = os.sysconf("SC_CLK_TCK")
_JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_b64url(number: int) -> str:
    return _b64url(number.to_bytes((number.bit_length() + 7) // 8, "big"))


def _rsa_jwk(n: int, e: int, kid: str | None = None) -> dict[str, str]:
    jwk = {"kty": "RSA", "n": _int_b64url(n), "e": _int_b64url(e)}
    if kid is not None:
        jwk["kid"] = kid
    return jwk


def _junk_assertion(client_id: str, audience: str, kid: str | None, signature_bytes: int) -> str:
    header: dict[str, str] = {"alg": "RS256"}
    if kid is not None:
        header["kid"] = kid
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": now,
        "exp": now + 120,
        "jti": uuid.uuid4().hex,
    }
    segments = [_b64url(json.dumps(part).encode()) for part in (header, claims)]
    # A leading 0x00 keeps the junk below any modulus of that size, so every key does the full
    # modular exponentiation instead of refusing an out-of-range signature at once.
    return ".".join([*segments, _b64url(b"\x00" + secrets.token_bytes(signature_bytes - 1))])


# --- PKI ---------------------------------------------------------------------------------------------


@dataclass
class Pki:
    server_ca: trustme.CA
    client_ca: Issued

    def __post_init__(self) -> None:
        # One key for the 8 'Loop CA' certificates, so each is a valid issuer of every other.
        self._loop_key = huge_exponent_key(3072)

    def loop_chain(self) -> Issued:
        """A leaf sent with 8 self-issued 'Loop CA' certificates sharing one huge-exponent key."""
        loop = [make_ca(name((NameOID.COMMON_NAME, "Loop CA")), key=self._loop_key) for _ in range(8)]
        leaf = issue(
            loop[0], name((NameOID.COMMON_NAME, "abuser")), key=ec.generate_private_key(ec.SECP256R1())
        )
        return Issued(leaf.cert, leaf.key, tuple(ca.cert for ca in loop))

    def good_chain(self) -> Issued:
        """A leaf of the client CA through one intermediate, which it sends along."""
        middle = make_ca(name((NameOID.COMMON_NAME, "Issuing CA")), parent=self.client_ca)
        return issue(middle, name((NameOID.COMMON_NAME, "good")))


# --- the server --------------------------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime (fields 14 and 15)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Server:
    process: subprocess.Popen[str]
    port: int

    @property
    def issuer(self) -> str:
        return f"https://localhost:{self.port}"


def _env(source: Path, directory: Path) -> dict[str, str]:
    """Import `certbound` from `source`/server, whatever the venv's own install points at."""
    link = directory / "src"
    link.mkdir(exist_ok=True)
    (link / "certbound").symlink_to(source / "server")
    env = {name: value for name, value in os.environ.items() if not name.startswith("CERTBOUND_")}
    env["PYTHONPATH"] = str(link)
    return env


def _certbound(env: dict[str, str], *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "certbound", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        **kwargs,
    )


def _store_client(env: dict[str, str], db: Path, client_id: str, metadata: dict[str, Any]) -> None:
    """Insert the client as an older server would have stored it, with no validation."""
    program = (
        "import asyncio, json, sys, time\n"
        "from certbound.models import Client\n"
        "from certbound.store.sqlite import SQLiteStore\n"
        "async def main():\n"
        "    store = SQLiteStore(sys.argv[1])\n"
        "    await store.open()\n"
        "    await store.create_client(Client(sys.argv[2], json.loads(sys.stdin.read()), int(time.time())))\n"
        "    await store.close()\n"
        "asyncio.run(main())\n"
    )
    subprocess.run(
        [sys.executable, "-c", program, str(db), client_id],
        input=json.dumps(metadata),
        env=env,
        text=True,
        check=True,
        timeout=120,
    )


def _registration_verdict(env: dict[str, str], db: Path, metadata: dict[str, Any], directory: Path) -> str:
    data = directory / "registration.json"
    data.write_text(json.dumps(metadata))
    result = _certbound(env, "clients", "add", "--db", f"sqlite:///{db}", "--data", str(data))
    if result.returncode == 0:
        return "accepted by `certbound clients add`"
    return "refused by `certbound clients add`: " + result.stderr.strip().splitlines()[-1][:200]


@contextmanager
def _serving(env: dict[str, str], db: Path, pki: Pki, directory: Path) -> Iterator[Server]:
    port = _free_port()
    leaf = pki.server_ca.issue_cert("localhost", "127.0.0.1")
    cert, key, client_ca = directory / "server.pem", directory / "server.key", directory / "client-ca.pem"
    cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    key.write_bytes(leaf.private_key_pem.bytes())
    client_ca.write_bytes(pki.client_ca.pem())
    process = subprocess.Popen(
        [
            sys.executable, "-m", "certbound", "serve", "--host", "127.0.0.1", "--port", str(port),
            "--db", f"sqlite:///{db}", "--tls-cert", str(cert), "--tls-key", str(key),
            "--client-ca", str(client_ca), "--issuer", f"https://localhost:{port}", "--drain-timeout", "1",
        ],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if line.startswith("listening on "):
                break
            if not line and process.poll() is not None:
                raise SystemExit("certbound serve exited before it was ready")
        yield Server(process, port)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# --- the client side ---------------------------------------------------------------------------------


def _context(pki: Pki, identity: Issued | None, directory: Path) -> ssl.SSLContext:
    context = ssl.create_default_context()
    pki.server_ca.configure_trust(context)
    if identity is not None:
        identity.configure_cert(context, directory)
    return context


def _post(connection: http.client.HTTPSConnection, form: dict[str, str]) -> int:
    body = "&".join(f"{name}={value}" for name, value in form.items())
    connection.request(
        "POST", "/token", body=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    response = connection.getresponse()
    response.read()
    return response.status


def _connect(server: Server, context: ssl.SSLContext) -> http.client.HTTPSConnection:
    return http.client.HTTPSConnection("localhost", server.port, context=context, timeout=120)


@dataclass
class Plan:
    """One attack: the client to store, and a function sending `n` attack requests that returns
    their statuses and the server CPU seconds they cost."""

    metadata: dict[str, Any]
    send: Callable[[Server, int], tuple[list[int], float]]


def _assertion_plan(keys: list[dict[str, str]], kid: str | None, signature_bytes: int, pki: Pki) -> Plan:
    metadata = {
        "token_endpoint_auth_method": "private_key_jwt",
        "grant_types": ["client_credentials"],
        "jwks": {"keys": keys},
    }

    def send(server: Server, n: int) -> tuple[list[int], float]:
        forms = [
            {
                "grant_type": "client_credentials",
                "client_assertion_type": _JWT_BEARER,
                "client_assertion": _junk_assertion("abuser", server.issuer, kid, signature_bytes),
            }
            for _ in range(n)
        ]
        connection = _connect(server, _context(pki, None, Path()))
        try:
            _post(connection, {"grant_type": "client_credentials"})  # the handshake, not counted
            before = _cpu_seconds(server.process.pid)
            statuses = [_post(connection, form) for form in forms]
            return statuses, _cpu_seconds(server.process.pid) - before
        finally:
            connection.close()

    return Plan(metadata, send)


def _mtls_plan(pki: Pki, directory: Path, *, chain: str, fresh: bool) -> Plan:
    subject = "CN=abuser" if chain == "loop" else "CN=good"
    metadata = {
        "token_endpoint_auth_method": "tls_client_auth",
        "grant_types": ["client_credentials"],
        "tls_client_auth_subject_dn": subject,
    }
    form = {"grant_type": "client_credentials", "client_id": "abuser"}
    make = pki.loop_chain if chain == "loop" else pki.good_chain

    def send(server: Server, n: int) -> tuple[list[int], float]:
        if fresh:
            contexts = [_context(pki, make(), directory) for _ in range(n)]
            before = _cpu_seconds(server.process.pid)
            statuses = []
            for context in contexts:
                connection = _connect(server, context)
                try:
                    statuses.append(_post(connection, form))
                finally:
                    connection.close()
            return statuses, _cpu_seconds(server.process.pid) - before
        # One keep-alive connection; its first request (with the handshake) is not counted.
        connection = _connect(server, _context(pki, make(), directory))
        try:
            _post(connection, form)
            before = _cpu_seconds(server.process.pid)
            statuses = [_post(connection, form) for _ in range(n)]
            return statuses, _cpu_seconds(server.process.pid) - before
        finally:
            connection.close()

    return Plan(metadata, send)


def _plan(attack: str, pki: Pki, directory: Path) -> Plan:
    if attack == "assertion-230":
        public = huge_exponent_key(3072).public_key().public_numbers()
        return _assertion_plan([_rsa_jwk(public.n, public.e)] * 230, None, 384, pki)
    if attack in ("assertion-max", "assertion-nokid"):
        # 8192-bit moduli with e = 2^32 + 1: a verification costs what a real key's would; no
        # factoring-grade key generation is needed to measure it.
        keys = [
            _rsa_jwk(secrets.randbits(8191) | (1 << 8191) | 1, 2**32 + 1, f"k{index}") for index in range(16)
        ]
        return _assertion_plan(keys, "k7" if attack == "assertion-max" else None, 1024, pki)
    if attack == "baseline-fresh":
        return _mtls_plan(pki, directory, chain="good", fresh=True)
    return _mtls_plan(pki, directory, chain="loop", fresh=attack == "chain-8-fresh")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--attack", choices=ATTACKS, required=True)
    parser.add_argument(
        "--source", type=Path, default=ROOT, help="certbound source tree (default: this checkout)"
    )
    parser.add_argument("--requests", type=int, default=10, help="attack requests per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="certbound-abuse-") as tmp:
        directory = Path(tmp)
        env = _env(args.source.resolve(), directory)
        db = directory / "abuse.db"
        pki = Pki(trustme.CA(), make_ca(name((NameOID.COMMON_NAME, "Client CA"))))
        plan = _plan(args.attack, pki, directory)
        print(f"source {args.source}; attack {args.attack}")
        print(
            "registration:",
            _registration_verdict(env, directory / "registration.db", plan.metadata, directory),
        )
        _store_client(env, db, "abuser", plan.metadata)
        with _serving(env, db, pki, directory) as server:
            pid = server.process.pid
            statuses, _ = plan.send(server, 1)  # warm-up: imports, caches, the first connection
            print(f"server pid {pid}; warm-up answers {sorted(set(statuses))}")
            per_request: list[float] = []
            for round_ in range(args.rounds):
                statuses, seconds = plan.send(server, args.requests)
                per_request.append(seconds / args.requests)
                answers = sorted(set(statuses))
                print(
                    f"round {round_ + 1}: {per_request[-1] * 1000:.1f} ms CPU per request; answers {answers}"
                )
            median = statistics.median(per_request) * 1000
            print(
                f"median: {median:.1f} ms server CPU per request "
                f"({args.rounds} rounds of {args.requests}, utime+stime from /proc/{pid}/stat)"
            )


if __name__ == "__main__":
    main()
