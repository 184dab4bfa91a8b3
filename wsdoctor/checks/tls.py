"""`tls` (wss): can a client complete the TLS handshake, with a certificate it trusts, for this host?

A ``wss://`` client that cannot verify the certificate fails before any HTTP is spoken (browsers show only
"WebSocket connection failed"). The probe gives the chain verdict, hostname match, days to expiry and ALPN;
offline only the config can say something: a server that takes the ``wss://`` port without ``ssl`` answers
a TLS ClientHello with garbage (or 400), which is decided without a probe.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wsdoctor.checks import _util as u
from wsdoctor.facts import Facts, TlsProbe
from wsdoctor.report import Evidence, Finding, Fix, Status

if TYPE_CHECKING:
    from wsdoctor.nginx.model import Directive


ID = "tls"
TITLE = "TLS certificate and handshake"
NEEDS = ("tls", "config", "handshake:proxy")

WARN_DAYS = 14


def check(facts: Facts) -> Finding:
    c = facts.client
    if c is None:
        return u.skip(ID, TITLE, u.client_missing(facts) or u.NO_URL)
    if not c.secure:
        return u.skip(ID, TITLE, f"{c.url} is not wss:// or https://: no TLS to check")
    static = _config_decides(facts)
    if static is not None:
        return static
    tp = facts.tls
    cfg_ev = _cert_ev(facts)
    if tp is None:
        return u.skip(
            ID,
            TITLE,
            u.fact_reason(facts, "tls", "no TLS handshake was made (the probe did not run)"),
            cfg_ev,
        )
    ev = [Evidence(kind="probe", where=f"TLS {tp.host}:{tp.port}", text=_tls_text(tp))] + cfg_ev
    host = f"{tp.host}:{tp.port}"
    if not tp.ok and tp.stage in ("dns", "connect") and u.dead_exchange(facts) is not None:
        # Nothing to speak TLS with: route names the dead endpoint once, the live checks wait for it.
        return u.skip(ID, TITLE, f"no TLS without a connection: {u.DEAD}", ev)
    if not tp.ok:
        stage = f" at {tp.stage}" if tp.stage else ""
        err = tp.error or "handshake failed"
        low = err.lower()
        if "expired" in low:
            title, fix = (
                "The certificate has expired",
                "Renew the certificate (e.g. `certbot renew`) and reload nginx.",
            )
        elif "hostname" in low or "match" in low:
            title = "The certificate does not match the host"
            fix = f"Serve a certificate whose subjectAltName covers {tp.host}."
        elif "verify" in low or "self-signed" in low or "issuer" in low or "unknown ca" in low:
            title = "The certificate chain is not trusted"
            fix = (
                "Serve the full chain (ssl_certificate = fullchain.pem), or give --ca-file for a private CA."
            )
        else:
            title = f"The TLS handshake with {host} fails"
            fix = "Check that nginx listens with `ssl` on this port and that the client reaches the right address."
        return u.finding(
            ID, Status.FAIL, title, f"TLS with {host} failed{stage}: {err}.", ev, Fix(summary=fix)
        )
    if tp.hostname_ok is False:
        return u.finding(
            ID,
            Status.FAIL,
            "The certificate does not match the host",
            f"The certificate of {host}, {tp.subject} with SAN {', '.join(tp.san) or 'none'}, does not name "
            f"{tp.host}: clients refuse it.",
            ev,
            Fix(summary=f"Serve a certificate whose subjectAltName covers {tp.host}."),
        )
    if tp.days_left is not None and tp.days_left < 0:
        return u.finding(
            ID,
            Status.FAIL,
            "The certificate has expired",
            f"The certificate of {host} expired {u.plural(-tp.days_left, 'day')} ago, on {tp.not_after}.",
            ev,
            Fix(summary="Renew the certificate (e.g. `certbot renew`) and reload nginx."),
        )
    if tp.insecure or not tp.verified:
        return u.finding(
            ID,
            Status.WARN,
            "The certificate chain was not verified",
            f"TLS with {host} works, {tp.version or 'TLS'}, but the chain was not verified"
            + (" because of --insecure" if tp.insecure else "")
            + ": clients that verify may still refuse it.",
            ev,
            Fix(summary="Run without --insecure (with --ca-file for a private CA) to verify the chain."),
        )
    if tp.days_left is not None and tp.days_left < WARN_DAYS:
        return u.finding(
            ID,
            Status.WARN,
            f"The certificate expires in {u.plural(tp.days_left, 'day')}",
            f"The certificate of {host} is valid and trusted but expires on {tp.not_after}, in "
            f"{u.plural(tp.days_left, 'day')}.",
            ev,
            Fix(summary="Renew the certificate now (e.g. `certbot renew`) and check the renewal timer."),
        )
    days = f", {tp.days_left} days left" if tp.days_left is not None else ""
    alpn = f", ALPN {tp.alpn}" if tp.alpn else ""
    return u.finding(
        ID,
        Status.PASS,
        TITLE,
        f"{host}: {tp.version or 'TLS'}, chain verified, hostname matches{days}{alpn}.",
        ev,
    )


def _tls_text(tp: TlsProbe) -> str:
    lines = [
        f"version: {tp.version or '?'}   ALPN: {tp.alpn or 'none'}",
        f"subject: {tp.subject or '?'}",
        f"issuer:  {tp.issuer or '?'}",
        f"SAN:     {', '.join(tp.san) or 'none'}",
        f"expires: {tp.not_after or '?'}" + (f" ({tp.days_left} days)" if tp.days_left is not None else ""),
        f"verified: {'no (--insecure)' if tp.insecure else 'yes' if tp.verified else 'no'}"
        + (f"   hostname: {'ok' if tp.hostname_ok else 'MISMATCH'}" if tp.hostname_ok is not None else ""),
    ]
    if tp.error:
        lines.append(f"error: {tp.error}" + (f" (at {tp.stage})" if tp.stage else ""))
    return "\n".join(lines)


def _server(facts: Facts):
    if facts.config is None or facts.client is None:
        return None
    r = u.route_of(facts)
    return r.server if r is not None else None


def _cert_ev(facts: Facts) -> list[Evidence]:
    srv = _server(facts)
    if srv is None:
        return []
    ds = [*srv.children("ssl_certificate"), *srv.children("ssl_certificate_key")]
    return u.cfg_lines_ev(facts.config, ds) if ds else []


def _config_decides(facts: Facts) -> Finding | None:
    """The server picked for a wss:// client takes its port without TLS: no probe needed to know it fails."""
    c = facts.client
    r = u.route_of(facts) if facts.config is not None and c is not None else None
    if r is None or r.server is None:
        return None
    listens = [d for d in r.server.children("listen") if _port_of(d) == c.port]
    if not listens or not getattr(r, "ssl_mismatch", False):
        return None
    if any("ssl" in d.args[1:] for d in listens) or any(
        d.args and d.args[0] == "on" for d in r.server.children("ssl")
    ):
        return None
    from wsdoctor.nginx.patch import Patch

    p = Patch(facts.config)
    d = listens[0]
    diff = ""
    try:
        p.replace_statement(d, "listen " + " ".join([d.args[0], "ssl", *d.args[1:]]) + ";")
        diff = p.diff()
    except (ValueError, KeyError, IndexError):
        diff = ""
    return u.finding(
        ID,
        Status.FAIL,
        f"Port {c.port} is served without TLS",
        f"{u.server_label(r.server)} listens on {c.port} without `ssl`, but the client speaks TLS (wss://): the "
        "handshake fails before any HTTP.",
        u.cfg_lines_ev(facts.config, listens),
        Fix(
            summary=f"Add `ssl` to `listen {' '.join(d.args)}` (with ssl_certificate/ssl_certificate_key).",
            diff=diff,
        ),
    )


def _port_of(d: Directive) -> int | None:
    spec = d.args[0] if d.args else "80"
    if spec.isdigit():
        return int(spec)
    tail = spec.rsplit(":", 1)[-1] if ":" in spec and not spec.endswith("]") else ""
    return int(tail) if tail.isdigit() else 80
