"""What `bench_anchor.py` compares: certbound paired with the anchor server of the same size, and
the targets of issue 15 each pairing is judged by.

A pairing puts as many certbound worker processes against as many oidc-provider processes:
`1v1` is `certbound serve` (one process) against `op1` (one node process, :8443), `2v2` is
`certbound serve --workers 2` against `op2` (node:cluster with two workers, :8444). The two never
run at the same time: each is started, measured and stopped before the next.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "DEFAULT_PAIRINGS",
    "PAIRINGS",
    "TARGET_RATIO",
    "Pairing",
    "Side",
    "Target",
    "parse_pairings",
]

TARGET_RATIO = 2.0  # the ✓ of the ratio column: certbound at least twice oidc-provider's tokens/s


@dataclass(frozen=True)
class Side:
    """One server measured: its label in tables and run names, its `[servers.*]` name in the
    harness's TOML (the pidfile whose process tree is the server's CPU), and its port."""

    label: str
    server: str
    port: int


@dataclass(frozen=True)
class Target:
    """One goal of issue 15 for a row: a "how many times better certbound is" figure at least
    `minimum`. Every figure is oriented so that bigger is better for certbound: tokens/s is
    certbound / oidc-provider, p99 and CPU ms/token are oidc-provider / certbound."""

    metric: str  # "tokens", "p99" or "cpu"
    minimum: float

    def describe(self) -> str:
        if self.metric == "p99":
            return "p99 ≤ oidc-provider's"
        what = "tokens/s" if self.metric == "tokens" else "per core"
        return f"{what} ≥ {self.minimum:.1f}x"

    def met(self, value: float | None) -> bool | None:
        """None when the run did not measure the figure (nothing to judge)."""
        return None if value is None else value >= self.minimum


@dataclass(frozen=True)
class Pairing:
    """certbound with `workers` processes against the anchor's server `op` (same process count)."""

    name: str
    workers: int
    op: Side
    #: certbound's port is `--port` plus this (9443 and 9444 by default, like op1's and op2's).
    port_offset: int
    #: The scenarios measured, in order (`--only` narrows them).
    scenarios: tuple[str, ...]
    #: Scenario -> its tokens/s target (scenarios not listed have none).
    tokens_targets: dict[str, float]
    #: Targets for every row besides the tokens/s one.
    row_targets: tuple[Target, ...]
    #: The targets in one sentence, printed above the table.
    summary: str

    def certbound_label(self, base: str) -> str:
        """The run label of a certbound deployment (`certbound`, `certbound-pg`, ...) in this pairing:
        distinct across pairings, so one raw file holds both."""
        return base if self.workers == 1 else f"{base}-w{self.workers}"

    def targets(self, scenario: str) -> list[Target]:
        tokens = self.tokens_targets.get(scenario)
        return ([Target("tokens", tokens)] if tokens is not None else []) + list(self.row_targets)

    def describe(self) -> str:
        certbound = "`certbound serve` (1 process)"
        if self.workers > 1:
            certbound = f"`certbound serve --workers {self.workers}` ({self.workers} workers + supervisor)"
        op = "1 node process" if self.op.server == "op1" else "node:cluster, 2 workers + primary"
        return f"{certbound} vs oidc-provider `{self.op.server}` ({op}, :{self.op.port})"


_PER_CORE = Target("cpu", 2.0)
_P99 = Target("p99", 1.0)

PAIRINGS = {
    "1v1": Pairing(
        name="1v1",
        workers=1,
        op=Side("oidc-provider", "op1", 8443),
        port_offset=0,
        scenarios=(
            "a-mtls-ka",
            "b-mtls-nc",
            "c-basic-ka",
            "c2-basic-nc",
            "d-pkjwt-ka",
            "e1-selfsigned-ka",
            "f-dpop-ka",
            "g-federated-ka",
        ),
        tokens_targets={
            "a-mtls-ka": 2.0,
            "c-basic-ka": 2.0,
            "b-mtls-nc": 1.5,
            "c2-basic-nc": 1.5,
            "d-pkjwt-ka": 1.5,
        },
        row_targets=(_P99, _PER_CORE),
        summary="tokens/s ≥ 2.0x on a-/c- keep-alive, ≥ 1.5x on new connections (b-, c2-) and "
        "private_key_jwt (d-); p99 no worse than oidc-provider's; per core ≥ 2.0x on every scenario",
    ),
    "2v2": Pairing(
        name="2v2",
        workers=2,
        op=Side("oidc-provider-cluster2", "op2", 8444),
        port_offset=1,
        # The keep-alive scenarios issue 15 sets a 2v2 target for.
        scenarios=("a-mtls-ka", "c-basic-ka", "d-pkjwt-ka"),
        tokens_targets={"a-mtls-ka": 2.0, "c-basic-ka": 2.0, "d-pkjwt-ka": 2.0},
        row_targets=(_PER_CORE,),
        summary="tokens/s ≥ 2.0x on keep-alive (a-, c-, d-); per core ≥ 2.0x on every scenario",
    ),
}
DEFAULT_PAIRINGS = "1v1,2v2"


def parse_pairings(text: str) -> list[Pairing]:
    """`1v1,2v2` -> the pairings, in the order given; ValueError names the known ones."""
    names: Sequence[str] = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in PAIRINGS]
    if unknown or not names:
        raise ValueError(
            f"unknown pairing {', '.join(unknown) or repr(text)}: choose from {', '.join(PAIRINGS)}"
        )
    return [PAIRINGS[name] for name in dict.fromkeys(names)]
