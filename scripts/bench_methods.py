#!/usr/bin/env python3
"""Tokens/s per core for every client authentication method, keep-alive and new connections (issue 15).

certbound alone (no oidc-provider), one `certbound serve` worker started as scripts/bench_anchor.py
starts it (the anchor's PKI, a fresh SQLite database, its clients plus `post-client`
(client_secret_post) and `secretjwt-client` (client_secret_jwt, HS256)). Each method is measured
with a keep-alive connection per load slot and with a new TLS connection (full handshake) per
request, under the anchor's load: 32 connections, closed loop, 3 s warm-up + 12 s measured.

- client_secret_basic, client_secret_post, tls_client_auth, self_signed_tls_client_auth: the
  anchor's `ab` command (without `-k`: a new connection per request);
- private_key_jwt (ES256) and federated_jwt: the anchor's loadgen.mjs (a fresh assertion per
  request; `--new-conn` for new connections);
- client_secret_jwt (HS256): scripts/secret_jwt_loadgen.mjs (a fresh assertion per request);
- DPoP (client_secret_basic + a fresh proof per request): scripts/dpop_loadgen.mjs.

Every run is measured with the anchor harness's own code (`run_one` for ab and loadgen.mjs,
`CpuWindow` + `run_child` for ours): server CPU over the measured window only. Tokens are HTTP 200
responses; anything else is an error, reported and never counted. CPU ms/token is the server
process's CPU over the window / tokens, and tokens/s per core = 1000 / CPU ms per token: what one
fully busy core would issue.

    scripts/bench_methods.py                          # 16 rows x 3 reps (about 13 min)
    scripts/bench_methods.py --quick                  # 1 rep of 1 s warm-up + 3 s measured (~2.5 min)
    scripts/bench_methods.py --only basic-,dpop-ka --reps 5

Writes run/methods-<timestamp>.md (the table, the command line, the commit) and
run/methods-<timestamp>.jsonl (one record per run, each with its exact load command).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shlex
import shutil
import ssl
import statistics
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from bench_anchor import (
    DEFAULT_ANCHOR,
    DEFAULT_WORKDIR,
    OWN_TOOLS_DIR,
    ROOT,
    BenchError,
    ClientSpec,
    Probe,
    Servers,
    check_prerequisites,
    client_specs,
    load_anchor_harness,
    measure_own_tool,
    port_in_use,
    prepare_workdir,
    probe_token,
    register_clients,
    unwind_on_sigterm,
    write_federation,
)
from bench_report import median_text, ok_tokens_per_s

__all__ = [
    "METHODS",
    "MODES",
    "Row",
    "RowStats",
    "command_line",
    "git_output",
    "main",
    "render_table",
    "select_rows",
]

DEFAULT_PORT = 19443
CONNS = 32
WARMUP_S = 3.0  # the anchor's [defaults]
DURATION_S = 12.0
QUICK_WARMUP_S = 1.0
QUICK_DURATION_S = 3.0
BODY = "grant_type=client_credentials&scope=api%3Aread"
BENCH_SECRET = "bench-secret"  # the anchor's basic-client secret (an administrator-chosen one)
_BUSY_OTHER_CPU = 25.0  # % of a core used by other tenants above which the run is flagged noisy

#: Connection modes: the row-name suffix -> (the harness's `mode`, the table's wording).
MODES = {"ka": ("keepalive", "keep-alive"), "nc": ("newconn", "new TLS connection per request")}


@dataclass(frozen=True)
class Method:
    """One client authentication method: its row names' prefix, its client and the load's shape."""

    key: str
    label: str
    client_id: str
    tool: str  # "ab", "loadgen" (the anchor's), "secret_jwt" or "dpop" (ours)
    fields: dict[str, str] = field(default_factory=dict)


METHODS: tuple[Method, ...] = (
    Method("basic", "client_secret_basic", "basic-client", "ab", {"basic": f"basic-client:{BENCH_SECRET}"}),
    Method(
        "post",
        "client_secret_post",
        "post-client",
        "ab",
        {"body": f"{BODY}&client_id=post-client&client_secret={BENCH_SECRET}"},
    ),
    Method("secret-jwt", "client_secret_jwt (HS256)", "secretjwt-client", "secret_jwt"),
    Method(
        "pkjwt",
        "private_key_jwt (ES256)",
        "pkjwt-client",
        "loadgen",
        {"pkjwt_client": "pkjwt-client", "pkjwt_key": "pki/pkjwt-client.key", "pkjwt_kid": "pkjwt-1"},
    ),
    Method(
        "mtls",
        "tls_client_auth",
        "mtls-client",
        "ab",
        {"cert_pem": "pki/client1.pem", "body": f"{BODY}&client_id=mtls-client"},
    ),
    Method(
        "selfsigned",
        "self_signed_tls_client_auth",
        "selfsigned-client",
        "ab",
        {"cert_pem": "pki/selfsigned.pem", "body": f"{BODY}&client_id=selfsigned-client"},
    ),
    Method(
        "dpop",
        "DPoP (client_secret_basic + proof)",
        "basic-client",
        "dpop",
        {"basic": f"basic-client:{BENCH_SECRET}"},
    ),
    Method(
        "federated",
        "federated_jwt (ES256 platform token)",
        "fed-client",
        "loadgen",
        {"pkjwt_client": "fed-client", "pkjwt_key": "pki/pkjwt-client.key", "pkjwt_kid": "pkjwt-1"},
    ),
)

_TOOL_NAMES = {
    "ab": "ab",
    "loadgen": "loadgen.mjs",
    "secret_jwt": "secret_jwt_loadgen.mjs",
    "dpop": "dpop_loadgen.mjs",
}


@dataclass(frozen=True)
class Row:
    """One line of the table: a method in one connection mode."""

    method: Method
    mode: str  # a key of MODES

    @property
    def name(self) -> str:
        return f"{self.method.key}-{self.mode}"


def select_rows(only: str | None) -> list[Row]:
    """Every (method, mode) in table order, or those whose name starts with one of `only`'s
    comma-separated prefixes (`basic-,dpop-ka`)."""
    rows = [Row(method, mode) for method in METHODS for mode in MODES]
    if not only:
        return rows
    prefixes = [prefix.strip() for prefix in only.split(",") if prefix.strip()]
    chosen = [row for row in rows if any(row.name.startswith(prefix) for prefix in prefixes)]
    if not chosen:
        raise BenchError(f"--only {only} selects none of {', '.join(row.name for row in rows)}")
    return chosen


# ---------------------------------------------------------------- statistics and the table


@dataclass
class RowStats:
    """The measured runs of one row, across reps."""

    tokens: list[float] = field(default_factory=list)
    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    server_cpu: list[float] = field(default_factory=list)
    other_cpu: list[float] = field(default_factory=list)
    errors: int = 0
    requests: int = 0
    skipped: str | None = None

    def add(self, record: dict[str, Any]) -> None:
        """One run's record (the harness's fields: rps, requests, failed, non2xx, p50_ms, ...)."""
        tokens = ok_tokens_per_s(record) or 0.0
        self.tokens.append(tokens)
        cpu_pct = record.get("server_cpu_pct")
        if cpu_pct is not None:
            self.server_cpu.append(float(cpu_pct))
            if tokens:
                # CPU % of one core = 10 ms of CPU per second, shared by `tokens` tokens.
                self.cpu_ms.append(10.0 * float(cpu_pct) / tokens)
        for key, values in (("p50_ms", self.p50), ("p99_ms", self.p99)):
            if record.get(key) is not None:
                values.append(float(record[key]))
        if record.get("machine_busy_pct") is not None:
            used = float(cpu_pct or 0) + float(record.get("loadgen_cpu_pct") or 0)
            self.other_cpu.append(max(0.0, float(record["machine_busy_pct"]) - used))
        self.errors += int(record.get("failed") or 0) + int(record.get("non2xx") or 0)
        self.requests += int(record.get("requests") or 0)


def per_core_text(cpu_ms: Sequence[float]) -> str:
    """Tokens one fully busy core would issue per second: 1000 / the median CPU ms per token."""
    if not cpu_ms or statistics.median(cpu_ms) <= 0:
        return "-"
    return f"**{1000.0 / statistics.median(cpu_ms):.0f}**"


def render_table(rows: Sequence[Row], stats: dict[str, RowStats]) -> list[str]:
    """The markdown table, one line per row in `rows`; errors in bold with ⚠."""
    lines = [
        "| method | connections | tokens/s | p50 / p99 ms | server CPU ms/token | tokens/s per core | "
        "server CPU % | errors / requests | load |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        row_stats = stats[row.name]
        connections = MODES[row.mode][1]
        head = f"| {row.method.label} | {connections} |"
        if row_stats.skipped:
            lines.append(f"{head} {row_stats.skipped} | | | | | | |")
            continue
        errors = f"{row_stats.errors} / {row_stats.requests}"
        if row_stats.errors:
            errors = f"**⚠ {errors}**"
        lines.append(
            f"{head} {median_text(row_stats.tokens, 0, spread=True)} | "
            f"{median_text(row_stats.p50, 1)} / {median_text(row_stats.p99, 1)} | "
            f"{median_text(row_stats.cpu_ms, 3)} | {per_core_text(row_stats.cpu_ms)} | "
            f"{median_text(row_stats.server_cpu, 0)} | {errors} | {_TOOL_NAMES[row.method.tool]} |"
        )
    return lines


# ---------------------------------------------------------------- clients and the probe


def _specs(pki: Path, scenarios: Sequence[dict[str, Any]], jwt_secret: str) -> dict[str, ClientSpec]:
    """bench_anchor's clients plus the two methods the anchor has no client for."""
    specs = client_specs(pki, scenarios)
    common = {"grant_types": ["client_credentials"], "scope": "api:read api:write"}
    specs["post-client"] = ClientSpec(
        "client_secret_post",
        {"token_endpoint_auth_method": "client_secret_post", "client_name": "post-client", **common},
        secret=BENCH_SECRET,
    )
    specs["secretjwt-client"] = ClientSpec(
        "client_secret_jwt",
        {
            "token_endpoint_auth_method": "client_secret_jwt",
            "token_endpoint_auth_signing_alg": "HS256",
            "client_name": "secretjwt-client",
            **common,
        },
        secret=jwt_secret,
    )
    return specs


def _node(work: Path, script: str, *args: str) -> str:
    result = subprocess.run(
        ["node", script, *args], cwd=work, capture_output=True, text=True, timeout=30, check=False
    )
    if result.returncode != 0:
        raise BenchError(f"node {script} failed: {result.stderr.strip()[-500:]}")
    return result.stdout.strip()


def _probe(work: Path, scenario: dict[str, Any]) -> Probe:
    """One request shaped like the method's load (bench_anchor.probe_token judges the answer)."""
    url = urllib.parse.urlsplit(str(scenario["url"]))
    context = ssl.create_default_context(cafile=str(work / "pki" / "server-ca.crt"))
    cert_file: Path | None = None
    if scenario.get("cert_pem"):
        cert_file = work / str(scenario["cert_pem"])
        context.load_cert_chain(cert_file)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if scenario.get("basic"):
        headers["Authorization"] = "Basic " + base64.b64encode(str(scenario["basic"]).encode()).decode()
    body = str(scenario["body"])
    jkt: str | None = None
    tool = scenario["tool"]
    if tool == "dpop":
        made = json.loads(_node(work, scenario["_script"], "--print-proof", "--htu", scenario["htu"]))
        headers["DPoP"], jkt = made["proof"], made["jkt"]
        headers["Host"] = urllib.parse.urlsplit(scenario["htu"]).netloc
    elif tool in ("loadgen", "secret_jwt"):
        client = scenario["pkjwt_client"] if tool == "loadgen" else scenario["client"]
        aud = scenario["pkjwt_aud"] if tool == "loadgen" else scenario["aud"]
        if tool == "loadgen":
            assertion = _node(work, "scripts/make-assertion.mjs", client, aud)
        else:
            assertion = _node(
                work, scenario["_script"], "--print-assertion", "--client", client,
                "--secret", scenario["secret"], "--aud", aud,
            )  # fmt: skip
        body += "&" + urllib.parse.urlencode(
            {
                "client_id": client,
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": assertion,
            }
        )
    return probe_token(url, context, headers, body, cert_file, jkt)


