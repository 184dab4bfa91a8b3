"""`route` (runbook issue 404): which server and location nginx picks for the client's request, and what goes upstream.

Decided with nginx's real algorithm (the engine's ``routing``): longest prefix whatever the order in the file
(the runbook's "location order" advice is a myth and is never flagged), regex locations in file order that can
steal a request from a prefix location, the automatic 301 of a slash-ended proxy location, no location at all
(nginx then serves ``html/socket.io/`` from disk: 404), and the URI ``proxy_pass`` really sends. Live, the polling
handshake through the proxy shows who answered; config and probe must agree or the finding says they disagree.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from wsdoctor.checks import _util as u
from wsdoctor.checks._flow import Flow, Verdict, skip
from wsdoctor.checks._util import Place
from wsdoctor.facts import ENGINEIO_NODE, ENGINEIO_PY, NGINX, NO_CONFIG, Fact, Facts, Handshake
from wsdoctor.nginx import effective
from wsdoctor.nginx.routing import parse_proxy_pass
from wsdoctor.report import Evidence, Fix, Status
from wsdoctor.routes import proxied, route_for
from wsdoctor.wire.client import client_code

if TYPE_CHECKING:
    from wsdoctor.nginx.model import Config, Directive
    from wsdoctor.nginx.routing import Route


ID = "route"
TITLE = "Server, location and upstream URI"
NEEDS = (Fact.CONFIG, Fact.HANDSHAKE_PROXY, Fact.HANDSHAKE_BACKENDS, Fact.TLS)
# What the route is built on: a refused statement among these makes route wait for `syntax`.
READS = (
    "proxy_pass",
    "location",
    "listen",
    "server_name",
    "return",
    "rewrite",
    "root",
    "alias",
    "try_files",
    "include",
    "if",
    "set",
)

_BACKENDS = (ENGINEIO_PY, ENGINEIO_NODE)


def _where(facts: Facts) -> Place:
    """The client's own route (not the corrected one: `client` names that), unless a fact or syntax is missing."""
    why = u.client_missing(facts)
    if why is None and facts.config is None:
        why = u.config_missing(facts) or NO_CONFIG
    if why is not None:
        return Place(None, why)
    r = route_for(facts)
    return Place(r, u.syntax_blocker(facts, r, READS) if r is not None else None)


def _live(facts: Facts, place: Place) -> Handshake | None:
    """The polling handshake through the proxy: who answered the client's request."""
    return u.proxy_handshake(facts)


def _combine(facts: Facts, place: Place, said: Verdict | None, hs: Handshake | None) -> Verdict:
    if facts.client is None:
        return skip(place.why or "")
    blocked = place.why
    if said is not None and said.status is not Status.PASS:
        blocked = u.load_blocker(facts)  # the missing server/location may be in what could not be read
    if blocked is not None:
        return _live_only(facts, hs, blocked) if hs is not None else skip(blocked)
    assert said is not None
    v = said if hs is None else _agree(facts, said, hs)
    logs = u.logs_for(facts, ID) + u.logs_for(facts, "client")
    if logs and v.status is not Status.PASS:
        v = replace(v, evidence=v.evidence + u.log_evidence(logs))  # nginx's `open() "…/socket.io/…" failed`
    return _confirm_with_error_log(facts, v)


def _confirm_with_error_log(facts: Facts, v: Verdict) -> Verdict:
    """An error line's `upstream: "http://…/URI"` is the URI nginx really sent: it must match the prediction."""
    r = route_for(facts)
    if r is None or not r.upstream_uri or not proxied(r):
        return v
    req_path = r.uri.split("?")[0]
    predicted = r.upstream_uri.split("?")[0]
    for ev in reversed(facts.logs):
        # only error-log lines carry the full upstream URL; an access log's $upstream_addr is host:port
        if ev.source != "error" or not ev.upstream or "://" not in ev.upstream or not ev.request:
            continue
        parts = ev.request.split()
        if len(parts) < 2 or parts[1].split("?")[0] != req_path:
            continue
        sent = urlsplit(ev.upstream).path or "/"
        if sent == predicted:
            return replace(v, summary=v.then(f"the error log confirms nginx sent {sent} upstream."))
        return Verdict(
            Status.FAIL,
            "Config and error log disagree on the upstream URI",
            f"The config predicts {predicted} upstream for {req_path}, but nginx logged `upstream: "
            f'"{ev.upstream}"` ({ev.file}:{ev.line_no}): the config given is not the one nginx runs.',
            [*v.evidence, u.log_ev(ev)],
            Fix(
                summary="Analyse the running config (--ssh reads `nginx -T`), or reload nginx with this one."
            ),
        )
    return v


