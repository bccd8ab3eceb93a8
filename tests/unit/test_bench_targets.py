"""scripts/bench_report.py: each pairing's rows judged by issue 15's targets (met / missed)."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> tuple[ModuleType, ModuleType]:
    """(bench_pairings, bench_report), imported as the scripts import them (scripts/ on sys.path)."""
    monkeypatch.syspath_prepend(str(SCRIPTS))
    return importlib.import_module("bench_pairings"), importlib.import_module("bench_report")


def _record(tokens: float, p99: float, cpu_ms: float) -> dict[str, Any]:
    """One harness record: `tokens` 200s per second, `cpu_ms` of server CPU per token."""
    return {
        "rps": tokens,
        "requests": int(tokens * 12),
        "non2xx": 0,
        "failed": 0,
        "p50_ms": p99 / 3,
        "p99_ms": p99,
        "server_cpu_pct": cpu_ms * tokens / 10.0,
    }


def _row(bench: tuple[ModuleType, ModuleType], pairing: str, scenario: str, **cb: float) -> str:
    """The table row of `scenario` in `pairing`: oidc-provider at 1000 tokens/s, p99 20 ms, 1 ms CPU
    per token; certbound as given."""
    pairings, report = bench
    pair = pairings.PAIRINGS[pairing]
    outcome = report.Outcome(scenario, pair.op.label, "certbound")
    outcome.stats(pair.op.label).add(_record(1000, 20.0, 1.0))
    outcome.stats("certbound").add(_record(cb["tokens"], cb["p99"], cb["cpu_ms"]))
    lines = report.render_pairing(pair, [outcome])
    return str(next(line for line in lines if line.startswith(f"| `{scenario}`")))


def test_a_keepalive_row_meets_every_1v1_target(bench: tuple[ModuleType, ModuleType]) -> None:
    row = _row(bench, "1v1", "a-mtls-ka", tokens=2100, p99=15.0, cpu_ms=0.45)
    assert "**2.10x** ✓" in row
    assert "| 2.22x |" in row  # per core: 1.0 / 0.45
    assert "✓ met: tokens/s ≥ 2.0x, p99 ≤ oidc-provider's, per core ≥ 2.0x" in row


def test_a_keepalive_row_under_2x_misses(bench: tuple[ModuleType, ModuleType]) -> None:
    row = _row(bench, "1v1", "a-mtls-ka", tokens=1900, p99=15.0, cpu_ms=0.45)
    assert "✗ **missed**: tokens/s ≥ 2.0x |" in row


def test_new_connections_need_1_5x_and_a_p99_no_worse(bench: tuple[ModuleType, ModuleType]) -> None:
    assert "✓ met" in _row(bench, "1v1", "b-mtls-nc", tokens=1600, p99=20.0, cpu_ms=0.5)
    row = _row(bench, "1v1", "b-mtls-nc", tokens=1600, p99=21.0, cpu_ms=0.5)
    assert "✗ **missed**: p99 ≤ oidc-provider's |" in row


def test_a_scenario_without_a_tokens_target_is_judged_per_core(
    bench: tuple[ModuleType, ModuleType],
) -> None:
    assert "✓ met: p99" in _row(bench, "1v1", "e1-selfsigned-ka", tokens=1000, p99=20.0, cpu_ms=0.5)
    row = _row(bench, "1v1", "e1-selfsigned-ka", tokens=1000, p99=20.0, cpu_ms=0.6)
    assert "✗ **missed**: per core ≥ 2.0x |" in row


def test_2v2_sets_no_p99_target(bench: tuple[ModuleType, ModuleType]) -> None:
    row = _row(bench, "2v2", "c-basic-ka", tokens=2000, p99=80.0, cpu_ms=0.5)
    assert "✓ met: tokens/s ≥ 2.0x, per core ≥ 2.0x" in row


def test_an_unmeasured_figure_is_not_judged(bench: tuple[ModuleType, ModuleType]) -> None:
    pairings, report = bench
    pair = pairings.PAIRINGS["1v1"]
    outcome = report.Outcome("a-mtls-ka", pair.op.label, "certbound")
    outcome.stats("certbound").add(_record(2000, 10.0, 0.4))
    lines = report.render_pairing(pair, [outcome])
    assert any(line.endswith("| - (not measured) |") for line in lines)
    assert "1v1: targets met on 0 of 0 measured scenarios." in lines


def test_pairings_parse_in_order_and_name_the_known_ones(bench: tuple[ModuleType, ModuleType]) -> None:
    pairings, _ = bench
    assert [p.name for p in pairings.parse_pairings("2v2,1v1,2v2")] == ["2v2", "1v1"]
    with pytest.raises(ValueError, match="choose from 1v1, 2v2"):
        pairings.parse_pairings("3v3")
    assert pairings.PAIRINGS["2v2"].certbound_label("certbound") == "certbound-w2"
