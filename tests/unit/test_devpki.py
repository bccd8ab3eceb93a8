from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from certbound.devpki import ensure_dev_pki, write_dev_pki


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
