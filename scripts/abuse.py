#!/usr/bin/env python3
"""Bounded abuse against a running certbound while a well-behaved client keeps getting tokens (issue 9).

    .venv/bin/certbound serve --workers 2 --port 8443 --db sqlite:///run/abuse/db.sqlite \\
        --admin-token "$TOKEN" &
    .venv/bin/python scripts/abuse.py --url https://127.0.0.1:8443 --admin-token "$TOKEN"
    .venv/bin/python scripts/abuse.py --url https://127.0.0.1:8443 --db sqlite:///run/abuse/db.sqlite \\
        --attacks chains,flood --flood 2000

For every attack it prints what the good client saw while the attack ran (success rate, p99 latency),
the server's CPU (utime + stime from /proc, summed over the supervisor and its workers, net of what
the good client alone costs) per attack unit, and each server process's RSS before and after.
The server's processes are the ones holding the listening socket (or --pid). Attackers connect from
127.0.0.2 and up (--attacker-ips), the good client from 127.0.0.1, as distinct hosts would.

Attacks are plain functions in ATTACKS (name -> function(Abuse) -> Outcome): add one to measure
another defence. Stdlib plus what the project's virtualenv holds (cryptography, for the certificates).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime
import itertools
import json
import math
import os
import secrets
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.client import HTTPSConnection
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ROOT = Path(__file__).resolve().parents[1]
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")
_MIB = 1024 * 1024
_NOW = datetime.datetime.now(datetime.UTC)
_JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


# -- the server's processes -------------------------------------------------------------------


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as handle:
            for line in list(handle)[1:]:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                    inodes.add(inode)
    return inodes


def find_server_pids(port: int) -> list[int]:
    """Processes holding a socket that listens on `port` (a supervisor and each of its workers)."""
    targets = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{entry}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{entry}/fd/{fd}") in targets:
                        pids.append(int(entry))
                        break
    return sorted(pids)


def cpu_seconds(pids: Sequence[int]) -> float:
    """utime + stime of `pids`, from /proc (processes that are gone count nothing)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5)
    return total / _CLK_TCK


def rss_mib(pid: int) -> float:
    with contextlib.suppress(OSError), open(f"/proc/{pid}/statm") as handle:
        return int(handle.read().split()[1]) * _PAGE / _MIB
    return float("nan")


# -- certificates and keys --------------------------------------------------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def huge_exponent_rsa_key(modulus_bits: int = 3072) -> rsa.RSAPrivateKey:
    """A valid RSA key whose public exponent is about as long as its modulus: signing costs what it
    always does, verifying costs a full-length modular exponentiation (the attack of issue 9)."""
    numbers = rsa.generate_private_key(public_exponent=65537, key_size=modulus_bits).private_numbers()
    p, q = numbers.p, numbers.q
    lam = math.lcm(p - 1, q - 1)
    e = secrets.randbits(modulus_bits - 16) | (1 << (modulus_bits - 17)) | 1
    while math.gcd(e, lam) != 1:
        e += 2
    d = pow(e, -1, lam)
    public = rsa.RSAPublicNumbers(e, p * q)
    private = rsa.RSAPrivateNumbers(p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p), public)
    return private.private_key(unsafe_skip_rsa_key_validation=True)


