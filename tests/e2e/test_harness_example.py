"""The README's harness examples ("Testing with certbound"), run as written in a project of their
own under pytest-asyncio's strict and auto modes, with the plugin loaded by its entry point."""

from __future__ import annotations

import pytest

from tests.readme import readme_code_blocks

pytest_plugins = ["pytester"]

SECTION = "## Testing with certbound"


@pytest.mark.parametrize("mode", ["strict", "auto"])
def test_the_readme_examples_pass(pytester: pytest.Pytester, mode: str) -> None:
    async_example, sync_example = readme_code_blocks(SECTION, "python")
    pytester.makepyfile(test_readme_async=async_example, test_readme_sync=sync_example)

    result = pytester.runpytest_subprocess(f"--asyncio-mode={mode}", "-p", "no:cacheprovider")

    result.assert_outcomes(passed=2)


def test_an_example_that_fails_is_reported(pytester: pytest.Pytester) -> None:
    """The twin: the same run reports a broken example (a wrong scope) as a failure."""
    async_example, _ = readme_code_blocks(SECTION, "python")
    broken = async_example.replace('(client.client_id, "read")', '(client.client_id, "write")')
    assert broken != async_example
    pytester.makepyfile(test_readme_async=broken)

    result = pytester.runpytest_subprocess("--asyncio-mode=strict", "-p", "no:cacheprovider")

    result.assert_outcomes(failed=1)
