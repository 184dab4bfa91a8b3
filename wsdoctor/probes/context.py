"""The options every probe shares: timeout, TLS trust, the token, extra headers, where to dial.

One ``ProbeContext`` per run; probes never keep global state, so any number of them can run
concurrently on one event loop. The ``ssl.SSLContext`` is built once (reading the system store or
``--ca-file`` is disk I/O: build the context before the probes start, see :meth:`ProbeContext.prepare`).

Routing through the proxy host (``--ssh``): the remote helper opens a local forwarded port and the
caller passes ``http://127.0.0.1:LOCALPORT`` as the base URL; ``host_header`` and ``server_hostname``
keep the Host header and TLS SNI the real server expects, and ``connect_to`` dials another address
than the URL names (like ``curl --connect-to``) without changing the URL shown in evidence.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from wsdoctor.wire.client import eio_of

if TYPE_CHECKING:
    from wsdoctor.target import Target

DEFAULT_TIMEOUT = 5.0
BODY_CAP = 64 * 1024  # bytes of a response body kept; the rest is not read
HEAD_CAP = 1024  # raw bytes of an answer kept to show what a non-HTTP server said
USER_AGENT = "wsdoctor-probe"


class ProbeConfigError(ValueError):
    """A probe option cannot be used (unreadable CA file): one sentence for the user."""


@dataclass
class ProbeContext:
    timeout: float = DEFAULT_TIMEOUT  # seconds, for each network exchange (DNS to last body byte)
    ca_file: str | None = None
    insecure: bool = False
    token: str | None = field(default=None, repr=False)  # a secret: sent in the CONNECT auth, never recorded
    auth_header: bool = False  # also send the token as Authorization: Bearer
    headers: list[tuple[str, str]] = field(default_factory=list)  # extra request headers
    host_header: str | None = None  # Host header override (the name nginx selects its server by)
    server_hostname: str | None = None  # TLS SNI override
    connect_to: tuple[str, int] | None = None  # dial this address instead of the URL's host:port
    body_cap: int = BODY_CAP
    client_version: int = (
        4  # socket.io-client's major version the probes start as (2: EIO=3, token in the query)
    )
    _ssl: ssl.SSLContext | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def from_target(cls, target: Target) -> ProbeContext:
        return cls(
            timeout=target.timeout or DEFAULT_TIMEOUT,
            ca_file=target.ca_file,
            insecure=target.insecure,
            token=target.token,
            auth_header=target.auth_header,
            client_version=target.client_version,
        )

    @property
    def eio(self) -> int:
        """The Engine.IO version the client asks for first (a probe then speaks what the server answers in)."""
        return eio_of(self.client_version)

    @property
    def ssl_context(self) -> ssl.SSLContext:
        """The TLS context for https/wss probes, built on first use and shared afterwards."""
        if self._ssl is None:
            self._ssl = make_ssl_context(self.ca_file, self.insecure)
        return self._ssl

    def prepare(self) -> ProbeContext:
        """Build the SSL context now (call before the event loop is busy: it reads certificate files)."""
        _ = self.ssl_context
        return self

    def secrets(self) -> list[str]:
        return [self.token] if self.token else []


def make_ssl_context(ca_file: str | None, insecure: bool, alpn: list[str] | None = None) -> ssl.SSLContext:
    """A client context: the system store (or CA_FILE), hostname checked; INSECURE verifies nothing."""
    if insecure:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        try:
            ctx = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
        except FileNotFoundError:
            raise ProbeConfigError(f"CA file {ca_file} does not exist; check the --ca-file path") from None
        except (ssl.SSLError, OSError) as e:
            raise ProbeConfigError(
                f"cannot read CA file {ca_file} ({getattr(e, 'reason', None) or e}); give a PEM file"
            ) from None
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx
