"""Metrics: the exposition of one process, and the sum of several processes' files."""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from certbound.metrics import Metrics, share_across_processes


def _samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for sample in family.samples
    }


def test_counters_and_the_latency_histogram() -> None:
    metrics = Metrics()
    metrics.token_issued("client_credentials", "private_key_jwt")
    # The second of a label set goes to the remembered child, a new set to its own.
    metrics.token_issued("client_credentials", "private_key_jwt")
    metrics.token_issued("client_credentials", "tls_client_auth")
    metrics.client_auth_refused("jti_replayed")
    metrics.client_auth_refused("jti_replayed")
    metrics.error("/token", "invalid_client")
    metrics.request_done("/token", 200, 0.003)
    metrics.request_done("/token", 401, 0.2)
    samples = _samples(metrics)
    assert (
        samples[
            (
                "certbound_tokens_issued_total",
                (("auth_method", "private_key_jwt"), ("grant_type", "client_credentials")),
            )
        ]
        == 2
    )
    assert (
        samples[
            (
                "certbound_tokens_issued_total",
                (("auth_method", "tls_client_auth"), ("grant_type", "client_credentials")),
            )
        ]
        == 1
    )
    assert samples[("certbound_client_auth_refusals_total", (("reason", "jti_replayed"),))] == 2
    assert samples[("certbound_errors_total", (("endpoint", "/token"), ("error", "invalid_client")))] == 1
    assert samples[("certbound_http_responses_total", (("route", "/token"), ("status", "401")))] == 1
    assert samples[("certbound_request_duration_seconds_count", (("route", "/token"),))] == 2
    assert samples[("certbound_request_duration_seconds_bucket", (("le", "0.005"), ("route", "/token")))] == 1
    assert samples[("certbound_request_duration_seconds_bucket", (("le", "0.25"), ("route", "/token")))] == 2


def test_two_servers_in_one_process_do_not_share_counts() -> None:
    first, second = Metrics(), Metrics()
    first.token_issued("client_credentials", "none")
    assert not any(name == "certbound_tokens_issued_total" for name, _ in _samples(second))


def _worker(directory: Path, tokens: int) -> None:
    """A forked process counting like a worker of `serve --workers`."""
    pid = os.fork()
    if pid == 0:
        try:
            share_across_processes(directory)
            metrics = Metrics(directory)
            for _ in range(tokens):
                metrics.token_issued("client_credentials", "client_secret_basic")
            metrics.client_auth_refused("bad_secret")
            metrics.request_done("/token", 200, 0.01)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert status == 0


def test_a_scrape_sums_every_worker_including_one_that_has_exited(tmp_path: Path) -> None:
    _worker(tmp_path, 3)
    _worker(tmp_path, 4)
    samples = _samples(Metrics(tmp_path))  # this process only reads the files
    tokens = (
        "certbound_tokens_issued_total",
        (("auth_method", "client_secret_basic"), ("grant_type", "client_credentials")),
    )
    assert samples[tokens] == 7
    assert samples[("certbound_client_auth_refusals_total", (("reason", "bad_secret"),))] == 2
    assert samples[("certbound_request_duration_seconds_count", (("route", "/token"),))] == 2
