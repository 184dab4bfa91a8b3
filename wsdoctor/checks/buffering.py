"""`buffering` (checklist): proxy_buffering / proxy_cache in effect at the Socket.IO location.

Once upgraded, a WebSocket is a raw tunnel that nginx never buffers or caches, whatever the config says — the
runbook's "buffering breaks real-time" is only true for HTTP long-polling. There, ``proxy_buffering on`` (the
default) holds each poll answer in nginx's buffers (and spills large ones to temp files), and ``proxy_cache``
is outright dangerous: a cached handshake hands every client the same session id. So: cache + polling fails,
buffering + polling warns, and with websocket-only clients both are irrelevant (said so). Config only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wsdoctor.checks import _util as u
from wsdoctor.checks._flow import Flow, Verdict, reading
from wsdoctor.checks._util import Place
from wsdoctor.facts import Fact, Facts
from wsdoctor.nginx import effective
from wsdoctor.report import Fix, Status

if TYPE_CHECKING:
    from wsdoctor.nginx.model import Directive
    from wsdoctor.nginx.routing import Route


ID = "buffering"
TITLE = "Proxy buffering and caching"
NEEDS = (Fact.CONFIG,)
READS = ("proxy_buffering", "proxy_cache")


def _config(facts: Facts, place: Place) -> Verdict:
    r = place.route
    assert r is not None and facts.config is not None and facts.client is not None
    loc = r.config_block
    buf = effective.scalar(loc, "proxy_buffering", facts.nginx_version)
    cache = effective.scalar(loc, "proxy_cache", facts.nginx_version)
    buffering_on = (buf.value or ["on"])[0].lower() == "on"
    cache_zone = None if not cache.value or cache.value[0].lower() == "off" else cache.value[0]
    polling = "polling" in facts.client.transports
    evidence = u.cfg_lines_ev(
        facts.config, [r.location, *(d for d in (buf.directive, cache.directive) if d is not None)]
    )
    where_buf = f"at {buf.directive.where}" if buf.directive is not None else "(nginx default)"
    label = u.loc_label(r.location)

    if cache_zone is not None:
        return Verdict(
            Status.FAIL if polling else Status.WARN,
            f"proxy_cache {cache_zone} is in effect for Socket.IO",
            f"{label} caches responses in zone {cache_zone}"
            + (f" at {cache.directive.where}: " if cache.directive else ": ")
            + (
                "a cached polling handshake or poll hands clients someone else's session"
                if polling
                else "WebSocket tunnels are never cached, but any polling fallback would get cached answers"
            )
            + ".",
            evidence,
            _fix(facts, r, "proxy_cache", cache.directive),
        )
    if buffering_on and polling:
        return Verdict(
            Status.WARN,
            "proxy_buffering is on for long-polling",
            f"{label} buffers upstream answers, proxy_buffering on {where_buf}: upgraded WebSocket tunnels are never "
            "buffered, but the polling transport's answers pass through nginx's buffers (and temp files when large); "
            "turn it off for this location.",
            evidence,
            _fix(facts, r, "proxy_buffering", buf.directive),
        )
    if buffering_on:
        return Verdict(
            Status.PASS,
            TITLE,
            f"proxy_buffering is on {where_buf}, which does not matter: the client uses only WebSocket, and nginx "
            "never buffers an upgraded tunnel.",
            evidence,
        )
    return Verdict(
        Status.PASS,
        TITLE,
        f"{label} neither buffers, proxy_buffering off {where_buf}, nor caches"
        + (
            " — this matters for long-polling answers; upgraded tunnels are never buffered anyway."
            if polling
            else "; with WebSocket only it would not matter anyway (tunnels are never buffered)."
        ),
        evidence,
    )


def _fix(facts: Facts, r: Route, name: str, existing: Directive | None) -> Fix:
    """``NAME off;`` in the location: its own line replaced, else a new one after its last proxy_* line."""
    loc = r.location
    assert loc is not None
    anchor = u.last_proxy_line(loc)
    return Fix(
        summary=f"Set `{name} off;` in {u.loc_label(loc)}.",
        diff=u.diff_of(facts.config, lambda p: u.set_in_block(p, loc, name, "off", existing, after=anchor)),
    )


check = Flow(ID, TITLE, reading(READS), config=_config)
