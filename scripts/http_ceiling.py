#!/usr/bin/env python3
"""Where a keep-alive mTLS token's CPU goes, layer by layer (issue 15: what would close the gap).

The anchor's `a-mtls-ka` load (ab, 32 keep-alive connections with a client certificate, 3 s
warm-up + 12 s measured) runs against four servers in turn, reps interleaved, each measured with
the anchor harness's own `run_one` (server CPU over the measured window only):

1. `TLS + minimal HTTP`: certbound's TLS layer and a responder that only finds each request's end
   and writes the anchor's fixed token-sized JSON (scripts/ceiling_server.py `--layer raw`);
2. `+ aiohttp web.Server`: aiohttp's low-level server on the same TLS layer (`aiohttp-server`);
3. `+ aiohttp web.Application`: its router and middleware chain (`aiohttp-app`);
4. `certbound serve`: the real token endpoint (tls_client_auth, an ES256 JWT bound to the
   certificate, the access line, the metrics), started as `make bench` starts it.

The step from one row to the next is the CPU that layer adds to a request. Layers 1-3 answer
every request with the same bytes and are measuring devices, not servers.

    scripts/http_ceiling.py                  # 4 servers x 3 reps (about 4 min)
    scripts/http_ceiling.py --quick          # 1 rep of 1 s warm-up + 3 s measured

Writes run/ceiling-<timestamp>.md (the table, the command line, the commit) and
run/ceiling-<timestamp>.jsonl (one record per run, each with its exact ab command).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import ssl
import statistics
import sys
import time
import tomllib
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_anchor import (
    DEFAULT_ANCHOR,
    DEFAULT_WORKDIR,
    ROOT,
    BenchError,
    Servers,
    check_prerequisites,
    client_of,
    client_specs,
    load_anchor_harness,
    port_in_use,
    prepare_workdir,
    probe_token,
    register_clients,
    unwind_on_sigterm,
    write_federation,
)
from bench_methods import RowStats, command_line, git_output
from bench_report import median_text, ok_tokens_per_s

__all__ = ["LAYERS", "Layer", "main", "render_table"]

SCENARIO = "a-mtls-ka"
DEFAULT_PORT = 19610  # the four servers take this port and the three after it
QUICK_WARMUP_S = 1.0
QUICK_DURATION_S = 3.0


@dataclass(frozen=True)
class Layer:
    """One server of the comparison: a ceiling_server.py layer, or `serve` when `device` is None."""

    key: str
    label: str
    device: str | None


LAYERS: tuple[Layer, ...] = (
    Layer("raw", "TLS layer + minimal HTTP responder", "raw"),
    Layer(
        "aiohttp-server",
        "+ aiohttp `web.Server` (parser, request, response, a task per request)",
        "aiohttp-server",
    ),
    Layer("aiohttp-app", "+ aiohttp `web.Application` (router, middleware chain)", "aiohttp-app"),
    Layer("certbound", "`certbound serve`: the token endpoint (tls_client_auth, ES256 JWT)", None),
)


def render_table(stats: dict[str, RowStats]) -> list[str]:
    """One line per layer; the step is the median CPU ms per request minus the row above's. "Other
    CPU" is the machine's busy time outside the server and ab (other tenants): where it is high,
    that row's figures are noisy, and a step smaller than the noise can even come out negative."""
    lines = [
        "| server | requests/s | p50 / p99 ms | server CPU ms/request | step from the row above | "
        "errors / requests | other CPU % |",
        "|---|---|---|---|---|---|---|",
    ]
    previous: float | None = None
    for layer in LAYERS:
        row = stats[layer.key]
        if row.skipped:
            lines.append(f"| {layer.label} | {row.skipped} | | | | | |")
            previous = None
            continue
        cpu = statistics.median(row.cpu_ms) if row.cpu_ms else None
        step = "-" if cpu is None or previous is None else f"{cpu - previous:+.3f} ms"
        errors = f"{row.errors} / {row.requests}"
        lines.append(
            f"| {layer.label} | {median_text(row.tokens, 0, spread=True)} | "
            f"{median_text(row.p50, 1)} / {median_text(row.p99, 1)} | {median_text(row.cpu_ms, 3)} | "
            f"{step} | {f'**⚠ {errors}**' if row.errors else errors} | {median_text(row.other_cpu, 0)} |"
        )
        previous = cpu
    return lines


