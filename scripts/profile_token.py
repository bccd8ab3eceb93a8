#!/usr/bin/env python3
"""Where certbound spends a token: py-spy samples the server under one of the anchor's ab loads.

Starts certbound alone (anchor PKI, fresh database, the scenario's client), drives it with exactly
the anchor's `ab` command for the scenario, samples the server's main thread with py-spy after the
warm-up, and prints the share of samples per layer (TLS, HTTP parsing, JSON, signing, logging, ...)
and the hottest functions. Each sample is charged to the nearest frame, from the leaf up, whose file
belongs to a layer; frames of generic modules (dataclass `__init__`, `random`, `abc`) pass it on to
their caller.

    .venv/bin/pip install py-spy            # a local tool, not a project dependency
    scripts/profile_token.py                # c-basic-ka, 3 s warm-up + 10 s sampled
    scripts/profile_token.py --scenario a-mtls-ka --seconds 20 --native

Writes run/profile-<timestamp>.md and the raw collapsed stacks (run/profile-<timestamp>.txt, for
flamegraph.pl or speedscope).
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Sequence
from pathlib import Path

from bench_anchor import (
    CB_PORT,
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
    register_clients,
    write_federation,
)

__all__ = ["LAYERS", "main"]

#: Layer -> a pattern of the frames ("function (file:line)") that belong to it; the first layer that
#: matches wins. The `sign*` functions of certbound/keys.py are listed because the C ECDSA call is
#: charged to them. Our frames show as certbound/ (the installed name) or server/ (the source tree,
#: depending on how the checkout is installed): `_OURS` matches both.
_OURS = r"(?:certbound|server)/"
LAYERS: tuple[tuple[str, str], ...] = (
    ("TLS (pyOpenSSL, certbound/tls)", rf"OpenSSL/|{_OURS}tls/|_cffi_backend|libssl"),
    ("JWT signing (ECDSA)", rf"\bsign\w* \({_OURS}keys\.py|cryptography/|_rust\.abi3|libcrypto"),
    ("JSON", r"json/"),
    ("logging", r"logging/"),
    ("database (aiosqlite)", r"aiosqlite/|sqlite3/"),
    ("form/URL parsing (urllib)", r"urllib/"),
    ("client auth (HMAC, credentials)", rf"hmac\.py|{_OURS}clientauth/|{_OURS}vault\.py|base64\.py"),
    ("aiohttp request parsing", r"aiohttp/_?http_parser|aiohttp/streams\.py"),
    ("aiohttp request/response objects", r"aiohttp/web_request\.py|aiohttp/web_response\.py|multidict"),
    ("aiohttp writing", r"aiohttp/http_writer\.py|aiohttp/base_protocol\.py"),
    ("aiohttp protocol/dispatch", r"aiohttp/"),
    ("certbound app (endpoints, grants, tokens, keys)", _OURS),
    ("asyncio loop and socket send/recv", r"asyncio/|selectors\.py|socket\.py"),
)
_LAYER_PATTERNS = tuple((layer, re.compile(pattern)) for layer, pattern in LAYERS)


def _child_pid(pid: int) -> int:
    """The python process under the `timeout` wrapper the bench starts certbound with."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    if not children:
        raise BenchError(f"certbound wrapper {pid} has no child process")
    return int(children[0])


def _layer(frames: Sequence[str]) -> str:
    for frame in reversed(frames):
        for layer, pattern in _LAYER_PATTERNS:
            if pattern.search(frame):
                return layer
    return "other"


def _analyse(raw: Path, top: int) -> list[str]:
    layers: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        frames = stack.split(";")
        if not frames or "MainThread" not in frames[0]:
            continue  # helper threads (aiosqlite) are mostly idle; the event loop is the bottleneck
        count = int(count_text)
        total += count
        frames = frames[1:]
        layers[_layer(frames)] += count
        names = [re.sub(r":\d+\)$", ")", frame) for frame in frames]
        leaves[names[-1]] += count
        for name in set(names):
            inclusive[name] += count
    if not total:
        raise BenchError(f"no main-thread samples in {raw}")
    lines = [f"{total} main-thread samples", "", "| layer | share of samples |", "|---|---|"]
    lines += [f"| {layer} | {100 * count / total:.1f} % |" for layer, count in layers.most_common()]
    lines += ["", f"Top {top} functions by own time (C calls are charged to their Python caller):", ""]
    lines += ["| own % | function |", "|---|---|"]
    lines += [f"| {100 * count / total:.1f} | `{name}` |" for name, count in leaves.most_common(top)]
    lines += ["", "Inclusive time of certbound's own functions:", "", "| incl. % | function |", "|---|---|"]
    ours = [(name, count) for name, count in inclusive.most_common() if re.search(r"\(" + _OURS, name)]
    lines += [f"| {100 * count / total:.1f} | `{name}` |" for name, count in ours[:top]]
    return lines


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenario", default="c-basic-ka", help="an anchor scenario driven by ab")
    parser.add_argument("--seconds", type=float, default=10.0, help="sampled seconds (after the warm-up)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of load before sampling")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--native", action="store_true", help="also sample C frames (slower sampling)")
    parser.add_argument("--top", type=int, default=25, help="rows in the function tables")
    parser.add_argument("--port", type=int, default=CB_PORT, help=f"certbound's port (default {CB_PORT})")
    parser.add_argument("--anchor", type=Path, default=DEFAULT_ANCHOR, help="the shared anchor (read only)")
    parser.add_argument(
        "--workdir", type=Path, default=DEFAULT_WORKDIR, help="git-ignored copy of the anchor"
    )
    return parser.parse_args(argv)


