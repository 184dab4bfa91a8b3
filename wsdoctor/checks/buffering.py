"""`buffering` (checklist): proxy_cache and proxy_buffering in effect at the Socket.IO location.

Once upgraded, a WebSocket is a raw tunnel that nginx never buffers or caches, whatever the config says. For
HTTP long-polling, ``proxy_buffering on`` (the default) is harmless too: each poll answer is one complete HTTP
response, which nginx reads and passes on whole (buffering matters for streamed answers such as server-sent
events) — so it is a note at most, never a warning. ``proxy_cache`` is what can break polling: with a cache key
that drops the query (``$uri``, ``$host$uri`` …) every ``?EIO=4&transport=polling`` handshake and every
``&sid=…`` poll share one entry, so clients get someone else's session (fail). The default key
(``$scheme$proxy_host$request_uri``) keeps the query, and socket.io-client adds a unique ``t=`` to each poll,
so nothing is served twice — but a request without ``t=`` is (warn). Config only.
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
TITLE = "Proxy caching and buffering"
NEEDS = (Fact.CONFIG,)
READS = ("proxy_buffering", "proxy_cache", "proxy_cache_key")

DEFAULT_KEY = "$scheme$proxy_host$request_uri"
# Variables that carry the query string into a cache key.
_QUERY_VARS = ("$request_uri", "$args", "$query_string", "$is_args$args")


def _config(facts: Facts, place: Place) -> Verdict:
    r = place.route
    assert r is not None and facts.config is not None and facts.client is not None
    loc = r.config_block
    buf = effective.scalar(loc, "proxy_buffering", facts.nginx_version)
    cache = effective.scalar(loc, "proxy_cache", facts.nginx_version)
    key = effective.scalar(loc, "proxy_cache_key", facts.nginx_version)
    buffering_on = (buf.value or ["on"])[0].lower() == "on"
    cache_zone = None if not cache.value or cache.value[0].lower() == "off" else cache.value[0]
    polling = "polling" in facts.client.transports
    shown = [d for d in (buf.directive, cache.directive) if d is not None]
    if cache_zone is not None and key.directive is not None:
        shown.append(key.directive)
    evidence = u.cfg_lines_ev(facts.config, [r.location, *shown])
    label = u.loc_label(r.location)

    if cache_zone is not None:
        return _cache(facts, r, label, cache_zone, cache.directive, key, polling, evidence)
    where_buf = f"at {buf.directive.where}" if buf.directive is not None else "(nginx default)"
    if buffering_on:
        return Verdict(
            Status.PASS,
            TITLE,
            f"{label} caches nothing; proxy_buffering is on {where_buf}, which is fine for Socket.IO: "
            + (
                "each polling answer is one complete response that nginx passes on whole, and an upgraded "
                "tunnel is never buffered."
                if polling
                else "the client uses only WebSocket, and nginx never buffers an upgraded tunnel."
            ),
            evidence,
        )
    return Verdict(
        Status.PASS,
        TITLE,
        f"{label} neither caches nor buffers (proxy_buffering off {where_buf}); buffering would not matter for "
        "Socket.IO anyway: polling answers are complete responses and upgraded tunnels are never buffered.",
        evidence,
    )


def _cache(
    facts: Facts,
    r: Route,
    label: str,
    zone: str,
    cache_d: Directive | None,
    key: effective.Setting,
    polling: bool,
    evidence: list,
) -> Verdict:
    at = f" ({cache_d.where})" if cache_d is not None else ""
    key_text = key.text if key.value else DEFAULT_KEY
    key_where = (
        f"proxy_cache_key {key_text} at {key.directive.where}"
        if key.directive
        else f"the default key {DEFAULT_KEY}"
    )
    keeps_query = any(v in key_text for v in _QUERY_VARS)
    fix = _fix(facts, r, "proxy_cache", cache_d)
    if not polling:
        return Verdict(
            Status.WARN,
            f"proxy_cache {zone} is in effect for Socket.IO",
            f"{label} caches responses in zone {zone}{at}: WebSocket tunnels are never cached, so websocket-only "
            "clients are safe, but a client that polls would get cached answers.",
            evidence,
            fix,
        )
    if not keeps_query:
        return Verdict(
            Status.FAIL,
            f"proxy_cache {zone} with a key that ignores the query: polling clients share sessions",
            f"{label} caches responses in zone {zone}{at} under {key_where}, which drops the query string: every "
            "`?EIO=4&transport=polling` handshake and every `&sid=…` poll share one cache entry, so clients get "
            "a cached handshake or poll — someone else's session — and their own session fails.",
            evidence,
            fix,
        )
    return Verdict(
        Status.WARN,
        f"proxy_cache {zone} is in effect for the polling transport",
        f"{label} caches responses in zone {zone}{at} under {key_where}, which keeps the query: socket.io-client "
        "adds a unique `t=` to every poll, so no answer is served twice, but any request without it (another "
        "client, a retry, a probe) can get a cached handshake with someone else's session id.",
        evidence,
        fix,
    )


def _fix(facts: Facts, r: Route, name: str, existing: Directive | None) -> Fix:
    """``NAME off;`` where the setting is made for the location: its own line replaced (in the location, or in
    a file the location includes: a second one beside it would be a duplicate), else a new line in the
    location after its last proxy_* line."""
    loc = r.location
    assert loc is not None
    own = existing if existing is not None and existing.parent is loc else None
    where = f"in {u.loc_label(loc)}"
    if own is not None and own.file != loc.file:
        where = (
            f"in {own.file}, which {u.loc_name(loc)} includes (every block that includes it gets the change)"
        )
    anchor = u.last_proxy_line(loc)
    return Fix(
        summary=f"Set `{name} off;` {where}.",
        diff=u.diff_of(facts.config, lambda p: u.set_in_block(p, loc, name, "off", own, after=anchor)),
    )


check = Flow(ID, TITLE, reading(READS), config=_config)
