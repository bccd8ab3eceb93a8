"""`federated_claims`: a client's rules on the claims of its workload's token (SPEC §13).

A JSON object of claim name -> rule, at least one: a string matches exactly; a list of strings
matches any member exactly; a string ending in `*` matches by prefix (`*` alone is refused, and
there is no escape for a literal trailing `*`). Nothing cleverer: no patterns, no case folding, no
nesting. A rule only ever matches a string claim, so `"repository_id": "123"` never matches the
number 123, and a missing claim matches nothing. Every rule must match.

Rules are checked at registration (`parse_claim_rules`, ValueError starting with the member) and
again when used; `first_mismatch` names the first claim whose rule failed, never the rule's value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["FEDERATED_CLAIMS", "ClaimRule", "first_mismatch", "parse_claim_rules"]

FEDERATED_CLAIMS = "federated_claims"
_MAX_RULES = 32
_MAX_NAME = 128
_MAX_VALUE = 1024
_MAX_CHOICES = 100


@dataclass(frozen=True, slots=True)
class ClaimRule:
    claim: str
    #: Exact values, any of which matches (a string rule is a one-element set).
    exact: frozenset[str] = frozenset()
    #: The prefix of a trailing-`*` rule.
    prefix: str | None = None

    def matches(self, value: object) -> bool:
        if not isinstance(value, str):
            return False
        if self.prefix is not None:
            return value.startswith(self.prefix)
        return value in self.exact


def _value(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where} must be a non-empty string")
    if len(value) > _MAX_VALUE:
        raise ValueError(f"{where} must have at most {_MAX_VALUE} characters")
    if not value.isprintable():
        raise ValueError(f"{where} must not contain control characters")
    return value


def _rule(claim: str, rule: object) -> ClaimRule:
    where = f"{FEDERATED_CLAIMS} rule for {claim!r}"
    if isinstance(rule, list):
        if not 1 <= len(rule) <= _MAX_CHOICES:
            raise ValueError(f"{where} must list 1 to {_MAX_CHOICES} values")
        return ClaimRule(claim, exact=frozenset(_value(item, where) for item in rule))
    text = _value(rule, where)
    if text.endswith("*"):
        if text == "*":
            raise ValueError(f"{where} must not be '*' alone (it would match any value)")
        return ClaimRule(claim, prefix=text[:-1])
    return ClaimRule(claim, exact=frozenset({text}))


def parse_claim_rules(value: object) -> tuple[ClaimRule, ...]:
    """The rules of a registered `federated_claims`; ValueError naming what is wrong."""
    if not isinstance(value, dict) or not value:
        raise ValueError(f"{FEDERATED_CLAIMS} must be a JSON object of at least one claim -> rule")
    if len(value) > _MAX_RULES:
        raise ValueError(f"{FEDERATED_CLAIMS} holds at most {_MAX_RULES} rules")
    rules = []
    for claim, rule in value.items():
        if not claim or len(claim) > _MAX_NAME or not claim.isprintable():
            raise ValueError(f"{FEDERATED_CLAIMS} claim names are 1 to {_MAX_NAME} printable characters")
        rules.append(_rule(claim, rule))
    return tuple(rules)


def first_mismatch(rules: tuple[ClaimRule, ...], claims: Mapping[str, Any]) -> str | None:
    """The name of the first claim whose rule `claims` fails, or None when every rule matches."""
    for rule in rules:
        if not rule.matches(claims.get(rule.claim)):
            return rule.claim
    return None
