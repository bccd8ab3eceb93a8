"""`/metrics` (SPEC §3, §4): Prometheus counters and a latency histogram, summed across workers.

One `serve` process keeps its metrics in memory. With `--workers N` every worker writes its
values to its own memory-mapped file in a directory the supervisor made for this `serve`
(prometheus_client's multiprocess mode), and a scrape of any worker reads and sums all the files:
every scrape shows the totals of all workers, counts of a worker that died and was replaced
included. Label values come from bounded sets only (route templates, reason codes, grant types,
registered method names, OAuth error codes, HTTP statuses our app produces, the trust domains of
the federation file), so no request can create new series at will.
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.multiprocess import MultiProcessCollector

__all__ = ["CONTENT_TYPE", "Metrics", "share_across_processes"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
#: Seconds; a token request takes milliseconds, a jwks_uri fetch up to its timeout.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def share_across_processes(directory: Path) -> None:
    """In a worker process, before any `Metrics` exists: back every metric created from now on by
    a file of this process in `directory`. prometheus_client picks its value storage globally
    (normally from PROMETHEUS_MULTIPROC_DIR at import), so this is process-wide by nature; a
    worker process serves one server, and the in-process test harness never calls it."""
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]


class Metrics:
    """The server's metrics; `shared_directory` is the per-`serve` directory of all workers' files
    (given only when `share_across_processes` was called in this process)."""

    def __init__(self, shared_directory: Path | None = None) -> None:
        self._registry = CollectorRegistry(auto_describe=False)
        if shared_directory is not None:
            MultiProcessCollector(self._registry, path=str(shared_directory))  # type: ignore[no-untyped-call]
        own = self._registry if shared_directory is None else None
        self._tokens = Counter(
            "certbound_tokens_issued",
            "Access tokens issued, by grant type and client authentication method.",
            ["grant_type", "auth_method"],
            registry=own,
        )
        self._errors = Counter(
            "certbound_errors",
            "OAuth error responses, by route and error code.",
            ["endpoint", "error"],
            registry=own,
        )
        self._refusals = Counter(
            "certbound_client_auth_refusals",
            "Refused client authentications, by reason code.",
            ["reason"],
            registry=own,
        )
        self._responses = Counter(
            "certbound_http_responses",
            "HTTP responses, by route and status.",
            ["route", "status"],
            registry=own,
        )
        self._stale_bundles = Counter(
            "certbound_spiffe_bundle_stale_refusals",
            "SVIDs refused because their trust domain's bundle was stale (not refreshed for "
            "max_staleness, or never fetched), by trust domain.",
            ["trust_domain"],
            registry=own,
        )
        self._latency = Histogram(
            "certbound_request_duration_seconds",
            "Time from the request's headers to its response, by route.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=own,
        )
        # Label children, looked up once per label set rather than once per request.
        self._latency_by_route: dict[str, Histogram] = {}
        self._responses_by_key: dict[tuple[str, int], Counter] = {}
        self._tokens_by_key: dict[tuple[str, str], Counter] = {}

    def token_issued(self, grant_type: str, auth_method: str) -> None:
        # labels() validates and locks on every call: 2 % of a keep-alive token's CPU (py-spy).
        key = (grant_type, auth_method)
        tokens = self._tokens_by_key.get(key)
        if tokens is None:
            tokens = self._tokens_by_key[key] = self._tokens.labels(grant_type, auth_method)
        tokens.inc()

    def error(self, endpoint: str, code: str) -> None:
        self._errors.labels(endpoint, code).inc()

    def client_auth_refused(self, reason: str) -> None:
        self._refusals.labels(reason).inc()

    def bundle_stale(self, trust_domain: str) -> None:
        self._stale_bundles.labels(trust_domain).inc()

    def request_done(self, route: str, status: int, seconds: float) -> None:
        latency = self._latency_by_route.get(route)
        if latency is None:
            latency = self._latency_by_route[route] = self._latency.labels(route)
        latency.observe(seconds)
        key = (route, status)
        responses = self._responses_by_key.get(key)
        if responses is None:
            responses = self._responses_by_key[key] = self._responses.labels(route, str(status))
        responses.inc()

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric (all workers' in shared mode)."""
        return generate_latest(self._registry)
