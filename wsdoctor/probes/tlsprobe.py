"""The TLS probe: handshake, chain, hostname, expiry, ALPN and version of a wss/https endpoint.

Two handshakes at most: one that verifies the chain (against the system store or ``--ca-file``; the
hostname is checked separately so both answers are known), and, only when that one fails on the
certificate, one that accepts anything to read the certificate and say *what* is wrong with it (expired
on that date, issued for other names). ``--insecure`` does the second kind only and says so.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import ssl

from wsdoctor.facts import TlsProbe
from wsdoctor.probes.context import ProbeConfigError, ProbeContext, make_ssl_context
from wsdoctor.probes.net import Tracker, timeout_message

ALPN = ["h2", "http/1.1"]


async def tls(
    host: str,
    port: int = 443,
    *,
    ctx: ProbeContext | None = None,
    server_hostname: str | None = None,
) -> TlsProbe:
    """Probe HOST:PORT (dialed at ``ctx.connect_to`` if set) presenting SERVER_HOSTNAME (default HOST) as SNI."""
    ctx = ctx if ctx is not None else ProbeContext()
    name = server_hostname or ctx.server_hostname or host
    probe = TlsProbe(host=host, port=port, insecure=ctx.insecure)
    dial = ctx.connect_to or (host, port)
    try:  # reading the trust store is disk I/O: not on the event loop
        verify_ctx = (
            None if ctx.insecure else await asyncio.to_thread(make_ssl_context, ctx.ca_file, False, ALPN)
        )
    except ProbeConfigError as e:
        probe.error, probe.stage = str(e), "tls"
        return probe
    if verify_ctx is not None:
        verify_ctx.check_hostname = False  # checked below, so that a wrong name and a bad chain are both seen
    loose = make_ssl_context(None, True, ALPN)

    der: bytes | None = None
    chain_error: str | None = None
    if verify_ctx is not None:
        ok, der, err = await _handshake(probe, dial, name, verify_ctx, ctx.timeout)
        if ok:
            probe.verified = True
        elif probe.stage == "tls" and err is not None and _is_cert_problem(err):
            chain_error = err
            probe.error, probe.stage = None, None
        else:
            return probe
    if der is None:
        ok, der, _err = await _handshake(probe, dial, name, loose, ctx.timeout)
        if not ok:
            return probe
    _read_cert(probe, der, name)
    expired = probe.days_left is not None and probe.days_left < 0
    problems = []
    if chain_error:
        problems.append(f"the certificate chain was rejected: {chain_error}")
    if probe.hostname_ok is False:
        names = ", ".join(probe.san) or probe.subject or "no names"
        problems.append(f"the certificate is not valid for {name} (it names {names})")
    if expired and not chain_error:
        problems.append(f"the certificate expired on {probe.not_after}")
    if ctx.insecure:
        # --insecure: the handshake is all that was asked; what verification would have said stays in the
        # facts (hostname_ok, days_left) for the check to mention, but it is not this probe's failure.
        probe.ok, probe.error, probe.stage = True, None, None
        return probe
    probe.ok = not problems and probe.verified
    if problems:
        probe.error = "; ".join(problems)
        probe.stage = "tls"
    return probe


def _is_cert_problem(message: str) -> bool:
    m = message.lower()
    return any(
        w in m for w in ("certificate", "self-signed", "issuer", "expired", "not yet valid", "hostname")
    )


async def _handshake(
    probe: TlsProbe, dial: tuple[str, int], name: str, context: ssl.SSLContext, timeout: float
) -> tuple[bool, bytes | None, str | None]:
    """Connect and shake hands; fills version/ALPN on success, stage/error on failure."""
    stage = "dns"
    writer = None
    try:
        async with asyncio.timeout(timeout):
            loop = asyncio.get_running_loop()
            infos = await loop.getaddrinfo(dial[0], dial[1], type=socket.SOCK_STREAM)
            stage = "connect"
            last: BaseException | None = None
            for *_rest, sockaddr in infos:
                try:
                    _reader, writer = await asyncio.open_connection(str(sockaddr[0]), dial[1])
                    break
                except OSError as e:
                    last = e
            if writer is None:
                raise last or OSError("no address to connect to")
            stage = "tls"
            await writer.start_tls(context, server_hostname=_sni(name))
            sslobj = writer.get_extra_info("ssl_object")
            probe.version = sslobj.version()
            probe.alpn = sslobj.selected_alpn_protocol()
            return True, sslobj.getpeercert(binary_form=True), None
    except TimeoutError:
        probe.stage = stage
        probe.error = timeout_message(timeout, stage, Tracker(host=dial[0], port=dial[1]))
        return False, None, None
    except ssl.SSLCertVerificationError as e:
        msg = e.verify_message or e.reason or str(e)
        probe.stage, probe.error = "tls", f"the TLS certificate of {dial[0]}:{dial[1]} was rejected: {msg}"
        return False, None, msg
    except ssl.SSLError as e:
        probe.stage, probe.error = (
            "tls",
            f"the TLS handshake with {dial[0]}:{dial[1]} failed: {e.reason or e}",
        )
        return False, None, None
    except socket.gaierror as e:
        probe.stage, probe.error = "dns", f"cannot resolve {dial[0]}: {e.strerror or e}"
        return False, None, None
    except ConnectionRefusedError:
        probe.stage, probe.error = (
            "connect",
            f"connection to {dial[0]}:{dial[1]} refused: nothing listens there",
        )
        return False, None, None
    except (OSError, EOFError) as e:
        what = "the TLS handshake" if stage == "tls" else "connecting"
        probe.stage = stage
        probe.error = f"{what} with {dial[0]}:{dial[1]} failed: {getattr(e, 'strerror', None) or e or 'connection closed'}"
        return False, None, None
    finally:
        if writer is not None:
            writer.close()
            try:
                await asyncio.wait_for(writer.wait_closed(), 0.5)
            except Exception:  # noqa: BLE001 - best effort
                pass


def _sni(name: str) -> str | None:
    try:
        ipaddress.ip_address(name)
        return name  # ssl sends no SNI for an address, but needs it for verification
    except ValueError:
        return name


def _read_cert(probe: TlsProbe, der: bytes | None, name: str) -> None:
    if not der:
        return
    from cryptography import x509  # ~30 ms of imports, paid only when a certificate came back
    from cryptography.x509.oid import ExtensionOID

    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError as e:
        probe.error = f"the server's certificate cannot be read: {e}"
        return
    probe.subject = cert.subject.rfc4514_string()
    probe.issuer = cert.issuer.rfc4514_string()
    sans: list[str] = []
    try:
        ext = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
        sans = [*ext.get_values_for_type(x509.DNSName)]
        sans += [str(ip) for ip in ext.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        pass
    probe.san = sans
    not_after = cert.not_valid_after_utc
    probe.not_after = not_after.isoformat()
    probe.days_left = (not_after - dt.datetime.now(dt.UTC)).days
    probe.hostname_ok = hostname_matches(name, sans, cert)


def hostname_matches(name: str, sans: list[str], cert: object | None = None) -> bool:
    """RFC 6125 matching as browsers do it: SAN only, one leftmost ``*`` label, IPs exactly."""
    try:
        ip = ipaddress.ip_address(name)
        return any(_same_ip(ip, s) for s in sans)
    except ValueError:
        pass
    host = name.rstrip(".").lower()
    for pattern in sans:
        p = pattern.rstrip(".").lower()
        if p == host:
            return True
        if p.startswith("*.") and "." in host:
            first, rest = host.split(".", 1)
            if rest == p[2:] and first and "." in rest:
                return True
    return False


def _same_ip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, s: str) -> bool:
    try:
        return ipaddress.ip_address(s) == ip
    except ValueError:
        return False