# ---------------------------------------------------------------- load runs


def _scenario(row: Row, work: Path, port: int, timing: dict[str, float], jwt_secret: str) -> dict[str, Any]:
    """The anchor harness's scenario dict for a row (its `run_one` reads these keys)."""
    method = row.method
    scenario: dict[str, Any] = {
        "name": row.name,
        "desc": f"{method.label}, {MODES[row.mode][1]}",
        "server": "certbound",
        "tool": method.tool,
        "mode": MODES[row.mode][0],
        "url": f"https://127.0.0.1:{port}/token",
        "body": BODY,
        "conns": CONNS,
        "abn": 2_000_000,
        **timing,
        **method.fields,
    }
    issuer = f"https://localhost:{port}"
    if method.tool == "loadgen":
        scenario["pkjwt_aud"] = issuer
    elif method.tool == "secret_jwt":
        scenario.update(
            client=method.client_id,
            secret=jwt_secret,
            aud=issuer,
            _script=str(work / OWN_TOOLS_DIR / "secret_jwt_loadgen.mjs"),
        )
    elif method.tool == "dpop":
        # The URL certbound checks `htu` against: its token endpoint under the issuer.
        scenario.update(htu=f"{issuer}/token", _script=str(work / OWN_TOOLS_DIR / "dpop_loadgen.mjs"))
    return scenario