# --- config half ----------------------------------------------------------------


def _config(facts: Facts, place: Place) -> Verdict:
    """What nginx does with the client's request, and what it predicts a probe sees."""
    config, c, r = facts.config, facts.client, place.route
    assert config is not None and c is not None and r is not None
    path = r.uri.split("?")[0]
    req = f"GET {r.uri}"

    if r.server is None:
        return Verdict(
            Status.FAIL,
            f"No server listens on port {c.port}",
            f"No server block listens on port {c.port} for {c.host}: {r.server_reason}; the client's connection "
            "is refused or lands on another nginx.",
            u.cfg_lines_ev(config, [d for srv in config.servers() for d in srv.children("listen")][:12]),
            Fix(summary=f"Add `listen {c.port}{' ssl' if c.secure else ''};` to the server for {c.host}."),
            "refused",
        )

    srv_ev = u.cfg_lines_ev(config, [r.server, *r.server.children("server_name")])
    if r.location is None:
        return _no_location(facts, r, srv_ev)

    loc = r.location
    if r.redirect is not None:
        return Verdict(
            Status.FAIL,
            f"nginx answers {path} with a 301 redirect",
            f"{u.loc_label(loc)} ends with '/' and proxies, so nginx answers {req} with 301 to {r.redirect}; a "
            "WebSocket handshake fails on any answer but 101 and clients do not follow it.",
            u.cfg_lines_ev(config, [loc]),
            Fix(
                summary=f"Request the slashed path {path}/ (e.g. {path}/?EIO=4&transport=websocket); a "
                "socket.io-client always adds the slash to its `path`, so this only hits raw clients."
            ),
            "301",
        )
    if r.return_status is not None:
        ret = loc.child("return")
        tf = loc.child("try_files")
        if ret is None and tf is not None and tf.args and not tf.args[-1].startswith(("=", "@")):
            return Verdict(
                Status.FAIL,
                f"{u.loc_name(loc)} serves files (try_files), never the backend",
                f"{req} reaches {u.loc_label(loc)}, whose try_files ({tf.where}) falls back to {tf.args[-1]}: "
                f"nginx answers with that file (the app's page, 200) or 500 when it does not exist, and never "
                "proxies to a backend.",
                u.cfg_lines_ev(config, [loc, tf]),
                Fix(
                    summary=f"Give the Socket.IO request a location of its own that proxies (not `{u.loc_name(loc)}`)."
                ),
                "return",
            )
        return Verdict(
            Status.FAIL,
            f"{u.loc_name(loc)} answers `return {r.return_status}`",
            f"{req} reaches {u.loc_label(loc)}, which answers {r.return_status} itself and never proxies to a "
            "backend.",
            u.cfg_lines_ev(config, [loc, *([ret] if ret else [])]),
            Fix(
                summary=f"Give the Socket.IO request a location of its own that proxies (not `{u.loc_name(loc)}`)."
            ),
            "return",
        )
    if r.proxy_pass is None:
        return Verdict(
            Status.FAIL,
            f"{u.loc_name(loc)} does not proxy {path}",
            f"{req} reaches {u.loc_label(loc)}, which has no proxy_pass, so nginx looks for a file under its root "
            "and answers 404 — the backends never see the request.",
            u.cfg_lines_ev(
                config, [loc, *(d for d in loc.block or () if d.name in ("root", "alias", "try_files"))]
            ),
            _proxy_fix(facts, loc),
            "404",
        )

    # Regex locations that take the request away from the Socket.IO prefix location.
    stolen = _stolen(config, r)
    if stolen is not None:
        return stolen

    evidence = u.cfg_lines_ev(config, [loc, r.proxy_pass])
    upstream = f"{r.upstream_target}{r.upstream_uri or ''}"
    broken = _broken_uri(config, r)
    if broken is not None:
        return broken
    unresolved = _no_resolver(config, r)
    if unresolved is not None:
        return unresolved
    notes = "; ".join(r.notes)
    chain = (
        f"{req} goes to {u.server_label(r.server)}, then {u.loc_label(loc)} — {r.location_reason} — and "
        f"upstream as {upstream}"
    )
    return Verdict(
        Status.PASS, TITLE, chain + (f"; note: {notes}" if notes else "") + ".", evidence, None, "proxied"
    )