def _profile(args: argparse.Namespace, py_spy: str, raw: Path) -> str:
    work = args.workdir.resolve()
    check_prerequisites(args.anchor, work)
    prepare_workdir(args.anchor, work)
    if port_in_use(args.port):
        raise BenchError(f"127.0.0.1:{args.port} is already in use: free it first")
    config = tomllib.loads((work / "scenarios" / "oidc-provider.toml").read_text())
    scenario = next((s for s in config["scenario"] if s["name"] == args.scenario), None)
    if scenario is None or scenario.get("tool") != "ab":
        raise BenchError(f"{args.scenario} is not an ab scenario of the anchor")
    url = scenario["url"].replace(":8443/", f":{args.port}/")
    scenario = {**config["defaults"], **scenario, "url": url}
    harness = load_anchor_harness(work)
    cb_dir = work / "profile"
    shutil.rmtree(cb_dir, ignore_errors=True)
    cb_dir.mkdir()
    write_federation(cb_dir, work / "pki", [scenario])  # serve's default settings name it
    servers = Servers(work)
    try:
        lifetime = int(args.warmup + args.seconds + 300)
        servers.start_certbound(cb_dir, work / "pki", args.port, lifetime)
        client = client_of(scenario)
        refused = register_clients(cb_dir, client_specs(work / "pki", [scenario]), {client})
        if client in refused:
            raise BenchError(f"{args.scenario}: {refused[client]}")
        assert servers.cb_process is not None
        pid = _child_pid(servers.cb_process.pid)
        with tempfile.NamedTemporaryFile("w", suffix=".body", dir=cb_dir, delete=False) as body:
            body.write(scenario["body"])
        scenario["_bodyfile"] = body.name
        ab = harness.ab_cmd(scenario, args.warmup + args.seconds + 1, None)
        spy = [py_spy, "record", "-p", str(pid), "-d", str(int(args.seconds)), "-r", str(args.rate)]
        spy += ["--threads", "-f", "raw", "-o", str(raw), *(["--native"] if args.native else [])]
        print(f"== load: {' '.join(ab)}", flush=True)
        load = subprocess.Popen(ab, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            time.sleep(args.warmup)
            subprocess.run(spy, check=True, timeout=args.seconds + 120)
            output, _ = load.communicate(timeout=args.seconds + 120)
        finally:
            if load.poll() is None:
                load.kill()
                load.wait()
    finally:
        servers.stop()
    rate = re.search(r"Requests per second:\s+([\d.]+)", output)
    non2xx = re.search(r"Non-2xx responses:\s+(\d+)", output)
    summary = f"{args.scenario}: {rate.group(1) if rate else '?'} req/s under py-spy"
    return summary + (f", ⚠ {non2xx.group(1)} non-2xx responses" if non2xx else ", all 2xx")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    py_spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if py_spy is None:
        print("profile_token: py-spy not found: .venv/bin/pip install py-spy", file=sys.stderr)
        return 2
    stamp = time.strftime("%Y%m%d-%H%M%S")
    raw = ROOT / "run" / f"profile-{stamp}.txt"
    raw.parent.mkdir(exist_ok=True)
    try:
        summary = _profile(args, py_spy, raw)
        lines = [f"# certbound profile, {time.strftime('%Y-%m-%d %H:%M:%S')}", "", summary, ""]
        lines += _analyse(raw, args.top)
    except (BenchError, subprocess.CalledProcessError) as exc:
        print(f"profile_token: {exc}", file=sys.stderr)
        return 2
    text = "\n".join(lines) + "\n"
    report = raw.with_suffix(".md")
    report.write_text(text)
    print("\n" + text + f"\nwritten to {report.relative_to(ROOT)} (raw stacks: {raw.relative_to(ROOT)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
