"""`buffering` (checklist): proxy_buffering / proxy_cache in effect at the Socket.IO location.

Once upgraded, a WebSocket is a raw tunnel that nginx never buffers or caches, whatever the config says — the
runbook's "buffering breaks real-time" is only true for HTTP long-polling. There, ``proxy_buffering on`` (the
default) holds each poll answer in nginx's buffers (and spills large ones to temp files), and ``proxy_cache``
is outright dangerous: a cached handshake hands every client the same session id. So: cache + polling fails,
buffering + polling warns, and with websocket-only clients both are irrelevant (said so).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wsdoctor.checks import _util as u
from wsdoctor.facts import Facts
from wsdoctor.report import Finding, Fix, Status

if TYPE_CHECKING:
    from wsdoctor.nginx.model import Directive
    from wsdoctor.nginx.routing import Route


ID = "buffering"
TITLE = "Proxy buffering and caching"
NEEDS = ("config",)


def check(facts: Facts) -> Finding:
    place = u.socketio_place(facts, ("proxy_buffering", "proxy_cache"))
    r, why = place.route, place.why
    if why:
        return u.skip(ID, TITLE, why)
    assert r is not None and facts.config is not None and facts.client is not None
    from wsdoctor.nginx import effective

    config = facts.config
    loc = r.config_block if getattr(r, "config_block", None) is not None else r.location
    version = facts.nginx_version
    buf = effective.scalar(loc, "proxy_buffering", version)
    cache = effective.scalar(loc, "proxy_cache", version)
    buffering_on = (buf.value or ["on"])[0].lower() == "on"
    cache_zone = None if not cache.value or cache.value[0].lower() == "off" else cache.value[0]
    polling = "polling" in facts.client.transports
    shown = [d for d in (buf.directive, cache.directive) if d is not None]
    evidence = u.cfg_lines_ev(config, [r.location, *shown])
    where_buf = f"at {buf.directive.where}" if buf.directive is not None else "(nginx default)"
    label = place.lead + u.loc_label(r.location)
    lead = place.lead

    if cache_zone is not None:
        status = Status.FAIL if polling else Status.WARN
        return u.finding(
            ID,
            status,
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
            _fix(facts, r, "proxy_cache", cache.directive, "off"),
        )
    if buffering_on and polling:
        return u.finding(
            ID,
            Status.WARN,
            "proxy_buffering is on for long-polling",
            f"{label} buffers upstream answers, proxy_buffering on {where_buf}: upgraded WebSocket tunnels are never "
            "buffered, but the polling transport's answers pass through nginx's buffers (and temp files when large); "
            "turn it off for this location.",
            evidence,
            _fix(facts, r, "proxy_buffering", buf.directive, "off"),
        )
    if buffering_on:
        return u.finding(
            ID,
            Status.PASS,
            TITLE,
            f"{lead}proxy_buffering is on {where_buf}, which does not matter: the client uses only WebSocket, and nginx "
            "never buffers an upgraded tunnel.",
            evidence,
        )
    return u.finding(
        ID,
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


def _fix(facts: Facts, r: Route, name: str, existing: Directive | None, value: str) -> Fix:
    from wsdoctor.nginx.patch import Patch

    loc = r.location
    p = Patch(facts.config)
    try:
        if existing is not None and existing.parent is loc:
            p.replace_statement(existing, f"{name} {value};")
        else:
            anchor = next(
                (d for d in reversed(loc.block or []) if d.name.startswith("proxy_") and d.file == loc.file),
                None,
            )
            p.insert_in_block(loc, [f"{name} {value};"], after=anchor)
        diff = p.diff()
    except (ValueError, KeyError, IndexError):
        diff = ""
    return Fix(summary=f"Set `{name} {value};` in {u.loc_label(loc)}.", diff=diff)