def _socketio_locations(server: Directive) -> list:
    """Locations of SERVER (nested included) that look like the Socket.IO one: proxy + Upgrade header."""
    out = []
    stack = list(server.children("location"))
    while stack:
        d = stack.pop(0)
        if d.child("proxy_pass") is not None and (u.sets_upgrade(d) or "socket.io" in " ".join(d.args)):
            out.append(d)
        stack.extend(d.children("location"))
    return out


def _no_location(facts: Facts, r: Route, srv_ev: list[Evidence]) -> Verdict:
    config, c = facts.config, facts.client
    assert config is not None and c is not None
    path = r.uri.split("?")[0]
    locs = r.server.children("location")
    evidence = srv_ev + (u.cfg_lines_ev(config, locs) if locs else [])
    title = f"No location for {path}: nginx answers 404"
    summary = (
        f"No location of {u.server_label(r.server)} matches {path}, so nginx looks for html{path}index.html "
        "on disk and answers 404: the request never reaches a backend."
    )
    # Is there a Socket.IO location the client should be using instead (the runbook case)?
    candidates = [d for d in _socketio_locations(r.server) if u.location_path(d)]
    if c.namespace != "/" or candidates:
        prefix = c.namespace.rstrip("/") if c.namespace != "/" else ""
        target = None
        for d in candidates:
            lp = (u.location_path(d) or "").rstrip("/")
            if prefix and (prefix == lp or prefix.startswith(lp + "/")):
                target = d
        if target is None and len(candidates) == 1:
            target = candidates[0]
        if target is not None:
            lp = (u.location_path(target) or "").rstrip("/")
            new_path = (prefix if prefix.startswith(lp) and prefix else lp) + c.path
            has_token = bool(facts.target.token or facts.target.token_env)
            summary = (
                summary.rstrip(".").replace(": the request never reaches a backend", "")
                + f"; the Socket.IO location is {u.loc_label(target)}, so the client must request {new_path}."
            )
            return Verdict(
                Status.FAIL,
                title,
                summary,
                evidence,
                Fix(
                    summary=f"Fix the client, not nginx (see `client`): with `path: '{new_path.rstrip('/')}'` it "
                    f"requests {new_path}, which {u.loc_name(target)} proxies.",
                    code=client_code(c.origin(), new_path, "/", c.transports, has_token),
                ),
                "404",
            )
    return Verdict(Status.FAIL, title, summary, evidence, _add_location_fix(facts, r), "404")


def _proxy_lines(config: Config) -> list[str]:
    """proxy_pass to the config's only upstream (else a placeholder to edit) with the WebSocket settings."""
    ups = list(config.upstreams())
    target = f"http://{ups[0]}" if len(ups) == 1 else "http://127.0.0.1:3000"
    conn = "$connection_upgrade" if "$connection_upgrade" in config.maps() else '"upgrade"'
    return [
        f"proxy_pass {target};" + ("" if len(ups) == 1 else "  # wsdoctor: your Socket.IO backend"),
        "proxy_http_version 1.1;",
        "proxy_set_header Upgrade $http_upgrade;",
        f"proxy_set_header Connection {conn};",
        "proxy_set_header Host $host;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
    ]


def _proxy_fix(facts: Facts, loc: Directive) -> Fix:
    """The location exists but serves files: make it proxy (a second `location` of that name is an error)."""
    config = facts.config
    assert config is not None
    return Fix(
        summary=f"Make {u.loc_name(loc)} proxy to the Socket.IO backends with the WebSocket headers.",
        diff=u.diff_of(config, lambda p: p.insert_in_block(loc, _proxy_lines(config))),
    )


