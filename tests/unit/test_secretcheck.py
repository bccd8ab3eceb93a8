"""SecretChecker: fast HMACs inline, slow hashes off the loop, bounded, and remembered once verified."""

from __future__ import annotations

import asyncio
import threading

import pytest

from certbound.errors import TemporarilyUnavailableError
from certbound.secretcheck import SecretChecker
from certbound.vault import ScryptCost, Vault

CHEAP = ScryptCost(log2_n=4, r=2, p=1)


class CountingVault(Vault):
    """Counts slow verifications; `gate`, when set, holds each one until released."""

    __slots__ = ("gate", "slow_checks", "started")

    def __init__(self) -> None:
        super().__init__(b"k" * 32)
        self.slow_checks = 0
        self.gate: threading.Event | None = None
        self.started = threading.Semaphore(0)

    def verify_chosen_secret(self, secret: str, stored: bytes) -> bool:
        self.slow_checks += 1
        self.started.release()
        if self.gate is not None:
            self.gate.wait(timeout=30)
        return super().verify_chosen_secret(secret, stored)


@pytest.fixture
def vault() -> CountingVault:
    return CountingVault()


async def test_generated_secrets_take_the_fast_path(vault: CountingVault) -> None:
    checker = SecretChecker(vault)
    stored = vault.hash_secret("generated")
    assert await checker.verify("generated", stored)
    assert not await checker.verify("guess", stored)
    assert vault.slow_checks == 0


async def test_a_verified_chosen_secret_is_remembered_and_guesses_then_cost_nothing(
    vault: CountingVault,
) -> None:
    checker = SecretChecker(vault)
    stored = vault.hash_chosen_secret("chosen secret", CHEAP)
    assert not await checker.verify("wrong guess", stored)  # nothing known yet: scrypt
    assert vault.slow_checks == 1
    assert await checker.verify("chosen secret", stored)
    assert vault.slow_checks == 2
    for _ in range(5):
        assert await checker.verify("chosen secret", stored)
        assert not await checker.verify("another guess", stored)
    assert vault.slow_checks == 2
    rotated = vault.hash_chosen_secret("chosen secret", CHEAP)  # a new stored hash: verified afresh
    assert await checker.verify("chosen secret", rotated)
    assert vault.slow_checks == 3


async def test_memory_of_verified_secrets_is_bounded(vault: CountingVault) -> None:
    checker = SecretChecker(vault, remembered=2)
    hashes = [vault.hash_chosen_secret(f"secret {n}", CHEAP) for n in range(3)]
    for number, stored in enumerate(hashes):
        assert await checker.verify(f"secret {number}", stored)
    assert await checker.verify("secret 2", hashes[2])
    assert vault.slow_checks == 3
    assert await checker.verify("secret 0", hashes[0])  # the oldest was forgotten
    assert vault.slow_checks == 4


async def test_slow_checks_run_off_the_loop_capped_and_excess_is_refused_at_once(
    vault: CountingVault,
) -> None:
    checker = SecretChecker(vault, slow_at_once=1, slow_waiting=3)
    stored = vault.hash_chosen_secret("chosen secret", CHEAP)
    vault.gate = threading.Event()
    admitted = [asyncio.create_task(checker.verify(f"guess {n}", stored)) for n in range(3)]
    await asyncio.to_thread(vault.started.acquire)  # the first one is held in its thread...
    fast = vault.hash_secret("generated")
    assert await checker.verify("generated", fast)  # ...while the event loop keeps serving
    assert vault.slow_checks == 1  # one at a time
    with pytest.raises(TemporarilyUnavailableError):
        await checker.verify("one too many", stored)
    vault.gate.set()
    assert await asyncio.gather(*admitted) == [False, False, False]
    assert vault.slow_checks == 3
    assert await checker.verify("chosen secret", stored)  # room again once they finished


async def test_a_burst_presenting_the_same_secret_shares_one_check(vault: CountingVault) -> None:
    checker = SecretChecker(vault, slow_at_once=1, slow_waiting=1)
    stored = vault.hash_chosen_secret("chosen secret", CHEAP)
    vault.gate = threading.Event()
    burst = [asyncio.create_task(checker.verify("chosen secret", stored)) for _ in range(20)]
    await asyncio.to_thread(vault.started.acquire)
    burst[0].cancel()  # one requester going away does not cancel the check the others wait for
    vault.gate.set()
    results = await asyncio.gather(*burst, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    assert results[1:] == [True] * 19  # no 503 although only one check may wait
    assert vault.slow_checks == 1
