from __future__ import annotations

import json
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from certbound.devpki import ensure_dev_pki, write_dev_pki
from certbound.jose import jwk_set_from_pem


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_client_certificates_have_the_documented_subjects_and_issuers(tmp_path: Path) -> None:
    pki = write_dev_pki(tmp_path)
    client_ca = _cert(pki.client_ca)
    for name in ("client1", "client2"):
        cert = _cert(tmp_path / f"{name}.pem")
        assert cert.subject.rfc4514_string() == f"CN={name},O=certbound dev"
        cert.verify_directly_issued_by(client_ca)
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert ExtendedKeyUsageOID.CLIENT_AUTH in eku
    selfsigned = _cert(tmp_path / "selfsigned.pem")
    assert selfsigned.subject == selfsigned.issuer
    server = _cert(pki.server_cert)
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)


def test_ensure_keeps_an_existing_pki(tmp_path: Path) -> None:
    write_dev_pki(tmp_path)
    before = (tmp_path / "server.pem").read_bytes()
    ensure_dev_pki(tmp_path)
    assert (tmp_path / "server.pem").read_bytes() == before


def test_the_self_signed_certificates_jwk_set_is_written(tmp_path: Path) -> None:
    pki = write_dev_pki(tmp_path)
    jwks = json.loads((tmp_path / "selfsigned.jwks.json").read_text())
    assert jwks == jwk_set_from_pem((tmp_path / "selfsigned.pem").read_bytes())
    assert tmp_path / "selfsigned.jwks.json" in pki.written_files()


def test_ensure_adds_the_jwk_set_to_an_older_pki_without_replacing_it(tmp_path: Path) -> None:
    write_dev_pki(tmp_path)
    (tmp_path / "selfsigned.jwks.json").unlink()
    before = (tmp_path / "selfsigned.pem").read_bytes()
    ensure_dev_pki(tmp_path)
    assert (tmp_path / "selfsigned.pem").read_bytes() == before
    assert json.loads((tmp_path / "selfsigned.jwks.json").read_text()) == jwk_set_from_pem(before)
