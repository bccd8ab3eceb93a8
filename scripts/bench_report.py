"""The tables of `bench_anchor.py`: per pairing, certbound against oidc-provider, judged by the
targets of issue 15 (`bench_pairings`); certbound's own scenarios; the `--backends` deployments.

Figures come from the harness's records (one JSON object per measured run): tokens/s counts HTTP
200 responses only, CPU ms/token is the server's process-tree CPU over the measured window per
token, and every figure is the median over the reps (min-max when there were several).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench_pairings import TARGET_RATIO, Pairing, Target

__all__ = [
    "Outcome",
    "Stats",
    "median_text",
    "ok_tokens_per_s",
    "render_certbound_only",
    "render_deployments",
    "render_pairing",
]


def ok_tokens_per_s(record: dict[str, Any]) -> float | None:
    """Successful (HTTP 200) responses per second (None when the run reported no rate): ab's rate
    scaled by its share of good answers, the node tools' own count of 2xx; errors are never
    counted as tokens."""
    rps, requests = record.get("rps"), record.get("requests") or 0
    if rps is None or not requests:
        return 0.0 if rps is not None else None
    if "ok" in record:  # loadgen.mjs counts 2xx itself
        ok = int(record["ok"])
    else:
        ok = requests - (record.get("non2xx") or 0) - (record.get("failed") or 0)
    return float(rps) * max(ok, 0) / requests


@dataclass
class Stats:
    """One server's runs of one scenario."""

    tokens: list[float] = field(default_factory=list)
    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    other_cpu: list[float] = field(default_factory=list)
    errors: int = 0
    requests: int = 0

    def add(self, record: dict[str, Any]) -> None:
        tokens = ok_tokens_per_s(record)
        if tokens is not None:
            self.tokens.append(tokens)
            if tokens and record.get("server_cpu_pct") is not None:
                self.cpu_ms.append(10.0 * float(record["server_cpu_pct"]) / tokens)
        for name, values in (("p50_ms", self.p50), ("p99_ms", self.p99)):
            if record.get(name) is not None:
                values.append(float(record[name]))
        if record.get("machine_busy_pct") is not None:
            # CPU the box spent on anything but this server and the load generator: other tenants.
            used = (record.get("server_cpu_pct") or 0) + (record.get("loadgen_cpu_pct") or 0)
            self.other_cpu.append(max(0.0, float(record["machine_busy_pct"]) - used))
        self.errors += (record.get("failed") or 0) + (record.get("non2xx") or 0)
        self.requests += record.get("requests") or 0

    @property
    def median_tokens(self) -> float | None:
        return statistics.median(self.tokens) if self.tokens else None

    @property
    def median_cpu_ms(self) -> float | None:
        return statistics.median(self.cpu_ms) if self.cpu_ms else None

    @property
    def median_p99(self) -> float | None:
        return statistics.median(self.p99) if self.p99 else None


def median_text(values: Sequence[float], digits: int = 0, spread: bool = False) -> str:
    """The median, with (min-max) when asked and there is more than one value; `-` for none."""
    if not values:
        return "-"
    text = f"{statistics.median(values):.{digits}f}"
    if spread and len(values) > 1:
        text += f" ({min(values):.{digits}f}-{max(values):.{digits}f})"
    return text


def _times(better: float | None, worse: float | None) -> float | None:
    return better / worse if better is not None and worse else None


@dataclass
class Outcome:
    """One scenario of one pairing: oidc-provider, the first certbound deployment (`cb`) and the
    other deployments of `--backends`, each under its run label."""

    name: str
    op_label: str
    cb_label: str
    op: Stats = field(default_factory=Stats)
    cb: Stats = field(default_factory=Stats)
    skipped: str | None = None
    #: The other certbound deployments of `--backends`, by label.
    others: dict[str, Stats] = field(default_factory=dict)

    def stats(self, label: str) -> Stats:
        if label == self.cb_label:
            return self.cb
        if label == self.op_label:
            return self.op
        return self.others.setdefault(label, Stats())

    @property
    def cb_errors(self) -> int:
        return self.cb.errors + sum(stats.errors for stats in self.others.values())

    @property
    def ratio(self) -> float | None:
        """certbound tokens/s / oidc-provider tokens/s."""
        return _times(self.cb.median_tokens, self.op.median_tokens)

    @property
    def cpu_ratio(self) -> float | None:
        """How many times less server CPU a certbound token costs (tokens per core, relative):
        steadier than tokens/s on a busy box."""
        return _times(self.op.median_cpu_ms, self.cb.median_cpu_ms)

    @property
    def p99_ratio(self) -> float | None:
        """oidc-provider's p99 / certbound's: ≥ 1 when certbound's tail is no worse."""
        return _times(self.op.median_p99, self.cb.median_p99)

    def figure(self, target: Target) -> float | None:
        return {"tokens": self.ratio, "p99": self.p99_ratio, "cpu": self.cpu_ratio}[target.metric]


def _verdict(outcome: Outcome, targets: Sequence[Target]) -> tuple[str, bool | None]:
    """The targets cell of a row, and whether the row met them all (None: not measured)."""
    results = [(target, target.met(outcome.figure(target))) for target in targets]
    if any(met is None for _, met in results):
        return "- (not measured)", None
    missed = [target.describe() for target, met in results if not met]
    if missed:
        return "✗ **missed**: " + ", ".join(missed), False
    return "✓ met: " + ", ".join(target.describe() for target in targets), True


