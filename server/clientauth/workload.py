"""What the workload identity methods share (SPEC §13): the federation in use, refusals that name
their check, and the signature check against an issuer's or a trust domain's keys.

Every refusal of a `federated_jwt`, `spiffe_jwt` or `spiffe_id` client names the check that failed
in its description, whatever its reason code (certbound.reasons): `disclosing()` marks each
InvalidClientError raised inside it. Descriptions never carry the token, a claim's value or a
rule's expected value.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager

from joserfc.jwk import Key

from certbound.clientauth.credentials import PresentedCredentials
from certbound.clientauth.jwsparse import ParsedAssertion
from certbound.clientauth.tokenchecks import choose_key, require_valid_signature
from certbound.context import ServerContext
from certbound.errors import InvalidClientError
from certbound.federation import FederationConfig
from certbound.keypolicy import costly_to_verify
from certbound.models import Client
from certbound.reasons import Reason

__all__ = ["WorkloadMethod", "disclosing", "require_federation", "verify_signature"]


@contextmanager
def disclosing() -> Iterator[None]:
    """Refusals raised inside tell the client their description (SPEC §13)."""
    try:
        yield
    except InvalidClientError as exc:
        exc.disclosed = True
        raise


def require_federation(context: ServerContext) -> FederationConfig:
    config = context.federation.current
    if config is None:
        raise InvalidClientError(
            "this server trusts no token issuer (it runs without --federation)", reason=Reason.ISSUER_UNKNOWN
        )
    return config


async def verify_signature(
    parsed: ParsedAssertion,
    alg: str,
    keys: Callable[[bool], Awaitable[Sequence[Key]]],
    *,
    whose: str,
    context: ServerContext,
) -> None:
    """Check `parsed`'s signature with the one key of `keys(refresh)` it names; an unknown kid
    fetches the keys once more (`keys(True)`: a rotation the cache has not seen, at most once per
    cooldown). A costly key (certbound.keypolicy) is used on the CPU pool."""
    candidates = await keys(False)
    kid = parsed.kid
    if kid is not None and all(key.kid != kid for key in candidates):
        candidates = await keys(True)
    key = choose_key(parsed, alg, candidates, whose=whose)
    if costly_to_verify(key.public_key):
        await context.cpu.run(require_valid_signature, parsed, key)
    else:
        require_valid_signature(parsed, key)


class WorkloadMethod:
    """A method whose credential is a workload's token (`federated_jwt`, `spiffe_jwt`): every
    refusal is disclosed; subclasses check the token (`_check`) against the clock they are given."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock

    async def verify(self, presented: PresentedCredentials, client: Client, context: ServerContext) -> None:
        with disclosing():
            if presented.assertion is None:  # the mechanism check makes this unreachable
                raise InvalidClientError("client_assertion is missing", reason=Reason.MALFORMED_CREDENTIALS)
            await self._check(presented.assertion, client, context)

    async def _check(self, parsed: ParsedAssertion, client: Client, context: ServerContext) -> None:
        raise NotImplementedError
