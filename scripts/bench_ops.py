#!/usr/bin/env python3
"""What operations cost per token request: the access line and the metrics, in microseconds.

Times, in this process, exactly what certbound's request middleware adds to a token request:
building and writing its access line (text and JSON formats, through a real file handler on
/dev/null, so the write system call is counted) and its metric updates (one latency observation,
one response count, one token count), once with in-process metrics (`serve`) and once backed by
the shared files of `serve --workers N`. Compare with the CPU a token costs in total (README,
Performance: about 270 µs with keep-alive).

    .venv/bin/python scripts/bench_ops.py              # 20,000 rounds each
    .venv/bin/python scripts/bench_ops.py --rounds 100000
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from aiohttp.test_utils import make_mocked_request

from certbound.accesslog import AccessRecord
from certbound.logformat import configure_logging
from certbound.metrics import Metrics, share_across_processes


def _per_call(action: Callable[[], object], rounds: int) -> float:
    """CPU microseconds per call (process time: steadier than wall time on a shared machine),
    the best of three runs."""
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        for _ in range(rounds):
            action()
        best = min(best, (time.process_time() - started) / rounds * 1e6)
    return best


def _access_line(log_format: str, rounds: int) -> float:
    with open(os.devnull, "w") as devnull:
        configure_logging("info", log_format, devnull)
        request = make_mocked_request("POST", "/token")

        def write() -> None:
            record = AccessRecord("5f1c2d3e4a5b6c7d", client_id="svc", auth_method="client_secret_basic")
            record.facts.update(grant_type="client_credentials", scope="read write")
            record.write(request, 200, 0.000412, "dGhpcyBpcyBub3QgYSByZWFsIHRodW1icHJpbnQgYXQgYWxs")

        try:
            return _per_call(write, rounds)
        finally:
            logging.getLogger().handlers.clear()


def _plain_log_line(rounds: int) -> float:
    """The yardstick: one stdlib logging call with the stock format, to /dev/null."""
    with open(os.devnull, "w") as devnull:
        handler = logging.StreamHandler(devnull)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger = logging.getLogger("bench.plain")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
        try:
            return _per_call(lambda: logger.info("%s %s %d", "POST", "/token", 200), rounds)
        finally:
            logger.removeHandler(handler)


def _metrics(metrics: Metrics, rounds: int) -> float:
    def update() -> None:
        metrics.request_done("/token", 200, 0.000412)
        metrics.token_issued("client_credentials", "client_secret_basic")

    return _per_call(update, rounds)


def _shared_metrics(rounds: int) -> float:
    """In a forked child, as in a worker: metrics backed by a file in a shared directory."""
    with tempfile.TemporaryDirectory(prefix="certbound-bench-") as directory:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_fd)
            share_across_processes(Path(directory))
            os.write(write_fd, f"{_metrics(Metrics(Path(directory)), rounds)}".encode())
            os._exit(0)
        os.close(write_fd)
        with os.fdopen(read_fd) as result:
            cost = float(result.read())
        os.waitpid(pid, 0)
        scrape = _per_call(Metrics(Path(directory)).render, 200)
    print(f"  /metrics scrape reading the shared files:     {scrape:8.1f} µs per scrape")
    return cost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20_000)
    rounds = parser.parse_args().rounds
    plain = _plain_log_line(rounds)
    text = _access_line("text", rounds)
    json_line = _access_line("json", rounds)
    local = _metrics(Metrics(), rounds)
    print(f"per token request ({rounds} rounds, best of 3):")
    shared = _shared_metrics(rounds)
    print(f"  yardstick: one plain stdlib logging line:   {plain:8.1f} µs")
    print(f"  access line, --log-format text:             {text:8.1f} µs")
    print(f"  access line, --log-format json:             {json_line:8.1f} µs")
    print(f"  metrics, one process:                       {local:8.1f} µs")
    print(f"  metrics, --workers N (shared files):        {shared:8.1f} µs")


if __name__ == "__main__":
    main()
