"""`tls` (wss): can a client complete the TLS handshake, with a certificate it trusts, for this host?

A ``wss://`` client that cannot verify the certificate fails before any HTTP is spoken (browsers show only
"WebSocket connection failed"). The probe gives the chain verdict, hostname match, days to expiry and ALPN;
offline only the config can say something: a server that takes the ``wss://`` port without ``ssl`` answers
a TLS ClientHello with garbage (or 400), which is decided without a probe.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wsdoctor.checks import _util as u
from wsdoctor.checks._flow import Flow, Verdict, skip
from wsdoctor.checks._util import Place
from wsdoctor.facts import Fact, Facts, TlsProbe
from wsdoctor.nginx.routing import parse_listen
from wsdoctor.report import Evidence, Fix, Status
from wsdoctor.routes import route_for

if TYPE_CHECKING:
    pass


ID = "tls"
TITLE = "TLS certificate and handshake"
NEEDS = (Fact.TLS, Fact.CONFIG, Fact.HANDSHAKE_PROXY)

WARN_DAYS = 14


def _where(facts: Facts) -> Place:
    """The client's route (for the server's listen and certificate lines), when the client speaks TLS."""
    c = facts.client
    if c is None:
        return Place(None, u.client_missing(facts))
    if not c.secure:
        return Place(None, f"{c.url} is not wss:// or https://: no TLS to check")
    return Place(route_for(facts) if facts.config is not None else None)


# --- config half: a wss:// port served without ssl ------------------------------------------------------


def _config(facts: Facts, place: Place) -> Verdict | None:
    """The server picked for a wss:// client takes its port without TLS: no probe needed to know it fails."""
    c, r = facts.client, place.route
    if r is None or r.server is None or c is None:
        return None
    listens = [d for d in r.server.children("listen") if parse_listen(d).port == c.port]
    if not listens or not r.ssl_mismatch:
        return None
    if any("ssl" in d.args[1:] for d in listens) or any(
        d.args and d.args[0] == "on" for d in r.server.children("ssl")
    ):
        return None
    d = listens[0]
    return Verdict(
        Status.FAIL,
        f"Port {c.port} is served without TLS",
        f"{u.server_label(r.server)} listens on {c.port} without `ssl`, but the client speaks TLS (wss://): the "
        "handshake fails before any HTTP.",
        u.cfg_lines_ev(facts.config, listens),
        Fix(
            summary=f"Add `ssl` to `listen {' '.join(d.args)}` (with ssl_certificate/ssl_certificate_key).",
            diff=u.diff_of(
                facts.config,
                lambda p: p.replace_statement(d, "listen " + " ".join([d.args[0], "ssl", *d.args[1:]]) + ";"),
            ),
        ),
    )


# --- live half: the TLS handshake -----------------------------------------------------------------------


def _live(facts: Facts, place: Place) -> TlsProbe | None:
    return facts.tls


# --- the verdict ----------------------------------------------------------------------------------------


def _combine(facts: Facts, place: Place, said: Verdict | None, tp: TlsProbe | None) -> Verdict:
    if place.why:
        return skip(place.why)
    if said is not None:
        return said
    cfg_ev = _cert_ev(facts, place)
    if tp is None:
        return skip(
            u.fact_reason(facts, Fact.TLS, "no TLS handshake was made (the probe did not run)"), cfg_ev
        )
    ev = [Evidence(kind="probe", where=f"TLS {tp.host}:{tp.port}", text=_tls_text(tp))] + cfg_ev
    host = f"{tp.host}:{tp.port}"
    if not tp.ok and tp.stage in ("dns", "connect") and u.dead_exchange(facts) is not None:
        # Nothing to speak TLS with: route names the dead endpoint once, the live checks wait for it.
        return skip(f"no TLS without a connection: {u.DEAD}", ev)
    if not tp.ok:
        return _failed(tp, host, ev)
    if tp.hostname_ok is False:
        return Verdict(
            Status.FAIL,
            "The certificate does not match the host",
            f"The certificate of {host}, {tp.subject} with SAN {', '.join(tp.san) or 'none'}, does not name "
            f"{tp.host}: clients refuse it.",
            ev,
            Fix(summary=f"Serve a certificate whose subjectAltName covers {tp.host}."),
        )
    if tp.days_left is not None and tp.days_left < 0:
        return Verdict(
            Status.FAIL,
            "The certificate has expired",
            f"The certificate of {host} expired {u.plural(-tp.days_left, 'day')} ago, on {tp.not_after}.",
            ev,
            Fix(summary="Renew the certificate (e.g. `certbot renew`) and reload nginx."),
        )
    if tp.insecure or not tp.verified:
        return Verdict(
            Status.WARN,
            "The certificate chain was not verified",
            f"TLS with {host} works, {tp.version or 'TLS'}, but the chain was not verified"
            + (" because of --insecure" if tp.insecure else "")
            + ": clients that verify may still refuse it.",
            ev,
            Fix(summary="Run without --insecure (with --ca-file for a private CA) to verify the chain."),
        )
    if tp.days_left is not None and tp.days_left < WARN_DAYS:
        return Verdict(
            Status.WARN,
            f"The certificate expires in {u.plural(tp.days_left, 'day')}",
            f"The certificate of {host} is valid and trusted but expires on {tp.not_after}, in "
            f"{u.plural(tp.days_left, 'day')}.",
            ev,
            Fix(summary="Renew the certificate now (e.g. `certbot renew`) and check the renewal timer."),
        )
    days = f", {tp.days_left} days left" if tp.days_left is not None else ""
    alpn = f", ALPN {tp.alpn}" if tp.alpn else ""
    return Verdict(
        Status.PASS,
        TITLE,
        f"{host}: {tp.version or 'TLS'}, chain verified, hostname matches{days}{alpn}.",
        ev,
    )


def _failed(tp: TlsProbe, host: str, ev: list[Evidence]) -> Verdict:
    """The handshake failed: named by the error (expired, wrong host, untrusted chain, or no TLS at all)."""
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
        fix = "Serve the full chain (ssl_certificate = fullchain.pem), or give --ca-file for a private CA."
    else:
        title = f"The TLS handshake with {host} fails"
        fix = (
            "Check that nginx listens with `ssl` on this port and that the client reaches the right address."
        )
    return Verdict(Status.FAIL, title, f"TLS with {host} failed{stage}: {err}.", ev, Fix(summary=fix))


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


def _cert_ev(facts: Facts, place: Place) -> list[Evidence]:
    srv = place.route.server if place.route is not None else None
    if srv is None or facts.config is None:
        return []
    ds = [*srv.children("ssl_certificate"), *srv.children("ssl_certificate_key")]
    return u.cfg_lines_ev(facts.config, ds) if ds else []


check = Flow(ID, TITLE, _where, _config, _live, _combine)
