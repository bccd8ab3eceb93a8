"""Prometheus text exposition (format 0.0.4) of a few counters; no client library needed."""

from __future__ import annotations

from collections import Counter

__all__ = ["Metrics"]


class Metrics:
    def __init__(self) -> None:
        self._tokens: Counter[tuple[str, str]] = Counter()
        self._errors: Counter[tuple[str, str]] = Counter()

    def token_issued(self, grant_type: str, auth_method: str) -> None:
        self._tokens[(grant_type, auth_method)] += 1

    def error(self, endpoint: str, code: str) -> None:
        self._errors[(endpoint, code)] += 1

    def render(self) -> str:
        lines = [
            "# HELP certbound_tokens_issued_total Access tokens issued.",
            "# TYPE certbound_tokens_issued_total counter",
        ]
        lines += [
            f'certbound_tokens_issued_total{{grant_type="{grant}",auth_method="{method}"}} {count}'
            for (grant, method), count in sorted(self._tokens.items())
        ]
        lines += [
            "# HELP certbound_errors_total OAuth error responses.",
            "# TYPE certbound_errors_total counter",
        ]
        lines += [
            f'certbound_errors_total{{endpoint="{endpoint}",error="{code}"}} {count}'
            for (endpoint, code), count in sorted(self._errors.items())
        ]
        return "\n".join(lines) + "\n"
