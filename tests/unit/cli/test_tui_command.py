"""`certbound tui` names where it works in its header: never with a password from the URL."""

from __future__ import annotations

import pytest

from certbound.cli.tui import shown_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("sqlite:///data/certbound.db", "sqlite:///data/certbound.db"),
        ("sqlite:////var/lib/certbound.db", "sqlite:////var/lib/certbound.db"),
        ("https://localhost:8443", "https://localhost:8443"),
        ("https://as.example/base/", "https://as.example/base/"),
        (
            "postgresql://certbound:s3cret@db.internal:5432/certbound",
            "postgresql://db.internal:5432/certbound",
        ),
        ("postgresql://db.internal/certbound?password=s3cret", "postgresql://db.internal/certbound"),
        ("https://user:s3cret@as.example", "https://as.example"),
    ],
)
def test_the_header_never_shows_a_password(url: str, shown: str) -> None:
    assert shown_url(url) == shown
