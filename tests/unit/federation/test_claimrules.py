"""federated_claims (SPEC §13): exact, any-of and trailing-`*` prefix rules, nothing cleverer; only
string claims match; every rule must match; the first failing claim is named."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from certbound.federation import first_mismatch, parse_claim_rules

RULES = parse_claim_rules(
    {"repository_id": "123", "ref": ["refs/heads/main", "refs/tags/v1"], "workflow": "ci-*"}
)


@pytest.mark.parametrize(
    "claims",
    [
        {"repository_id": "123", "ref": "refs/heads/main", "workflow": "ci-build"},
        {"repository_id": "123", "ref": "refs/tags/v1", "workflow": "ci-", "extra": 1},
    ],
)
def test_claims_that_satisfy_every_rule(claims: dict[str, Any]) -> None:
    assert first_mismatch(RULES, claims) is None


@pytest.mark.parametrize(
    ("claims", "claim"),
    [
        ({"repository_id": "1234", "ref": "refs/heads/main", "workflow": "ci-x"}, "repository_id"),
        ({"repository_id": "12", "ref": "refs/heads/main", "workflow": "ci-x"}, "repository_id"),
        ({"repository_id": 123, "ref": "refs/heads/main", "workflow": "ci-x"}, "repository_id"),
        ({"ref": "refs/heads/main", "workflow": "ci-x"}, "repository_id"),
        ({"repository_id": "123", "ref": "refs/heads/MAIN", "workflow": "ci-x"}, "ref"),
        ({"repository_id": "123", "ref": ["refs/heads/main"], "workflow": "ci-x"}, "ref"),
        ({"repository_id": "123", "ref": "refs/heads/main", "workflow": "CI-x"}, "workflow"),
        ({"repository_id": "123", "ref": "refs/heads/main", "workflow": "ci"}, "workflow"),
        ({"repository_id": "123", "ref": "refs/heads/main", "workflow": None}, "workflow"),
    ],
)
def test_the_first_rule_that_fails_is_named(claims: dict[str, Any], claim: str) -> None:
    assert first_mismatch(RULES, claims) == claim


def test_a_star_inside_a_rule_or_a_list_is_literal() -> None:
    rules = parse_claim_rules({"sub": "repo:*:ref:*", "env": ["prod*"]})
    assert first_mismatch(rules, {"sub": "repo:*:ref:main", "env": "prod*"}) is None
    assert first_mismatch(rules, {"sub": "repo:*:ref:x", "env": "production"}) == "env"
    assert first_mismatch(rules, {"sub": "repo:a:ref:x", "env": "prod*"}) == "sub"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "must be a JSON object of at least one"),
        ({}, "must be a JSON object of at least one"),
        (["sub"], "must be a JSON object"),
        ({"sub": "*"}, "must not be '*' alone"),
        ({"sub": ""}, "must be a non-empty string"),
        ({"sub": 1}, "must be a non-empty string"),
        ({"sub": []}, "must list 1 to 100 values"),
        ({"sub": ["a", 2]}, "must be a non-empty string"),
        ({"sub": {"nested": "x"}}, "must be a non-empty string"),
        ({"sub": "a\x1b[31m"}, "control characters"),
        ({"": "x"}, "claim names are 1 to 128"),
        ({"a\nb": "x"}, "claim names are 1 to 128"),
        ({f"c{n}": "x" for n in range(33)}, "at most 32 rules"),
        ({"sub": "x" * 1025}, "at most 1024 characters"),
    ],
)
def test_bad_rules_are_refused_naming_the_member(value: object, message: str) -> None:
    with pytest.raises(ValueError, match="federated_claims") as refused:
        parse_claim_rules(value)
    assert message in str(refused.value)


@settings(max_examples=150, deadline=None)
@given(
    rule=st.text(min_size=1, max_size=12).filter(str.isprintable),
    value=st.one_of(
        st.text(max_size=14), st.integers(), st.none(), st.lists(st.text(max_size=3), max_size=2)
    ),
)
def test_a_rule_matches_exactly_what_it_says(rule: str, value: object) -> None:
    """The whole semantics in one line each: nothing but exact, any-of and prefix on strings."""
    if rule == "*":
        return
    (parsed,) = parse_claim_rules({"c": rule})
    expected = isinstance(value, str) and (
        value.startswith(rule[:-1]) if rule.endswith("*") else value == rule
    )
    assert (first_mismatch((parsed,), {"c": value}) is None) == expected
    (listed,) = parse_claim_rules({"c": [rule]})
    assert (first_mismatch((listed,), {"c": value}) is None) == (isinstance(value, str) and value == rule)