def render_pairing(pairing: Pairing, outcomes: Sequence[Outcome]) -> list[str]:
    """The pairing's table, a row per scenario with its issue-15 verdict, and a tally."""
    lines = [
        f"## Pairing {pairing.name}: {pairing.describe()}",
        "",
        f"Targets (issue 15, {pairing.name}): {pairing.summary}.",
        "",
        "| scenario | oidc-provider tokens/s | certbound tokens/s | ratio (✓ ≥ 2x) | "
        "op p50 / p99 ms | certbound p50 / p99 ms | op CPU ms/token | certbound CPU ms/token | "
        "per core (op CPU / certbound CPU) | errors op · certbound | targets |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    verdicts: list[bool | None] = []
    for outcome in outcomes:
        if outcome.skipped:
            lines.append(f"| `{outcome.name}` | {outcome.skipped} | | | | | | | | | |")
            continue
        ratio = outcome.ratio
        mark = "-" if ratio is None else f"**{ratio:.2f}x** {'✓' if ratio >= TARGET_RATIO else '✗'}"
        cpu_ratio = "-" if outcome.cpu_ratio is None else f"{outcome.cpu_ratio:.2f}x"
        cb_errors = f"{outcome.cb.errors} / {outcome.cb.requests}"
        if outcome.cb.errors:
            cb_errors = f"**⚠ {cb_errors}**"
        verdict, met = _verdict(outcome, pairing.targets(outcome.name))
        verdicts.append(met)
        lines.append(
            f"| `{outcome.name}` | {median_text(outcome.op.tokens, 0, True)} | "
            f"{median_text(outcome.cb.tokens, 0, True)} | "
            f"{mark} | {median_text(outcome.op.p50, 1)} / {median_text(outcome.op.p99, 1)} | "
            f"{median_text(outcome.cb.p50, 1)} / {median_text(outcome.cb.p99, 1)} | "
            f"{median_text(outcome.op.cpu_ms, 3)} | "
            f"{median_text(outcome.cb.cpu_ms, 3)} | {cpu_ratio} | "
            f"{outcome.op.errors} / {outcome.op.requests} · {cb_errors} | {verdict} |"
        )
    judged = [met for met in verdicts if met is not None]
    lines += ["", f"{pairing.name}: targets met on {sum(judged)} of {len(judged)} measured scenarios."]
    return lines


def render_deployments(outcomes: Sequence[Outcome], deployments: Sequence[tuple[str, str]]) -> list[str]:
    """Every certbound deployment (label, description) per scenario, against the first one and
    oidc-provider."""
    first = deployments[0][0]
    lines = [
        f"| scenario | certbound | tokens/s | vs {first} | vs oidc-provider | p50 / p99 ms | "
        "CPU ms/token | errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for outcome in outcomes:
        if outcome.skipped:
            continue
        for label, description in deployments:
            stats = outcome.stats(label)
            tokens = stats.median_tokens
            versus = _times(tokens, outcome.cb.median_tokens)
            versus_op = _times(tokens, outcome.op.median_tokens)
            errors = f"{stats.errors} / {stats.requests}" if stats.requests else "skipped"
            lines.append(
                f"| `{outcome.name}` | {label} ({description}) | {median_text(stats.tokens, 0, True)} | "
                f"{'-' if versus is None else f'{versus:.2f}x'} | "
                f"{'-' if versus_op is None else f'{versus_op:.2f}x'} | "
                f"{median_text(stats.p50, 1)} / {median_text(stats.p99, 1)} | "
                f"{median_text(stats.cpu_ms, 3)} | "
                f"{f'**⚠ {errors}**' if stats.errors else errors} |"
            )
    return lines


def render_certbound_only(outcomes: dict[str, Outcome], compared_with: dict[str, str]) -> list[str]:
    """Scenarios oidc-provider cannot run (name -> the certbound scenario each is compared with)."""
    rows = [outcome for outcome in outcomes.values() if outcome.name in compared_with]
    if not rows:
        return []
    lines = [
        "## certbound only",
        "",
        "| scenario | certbound tokens/s | compared with | its tokens/s | ratio | p50 / p99 ms | "
        "CPU ms/token (this / compared) | errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for outcome in rows:
        reference_name = compared_with[outcome.name]
        reference = outcomes.get(reference_name)
        if outcome.skipped or reference is None:
            why = (
                outcome.skipped
                or f"run it with `{reference_name}` (--only {reference_name[:2]},{outcome.name[:2]})"
            )
            lines.append(f"| `{outcome.name}` | {why} | | | | | | |")
            continue
        ratio = _times(outcome.cb.median_tokens, reference.cb.median_tokens)
        lines.append(
            f"| `{outcome.name}` | {median_text(outcome.cb.tokens, 0, True)} | `{reference_name}` | "
            f"{median_text(reference.cb.tokens, 0, True)} | "
            f"{'-' if ratio is None else f'**{ratio:.2f}x**'} | "
            f"{median_text(outcome.cb.p50, 1)} / {median_text(outcome.cb.p99, 1)} | "
            f"{median_text(outcome.cb.cpu_ms, 3)} / {median_text(reference.cb.cpu_ms, 3)} | "
            f"{outcome.cb.errors} / {outcome.cb.requests} |"
        )
    return [*lines, ""]
