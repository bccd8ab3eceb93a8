"""Certificate revocation lists for tls_client_auth (RFC 5280 §5 and §6.3, SPEC §3 --client-crl).

A CRL belongs to the CA that signed it: a certificate in a validated path is checked against the
CRLs whose issuer is that certificate's issuer (same name, and same key identifier when the CRL
carries an authorityKeyIdentifier, so two CAs sharing a DN are told apart) and whose signature
verifies with the issuing certificate's key. The rules:

- an issuer with no CRL configured is not checked;
- a listed serial number is refused;
- a CRL past its nextUpdate fails closed for its issuer (logged): stale revocation data must not
  let a revoked certificate through;
- CRLs that name the issuer but are not signed by it fail closed too (logged): a configured CRL
  that cannot be trusted is an operator error, not a reason to stop checking.

Delta CRLs, indirect CRLs and distribution-point scoping are not supported; give full CRLs.
"""

from __future__ import annotations

import datetime
import itertools
import logging
import re
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

from certbound.errors import ConfigError
from certbound.pki.rejection import CertificateRejected
from certbound.reasons import Reason

__all__ = ["RevocationLists", "load_crls"]

log = logging.getLogger("certbound.pki")

_SIGNING_KEYS = (
    rsa.RSAPublicKey,
    ec.EllipticCurvePublicKey,
    ed25519.Ed25519PublicKey,
    ed448.Ed448PublicKey,
    dsa.DSAPublicKey,
)
_PEM_CRL = re.compile(rb"-----BEGIN X509 CRL-----.+?-----END X509 CRL-----", re.DOTALL)


def _key_identifier(issuer: x509.Certificate) -> bytes:
    try:
        return issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return x509.SubjectKeyIdentifier.from_public_key(issuer.public_key()).digest


def _authority_key_id(crl: x509.CertificateRevocationList) -> bytes | None:
    try:
        return crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    except x509.ExtensionNotFound:
        return None


def _signed_by(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    key = issuer.public_key()
    if not isinstance(key, _SIGNING_KEYS):
        return False  # a key that cannot sign (X25519, say): not this issuer's CRL
    return crl.is_signature_valid(key)


def _describe(name: x509.Name) -> str:
    return repr(name.rfc4514_string())


class RevocationLists:
    """Immutable: loaded once per trust configuration, replaced as a whole on reload."""

    def __init__(self, crls: Sequence[x509.CertificateRevocationList]) -> None:
        self._by_issuer: dict[x509.Name, list[x509.CertificateRevocationList]] = {}
        for crl in crls:
            self._by_issuer.setdefault(crl.issuer, []).append(crl)

    def __len__(self) -> int:
        return sum(len(crls) for crls in self._by_issuer.values())

    def check(self, path: Sequence[x509.Certificate], now: datetime.datetime) -> datetime.datetime | None:
        """Check every certificate of a validated path (leaf first, trust anchor last) against its
        issuer's CRL. Returns the earliest nextUpdate consulted (when the verdict must be
        recomputed), or None; raises CertificateRejected."""
        earliest: datetime.datetime | None = None
        for cert, issuer in itertools.pairwise(path):
            crl = self._crl_for(cert, issuer, now)
            if crl is None:
                continue
            if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
                serial = f"{cert.serial_number:#x}"
                raise CertificateRejected(
                    f"certificate {serial} of issuer {_describe(cert.issuer)} is revoked",
                    code=Reason.CERT_REVOKED,
                )
            next_update = crl.next_update_utc
            if next_update is not None and (earliest is None or next_update < earliest):
                earliest = next_update
        return earliest

    def _crl_for(
        self, cert: x509.Certificate, issuer: x509.Certificate, now: datetime.datetime
    ) -> x509.CertificateRevocationList | None:
        named = self._by_issuer.get(cert.issuer)
        if not named:
            return None
        key_id = _key_identifier(issuer)
        candidates = [crl for crl in named if _authority_key_id(crl) in (None, key_id)]
        if not candidates:
            return None  # CRLs of another CA that has the same name
        signed = [crl for crl in candidates if _signed_by(crl, issuer)]
        if not signed:
            log.error("the CRL configured for %s is not signed by that CA: refusing", _describe(cert.issuer))
            raise CertificateRejected(
                f"no valid CRL for issuer {_describe(cert.issuer)}", code=Reason.CRL_UNUSABLE
            )
        crl = max(signed, key=lambda candidate: candidate.last_update_utc)
        next_update = crl.next_update_utc
        if next_update is not None and next_update < now:
            log.error(
                "the CRL of %s expired at %s: refusing its certificates until it is renewed",
                _describe(cert.issuer),
                next_update.isoformat(),
            )
            raise CertificateRejected(
                f"the CRL of issuer {_describe(cert.issuer)} is out of date", code=Reason.CRL_UNUSABLE
            )
        return crl


def _read_crls(path: Path) -> list[x509.CertificateRevocationList]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read --client-crl {path}: {exc.strerror}") from None
    try:
        blocks = _PEM_CRL.findall(data)
        if blocks:
            return [x509.load_pem_x509_crl(block) for block in blocks]
        return [x509.load_der_x509_crl(data)]
    except ValueError as exc:
        raise ConfigError(f"cannot load --client-crl {path}: not a PEM or DER CRL ({exc})") from None


def load_crls(paths: Sequence[Path], anchors: Sequence[x509.Certificate]) -> RevocationLists:
    """Read CRL files (PEM, one or more CRLs each, or DER). A CRL issued by a configured client CA
    must verify with that CA's key, so a wrong file is a configuration error at once; CRLs of
    intermediate CAs are verified when a path through them is checked."""
    crls: list[x509.CertificateRevocationList] = []
    for path in paths:
        for crl in _read_crls(path):
            issuers = [anchor for anchor in anchors if anchor.subject == crl.issuer]
            key_id = _authority_key_id(crl)
            issuers = [anchor for anchor in issuers if key_id in (None, _key_identifier(anchor))]
            if issuers and not any(_signed_by(crl, anchor) for anchor in issuers):
                raise ConfigError(
                    f"--client-crl {path}: the CRL of {_describe(crl.issuer)} is not signed by that CA"
                )
            crls.append(crl)
    return RevocationLists(crls)