def _add_location_fix(facts: Facts, r: Route) -> Fix:
    """A location for the engine path, proxying to the config's (only) upstream, with the WebSocket headers."""
    config, c, server = facts.config, facts.client, r.server
    assert config is not None and c is not None and server is not None
    prefix = c.path
    body = [f"location {prefix} {{", *("    " + x for x in _proxy_lines(config)), "}"]
    locs = server.children("location")

    def edit(p):
        if locs and locs[0].file == server.file:
            ind = p.child_indent(server)
            p.insert_before(locs[0].file, locs[0].line, [ind + line for line in body] + [""])
        else:
            p.insert_in_block(server, body, at_end=True)

    return Fix(
        summary=f"Add a location for {prefix} that proxies to the Socket.IO backends with the WebSocket headers.",
        diff=u.diff_of(config, edit),
    )


def _stolen(config: Config, r: Route) -> Verdict | None:
    loc = r.location
    if not u.is_regex_location(loc):
        return None
    prefixes = [d for d in r.candidates if d is not loc and u.location_path(d) and d.args[0] != "^~"]
    if not prefixes:
        return None
    victim = max(prefixes, key=lambda d: len(u.location_path(d) or ""))
    if victim.child("proxy_pass") is None or (u.sets_upgrade(loc) and loc.child("proxy_pass") is not None):
        return None  # the regex location is the intended Socket.IO one, or the prefix one proxies nothing
    if _written_for(loc, victim, r.uri):
        return None  # the regex names the request's path, the prefix is a catch-all: the regex is the route
    diff = u.diff_of(
        config, lambda p: p.replace_statement(victim, f"location ^~ {u.location_path(victim)} {{")
    )
    label = f"{r.uri.split('?')[0]} matches prefix {u.loc_label(victim)}, but nginx tries regex locations after the prefix match and {u.loc_label(loc)} wins"
    same = _same_upstream(loc, victim)
    return Verdict(
        Status.WARN if same else Status.FAIL,
        f"Regex {u.loc_name(loc)} takes the request from {u.loc_name(victim)}",
        label
        + (
            f": it proxies to the same {same} with the same URI, so polling still works, but the settings "
            f"written in {u.loc_name(victim)} never apply (the upgrade check judges the regex location's); "
            "mark the prefix location `^~` so no regex can take it."
            if same
            else "; mark the prefix location `^~` so no regex can take it."
        ),
        u.cfg_lines_ev(config, [victim, loc]) if config is not None else [],
        Fix(
            summary=f"Make {u.loc_name(victim)} a `^~` location (regex locations are then not tried).",
            diff=diff,
        ),
        "proxied",
    )


def _written_for(regex: Directive, prefix: Directive, uri: str) -> bool:
    """The regex location names the request's first path segment (``socket.io/``, ``socket\\.io``) while the
    prefix location it wins over does not and forwards no upgrade: a catch-all such as ``location /``, not a
    location written for this path."""
    segment = uri.split("?")[0].strip("/").split("/")[0]
    if not segment or u.sets_upgrade(prefix) or segment in (u.location_path(prefix) or ""):
        return False
    pattern = regex.args[-1] if regex.args else ""
    return segment in pattern or segment.replace(".", "\\.") in pattern


def _same_upstream(regex: Directive, prefix: Directive) -> str | None:
    """The proxy target both locations send the request to unchanged (no URI part, no variables), or None."""
    a, b = regex.child("proxy_pass"), prefix.child("proxy_pass")
    if a is None or b is None or not a.args or not b.args:
        return None
    pa, pb = parse_proxy_pass(a.args[0]), parse_proxy_pass(b.args[0])
    if pa.variables or pb.variables or pa.uri or pb.uri:
        return None
    if (pa.scheme, pa.host.lower()) != (pb.scheme, pb.host.lower()):
        return None
    return f"{pa.scheme}://{pa.host}"


_IP_HOST = re.compile(r"^(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:.]*\])$")


