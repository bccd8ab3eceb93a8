"""Sans-IO server-side TLS connection: pyOpenSSL driven entirely through memory BIOs.

:class:`TLSConnection` owns no socket and does no I/O.  The caller feeds it the
ciphertext it received (:meth:`TLSConnection.receive_data`), hands it plaintext to
encrypt (:meth:`TLSConnection.send`) and ships whatever :meth:`TLSConnection.data_to_send`
returns.  The loop follows twisted's ``protocols/tls.py``: ``bio_write`` the
incoming bytes, run the handshake or ``recv`` until OpenSSL wants more input, then
drain the outgoing memory BIO.

Failures are reported by raising: :class:`TLSHandshakeError` while handshaking (a
client chain beyond the bounds of :mod:`certbound.tls.policy` included),
:class:`TLSError` on an established connection (a TLS 1.2 renegotiation request
included).  In both cases OpenSSL may have queued an alert, so callers should still
send :meth:`TLSConnection.data_to_send` before dropping the connection.
"""

from __future__ import annotations

import contextlib

from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import SSL, crypto
from OpenSSL._util import ffi as _ffi
from OpenSSL._util import lib as _openssl_lib

from .peer import PeerCertificates, TLSInfo
from .peercache import PEER_CACHE
from .policy import MAX_CHAIN_BYTES, MAX_INTERMEDIATES, refusal_reason

__all__ = ["TLSConnection", "TLSError", "TLSHandshakeError"]

# Large enough to take a whole TLS record (16 KiB) or a batch of them per call,
# small enough that the scratch buffer pyOpenSSL allocates per call stays below
# glibc's mmap threshold (128 KiB), so it comes from the heap instead of a syscall.
_CHUNK = 65536


class TLSError(Exception):
    """A TLS protocol failure; the connection cannot be used any more."""


class TLSHandshakeError(TLSError):
    """The TLS handshake failed (bad client hello, unsupported version, alert...)."""


class TLSConnection:
    """One server-side TLS connection, with no I/O of its own.

    After :meth:`receive_data` has reported the end of the handshake, :attr:`info`
    describes the session; it is captured once and never changes, because the
    server context forbids renegotiation.
    """

    __slots__ = ("_conn", "_held", "_info")

    def __init__(self, context: SSL.Context) -> None:
        self._conn = SSL.Connection(context, None)
        self._conn.set_accept_state()
        self._info: TLSInfo | None = None
        # Ciphertext read from OpenSSL before data_to_send() was called (see receive_data).
        self._held = b""

    @property
    def ssl_object(self) -> SSL.Connection:
        """The underlying pyOpenSSL connection (for inspection only)."""
        return self._conn

    @property
    def info(self) -> TLSInfo | None:
        """The negotiated session, or ``None`` until the handshake has completed."""
        return self._info

    def receive_data(self, data: bytes) -> tuple[bool, bytes, bool]:
        """Process ciphertext received from the peer.

        Returns ``(handshake_just_completed, plaintext, closed)``: whether this call
        finished the handshake, the application data decrypted so far (which may
        arrive in the same call that finishes the handshake), and whether the peer
        sent close_notify.  Always follow with :meth:`data_to_send`: handshake
        messages, session tickets and alerts are produced here.

        Raises :class:`TLSHandshakeError` if the handshake fails and
        :class:`TLSError` if an established connection breaks.
        """
        conn = self._conn
        if data:
            conn.bio_write(data)
        just_completed = False
        if self._info is None:
            try:
                conn.do_handshake()
            except SSL.WantReadError:
                return False, b"", False
            except SSL.Error as exc:
                refusal = refusal_reason(conn)
                if refusal is not None:
                    raise TLSHandshakeError(f"client certificate refused: {refusal}") from exc
                raise TLSHandshakeError(_describe(exc)) from exc
            self._info = _capture_info(conn)
            just_completed = True

        # Drain every complete record: one SSL_read returns at most one record, and
        # the caller should get everything this segment carried in one piece.
        recv = conn.recv
        chunks: list[bytes] = []
        closed = False
        try:
            while True:
                chunks.append(recv(_CHUNK))
        except SSL.WantReadError:
            pass
        except SSL.ZeroReturnError:
            closed = True
        except SSL.Error as exc:
            raise TLSError(_describe(exc)) from exc
        if not chunks:
            if not (just_completed or closed):
                self._refuse_renegotiation()
            return just_completed, b"", closed
        if len(chunks) == 1:
            return just_completed, chunks[0], closed
        return just_completed, b"".join(chunks), closed

    def _refuse_renegotiation(self) -> None:
        """Records that carried no application data on an established connection: in TLS 1.2,
        if OpenSSL answered them, it was refusing a renegotiation (a new ClientHello) with a
        no_renegotiation warning alert, and it would carry on while the peer waits for a
        handshake that never comes (issue 9, finding 14). End the connection instead; the
        alert goes out first (TLS 1.3 KeyUpdate replies are not refusals and just wait)."""
        info = self._info
        if info is None or info.version != "TLSv1.2":
            return
        outgoing = self.data_to_send()
        if outgoing:
            self._held = outgoing
            raise TLSError("the peer asked to renegotiate, which is refused")

    def send(self, data: bytes | bytearray | memoryview) -> None:
        """Encrypt application data; only valid once the handshake has completed.

        The records are queued for :meth:`data_to_send`.
        """
        if data:
            try:
                # sendall: pyOpenSSL enables partial writes, so one SSL_write may
                # consume only a single record's worth of the buffer.
                self._conn.sendall(data)
            except SSL.Error as exc:
                raise TLSError(_describe(exc)) from exc

    def data_to_send(self) -> bytes:
        """Return (and forget) all ciphertext waiting to go to the peer."""
        held = self._held
        if held:
            self._held = b""
            return held + self.data_to_send()
        bio_read = self._conn.bio_read
        try:
            first = bio_read(_CHUNK)
        except SSL.WantReadError:
            return b""
        if len(first) < _CHUNK:
            # A short read drained the BIO: no second call, and no WantReadError to pay for.
            return first
        chunks = [first]
        try:
            while True:
                chunk = bio_read(_CHUNK)
                chunks.append(chunk)
                if len(chunk) < _CHUNK:
                    break
        except SSL.WantReadError:
            pass
        return b"".join(chunks)

    def start_close(self) -> None:
        """Queue a close_notify alert for :meth:`data_to_send`.

        Harmless to call more than once, or before the handshake has completed (then
        nothing is queued: there is no session to close cleanly).
        """
        # SSL_shutdown reports "want read" (the peer's close_notify has not arrived,
        # and we do not wait for it) or "shutdown while in init"; neither matters.
        with contextlib.suppress(SSL.Error):
            self._conn.shutdown()