def _own_tool_cmd(scenario: dict[str, Any]) -> list[str]:
    common = [
        "--url", scenario["url"], "--body", scenario["body"], "--conns", str(scenario["conns"]),
        "--duration", str(scenario["duration"]), "--warmup", str(scenario["warmup"]),
    ]  # fmt: skip
    if scenario["mode"] == "newconn":
        common.append("--new-conn")
    if scenario["tool"] == "dpop":
        return ["node", scenario["_script"], "--htu", scenario["htu"], "--basic", scenario["basic"], *common]
    return [
        "node", scenario["_script"], "--client", scenario["client"], "--secret", scenario["secret"],
        "--aud", scenario["aud"], *common,
    ]  # fmt: skip


def _run_own_tool(harness: ModuleType, scenario: dict[str, Any], roots: list[int]) -> dict[str, Any]:
    """One run of our node tool, measured as the harness measures loadgen.mjs."""
    record: dict[str, Any] = {
        key: scenario.get(key) for key in ("name", "desc", "tool", "mode", "conns", "url")
    }
    warmup, duration = float(scenario["warmup"]), float(scenario["duration"])
    return measure_own_tool(harness, _own_tool_cmd(scenario), roots, warmup, duration, record)


def _measure(harness: ModuleType, scenario: dict[str, Any], rep: int, roots: list[int]) -> dict[str, Any]:
    if scenario["tool"] in ("ab", "loadgen"):
        record: dict[str, Any] = harness.run_one(
            {key: value for key, value in scenario.items() if not key.startswith("_")}, rep, roots
        )
    else:
        record = _run_own_tool(harness, scenario, roots)
        record["rep"] = rep
    secret = scenario.get("secret")
    if secret:  # a throwaway client's in a throwaway database, but a report need not show it
        record["cmd"] = str(record.get("cmd", "")).replace(str(secret), "$SECRET")
    return record