def _no_resolver(config: Config, r: Route) -> Verdict | None:
    """proxy_pass with variables naming a host that no upstream block defines, and no ``resolver`` in effect:
    nginx resolves such a name for each request, and without a resolver it answers every request 502 (error
    log: ``no resolver defined to resolve HOST``)."""
    d, loc = r.proxy_pass, r.location
    if d is None or loc is None or not d.args or "$" not in d.args[0] or r.upstream is not None:
        return None
    target = r.upstream_name or ""
    host = target if target.startswith("[") else target.rsplit(":", 1)[0]
    if not host or "$" in host or host.startswith("unix:") or _IP_HOST.match(host):
        return None
    if any(name.lower() == host.lower() for name in config.upstreams()):
        return None
    if effective.scalar(r.config_block or loc, "resolver").directive is not None:
        return None
    return Verdict(
        Status.FAIL,
        f"No resolver for {host}: nginx answers every request 502",
        f"{u.loc_label(loc)} proxies with variables ({d.where}), so nginx resolves {host} for each request, but "
        f"no `resolver` is set for it and no upstream block is named {host}: every request gets 502, and the "
        f"error log says `no resolver defined to resolve {host}`.",
        u.cfg_lines_ev(config, [loc, d]),
        Fix(
            summary=f"In {u.server_label(r.server)}: add `resolver` with the DNS server that knows {host} "
            "(Docker's is `resolver 127.0.0.11 valid=10s;`), or proxy to an upstream block named "
            f"{host} (resolved once, when nginx starts)."
        ),
        "502",
    )


def _broken_uri(config: Config, r: Route) -> Verdict | None:
    """``/chatsocket.io/`` and ``/chat//socket.io/``: a location and a proxy_pass URI of which only one ends in
    '/' glue the rest of the path to the URI or double the slash."""
    up = (r.upstream_uri or "").split("?")[0]
    if not up or r.proxy_pass is None:
        return None
    glued = "socket.io" in up and "/socket.io" not in up
    double = "//" in up
    if not (glued or double):
        return None
    loc, pp = r.location, r.proxy_pass
    arg = pp.args[0] if pp.args else ""
    uri_part = parse_proxy_pass(arg).uri
    if not uri_part or not uri_part.startswith("/"):
        return None
    fixed = _with_uri(arg, uri_part + "/" if glued else uri_part.rstrip("/") or "/")
    diff = u.diff_of(config, lambda p: p.replace_statement(pp, f"proxy_pass {fixed};"))
    what = "glues the rest of the path to it" if glued else "doubles the slash"
    return Verdict(
        Status.FAIL,
        f"proxy_pass sends {up} upstream",
        f"{u.loc_label(loc)} replaces its prefix by {uri_part!r}, which {what}: the backend receives "
        f"{r.upstream_uri} and answers 404; the location and the proxy_pass URI must both end in '/' or both not.",
        u.cfg_lines_ev(config, [loc, pp]) if config is not None else [],
        Fix(summary=f"Use `proxy_pass {fixed};` so the backend receives the path it serves.", diff=diff),
        "proxied",
    )


# --- live half ------------------------------------------------------------------


def _hs_ev(hs: Handshake) -> Evidence:
    return u.probe_ev(hs.exchange)


def _agree(facts: Facts, v: Verdict, hs: Handshake) -> Verdict:
    """The config's prediction against the handshake through the proxy."""
    ex = hs.exchange
    ev = [*v.evidence, _hs_ev(hs)]
    got = u.status_line(ex)
    if hs.ok:
        if v.predicts == "proxied":
            summary = v.then(f"the handshake through the proxy was answered by {u.who(ex)}.")
            return Verdict(v.status, v.title, summary, ev, v.fix)
        return Verdict(
            Status.WARN,
            "Config and live proxy disagree",
            f"The config predicts {v.predicts} for {facts.client.request_line()} ({v.title}), but the proxy "
            f"answered the Engine.IO handshake: the config given is probably not the one nginx runs.",
            ev,
            v.fix,
        )
    if ex.status is None:
        if v.predicts == "refused":
            summary = v.then(f"live, {u.no_answer_reason(ex)}, as predicted.")
            return Verdict(v.status, v.title, summary, ev, v.fix)
        return _no_answer(facts, hs, v.evidence, v)
    if ex.status in (502, 503, 504):
        summary = v.then(
            f"live, nginx answered {ex.status}: the route is right but the backends fail, see upstream."
        )
        return Verdict(v.status, v.title, summary, ev, v.fix)
    if v.predicts != "proxied":
        agree = (v.predicts == "404" and ex.status == 404) or (v.predicts == "301" and ex.status == 301)
        tail = f"live, {u.who(ex)} answered {got}" + (", as predicted." if agree else ".")
        return Verdict(v.status, v.title, v.then(tail), ev, v.fix)
    # The config says proxied, the proxy did not hand out a session.
    if ex.answered_by in _BACKENDS or (ex.answered_by != NGINX and ex.status == 404):
        return _backend_refused(facts, v, hs, ev)
    return Verdict(
        Status.FAIL,
        "Config and live proxy disagree",
        f"The config sends {facts.client.request_line()} to upstream, but nginx itself answered {got}: the config "
        "given is probably not the one nginx runs (reload it, or analyse the running one with --ssh).",
        ev,
        v.fix,
    )