def _certificate(
    subject: str,
    issuer: str,
    public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey,
    signer: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    padding: int = 0,
) -> x509.Certificate:
    """A certificate that meets the web PKI profile the server validates against (key
    identifiers, key usage), so that what stops it is a defence, not a missing extension."""
    usage = dict.fromkeys(
        ("content_commitment", "key_encipherment", "data_encipherment", "key_agreement", "encipher_only",
         "decipher_only"), False,
    )  # fmt: skip
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(_NOW - datetime.timedelta(days=1))
        .not_valid_after(_NOW + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=not ca, key_cert_sign=ca, crl_sign=ca, **usage), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False
        )
    )
    if not ca:
        client_auth = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])
        builder = builder.add_extension(client_auth, critical=False)
    if padding:  # a certificate about `padding` bytes larger
        names = [x509.DNSName(f"{index:05d}.{'p' * 50}.invalid") for index in range(padding // 70)]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(signer, hashes.SHA256())


@dataclass(frozen=True)
class Presented:
    """A client certificate chain and its key, as files an ssl context loads."""

    chain_file: Path
    key_file: Path
    leaf_subject: str

    def context(self, base: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        context = base()
        context.load_cert_chain(self.chain_file, self.key_file)
        return context


def _write(
    directory: Path, label: str, certs: Sequence[x509.Certificate], key: ec.EllipticCurvePrivateKey
) -> Presented:
    directory.mkdir(parents=True, exist_ok=True)
    chain_file, key_file = directory / f"{label}.chain.pem", directory / f"{label}.key.pem"
    chain_file.write_bytes(b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in certs))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return Presented(chain_file, key_file, certs[0].subject.rfc4514_string())


def chain_below(
    directory: Path,
    label: str,
    intermediates: int,
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    *,
    padding: int = 0,
) -> Presented:
    """A leaf (P-256) under `intermediates` CAs that all hold `key`, below an unsent root."""
    names = [f"{label} intermediate {level}" for level in range(1, intermediates + 2)]
    certs = [
        _certificate(subject, issuer, key.public_key(), key, ca=True, padding=padding)
        for subject, issuer in itertools.pairwise(names)
    ]
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = _certificate(f"{label} leaf", f"{label} intermediate 1", leaf_key.public_key(), key, ca=False)
    return _write(directory, label, [leaf, *certs], leaf_key)


def same_name_loop(
    directory: Path, label: str, intermediates: int, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
) -> Presented:
    """Issue 9 finding 4: self-issued intermediates sharing one name and one key, so every one of
    them verifies every other: a path builder may try every order."""
    name = f"{label} CA"
    certs = [_certificate(name, name, key.public_key(), key, ca=True) for _ in range(intermediates)]
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = _certificate(f"{label} leaf", name, leaf_key.public_key(), key, ca=False)
    return _write(directory, label, [leaf, *certs], leaf_key)


# -- the target -------------------------------------------------------------------------------


@dataclass
class Abuse:
    """Everything an attack needs: where the server is, how to reach it, where to keep files."""

    url: str
    host: str
    port: int
    workdir: Path
    base_context: Callable[[], ssl.SSLContext]
    register: Callable[[dict[str, object]], dict[str, object] | str]
    attacker_ips: list[str]
    issuer: str
    args: argparse.Namespace
    _next_source: int = 0

    def source(self) -> tuple[str, int] | None:
        """The next attacker address to connect from (round robin), or None to let the OS pick."""
        if not self.attacker_ips:
            return None
        self._next_source += 1
        return (self.attacker_ips[self._next_source % len(self.attacker_ips)], 0)

    def tcp(self, timeout: float = 10.0) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout=timeout, source_address=self.source())

    def tls(self, context: ssl.SSLContext | None = None, timeout: float = 10.0) -> ssl.SSLSocket:
        return (context or self.base_context()).wrap_socket(self.tcp(timeout), server_hostname=self.host)


@dataclass
class Outcome:
    """What an attack did: how many units (handshakes, requests, connections) and what it saw."""

    units: int
    unit: str
    notes: list[str] = field(default_factory=list)


def _read_answer(tls: ssl.SSLSocket) -> bytes:
    """Everything until the server closes (an alert or EOF ends the read quietly)."""
    chunks = []
    with contextlib.suppress(OSError):
        while chunk := tls.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _handshake_and_ask(abuse: Abuse, context: ssl.SSLContext) -> str:
    """One connection presenting the context's chain: 'refused' or 'served' (or 'error: ...')."""
    try:
        with abuse.tls(context) as tls:
            # In TLS 1.3 the server judges the client's certificate after the client's handshake
            # is over: a request shows whether it was accepted.
            tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            return "served" if _read_answer(tls).startswith(b"HTTP/1.1 200") else "refused"
    except ssl.SSLError:
        return "refused"
    except OSError as exc:
        return f"error: {exc.__class__.__name__}"


def _run_many(count: int, concurrency: int, task: Callable[[int], str]) -> dict[str, int]:
    outcomes: dict[str, int] = {}
    with ThreadPoolExecutor(concurrency) as pool:
        for outcome in pool.map(task, range(count)):
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


def _describe(outcomes: dict[str, int]) -> str:
    return ", ".join(f"{count} {what}" for what, count in sorted(outcomes.items()))


# -- attacks ----------------------------------------------------------------------------------


def _abusive_chain(abuse: Abuse) -> Presented:
    """Issue 9 finding 1: 60 intermediates whose RSA-3072 key has a ~3,000-bit public exponent."""
    marker = abuse.workdir / "pki" / "huge-exponent-60.chain.pem"
    if marker.exists():
        return Presented(marker, abuse.workdir / "pki" / "huge-exponent-60.key.pem", "")
    return chain_below(abuse.workdir / "pki", "huge-exponent-60", 60, huge_exponent_rsa_key())


def _largest_accepted_chain(abuse: Abuse) -> Presented:
    """The most a client may send: 8 intermediates, ~29 KB in all, keys within policy."""
    marker = abuse.workdir / "pki" / "largest.chain.pem"
    if marker.exists():
        return Presented(marker, abuse.workdir / "pki" / "largest.key.pem", "")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return chain_below(abuse.workdir / "pki", "largest", 8, key, padding=2400)


def attack_chains(abuse: Abuse) -> Outcome:
    """Handshakes presenting the 60-intermediate huge-exponent chain (--chains of them)."""
    context = _abusive_chain(abuse).context(abuse.base_context)
    outcomes = _run_many(
        abuse.args.chains, abuse.args.concurrency, lambda _: _handshake_and_ask(abuse, context)
    )
    return Outcome(abuse.args.chains, "handshake", [_describe(outcomes)])


def attack_flood(abuse: Abuse) -> Outcome:
    """--flood handshakes, in turn with each chain of --flood-chains: the abusive one and the
    largest a client may send (the memory a handshake can leave behind)."""
    makers = {"abusive": _abusive_chain, "largest": _largest_accepted_chain}
    kinds = abuse.args.flood_chains.split(",")
    contexts = [makers[kind](abuse).context(abuse.base_context) for kind in kinds]

    def one(index: int) -> str:
        turn = index % len(kinds)
        return f"{kinds[turn]} {_handshake_and_ask(abuse, contexts[turn])}"

    outcomes = _run_many(abuse.args.flood, abuse.args.concurrency, one)
    return Outcome(abuse.args.flood, "handshake", [_describe(outcomes)])


def _watch_until_closed(
    sockets: Sequence[tuple[socket.socket, float]], hold: float
) -> tuple[list[float | None], list[bytes]]:
    """For each (socket, opened at): seconds until the server closed it (None: still open after
    `hold` seconds), and the first bytes it answered."""
    closed_after: list[float | None] = [None] * len(sockets)
    answers = [b""] * len(sockets)
    deadline = time.monotonic() + hold
    pending = set(range(len(sockets)))
    for sock, _ in sockets:
        sock.settimeout(0)
    while pending and time.monotonic() < deadline:
        for index in list(pending):
            sock, opened = sockets[index]
            try:
                data = sock.recv(65536)
            except (BlockingIOError, ssl.SSLWantReadError):
                continue
            except OSError:
                data = b""
            if data:
                answers[index] = answers[index] or data
                continue
            closed_after[index] = time.monotonic() - opened
            pending.discard(index)
        time.sleep(0.1)
    return closed_after, answers


def _closing_times(closed_after: list[float | None]) -> str:
    times = sorted(value for value in closed_after if value is not None)
    still_open = sum(value is None for value in closed_after)
    if not times:
        return f"none closed, {still_open} still open"
    return (
        f"{len(times)} closed by the server after {times[0]:.1f}-{times[-1]:.1f} s "
        f"(median {statistics.median(times):.1f} s), {still_open} still open"
    )


def attack_half_open(abuse: Abuse) -> Outcome:
    """--half-open TCP connections that never start their handshake, held --hold seconds."""
    opened: list[tuple[socket.socket, float]] = []
    refused = 0
    for _ in range(abuse.args.half_open):
        try:
            opened.append((abuse.tcp(timeout=5), time.monotonic()))
        except OSError:
            refused += 1
    closed_after, _ = _watch_until_closed(opened, abuse.args.hold)
    quick = sum(value is not None and value < 1 for value in closed_after)
    for sock, _ in opened:
        sock.close()
    notes = [
        f"{quick} closed at once (over a cap)",
        _closing_times(closed_after),
        f"{refused} connects failed",
    ]
    return Outcome(abuse.args.half_open, "connection", notes)


def _slow(abuse: Abuse, head: bytes, drip: bytes, interval: float) -> Outcome:
    """--slow TLS connections sending `head`, then `drip` every `interval` seconds."""
    connections: list[tuple[ssl.SSLSocket, float]] = []
    failed = 0
    for _ in range(abuse.args.slow):
        try:
            tls = abuse.tls(timeout=5)
            tls.sendall(head)
            connections.append((tls, time.monotonic()))
        except OSError:
            failed += 1
    stop = threading.Event()

    def drip_all() -> None:
        while not stop.wait(interval):
            for tls, _ in connections:
                with contextlib.suppress(OSError, ValueError):
                    tls.sendall(drip)

    dripper = threading.Thread(target=drip_all, daemon=True)
    dripper.start()
    closed_after, answers = _watch_until_closed(connections, abuse.args.hold_slow)
    stop.set()
    dripper.join()
    for tls, _ in connections:
        tls.close()
    statuses = sorted({answer[:12].decode("latin-1") for answer in answers if answer.startswith(b"HTTP/")})
    notes = [_closing_times(closed_after), f"answers: {statuses or 'none'}", f"{failed} connects failed"]
    return Outcome(abuse.args.slow, "connection", notes)


def attack_slow_headers(abuse: Abuse) -> Outcome:
    """Slowloris: a request line, then one header line every 2 s."""
    return _slow(abuse, b"GET /healthz HTTP/1.1\r\n", b"X-Slow: 1\r\n", 2.0)


def attack_slow_body(abuse: Abuse) -> Outcome:
    """Complete headers announcing a 1,000-byte body, then 10 bytes every 2 s."""
    head = (
        b"POST /token HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: 1000\r\n\r\n"
    )
    return _slow(abuse, head, b"x" * 10, 2.0)


def _garbage(index: int) -> bytes:
    if index % 3 == 0:
        return secrets.token_bytes(1 + secrets.randbelow(2000))
    records = b""
    for _ in range(1 + secrets.randbelow(5)):
        payload = secrets.token_bytes(secrets.randbelow(600))
        content_type = secrets.choice([20, 21, 22, 23, secrets.randbelow(256)])
        records += struct.pack("!BHH", content_type, 0x0303, len(payload)) + payload
    return records


def attack_garbage(abuse: Abuse) -> Outcome:
    """--garbage connections sending random bytes or random TLS records."""

    def one(index: int) -> str:
        try:
            with abuse.tcp(timeout=5) as sock:
                sock.sendall(_garbage(index))
                return "closed" if sock.recv(65536) is not None else "open"
        except OSError:
            return "closed"

    outcomes = _run_many(abuse.args.garbage, abuse.args.concurrency, one)
    return Outcome(abuse.args.garbage, "connection", [_describe(outcomes)])


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _post_token(abuse: Abuse, form: dict[str, str], context: ssl.SSLContext | None = None) -> int:
    connection = HTTPSConnection(
        abuse.host,
        abuse.port,
        context=context or abuse.base_context(),
        timeout=60,
        source_address=abuse.source(),
    )
    try:
        connection.request(
            "POST",
            urllib.parse.urlsplit(abuse.url).path + "/token",
            urllib.parse.urlencode(form),
            {"Content-Type": "application/x-www-form-urlencoded"},
        )
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def attack_jwt_keys(abuse: Abuse) -> Outcome:
    """Issue 9 finding 3: --jwt-requests kid-less assertions with a junk signature against a
    private_key_jwt client whose JWK Set holds --jwt-keys copies of a huge-exponent RSA key."""
    key = huge_exponent_rsa_key().public_key().public_numbers()
    jwk = {
        "kty": "RSA",
        "n": _b64url(key.n.to_bytes(384, "big")),
        "e": _b64url(key.e.to_bytes(384, "big").lstrip(b"\0")),
    }
    registered = abuse.register(
        {"token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [jwk] * abuse.args.jwt_keys}}
    )
    if isinstance(registered, str):
        return Outcome(0, "request", [f"registration refused (a defence): {registered}"])
    client_id = str(registered["client_id"])

    def one(_: int) -> str:
        header = _b64url(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
        claims = {"iss": client_id, "sub": client_id, "aud": abuse.issuer, "jti": secrets.token_hex(16),
                  "iat": int(time.time()), "exp": int(time.time()) + 60}  # fmt: skip
        assertion = f"{header}.{_b64url(json.dumps(claims).encode())}.{_b64url(secrets.token_bytes(384))}"
        form = {"grant_type": "client_credentials", "client_id": client_id,
                "client_assertion_type": _JWT_BEARER, "client_assertion": assertion}  # fmt: skip
        try:
            return str(_post_token(abuse, form))
        except OSError as exc:
            return f"error: {exc.__class__.__name__}"

    outcomes = _run_many(abuse.args.jwt_requests, 2, one)
    return Outcome(abuse.args.jwt_requests, "request", [f"statuses: {_describe(outcomes)}"])


def attack_path_builder(abuse: Abuse) -> Outcome:
    """Issue 9 finding 4: --path-requests token requests (keep-alive) from a tls_client_auth client
    presenting 8 self-issued intermediates with one name and one key."""
    key = (
        ec.generate_private_key(ec.SECP256R1())
        if abuse.args.path_key == "p256"
        else rsa.generate_private_key(public_exponent=65537, key_size=int(abuse.args.path_key[3:]))
    )
    presented = same_name_loop(abuse.workdir / "pki", f"loop-{secrets.token_hex(4)}", 8, key)
    registered = abuse.register(
        {
            "token_endpoint_auth_method": "tls_client_auth",
            "tls_client_auth_subject_dn": presented.leaf_subject,
        }
    )
    if isinstance(registered, str):
        return Outcome(0, "request", [f"registration refused: {registered}"])
    form = urllib.parse.urlencode(
        {"grant_type": "client_credentials", "client_id": str(registered["client_id"])}
    )
    statuses: dict[str, int] = {}
    connection = HTTPSConnection(
        abuse.host,
        abuse.port,
        context=presented.context(abuse.base_context),
        timeout=60,
        source_address=abuse.source(),
    )
    path = urllib.parse.urlsplit(abuse.url).path + "/token"
    for _ in range(abuse.args.path_requests):
        try:
            connection.request("POST", path, form, {"Content-Type": "application/x-www-form-urlencoded"})
            response = connection.getresponse()
            response.read()
            status = str(response.status)
        except OSError as exc:
            status = f"error: {exc.__class__.__name__}"
            connection.close()
        statuses[status] = statuses.get(status, 0) + 1
    connection.close()
    return Outcome(abuse.args.path_requests, "request", [f"statuses: {_describe(statuses)}"])


#: The attacks, in the order they run. Add yours: name -> function(Abuse) -> Outcome.
ATTACKS: dict[str, Callable[[Abuse], Outcome]] = {
    "chains": attack_chains,
    "flood": attack_flood,
    "half-open": attack_half_open,
    "slow-headers": attack_slow_headers,
    "slow-body": attack_slow_body,
    "garbage": attack_garbage,
    "jwt-keys": attack_jwt_keys,
    "path-builder": attack_path_builder,
}


# -- the well-behaved client ------------------------------------------------------------------


class GoodClient(threading.Thread):
    """client_secret_basic token requests on a keep-alive connection (a new one every
    --reconnect requests), one every --interval seconds; each result is kept with its time."""

    def __init__(self, abuse: Abuse, credentials: tuple[str, str]) -> None:
        super().__init__(daemon=True)
        self._abuse = abuse
        basic = base64.b64encode(
            f"{urllib.parse.quote_plus(credentials[0])}:{urllib.parse.quote_plus(credentials[1])}".encode()
        ).decode()
        self._headers = {
            "Authorization": f"Basic {basic}",
            "Content-Type": "application/x-www-form-urlencoded",
        }
        self.results: list[tuple[float, bool, float]] = []  # (at, ok, seconds)
        self.stopped = threading.Event()

    def _connect(self) -> HTTPSConnection:
        abuse = self._abuse
        good_source = ("127.0.0.1", 0) if abuse.attacker_ips else None
        return HTTPSConnection(
            abuse.host, abuse.port, context=abuse.base_context(), timeout=10, source_address=good_source
        )

    def run(self) -> None:
        path = urllib.parse.urlsplit(self._abuse.url).path + "/token"
        connection = self._connect()
        sent = 0
        while not self.stopped.wait(self._abuse.args.interval):
            if sent and sent % self._abuse.args.reconnect == 0:
                connection.close()
                connection = self._connect()
            sent += 1
            started = time.monotonic()
            try:
                connection.request("POST", path, "grant_type=client_credentials", self._headers)
                response = connection.getresponse()
                body = response.read()
                ok = response.status == 200 and b"access_token" in body
            except OSError:
                ok = False
                connection.close()
                connection = self._connect()
            self.results.append((started, ok, time.monotonic() - started))
        connection.close()

    def window(self, start: float, end: float) -> tuple[int, float, float]:
        """(requests, success %, p99 seconds) of the requests started in [start, end)."""
        inside = [(ok, seconds) for at, ok, seconds in self.results if start <= at < end]
        if not inside:
            return 0, float("nan"), float("nan")
        latencies = sorted(seconds for _, seconds in inside)
        p99 = latencies[min(len(latencies) - 1, math.ceil(0.99 * len(latencies)) - 1)]
        return len(inside), 100.0 * sum(ok for ok, _ in inside) / len(inside), p99


# -- setup and report -------------------------------------------------------------------------


def _registrar(
    args: argparse.Namespace, ca: str | None
) -> Callable[[dict[str, object]], dict[str, object] | str]:
    """Register a client with `certbound clients add --data` (admin API or database)."""

    def register(metadata: dict[str, object]) -> dict[str, object] | str:
        data = args.workdir / f"client-{secrets.token_hex(4)}.json"
        data.write_text(json.dumps({"grant_types": ["client_credentials"], **metadata}))
        command = [sys.executable, "-m", "certbound", "clients", "add", "--data", str(data), "--json"]
        if args.db:
            command += ["--db", args.db]
        else:
            command += ["--url", args.url, "--admin-token", args.admin_token]
            if ca:
                command += ["--cacert", ca]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            return (result.stderr or result.stdout).strip().splitlines()[-1][:200]
        created: dict[str, object] = json.loads(result.stdout)
        return created

    return register


def _issuer(abuse_url: str, context: ssl.SSLContext) -> str:
    parts = urllib.parse.urlsplit(abuse_url)
    connection = HTTPSConnection(
        parts.hostname or "localhost", parts.port or 443, context=context, timeout=10
    )
    connection.request("GET", parts.path + "/.well-known/oauth-authorization-server")
    issuer = str(json.loads(connection.getresponse().read())["issuer"])
    connection.close()
    return issuer


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True, help="the server, e.g. https://127.0.0.1:8443")
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--admin-token", help="register the clients through the admin API")
    who.add_argument("--db", help="register the clients in this database (certbound clients add --db)")
    parser.add_argument("--ca", help="CA to verify the server with (default: not verified)")
    parser.add_argument("--pid", type=int, action="append", help="server process (default: who listens)")
    parser.add_argument(
        "--attacks", default=",".join(ATTACKS), help=f"comma-separated, of: {', '.join(ATTACKS)}"
    )
    parser.add_argument("--attacker-ips", type=int, default=4, help="attack from 127.0.0.2.. (0: any)")
    parser.add_argument("--concurrency", type=int, default=8, help="attacker threads")
    parser.add_argument("--chains", type=int, default=100, help="abusive-chain handshakes")
    parser.add_argument("--flood", type=int, default=10_000, help="handshakes in the flood")
    parser.add_argument(
        "--flood-chains", choices=("abusive,largest", "abusive", "largest"), default="abusive,largest"
    )
    parser.add_argument("--half-open", type=int, default=600, help="half-open connections")
    parser.add_argument("--hold", type=float, default=13.0, help="seconds half-open connections are held")
    parser.add_argument("--slow", type=int, default=100, help="slow-headers / slow-body connections")
    parser.add_argument("--hold-slow", type=float, default=40.0, help="seconds slow connections are watched")
    parser.add_argument("--garbage", type=int, default=2000, help="garbage connections")
    parser.add_argument("--jwt-keys", type=int, default=230, help="huge-exponent keys in the JWK Set")
    parser.add_argument("--jwt-requests", type=int, default=20, help="bad assertions")
    parser.add_argument("--path-requests", type=int, default=10, help="requests with the same-name chain")
    parser.add_argument(
        "--path-key", choices=("p256", "rsa4096", "rsa8192"), default="rsa4096", help="its intermediates' key"
    )
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between good requests")
    parser.add_argument("--reconnect", type=int, default=10, help="good requests per connection")
    parser.add_argument("--baseline", type=float, default=5.0, help="seconds of the good client alone")
    parser.add_argument("--workdir", type=Path, default=ROOT / "run" / "abuse", help="certificates and keys")
    args = parser.parse_args(argv)
    unknown = set(args.attacks.split(",")) - set(ATTACKS)
    if unknown:
        parser.error(f"unknown attacks: {', '.join(sorted(unknown))}")
    return args


def _context_factory(ca: str | None) -> Callable[[], ssl.SSLContext]:
    def create() -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if ca:
            context.load_verify_locations(ca)
        else:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    return create


@contextlib.contextmanager
def _good_client(abuse: Abuse) -> Iterator[GoodClient]:
    registered = abuse.register(
        {"token_endpoint_auth_method": "client_secret_basic", "client_name": "abuse-good"}
    )
    if isinstance(registered, str):
        raise SystemExit(f"abuse.py: cannot register the good client: {registered}")
    client = GoodClient(abuse, (str(registered["client_id"]), str(registered["client_secret"])))
    client.start()
    try:
        yield client
    finally:
        client.stopped.set()
        client.join()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    parts = urllib.parse.urlsplit(args.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 443
    pids = args.pid or find_server_pids(port)
    if not pids:
        raise SystemExit(f"abuse.py: nothing listens on port {port} (or give --pid)")
    args.workdir.mkdir(parents=True, exist_ok=True)
    base_context = _context_factory(args.ca)
    local = host in ("127.0.0.1", "localhost")
    abuse = Abuse(
        url=args.url.rstrip("/"),
        host=host,
        port=port,
        workdir=args.workdir,
        base_context=base_context,
        register=_registrar(args, args.ca),
        attacker_ips=[f"127.0.0.{2 + index}" for index in range(args.attacker_ips)] if local else [],
        issuer=_issuer(args.url, base_context()),
        args=args,
    )
    print(f"server processes {pids}; attackers from {abuse.attacker_ips or 'any address'}")
    with _good_client(abuse) as good:
        cpu_start, started = cpu_seconds(pids), time.monotonic()
        time.sleep(args.baseline)
        idle_cpu_rate = (cpu_seconds(pids) - cpu_start) / (time.monotonic() - started)
        requests, success, p99 = good.window(started, time.monotonic())
        print(f"baseline: good client {requests} requests, {success:.1f}% ok, p99 {p99 * 1000:.0f} ms; "
              f"server CPU {idle_cpu_rate * 1000:.0f} ms/s")  # fmt: skip
        rows = []
        for name in args.attacks.split(","):
            rss_before = [rss_mib(pid) for pid in pids]
            cpu_before, started = cpu_seconds(pids), time.monotonic()
            outcome = ATTACKS[name](abuse)
            ended = time.monotonic()
            cpu = cpu_seconds(pids) - cpu_before - idle_cpu_rate * (ended - started)
            requests, success, p99 = good.window(started, ended)
            rss_after = [rss_mib(pid) for pid in pids]
            per_unit = f"{cpu * 1000 / outcome.units:.2f}" if outcome.units else "-"
            rss = ", ".join(
                f"{before:.0f}->{after:.0f}" for before, after in zip(rss_before, rss_after, strict=True)
            )
            rows.append(
                f"| {name} | {outcome.units} {outcome.unit}s | {ended - started:.1f} s | {cpu:.2f} s "
                f"| {per_unit} ms | {requests} | {success:.1f}% | {p99 * 1000:.0f} ms | {rss} "
                f"| {'; '.join(outcome.notes)} |"
            )
            print(rows[-1], flush=True)
    print()
    print("| attack | units | wall | server CPU (net) | CPU per unit | good requests | good ok | good p99 "
          "| RSS MiB per process (before->after) | notes |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