def _capture_info(conn: SSL.Connection) -> TLSInfo:
    leaf = conn.get_peer_certificate()
    peer = None
    if leaf is not None:
        peer = _peer_certificates(conn, leaf)
    alpn = conn.get_alpn_proto_negotiated()
    return TLSInfo(
        version=conn.get_protocol_version_name(),
        cipher=conn.get_cipher_name() or "",
        # ALPN identifiers are opaque bytes; latin-1 maps them losslessly.
        alpn=alpn.decode("latin-1") if alpn else None,
        # pyOpenSSL does not wrap SSL_session_reused; call it through the
        # cryptography bindings pyOpenSSL itself is built on.
        resumed=bool(_openssl_lib.SSL_session_reused(conn._ssl)),
        peer=peer,
    )


def _peer_certificates(conn: SSL.Connection, leaf: crypto.X509) -> PeerCertificates:
    """The client's certificates, within the bounds of what a client may send; shared with the
    other connections that presented the same chain (certbound.tls.peercache).

    The verify callback only sees the chain OpenSSL built; certificates sent beside it are
    counted here, before they are converted, and refused like an over-long chain.
    """
    stack = _openssl_lib.SSL_get_peer_cert_chain(conn._ssl)
    # Server side, OpenSSL's chain omits the leaf.
    sent = 0 if stack == _ffi.NULL else _openssl_lib.sk_X509_num(stack)
    if sent > MAX_INTERMEDIATES:
        raise TLSHandshakeError(f"client certificate refused: {sent} certificates sent with the leaf")
    chain = conn.get_peer_cert_chain() or []
    return PEER_CACHE.get_or_build(PEER_CACHE.key(leaf, chain), lambda: _converted(leaf, chain))


def _converted(leaf: crypto.X509, chain: list[crypto.X509]) -> tuple[PeerCertificates, int]:
    """The chain as `cryptography` objects and its DER size, refused over MAX_CHAIN_BYTES."""
    # from_certs drops a leaf copy anyway in case a future OpenSSL includes it.
    peer = PeerCertificates.from_certs(leaf.to_cryptography(), [cert.to_cryptography() for cert in chain])
    size = len(peer.leaf_der) + sum(len(cert.public_bytes(Encoding.DER)) for cert in peer.chain)
    if size > MAX_CHAIN_BYTES:
        raise TLSHandshakeError(f"client certificate refused: a chain of {size} bytes")
    return peer, size


def _describe(exc: SSL.Error) -> str:
    """Condense a pyOpenSSL error into one log-friendly line."""
    if isinstance(exc, SSL.ZeroReturnError):
        return "peer sent close_notify"
    if isinstance(exc, SSL.SysCallError):
        return f"system call error: {exc.args}"
    # Regular errors carry OpenSSL's error queue: [(library, function, reason), ...].
    errors = exc.args[0] if exc.args else None
    if isinstance(errors, list) and errors:
        return "; ".join(str(entry[-1]) for entry in errors if isinstance(entry, tuple))
    return repr(exc)
