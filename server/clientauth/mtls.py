"""tls_client_auth and self_signed_tls_client_auth: mutual-TLS client authentication (RFC 8705 §2).

The request carries `client_id` alone; the credential is the client certificate of the TLS
connection (or of a trusted proxy's header, certbound.proxycert), read once by the endpoint. No
certificate is `invalid_client` (401), like any missing credential.

- tls_client_auth (§2.1): the leaf must validate against the configured client CAs
  (certbound.pki.trust: chain, validity, clientAuth, CRLs), then match the one registered subject
  field (`tls_client_auth_subject_dn` or a `tls_client_auth_san_*`; certbound.pki.subject). Only the
  leaf is matched, never an issuer. A client may also be pinned to a CA with the non-standard
  `tls_client_auth_ca_sha256`: the SHA-256 of the DER of a CA certificate that must be *in the
  validated path*, i.e. the issuing CA, an intermediate above it, or the configured trust anchor
  (hex, optionally colon-separated, or base64url). Two CAs with the same DN have different
  certificates, so a pinned client cannot be impersonated through the other one.
- tls_client_auth with `spiffe_id` (SPEC §13): the certificate is an X.509-SVID. The leaf must hold
  exactly that one URI SAN, be no CA and allow digitalSignature (certbound.pki.svid), and chain to
  the x509-svid authorities of that trust domain's bundle (a stale bundle fails closed); never to
  `--client-ca`, whose certificates satisfy only DN and SAN clients. Its refusals name their check.
- self_signed_tls_client_auth (§2.2): no chain check; the leaf's public key must be one of the keys
  of the client's `jwks` or `jwks_uri` (certbound.pki.spki), fetched by certbound.jwks. When a
  fetched set has no match it is refetched once (the client may have rotated its key).

Every refusal is logged with its reason, the certificate's subject and its x5t#S256; never key
material.
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Any, ClassVar, NoReturn

from certbound.clientauth.credentials import PresentedCredentials
from certbound.clientauth.spiffe import trust_domain_of
from certbound.clientauth.workload import disclosing, require_federation
from certbound.config import Settings
from certbound.context import ServerContext
from certbound.errors import InvalidClientError, InvalidClientMetadataError
from certbound.jwks import require_key_source
from certbound.models import Client
from certbound.pki.rejection import CertificateRejected
from certbound.pki.spiffeid import parse_spiffe_id
from certbound.pki.spki import certificate_key_der
from certbound.pki.subject import SPIFFE_ID, registered_subject, subject_matches
from certbound.pki.svid import check_svid_leaf
from certbound.pki.trust import VerifiedPath
from certbound.reasons import Reason
from certbound.tls.peer import PeerCertificates

__all__ = ["CA_PIN", "SelfSignedTlsClientAuth", "TlsClientAuth", "parse_ca_pin"]

log = logging.getLogger("certbound.mtls")

#: Non-standard client metadata: pin a tls_client_auth client to one CA certificate.
CA_PIN = "tls_client_auth_ca_sha256"


def parse_ca_pin(value: object) -> bytes:
    """The 32-byte digest of a registered CA pin; ValueError when it is not one."""
    if not isinstance(value, str):
        raise ValueError(f"{CA_PIN} must be a string")
    text = value.replace(":", "") if len(value) == 95 else value
    try:
        if len(text) == 64:
            digest = bytes.fromhex(text)
        elif len(text) == 43 and text.isascii():
            digest = base64.urlsafe_b64decode(text + "=")
        else:
            digest = b""
    except (ValueError, binascii.Error):
        digest = b""
    if len(digest) != 32:
        raise ValueError(f"{CA_PIN} must be a SHA-256 digest in hex or base64url")
    return digest


def _refuse(
    method: str, client: Client, peer: PeerCertificates | None, reason: str, code: Reason
) -> NoReturn:
    if peer is None:
        log.warning("%s refused for client %r: %s", method, client.client_id, reason)
    else:
        log.warning(
            "%s refused for client %r: %s (certificate subject %r, x5t#S256 %s)",
            method,
            client.client_id,
            reason,
            peer.leaf.subject.rfc4514_string(),
            peer.x5t_s256,
        )
    raise InvalidClientError(f"client certificate refused: {reason}", reason=code)


def _require_certificate(method: str, presented: PresentedCredentials, client: Client) -> PeerCertificates:
    if presented.certificate is None:
        _refuse(method, client, None, "no client certificate was presented", Reason.NO_CERTIFICATE)
    return presented.certificate


class TlsClientAuth:
    """PKI mutual TLS (RFC 8705 §2.1)."""

    name: ClassVar[str] = "tls_client_auth"

    async def verify(self, presented: PresentedCredentials, client: Client, context: ServerContext) -> None:
        peer = _require_certificate(self.name, presented, client)
        try:
            field, value = registered_subject(client.metadata)
            pin = parse_ca_pin(client.metadata[CA_PIN]) if CA_PIN in client.metadata else None
        except ValueError as exc:
            _refuse(
                self.name,
                client,
                peer,
                f"the client's registration cannot be used: {exc}",
                Reason.REGISTRATION_UNUSABLE,
            )
        if field == SPIFFE_ID:
            with disclosing():
                self._check_pin(client, peer, pin, await self._svid_path(peer, client, value, context))
            return
        try:
            path = await context.trust.verify(peer, pool=context.cpu)
        except CertificateRejected as exc:
            _refuse(self.name, client, peer, exc.reason, exc.code)
        if not subject_matches(field, value, peer.leaf):
            code = Reason.DN_MISMATCH if field == "tls_client_auth_subject_dn" else Reason.SAN_MISMATCH
            _refuse(self.name, client, peer, f"the certificate does not match the registered {field}", code)
        self._check_pin(client, peer, pin, path)

    def _check_pin(
        self, client: Client, peer: PeerCertificates, pin: bytes | None, path: VerifiedPath
    ) -> None:
        if pin is not None and pin not in path.ca_sha256:
            _refuse(
                self.name,
                client,
                peer,
                f"the certificate was not issued under the CA of {CA_PIN}",
                Reason.CA_PIN_MISMATCH,
            )

    async def _svid_path(
        self, peer: PeerCertificates, client: Client, spiffe_id: str, context: ServerContext
    ) -> VerifiedPath:
        """SPEC §13: the leaf checks first (they cost no signature), then path validation against
        the trust domain's x509-svid authorities only."""
        try:
            check_svid_leaf(peer.leaf, spiffe_id)
        except CertificateRejected as exc:
            _refuse(self.name, client, peer, exc.reason, exc.code)
        domain = trust_domain_of(parse_spiffe_id(spiffe_id), require_federation(context))
        bundle = await context.federation_keys.bundle(domain)
        if not bundle.x509_authorities:
            _refuse(
                self.name,
                client,
                peer,
                f"the bundle of trust domain {domain.trust_domain} has no x509-svid authorities",
                Reason.CHAIN_UNTRUSTED,
            )
        try:
            return await context.federation_keys.svid_trust(domain, bundle).verify(peer, pool=context.cpu)
        except CertificateRejected as exc:
            _refuse(self.name, client, peer, f"{exc.reason} (trust domain {domain.trust_domain})", exc.code)

    def validate_metadata(self, metadata: dict[str, Any], settings: Settings) -> None:
        try:
            registered_subject(metadata)
            if CA_PIN in metadata:
                parse_ca_pin(metadata[CA_PIN])
        except ValueError as exc:
            raise InvalidClientMetadataError(str(exc)) from None


class SelfSignedTlsClientAuth:
    """Self-signed certificate mutual TLS (RFC 8705 §2.2)."""

    name: ClassVar[str] = "self_signed_tls_client_auth"

    async def verify(self, presented: PresentedCredentials, client: Client, context: ServerContext) -> None:
        peer = _require_certificate(self.name, presented, client)
        key = certificate_key_der(peer.leaf)
        if key is not None and key in await context.client_keys.public_key_ders(client):
            return
        # A jwks_uri may have gained the key since we cached it: one refetch (with its cooldown).
        refetch = key is not None and client.metadata.get("jwks_uri") is not None
        if refetch and key in await context.client_keys.public_key_ders(client, refresh=True):
            return
        _refuse(
            self.name,
            client,
            peer,
            "the certificate's public key is not one of the client's registered keys",
            Reason.KEY_NOT_REGISTERED,
        )

    def validate_metadata(self, metadata: dict[str, Any], settings: Settings) -> None:
        # Every key the JWK Set policy admits (RSA, EC, EdDSA) can be a certificate's key.
        require_key_source(metadata, settings)