# ---------------------------------------------------------------- main


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, help="repetitions, median reported (default 3; 1 with --quick)")
    parser.add_argument(
        "--only",
        help="comma-separated row-name prefixes: " + ", ".join(row.name for row in select_rows(None)),
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"development: 1 rep of {QUICK_WARMUP_S:g} s warm-up + {QUICK_DURATION_S:g} s measured",
    )
    parser.add_argument("--duration", type=float, help=f"measured seconds per run (default {DURATION_S:g})")
    parser.add_argument("--warmup", type=float, help=f"warm-up seconds per run (default {WARMUP_S:g})")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"certbound's port (default {DEFAULT_PORT})"
    )
    parser.add_argument("--anchor", type=Path, default=DEFAULT_ANCHOR, help="the shared anchor (read only)")
    parser.add_argument(
        "--workdir", type=Path, default=DEFAULT_WORKDIR, help="git-ignored copy of the anchor"
    )
    args = parser.parse_args(argv)
    if args.reps is None:
        args.reps = 1 if args.quick else 3
    if args.duration is None:
        args.duration = QUICK_DURATION_S if args.quick else DURATION_S
    if args.warmup is None:
        args.warmup = QUICK_WARMUP_S if args.quick else WARMUP_S
    if args.reps < 1 or args.duration <= 0 or args.warmup < 0:
        parser.error("--reps must be >= 1, --duration > 0, --warmup >= 0")
    return args


def git_output(*args: str) -> str:
    """What `git ARGS` prints in the checkout (`?` when it fails): the commit a report names."""
    result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30, check=False)
    return result.stdout.strip() if result.returncode == 0 else "?"


def command_line() -> str:
    """How this run was started, the interpreter relative to the checkout when it is inside it."""
    python = Path(sys.executable)
    with_root = python.absolute()
    shown = str(with_root.relative_to(ROOT)) if with_root.is_relative_to(ROOT) else str(python)
    script = Path(sys.argv[0]).absolute()
    return shlex.join(
        [shown, str(script.relative_to(ROOT)) if script.is_relative_to(ROOT) else str(script), *sys.argv[1:]]
    )


def _header(args: argparse.Namespace, started: str) -> list[str]:
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    return [
        f"# certbound tokens/s per method, {started}",
        "",
        f"- command: `{command_line()}`",
        f"- certbound `{git_output('describe', '--always', '--dirty')}` "
        f"(commit {git_output('rev-parse', 'HEAD')}), Python {sys.version.split()[0]}, "
        "one `certbound serve` process (1 worker), SQLite, anchor PKI",
        f"- load: {CONNS} connections closed loop, {args.warmup:g} s warm-up + {args.duration:g} s measured, "
        f"{args.reps} rep(s), medians (min-max of tokens/s)",
        f"- machine: {os.cpu_count()} CPUs, load average at start {load}; the load generator shares them",
        "- tokens/s counts HTTP 200 only; server CPU ms/token = the server's CPU over the measured window "
        "/ tokens; tokens/s per core = 1000 / CPU ms per token",
    ]


