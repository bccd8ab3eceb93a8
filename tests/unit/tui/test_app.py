"""`certbound tui` on the database back end, driven by Textual's pilot: every method created
through the form, edit, secret rotation, deletion, server errors on their field, the keys view."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from certbound.cli.backend import LocalBackend
from certbound.config import Settings
from certbound.jose import public_jwk
from certbound.keys import KeyRing
from certbound.management import ClientManager
from certbound.store.sqlite import SQLiteStore
from certbound.tui.app import CertboundApp
from certbound.tui.clients import ClientDetailScreen, matches_search
from certbound.tui.dialogs import ConfirmScreen, SecretScreen
from certbound.tui.fields import offered_methods
from certbound.vault import Vault
from tests.tui_kit import (
    NOW,
    choose_method,
    client_certificate_pem,
    fill,
    general_error,
    make_app,
    note,
    open_form,
    read_subject_from,
    save,
    select_row,
    store_as_before_the_rules,
    table_rows,
    take_secret,
    until,
    wait_for_list,
)

SETTINGS = Settings(scopes=("read", "write"))
SECRET_METHODS = ("client_secret_basic", "client_secret_post", "client_secret_jwt")


@pytest.fixture
def manager(store: SQLiteStore) -> ClientManager:
    return ClientManager(store, Vault(bytes(range(32))), SETTINGS)


@pytest.fixture
def backend(store: SQLiteStore, manager: ClientManager) -> LocalBackend:
    keys = KeyRing(store, Vault(bytes(range(32))), alg="ES256", publish_after_retirement=60)
    return LocalBackend(manager, keys)


@pytest.fixture
def jwks_file(tmp_path: Path) -> Path:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [public_jwk(ec.generate_private_key(ec.SECP256R1()).public_key())]}))
    return path


@pytest.fixture
def cert_file(tmp_path: Path) -> Path:
    path = tmp_path / "client.pem"
    path.write_bytes(client_certificate_pem(x509.DNSName("svc.example.com")))
    return path


@pytest.mark.parametrize("method", offered_methods())
async def test_create_a_client_of_each_method_through_the_form(
    backend: LocalBackend, manager: ClientManager, method: str, jwks_file: Path, cert_file: Path
) -> None:
    app = make_app(backend)
    async with app.run_test() as pilot:
        await wait_for_list(pilot, app, [])
        await open_form(pilot, app, "a")
        await choose_method(pilot, app, method)
        await fill(pilot, app, "client_id", f"c-{method}")
        await fill(pilot, app, "client_name", f"{method} client")
        await fill(pilot, app, "scope", "read")
        if method in ("private_key_jwt", "self_signed_tls_client_auth"):
            # self-signed: the PEM certificate, converted; private_key_jwt: a JWK Set file.
            source = cert_file if method == "self_signed_tls_client_auth" else jwks_file
            await fill(pilot, app, "jwks", str(source))
        if method == "tls_client_auth":
            value = await read_subject_from(pilot, app, "tls_client_auth_subject_dn", str(cert_file))
            assert value == "CN=svc,O=Acme"  # RFC 4514 order: most significant last
        if method == "federated_jwt":
            await fill(pilot, app, "federated_issuer", "github")
            await fill(pilot, app, "federated_claims", '{"repository_id": "123", "ref": "refs/heads/*"}')
        if method == "spiffe_jwt":
            await fill(pilot, app, "spiffe_id", "spiffe://example.org/ns/prod/sa/api")
        await save(pilot, app)
        if method in SECRET_METHODS:
            client_id, secret = await take_secret(pilot, app)
            assert client_id == f"c-{method}"
            stored = await manager.get(client_id)
            assert stored is not None
            assert await manager.verify_client_secret(stored, secret)
        await wait_for_list(pilot, app, [f"c-{method}"])
        assert table_rows(app, "#clients") == [[f"c-{method}", method, f"{method} client"]]
    stored = await manager.get(f"c-{method}")
    assert stored is not None
    assert stored.auth_method == method
    assert stored.metadata["scope"] == "read"
    if method == "tls_client_auth":
        assert stored.metadata["tls_client_auth_subject_dn"] == "CN=svc,O=Acme"
    if method == "self_signed_tls_client_auth":
        assert stored.metadata["jwks"]["keys"][0]["kty"] == "EC"
    if method == "federated_jwt":
        assert stored.metadata["federated_issuer"] == "github"
        assert stored.metadata["federated_claims"] == {"repository_id": "123", "ref": "refs/heads/*"}
    if method == "spiffe_jwt":
        assert stored.metadata["spiffe_id"] == "spiffe://example.org/ns/prod/sa/api"


async def test_tls_client_auth_takes_a_san_from_the_certificate(
    backend: LocalBackend, manager: ClientManager, cert_file: Path
) -> None:
    app = make_app(backend)
    async with app.run_test() as pilot:
        await open_form(pilot, app, "a")
        await choose_method(pilot, app, "tls_client_auth")
        await fill(pilot, app, "client_id", "svc")
        assert (
            await read_subject_from(pilot, app, "tls_client_auth_san_dns", str(cert_file))
            == "svc.example.com"
        )
        await save(pilot, app)
        await wait_for_list(pilot, app, ["svc"])
    stored = await manager.get("svc")
    assert stored is not None
    assert stored.metadata["tls_client_auth_san_dns"] == "svc.example.com"
    assert "tls_client_auth_subject_dn" not in stored.metadata


async def test_a_certificate_without_that_san_is_an_error_on_the_subject(
    backend: LocalBackend, cert_file: Path
) -> None:
    app = make_app(backend)
    async with app.run_test() as pilot:
        await open_form(pilot, app, "a")
        await choose_method(pilot, app, "tls_client_auth")
        assert await read_subject_from(pilot, app, "tls_client_auth_san_email", str(cert_file)) == ""
        assert "no subjectAltName of the kind tls_client_auth_san_email" in note(
            app, "tls_client_auth_subject"
        )


async def test_edit_rotate_and_delete(backend: LocalBackend, manager: ClientManager) -> None:
    created = await manager.create({"client_name": "Billing", "scope": "read"}, client_id="billing")
    await manager.create({"token_endpoint_auth_method": "none"}, client_id="public")
    app = make_app(backend)
    async with app.run_test() as pilot:
        await wait_for_list(pilot, app, ["billing", "public"])
        await select_row(pilot, app, "billing")
        await open_form(pilot, app, "e")
        await fill(pilot, app, "client_name", "Billing EU")
        await fill(pilot, app, "scope", "read write")
        await save(pilot, app)
        await until(
            pilot,
            lambda: ["billing", "client_secret_basic", "Billing EU"] in table_rows(app, "#clients"),
            "the edit",
        )
        updated = await manager.get("billing")
        assert updated is not None
        assert updated.metadata["scope"] == "read write"
        assert await manager.verify_client_secret(updated, str(created.secret))  # an edit keeps the secret

        await select_row(pilot, app, "billing")
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
        await pilot.press("y")
        _, secret = await take_secret(pilot, app)
        rotated = await manager.get("billing")
        assert rotated is not None
        assert await manager.verify_client_secret(rotated, secret)
        assert not await manager.verify_client_secret(rotated, str(created.secret))

        await wait_for_list(pilot, app, ["billing", "public"])
        await select_row(pilot, app, "billing")
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
        await pilot.press("y")
        await wait_for_list(pilot, app, ["public"])
    assert await manager.get("billing") is None


async def test_declined_confirmations_change_nothing(backend: LocalBackend, manager: ClientManager) -> None:
    created = await manager.create({}, client_id="billing")
    app = make_app(backend)
    async with app.run_test() as pilot:
        await wait_for_list(pilot, app, ["billing"])
        for key, answer in (("d", "n"), ("r", "escape")):
            await select_row(pilot, app, "billing")
            await pilot.press(key)
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
            await pilot.press(answer)
            await wait_for_list(pilot, app, ["billing"])
    stored = await manager.get("billing")
    assert stored is not None
    assert await manager.verify_client_secret(stored, str(created.secret))


async def test_rotating_a_public_client_is_refused_with_the_servers_words(
    backend: LocalBackend, manager: ClientManager
) -> None:
    await manager.create({"token_endpoint_auth_method": "none"}, client_id="public")
    app = make_app(backend)
    async with app.run_test(notifications=True) as pilot:
        await wait_for_list(pilot, app, ["public"])
        await select_row(pilot, app, "public")
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
        await pilot.press("y")
        await until(pilot, lambda: bool(app._notifications), "a notification")
        [notification] = list(app._notifications)
        assert notification.severity == "error"
        assert notification.message.startswith("invalid_client_metadata: token_endpoint_auth_method none")


def warnings_of(app: CertboundApp) -> list[str]:
    return [str(n.message) for n in list(app._notifications) if n.severity == "warning"]


async def test_a_chosen_secret_is_not_shown_back_and_advice_is_a_warning(
    backend: LocalBackend, manager: ClientManager
) -> None:
    """As `certbound clients add --secret`: the operator's secret is not printed back, and what
    certbound.clientadvice says about it (short; characters Basic clients send unencoded) is shown."""
    app = make_app(backend)
    async with app.run_test(notifications=True) as pilot:
        await open_form(pilot, app, "a")
        await fill(pilot, app, "client_id", "chosen")
        await fill(pilot, app, "client_secret", "pass+word:1")
        await save(pilot, app)
        await wait_for_list(pilot, app, ["chosen"])
        assert not isinstance(app.screen, SecretScreen)
        assert any("saved with the secret you gave" in str(n.message) for n in list(app._notifications))
        warnings = warnings_of(app)
        assert len(warnings) == 2
        assert warnings[0] == "client chosen: the chosen client_secret has fewer than 32 characters"
        assert warnings[1].startswith("client chosen: the chosen client_secret contains '+' ':'")
        # a generated secret: shown once, and nothing to advise
        await open_form(pilot, app, "a")
        await fill(pilot, app, "client_id", "generated")
        await save(pilot, app)
        await take_secret(pilot, app)
        assert len(warnings_of(app)) == 2
    stored = await manager.get("chosen")
    assert stored is not None
    assert await manager.verify_client_secret(stored, "pass+word:1")


async def test_editing_a_client_with_a_reversed_subject_dn_warns(
    backend: LocalBackend, manager: ClientManager
) -> None:
    reversed_dn = "C=US,O=Acme,CN=svc"
    metadata = {"token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": reversed_dn}
    await manager.create(metadata, client_id="svc")
    app = make_app(backend)
    async with app.run_test(notifications=True) as pilot:
        await wait_for_list(pilot, app, ["svc"])
        await select_row(pilot, app, "svc")
        await open_form(pilot, app, "e")
        await fill(pilot, app, "scope", "read")
        await save(pilot, app)
        await wait_for_list(pilot, app, ["svc"])
        [warning] = warnings_of(app)
        assert warning.startswith(f"client svc: tls_client_auth_subject_dn {reversed_dn!r} starts with C=")


@pytest.mark.parametrize(
    ("member", "value", "message"),
    [
        ("scope", "everything", "scope includes values this server does not offer: everything"),
        ("redirect_uris", "http://evil.example/cb", "redirect_uris: 'http://evil.example/cb' uses http"),
        ("client_secret", "short", "client_secret must have at least 8 characters"),
        ("grant_types", "magic", "grant_types: not supported by this server: magic"),
    ],
)
async def test_a_server_error_appears_on_its_field(
    backend: LocalBackend, manager: ClientManager, member: str, value: str, message: str
) -> None:
    app = make_app(backend)
    async with app.run_test() as pilot:
        await open_form(pilot, app, "a")
        await fill(pilot, app, member, value)
        await save(pilot, app)
        assert note(app, member).startswith(message)
        assert general_error(app) == ""
        others = [r for r in app.screen.query(".field-row.error") if r.field.member != member]  # type: ignore[attr-defined]
        assert others == []
        focused = app.focused
        assert focused is not None
        assert member in [
            ancestor.field.member for ancestor in focused.ancestors if hasattr(ancestor, "field")
        ]
    assert await manager.list_clients() == []


async def test_errors_on_method_fields_and_without_a_field(backend: LocalBackend, jwks_file: Path) -> None:
    app = make_app(backend)
    async with app.run_test() as pilot:
        await open_form(pilot, app, "a")
        await choose_method(pilot, app, "tls_client_auth")
        await save(pilot, app)
        assert note(app, "tls_client_auth_subject").startswith("tls_client_auth_subject_dn: exactly one of")

        await choose_method(pilot, app, "private_key_jwt")
        await save(pilot, app)
        assert note(app, "jwks").startswith("jwks: exactly one of jwks and jwks_uri is required")
        await fill(pilot, app, "jwks_uri", "http://keys.example/jwks")
        await save(pilot, app)
        assert note(app, "jwks_uri") == "jwks_uri must be an https URL"
        assert note(app, "jwks") == ""
        await fill(pilot, app, "jwks_uri", "")
        await fill(pilot, app, "jwks", str(jwks_file.with_name("missing.json")))
        await save(pilot, app)
        assert note(app, "jwks").startswith("cannot read")  # read by the form, before any request

        await choose_method(pilot, app, "client_secret_basic")
        await fill(pilot, app, "client_id", "a\x1bb")
        await save(pilot, app)
        assert note(app, "client_id") == "client_id must not contain control characters"
        assert general_error(app) == ""


async def test_editing_sends_only_changed_fields(backend: LocalBackend, manager: ClientManager) -> None:
    """A name holding characters shown as escapes is shown escaped; saving another change leaves it
    as it was. (Registration refuses control characters in a name but keeps direction marks and
    joiners, which the screen still spells out.)"""
    name = "Billing\u200e\u200d[bold]x"
    await manager.create({"client_name": name, "scope": "read"}, client_id="odd")
    app = make_app(backend)
    async with app.run_test() as pilot:
        await wait_for_list(pilot, app, ["odd"])
        assert table_rows(app, "#clients") == [["odd", "client_secret_basic", "Billing\\u200e\\u200d[bold]x"]]
        await select_row(pilot, app, "odd")
        await open_form(pilot, app, "e")
        await fill(pilot, app, "scope", "write")
        await save(pilot, app)
        await wait_for_list(pilot, app, ["odd"])
    stored = await manager.get("odd")
    assert stored is not None
    assert stored.metadata["client_name"] == name
    assert stored.metadata["scope"] == "write"


async def test_changing_the_method_drops_what_only_the_old_one_used(
    backend: LocalBackend, manager: ClientManager, cert_file: Path
) -> None:
    await manager.create(
        {"token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_dns": "svc.example.com"},
        client_id="svc",
    )
    app = make_app(backend)
    async with app.run_test() as pilot:
        await wait_for_list(pilot, app, ["svc"])
        await select_row(pilot, app, "svc")
        await open_form(pilot, app, "e")
        await choose_method(pilot, app, "client_secret_post")
        await save(pilot, app)
        client_id, _ = await take_secret(pilot, app)  # a secret method issues a secret
        assert client_id == "svc"
    stored = await manager.get("svc")
    assert stored is not None
    assert stored.auth_method == "client_secret_post"
    assert "tls_client_auth_san_dns" not in stored.metadata
    assert stored.metadata["tls_client_certificate_bound_access_tokens"] is False


async def test_detail_view_shows_every_member_as_text(
    backend: LocalBackend, manager: ClientManager, store: SQLiteStore
) -> None:
    await manager.create({"client_name": "Billing", "scope": "read"}, client_id="billing")
    await store_as_before_the_rules(store, "billing", client_name="[red]Billing\x1b[2J")
    app = make_app(backend)
    async with app.run_test() as pilot:
        await wait_for_list(pilot, app, ["billing"])
        await select_row(pilot, app, "billing")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ClientDetailScreen), "the detail view")
        await until(pilot, lambda: "client_name" in app.export_screenshot(), "the details")
        rendered = app.export_screenshot()
        assert "[red]Billing\\x1b[2J" in rendered.replace("&#160;", " ")
        assert "\x1b" not in rendered
        await pilot.press("escape")
        await wait_for_list(pilot, app, ["billing"])


async def test_search_and_method_filter(backend: LocalBackend, manager: ClientManager) -> None:
    await manager.create({"client_name": "Billing"}, client_id="b-1")
    await manager.create({"client_name": "Reports", "token_endpoint_auth_method": "none"}, client_id="r-1")
    await manager.create({}, client_id="other")
    app = make_app(backend)
    async with app.run_test() as pilot:
        await wait_for_list(pilot, app, ["b-1", "other", "r-1"])
        await pilot.press("slash")
        await pilot.press(*"bill")
        await wait_for_list(pilot, app, ["b-1"])
        await pilot.press("enter")  # back to the list
        await pilot.press("escape")
        app.screen.query_one("#search").value = "1"  # type: ignore[attr-defined]
        await wait_for_list(pilot, app, ["b-1", "r-1"])
        app.screen.query_one("#method-filter").value = "none"  # type: ignore[attr-defined]
        await wait_for_list(pilot, app, ["r-1"])
        assert "1 of 1 clients" not in str(app.screen.query_one("#status").render())


def test_search_matches_id_or_name() -> None:
    view = {"client_id": "svc-1", "client_name": "Billing EU"}
    assert matches_search(view, "")
    assert matches_search(view, "SVC")
    assert matches_search(view, "billing eu")
    assert not matches_search(view, "reports")
    assert matches_search({"client_id": "x", "client_name": 3}, "x")
    assert not matches_search({"client_id": "x", "client_name": 3}, "3")


async def test_keys_view_rotates_a_key(backend: LocalBackend, store: SQLiteStore) -> None:
    app = make_app(backend)
    async with app.run_test() as pilot:
        await wait_for_list(pilot, app, [])
        await backend.rotate_key()  # the first key
        [first] = await store.list_signing_keys()
        await pilot.press("k")
        await until(
            pilot, lambda: bool(app.screen.query("#keys")) and len(table_rows(app, "#keys")) == 1, "keys"
        )
        [[kid, alg, state, age]] = table_rows(app, "#keys")
        assert (kid, alg, state) == (first.kid, "ES256", "active")
        assert age == f"{(NOW - first.created_at) // 86400}d {(NOW - first.created_at) % 86400 // 3600}h"
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
        await pilot.press("y")
        await until(pilot, lambda: len(table_rows(app, "#keys")) == 2, "the new key")
        rows = table_rows(app, "#keys")
        assert [row[2] for row in rows] == ["active", "retired"]
        assert rows[1][0] == first.kid
        await pilot.press("escape")
        await wait_for_list(pilot, app, [])
    assert len(await store.list_signing_keys()) == 2


async def test_quit_leaves_the_backend_closed_once(backend: LocalBackend) -> None:
    app = make_app(backend)
    async with app.run_test() as pilot:
        await wait_for_list(pilot, app, [])
        await pilot.press("q")
    assert app.return_code == 0
