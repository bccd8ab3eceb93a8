"""Start-up warnings (SPEC §3): open registration and short tokens are said once, tokens never shown."""

from __future__ import annotations

import logging

import pytest

from certbound.config import Settings
from certbound.weaksettings import warn_about_weak_settings


def warnings_for(settings: Settings, caplog: pytest.LogCaptureFixture) -> str:
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="certbound"):
        warn_about_weak_settings(settings)
    return caplog.text


def test_secure_defaults_are_quiet(caplog: pytest.LogCaptureFixture) -> None:
    assert warnings_for(Settings(admin_token="a" * 32, registration_token="r" * 32), caplog) == ""


def test_open_registration_names_what_anyone_can_get(caplog: pytest.LogCaptureFixture) -> None:
    text = warnings_for(Settings(registration="open", scopes=("read", "write")), caplog)
    assert "dynamic registration is open" in text
    assert "holding the scopes read write" in text
    bounded = Settings(registration="open", scopes=("read", "write"), registration_scopes=("read",))
    assert "holding the scopes read (" in warnings_for(bounded, caplog)


def test_short_tokens_are_warned_about_without_showing_them(caplog: pytest.LogCaptureFixture) -> None:
    text = warnings_for(Settings(admin_token="short-admin", registration_token="short-reg"), caplog)
    assert "--admin-token has fewer than 32 characters" in text
    assert "--registration-token has fewer than 32 characters" in text
    assert "short-admin" not in text
    assert "short-reg" not in text