def _run(args: argparse.Namespace, rows: list[Row], work: Path, raw: Path) -> dict[str, RowStats]:
    """Start the server, register the clients, probe each method, measure every row `reps` times."""
    pki = work / "pki"
    cb_dir = work / "methods"
    shutil.rmtree(cb_dir, ignore_errors=True)  # a fresh database and clients every run
    cb_dir.mkdir(parents=True)
    jwt_secret = secrets.token_urlsafe(32)
    timing = {"duration": args.duration, "warmup": args.warmup}
    scenarios = {row.name: _scenario(row, work, args.port, timing, jwt_secret) for row in rows}
    write_federation(cb_dir, pki, list(scenarios.values()))
    stats = {row.name: RowStats() for row in rows}
    per_run = args.warmup + args.duration + 5
    lifetime = int(
        2 * per_run * len(rows) * args.reps + 300
    )  # the server dies on its own even if we are killed
    servers = Servers(work)
    try:
        servers.start_certbound(cb_dir, pki, args.port, lifetime)
        wanted = {row.method.client_id for row in rows}
        refused = register_clients(cb_dir, _specs(pki, list(scenarios.values()), jwt_secret), wanted)
        roots = [int((cb_dir / "certbound.pid").read_text().split()[0])]
        print("== one request per method", flush=True)
        probes: dict[str, Probe] = {}
        for row in rows:
            method = row.method
            if method.client_id in refused:
                stats[row.name].skipped = refused[method.client_id]
                continue
            if method.key not in probes:
                probes[method.key] = _probe(work, scenarios[row.name])
                print(f"   {method.label}: {probes[method.key].detail}", flush=True)
            ok, detail = probes[method.key].ok, probes[method.key].detail
            if not ok:
                print(f"   !!! {method.label}: CERTBOUND DOES NOT ISSUE A VALID TOKEN: {detail}", flush=True)
                stats[row.name].skipped = f"skipped: ⚠ certbound answered {detail}"
        harness = load_anchor_harness(work)
        measured = [row for row in rows if stats[row.name].skipped is None]
        minutes = per_run * len(measured) * args.reps / 60
        print(f"== {len(measured)} rows x {args.reps} rep(s), about {minutes:.1f} min", flush=True)
        with raw.open("a") as records:
            for rep in range(1, args.reps + 1):
                for row in measured:
                    record = _measure(harness, scenarios[row.name], rep, roots)
                    records.write(json.dumps(record) + "\n")
                    records.flush()
                    stats[row.name].add(record)
                    print(
                        f"[rep {rep}] {row.name:<16} {ok_tokens_per_s(record) or 0.0:>8.1f} tokens/s  "
                        f"p50 {record.get('p50_ms')}  p99 {record.get('p99_ms')} ms  "
                        f"errors {int(record.get('failed') or 0) + int(record.get('non2xx') or 0)}  "
                        f"srvCPU {record.get('server_cpu_pct')}%  genCPU {record.get('loadgen_cpu_pct')}%"
                        + (
                            f"  rc={record['rc']}: {record.get('stderr_tail', '')[-200:]}"
                            if record.get("rc")
                            else ""
                        ),
                        flush=True,
                    )
                    servers.check_alive()
    finally:
        servers.stop()
    return stats


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    unwind_on_sigterm()
    work: Path = args.workdir.resolve()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    report = ROOT / "run" / f"methods-{stamp}.md"
    raw = report.with_suffix(".jsonl")
    try:
        rows = select_rows(args.only)
        check_prerequisites(args.anchor, work)
        prepare_workdir(args.anchor, work)
        if port_in_use(args.port):
            raise BenchError(f"127.0.0.1:{args.port} is already in use (a leftover server?): free it first")
        raw.parent.mkdir(parents=True, exist_ok=True)
        stats = _run(args, rows, work, raw)
    except BenchError as exc:
        print(f"bench_methods: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench_methods: interrupted", file=sys.stderr)
        return 130

    lines = [*_header(args, started), "", *render_table(rows, stats), ""]
    other = [value for row_stats in stats.values() for value in row_stats.other_cpu]
    if other and statistics.median(other) > _BUSY_OTHER_CPU:
        lines.append(
            f"⚠ the machine was busy with other work (median {statistics.median(other):.0f} % of a core "
            "outside the server and the load generator): tokens/s are noisy in this run; CPU ms/token "
            "and tokens/s per core are the steadier figures."
        )
    failing = [row for row in rows if stats[row.name].errors or stats[row.name].skipped]
    for row in failing:
        row_stats = stats[row.name]
        what = row_stats.skipped or f"{row_stats.errors} errors out of {row_stats.requests} requests"
        lines.append(f"**⚠ `{row.name}`: {what}.**")
    lines += ["", f"Raw records with each run's exact load command: `{raw.relative_to(ROOT)}`"]
    text = "\n".join(lines) + "\n"
    report.write_text(text)
    print("\n" + text)
    print(f"written to {report.relative_to(ROOT)}")
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
