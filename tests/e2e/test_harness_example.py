"""The README's harness example ("Testing with certbound"), run as written in a project of its own
under pytest-asyncio's strict and auto modes, with the plugin loaded by its entry point."""

from __future__ import annotations

import pytest

from tests.helpers import readme_code_blocks

pytest_plugins = ["pytester"]


@pytest.mark.parametrize("mode", ["strict", "auto"])
def test_the_readme_example_passes(pytester: pytest.Pytester, mode: str) -> None:
    (example,) = readme_code_blocks("## Testing with certbound", "python")
    pytester.makepyfile(test_readme_example=example)

    result = pytester.runpytest_subprocess(f"--asyncio-mode={mode}", "-p", "no:cacheprovider")

    result.assert_outcomes(passed=2)


def test_an_example_that_fails_is_reported(pytester: pytest.Pytester) -> None:
    """The twin: the same run reports a broken example (a wrong scope) as a failure."""
    (example,) = readme_code_blocks("## Testing with certbound", "python")
    broken = example.replace('(client.client_id, "read")', '(client.client_id, "write")')
    assert broken != example
    pytester.makepyfile(test_readme_example=broken)

    result = pytester.runpytest_subprocess("--asyncio-mode=strict", "-p", "no:cacheprovider")

    result.assert_outcomes(passed=1, failed=1)