def _backend_refused(facts: Facts, v: Verdict, hs: Handshake, ev: list[Evidence]) -> Verdict:
    r = route_for(facts)
    assert r is not None
    ex = hs.exchange
    up = r.upstream_uri or "?"
    fix = _fix_from_backends(facts, r) or v.fix or _find_path_fix(r)
    if ex.status == 404:
        summary = (
            f"nginx forwards the request to {r.upstream_target}{up} and {u.who(ex)} answers 404: the backend "
            "does not serve Socket.IO at that path, so proxy_pass must map the location to the backend's path."
        )
        title = f"The backend answers 404 to {up.split('?')[0]}"
    else:
        summary = (
            f"nginx forwards the request to {r.upstream_target}{up} and {u.who(ex)} refuses it with "
            f"{u.status_line(ex)}."
        )
        title = f"The backend refuses the handshake ({ex.status})"
    return Verdict(Status.FAIL, title, summary, ev, fix)


def _find_path_fix(r: Route) -> Fix:
    """No backend answered at any path we know: say how to find the engine path and how to map to it."""
    server = r.upstream_servers[0] if r.upstream_servers else "BACKEND:PORT"
    lp = u.location_path(r.location) if r.location is not None else None
    base = r.upstream_target or "http://backend"
    example = (
        f"`proxy_pass {base}/chat/;` in `location {lp}`"
        if lp and lp.endswith("/")
        else f"`proxy_pass {base}/chat/;`"
    )
    return Fix(
        summary=f"Find where the backends serve Socket.IO (curl http://{server}/socket.io/?EIO=4&transport=polling, "
        f"then the app's own prefix, e.g. /chat/socket.io/) and map the location to it: e.g. {example} sends "
        "/chat/socket.io/ upstream."
    )


def _fix_from_backends(facts: Facts, r: Route) -> Fix | None:
    """When a backend answered the handshake at some path, map the location's prefix to that path."""
    config, c = facts.config, facts.client
    if config is None or c is None or r.location is None or r.proxy_pass is None:
        return None
    lp = u.location_path(r.location)
    if lp is None:
        return None
    for hs in [*u.backend_handshakes(facts).values(), *facts.path_probes.values()]:
        if not hs.ok:
            continue
        good = urlsplit(hs.exchange.url).path  # e.g. /chat/socket.io/
        req_path = r.uri.split("?")[0]
        if not req_path.startswith(lp):
            return None
        rest = req_path[len(lp) :]
        if not good.endswith(rest):
            continue
        uri_part = good[: len(good) - len(rest)] or "/"
        new = _with_uri(r.proxy_pass.args[0], uri_part)
        diff = u.diff_of(config, lambda p, new=new: p.replace_statement(r.proxy_pass, f"proxy_pass {new};"))
        if not diff:
            return None
        return Fix(
            summary=f"The backends answer at {good}: `proxy_pass {new};` maps {lp} to {uri_part}.", diff=diff
        )
    return None


def _with_uri(arg: str, uri: str) -> str:
    """The proxy_pass URL ARG with its URI part replaced by URI (a unix: socket's URI follows a ':')."""
    pu = parse_proxy_pass(arg)
    base = arg[: len(arg) - len(pu.uri)] if pu.uri is not None else arg
    if pu.host.startswith("unix:") and not base.endswith(":"):
        base += ":"
    return base + uri


