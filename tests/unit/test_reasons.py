"""Reason codes: every refusal of client authentication names one, and only disclosed ones reach
the client's description (certbound.reasons)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import certbound
from certbound.errors import InvalidClientError, InvalidDPoPProofError
from certbound.reasons import DISCLOSED, GENERIC_REFUSAL, ProofReason, Reason

SOURCE = Path(certbound.__file__).resolve().parent


def _refusals_without_reason() -> list[str]:
    missing = []
    for path in sorted(SOURCE.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "InvalidClientError"
                and not any(keyword.arg == "reason" for keyword in node.keywords)
            ):
                missing.append(f"{path.relative_to(SOURCE)}:{node.lineno}")
    return missing


def test_every_refusal_in_the_source_names_its_reason() -> None:
    """A refusal without one would be logged and counted as `unclassified`: pick a code from
    certbound.reasons (or add one there)."""
    assert _refusals_without_reason() == []


def test_codes_are_unique_snake_case() -> None:
    codes = [reason.value for reason in Reason]
    assert len(set(codes)) == len(codes)
    assert all(code.replace("_", "").isalpha() and code.islower() for code in codes)


@pytest.mark.parametrize(
    "reason",
    [
        Reason.UNKNOWN_CLIENT,
        Reason.BAD_SECRET,
        Reason.METHOD_MISMATCH,
        Reason.KID_UNKNOWN,
        Reason.UNCLASSIFIED,
    ],
)
def test_an_undisclosed_reason_shows_only_the_generic_description(reason: Reason) -> None:
    refused = InvalidClientError("client is registered for private_key_jwt", reason=reason)
    assert refused.public_description == GENERIC_REFUSAL
    assert refused.description == "client is registered for private_key_jwt"  # kept for the log


@pytest.mark.parametrize("reason", sorted(DISCLOSED))
def test_a_disclosed_reason_shows_its_description(reason: Reason) -> None:
    assert InvalidClientError("client_assertion has expired", reason=reason).public_description == (
        "client_assertion has expired"
    )


def test_the_default_reason_is_unclassified_and_not_disclosed() -> None:
    refused = InvalidClientError("something new")
    assert refused.reason is Reason.UNCLASSIFIED
    assert refused.public_description == GENERIC_REFUSAL


def test_proof_reasons_are_unique_snake_case_and_apart_from_client_reasons() -> None:
    codes = [reason.value for reason in ProofReason]
    assert len(set(codes)) == len(codes)
    assert all(
        code.startswith("dpop_") and code.replace("_", "").isalpha() and code.islower() for code in codes
    )
    assert not set(codes) & {reason.value for reason in Reason}


def test_a_refused_proof_carries_its_reason_and_is_always_described() -> None:
    refused = InvalidDPoPProofError(
        "the DPoP proof's htu is not https://as/token", reason=ProofReason.HTU_MISMATCH
    )
    assert (refused.error, refused.status, refused.reason) == ("invalid_dpop_proof", 400, "dpop_htu_mismatch")
    assert refused.public_description == refused.description


def test_a_workload_identity_refusal_discloses_whatever_its_reason() -> None:
    """SPEC §13: once the client is known to be a workload identity client, every refusal names
    its check (certbound.clientauth.workload sets `disclosed`)."""
    refused = InvalidClientError(
        "client_assertion kid 'x' matches none of the keys of issuer ci", reason=Reason.KID_UNKNOWN
    )
    assert refused.public_description == GENERIC_REFUSAL
    refused.disclosed = True
    assert refused.public_description == refused.description
