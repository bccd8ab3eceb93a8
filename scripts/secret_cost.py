"""What verifying a client secret costs (issue 9 finding 15): the HMAC of a generated secret, the
scrypt of an administrator's chosen one, and a chosen one once SecretChecker remembers it.

    .venv/bin/python scripts/secret_cost.py [--rounds N]

Prints CPU time per verification (the best of 5 runs: the machine is shared).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable

from certbound.secretcheck import SecretChecker
from certbound.vault import SCRYPT_COST, Vault


def cpu_per_call(call: Callable[[], object], rounds: int) -> float:
    best = float("inf")
    for _ in range(5):
        start = time.process_time()
        for _ in range(rounds):
            call()
        best = min(best, (time.process_time() - start) / rounds)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000, help="fast-path verifications per run")
    rounds = parser.parse_args().rounds
    vault = Vault(bytes(range(32)))
    generated = vault.hash_secret("a-generated-secret-of-43-characters-0123456")
    chosen = vault.hash_chosen_secret("chosen-secret")
    checker = SecretChecker(vault)

    async def remembered() -> float:
        assert await checker.verify("chosen-secret", chosen)  # now remembered
        best = float("inf")
        for _ in range(5):
            start = time.process_time()
            for _ in range(rounds):
                await checker.verify("chosen-secret", chosen)
            best = min(best, (time.process_time() - start) / rounds)
        return best

    rows = [
        (
            "generated secret (HMAC-SHA-256)",
            cpu_per_call(lambda: vault.verify_secret("x" * 43, generated), rounds),
        ),
        (
            f"chosen secret (scrypt ln={SCRYPT_COST.log2_n} r={SCRYPT_COST.r} p={SCRYPT_COST.p})",
            cpu_per_call(lambda: vault.verify_chosen_secret("chosen-secret", chosen), 3),
        ),
        ("chosen secret, remembered by SecretChecker", asyncio.run(remembered())),
    ]
    for name, seconds in rows:
        print(f"{name:55} {seconds * 1e6:12.1f} µs CPU")


if __name__ == "__main__":
    main()