def _live_only(facts: Facts, hs: Handshake, reason: str) -> Verdict:
    """The probe alone decides: REASON says why the config cannot (none given, or one nginx refuses)."""
    ex = hs.exchange
    ev = [_hs_ev(hs)]
    c = facts.client
    assert c is not None
    if hs.ok:
        return Verdict(
            Status.PASS,
            TITLE,
            f"The handshake {c.request_line()} through the proxy was answered by {u.who(ex)}; the location "
            f"cannot be shown: {reason}.",
            ev,
        )
    if ex.status is None:
        return _no_answer(facts, hs, [], None, reason)
    if ex.status in (404, 301, 302, 400, 403):
        own_404 = ex.status == 404 and ex.answered_by == NGINX
        return Verdict(
            Status.FAIL,
            f"The proxy answers {ex.status} to the client's request",
            f"{c.request_line()} got {u.status_line(ex)} from {u.who(ex)}"
            + (": nginx has no location that proxies it and looked for a file instead" if own_404 else "")
            + f"; the config would show which location took it, but {reason}.",
            ev,
            Fix(summary="Run again with --nginx-conf, --nginx-dump or --ssh to get the exact config fix."),
        )
    return Verdict(
        Status.SKIP,
        TITLE,
        f"The handshake through the proxy got {u.status_line(ex)}, see upstream/tls; {reason}.",
        ev,
    )


def _no_answer(
    facts: Facts, hs: Handshake, cfg_ev: list[Evidence], v: Verdict | None, reason: str | None = None
) -> Verdict:
    """No HTTP answer at all through the proxy: the one failure that names the cause (the live checks skip).

    Refused or unresolvable at connect: nothing listens (nginx down, wrong host/port, a firewall). Connected but
    silent: something took the connection and never answered. TLS: the `tls` check names it when it ran.
    """
    ex = hs.exchange
    c = facts.client
    assert c is not None
    ev = [*cfg_ev, _hs_ev(hs)]
    why = u.no_answer_reason(ex)
    also = (
        f" The config has a problem of its own once it answers: {v.title}."
        if v and v.status is not Status.PASS
        else ""
    )
    tail = f" No config to compare with: {reason}." if reason else ""
    if ex.stage == "tls":
        if u.tls_fails(facts):
            return skip(f"the TLS handshake with {c.netloc} fails: {why}, see tls", ev)
        return Verdict(
            Status.FAIL,
            f"The TLS handshake with {c.netloc} fails",
            f"{c.request_line()} got no HTTP answer: the TLS handshake with {c.netloc} fails, {why}.{also}{tail}",
            ev,
            Fix(
                summary="Check that nginx listens with `ssl` on this port and serves a certificate the client trusts."
            ),
        )
    if ex.stage in ("request", "response", "body", "upgrade", "first-frame"):
        return Verdict(
            Status.FAIL,
            f"{c.netloc} accepts connections but never answers",
            f"{c.request_line()} got no HTTP answer from {c.netloc} ({why}): something took the connection and "
            f"did not answer; nginx waiting on backends that do not answer looks like this, see upstream.{also}"
            f"{tail}",
            ev,
            Fix(
                summary=f"Check what listens on port {c.port} (`ss -ltnp`) and nginx's error log for upstream "
                "timeouts; keep proxy_connect_timeout short so a dead backend fails over quickly."
            ),
        )
    return Verdict(
        Status.FAIL,
        f"Nothing answers at {c.netloc}",
        f"Nothing answers at {c.netloc} ({why}): "
        + (
            "nothing listens there (nginx is not running, or listens on another address or port) or a firewall "
            "rejects the connection"
            if "refused" in why
            else "nginx is not running there, listens on another address or port, or a firewall drops the "
            "connection"
        )
        + f"; every live check waits for it.{also}{tail}",
        ev,
        Fix(
            summary=f"On the proxy host, `ss -ltnp | grep :{c.port}` shows what listens on port {c.port}: start "
            f"nginx (`systemctl start nginx`, then `nginx -t` if it will not start), or fix the URL's host/port; "
            "check DNS and firewalls between the client and nginx."
        ),
    )


check = Flow(ID, TITLE, _where, _config, _live, _combine)