def _base_scenario(work: Path) -> dict[str, Any]:
    """The anchor's scenario with its [defaults] (connections, warm-up, duration) filled in."""
    config = tomllib.loads((work / "scenarios" / "oidc-provider.toml").read_text())
    for scenario in config["scenario"]:
        if scenario["name"] == SCENARIO:
            return {**config["defaults"], **scenario}
    raise BenchError(f"the anchor has no scenario {SCENARIO}")


def _probe(work: Path, scenario: dict[str, Any], expect_token: bool) -> str:
    """One request like the load's: `serve` must answer a certificate-bound JWT, a device any 200
    (its fixed JSON holds no real token)."""
    url = urllib.parse.urlsplit(str(scenario["url"]))
    context = ssl.create_default_context(cafile=str(work / "pki" / "server-ca.crt"))
    cert_file = work / str(scenario["cert_pem"])
    context.load_cert_chain(cert_file)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    probe = probe_token(url, context, headers, str(scenario["body"]), cert_file, None)
    # probe_token says "HTTP <status>" for anything but a 200, "request failed" when none came.
    if (expect_token and not probe.ok) or probe.detail.startswith(("HTTP ", "request failed")):
        raise BenchError(f"{url.geturl()}: {probe.detail}")
    return probe.detail if expect_token else "HTTP 200"


def _start_layers(
    servers: Servers, work: Path, port: int, lifetime: int, scenario: dict[str, Any]
) -> dict[str, int]:
    """Start every server, each with its own directory under `work`/http-ceiling; returns the
    PID each was started as (a `timeout` wrapper: the harness counts its descendants' CPU)."""
    pki = work / "pki"
    root = work / "http-ceiling"
    shutil.rmtree(root, ignore_errors=True)
    for offset, layer in enumerate(LAYERS):
        directory = root / layer.key
        directory.mkdir(parents=True)
        if layer.device is None:
            write_federation(directory, pki, [scenario])  # `make bench`'s settings name the file
            servers.start_certbound(directory, pki, port + offset, lifetime)
            continue
        cmd = [
            "timeout", str(lifetime), sys.executable, str(ROOT / "scripts" / "ceiling_server.py"),
            "--layer", layer.device, "--port", str(port + offset),
            "--tls-cert", str(pki / "server.crt"), "--tls-key", str(pki / "server.key"),
            "--client-ca", str(pki / "client-ca.crt"),
            "--response", str(work / "ceiling" / "fixed-response.json"),
        ]  # fmt: skip
        servers.start_command(cmd, directory, f"{layer.key} on :{port + offset}")
    return {layer.key: int((root / layer.key / "certbound.pid").read_text().split()[0]) for layer in LAYERS}


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, help="repetitions, median reported (default 3; 1 with --quick)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"development: 1 rep of {QUICK_WARMUP_S:g} s warm-up + {QUICK_DURATION_S:g} s measured",
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"the first of four ports (default {DEFAULT_PORT})"
    )
    parser.add_argument("--anchor", type=Path, default=DEFAULT_ANCHOR, help="the shared anchor (read only)")
    parser.add_argument(
        "--workdir", type=Path, default=DEFAULT_WORKDIR, help="git-ignored copy of the anchor"
    )
    args = parser.parse_args(argv)
    if args.reps is None:
        args.reps = 1 if args.quick else 3
    if args.reps < 1:
        parser.error("--reps must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    work = args.workdir
    try:
        check_prerequisites(args.anchor, work)
        prepare_workdir(args.anchor, work)
        busy = [port for port in range(args.port, args.port + len(LAYERS)) if port_in_use(port)]
        if busy:
            raise BenchError(f"ports in use: {busy}; free them or pass --port")
        base = _base_scenario(work)
        if args.quick:
            base.update(warmup=QUICK_WARMUP_S, duration=QUICK_DURATION_S)
        warmup, duration = float(base["warmup"]), float(base["duration"])
    except BenchError as exc:
        print(f"http_ceiling: {exc}", file=sys.stderr)
        return 2
    started = time.strftime("%Y%m%d-%H%M%S")
    out_dir = ROOT / "run"
    out_dir.mkdir(exist_ok=True)
    report, raw = out_dir / f"ceiling-{started}.md", out_dir / f"ceiling-{started}.jsonl"
    per_run = warmup + duration + 3
    lifetime = int(per_run * len(LAYERS) * args.reps + 300)  # the servers die on their own if we are killed
    stats = {layer.key: RowStats() for layer in LAYERS}
    servers = Servers(work)
    # SIGTERM unwinds through the finally below, which stops every server this run started.
    unwind_on_sigterm()
    try:
        pids = _start_layers(servers, work, args.port, lifetime, base)
        certbound_dir = work / "http-ceiling" / "certbound"
        refused = register_clients(certbound_dir, client_specs(work / "pki", [base]), {client_of(base)})
        if refused:
            raise BenchError(f"the client could not be registered: {refused}")
        scenarios = {
            layer.key: {**base, "server": layer.key, "url": f"https://127.0.0.1:{args.port + offset}/token"}
            for offset, layer in enumerate(LAYERS)
        }
        print("== one request per server", flush=True)
        for layer in LAYERS:
            print(f"   {layer.key}: {_probe(work, scenarios[layer.key], layer.device is None)}", flush=True)
        harness = load_anchor_harness(work)
        minutes = per_run * len(LAYERS) * args.reps / 60
        print(f"== {len(LAYERS)} servers x {args.reps} rep(s), about {minutes:.1f} min", flush=True)
        with raw.open("a") as records:
            for rep in range(1, args.reps + 1):
                for layer in LAYERS:
                    record = harness.run_one(dict(scenarios[layer.key]), rep, [pids[layer.key]])
                    servers.check_alive()
                    records.write(json.dumps(record) + "\n")
                    records.flush()
                    stats[layer.key].add(record)
                    print(
                        f"[rep {rep}] {layer.key:<15} {ok_tokens_per_s(record) or 0.0:>9.1f} req/s  "
                        f"p99 {record.get('p99_ms')} ms  srvCPU {record.get('server_cpu_pct')}%  "
                        f"genCPU {record.get('loadgen_cpu_pct')}%",
                        flush=True,
                    )
    except BenchError as exc:
        print(f"http_ceiling: {exc}", file=sys.stderr)
        return 1
    finally:
        servers.stop()
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    lines = [
        f"# certbound: a keep-alive mTLS request's CPU by layer, {started}",
        "",
        f"- command: `{command_line()}`",
        f"- certbound `{git_output('describe', '--always', '--dirty')}` "
        f"(commit {git_output('rev-parse', 'HEAD')}), Python {sys.version.split()[0]}",
        f"- load: the anchor's {SCENARIO} (ab, {base['conns']} keep-alive connections, a client "
        f"certificate), {warmup:g} s warm-up + {duration:g} s measured, {args.reps} rep(s) "
        "interleaved, medians (min-max)",
        f"- machine: {os.cpu_count()} CPUs, load average at the end {load}; ab shares them",
        "",
        *render_table(stats),
    ]
    report.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\nwritten to {report.relative_to(ROOT)} (raw records: {raw.relative_to(ROOT)})")
    return 1 if any(row.errors for row in stats.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
