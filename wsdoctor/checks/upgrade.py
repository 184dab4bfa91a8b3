"""`upgrade` (checklist): can a WebSocket get through, and which headers reach the backend?

A WebSocket needs HTTP/1.1 to the backend (nginx's default is 1.0 before 1.29.7), ``Upgrade: websocket``
(hop-by-hop: nginx never forwards it unless told) and ``Connection: upgrade`` (nginx sends ``close`` by
default; ``Connection ""`` removes it). All of it after inheritance: ``proxy_set_header`` is inherited only
when a level sets none, so a location that sets just Upgrade/Connection silently drops the server's
Host and X-Forwarded-* — this check is where wsdoctor reports those lost headers. Live, a 101 through the
proxy (and the polling→websocket upgrade) confirms or contradicts the config.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wsdoctor.checks import _util as u
from wsdoctor.facts import ENGINEIO_NODE, ENGINEIO_PY, Exchange, Facts
from wsdoctor.report import Evidence, Finding, Fix, Status

if TYPE_CHECKING:
    from wsdoctor.nginx.model import Config, Directive
    from wsdoctor.nginx.routing import Route


ID = "upgrade"
TITLE = "WebSocket upgrade and forwarded headers"
NEEDS = ("config", "version", "websocket", "upgrade")

_RANK = {Status.PASS: 0, Status.SKIP: 0, Status.WARN: 1, Status.FAIL: 2}
_HEADER_LEVELS = ("location", "server", "http", "if", "limit_except")


class _Problem:
    def __init__(self, status: Status, title: str, sentence: str, directives: list, edit=None) -> None:
        self.status, self.title, self.sentence, self.directives, self.edit = (
            status,
            title,
            sentence,
            directives,
            edit,
        )


def check(facts: Facts) -> Finding:
    place = u.socketio_place(facts, ("proxy_http_version", "proxy_set_header"))
    r, why = place.route, place.why
    ws, upg = facts.websocket, facts.upgrade
    if place.corrected:
        ws = upg = None  # the probes sent the client's request, not the corrected one
    if why:
        dead = u.endpoint_down(facts)
        if dead and facts.config is None:
            return u.skip(ID, TITLE, f"{dead}; {why}")
        if ws is not None and not ws.ok and facts.config is None:
            return _live_only(facts)
        if ws is not None and ws.ok:
            return u.finding(
                ID,
                Status.PASS,
                TITLE,
                f"101 Switching Protocols through the proxy; the config cannot be judged: {why}.",
                [u.probe_ev(ws.exchange)],
            )
        return u.skip(ID, TITLE, why)
    assert r is not None and facts.config is not None
    problems, notes, ev_dirs = _config_problems(facts, r)
    config = facts.config
    evidence = u.cfg_lines_ev(config, [r.location, *ev_dirs])
    live_ev: list[Evidence] = []
    live_fail: str | None = None
    live_ok: str | None = None
    proxy_hs = None if place.corrected else u.proxy_handshake(facts)
    dead = None if place.corrected else u.endpoint_down(facts)
    inconclusive = proxy_hs is not None and not proxy_hs.ok  # polling fails too: not the upgrade's fault
    if ws is not None and not dead:
        live_ev.append(u.probe_ev(ws.exchange))
    if dead:
        notes.append(f"live: {dead}")
    elif inconclusive:
        notes.append(
            f"live: the polling handshake through the proxy fails too, {u.status_line(proxy_hs.exchange)}, "
            "so the WebSocket result says nothing about the upgrade, see route/upstream"
        )
    elif ws is not None:
        if ws.ok:
            live_ok = "live: 101 Switching Protocols through the proxy and an Engine.IO open packet"
        elif _upgrade_refused(ws.exchange):
            live_fail = (
                f"live: the WebSocket request got {u.status_line(ws.exchange)} from {u.who(ws.exchange)}"
            )
    if upg is not None and not dead:
        live_ev += [u.probe_ev(ex) for ex in upg.exchanges[-2:]]
        if upg.ok:
            live_ok = (live_ok + "; " if live_ok else "live: ") + "the polling→websocket upgrade completed"
        elif upg.error and not inconclusive and live_fail is None and (ws is None or ws.ok is False):
            live_fail = f"live: the polling→websocket upgrade failed: {u.short_error(upg.error)}"

    worst = max((p.status for p in problems), key=lambda s: _RANK[s], default=Status.PASS)
    fix = _fix(facts, r, problems) if problems else None
    if worst is Status.PASS:
        summary = (
            f"{place.lead}{u.loc_label(r.location)} speaks HTTP/1.1 upstream and forwards Upgrade and Connection"
            + (f"; {'; '.join(notes)}" if notes else "")
        )
        if live_fail:
            return u.finding(
                ID,
                Status.FAIL,
                "Config and live proxy disagree on the upgrade",
                summary + f", but {live_fail}: the config given is probably not the one nginx runs.",
                evidence + live_ev,
            )
        return u.finding(
            ID, Status.PASS, TITLE, summary + (f"; {live_ok}." if live_ok else "."), evidence + live_ev
        )

    main = max(problems, key=lambda p: _RANK[p.status])
    others = [p.sentence for p in problems if p is not main]
    summary = place.say(main.sentence) + (f" Also: {' '.join(others)}" if others else "")
    status = worst
    if live_fail:
        summary += f" {live_fail[0].upper()}{live_fail[1:]}" + (
            ", as predicted." if worst is Status.FAIL else "."
        )
        status = Status.FAIL
    elif live_ok and worst is Status.FAIL:
        summary += f" But {live_ok}: the config given is probably not the one nginx runs."
        status = Status.WARN
    elif dead:
        summary += f" Live: {dead}."
    return u.finding(ID, status, main.title, summary, evidence + live_ev, fix)


def _upgrade_refused(ex: Exchange) -> bool:
    """A refusal that is the upgrade's fault (not a 404/502 that route/upstream explain)."""
    if ex.status is None:
        return ex.stage in ("upgrade", "first-frame")
    if ex.status in (404, 301, 302, 502, 503, 504):
        return False
    return ex.status != 101


def _config_problems(facts: Facts, r: Route) -> tuple[list[_Problem], list[str], list]:
    from wsdoctor.nginx import effective
    from wsdoctor.nginx.version import at_least

    config = facts.config
    loc = r.location
    version = facts.nginx_version
    problems: list[_Problem] = []
    notes: list[str] = []
    ev: list = []

    hv = effective.scalar(loc, "proxy_http_version", version)
    if hv.directive is not None:
        ev.append(hv.directive)
    value = (hv.value or [""])[0]
    if not hv.default and value == "1.0":
        problems.append(
            _Problem(
                Status.FAIL,
                "proxy_http_version 1.0 makes WebSocket impossible",
                f"{u.loc_label(loc)} talks HTTP/1.0 to the backend ({hv.directive.where}), and a WebSocket "
                "upgrade needs HTTP/1.1.",
                [hv.directive],
                ("http_version", hv.directive),
            )
        )
    elif hv.default:
        new = at_least(version, (1, 29, 7)) if version else None
        if new is False:
            problems.append(
                _Problem(
                    Status.FAIL,
                    "proxy_http_version is not set: nginx speaks HTTP/1.0 upstream",
                    f"{u.loc_label(loc)} does not set proxy_http_version, and nginx {version} defaults to HTTP/1.0 "
                    "upstream (1.1 only from 1.29.7), so no WebSocket upgrade can pass.",
                    [],
                    ("http_version", None),
                )
            )
        elif new is None:
            problems.append(
                _Problem(
                    Status.WARN,
                    "proxy_http_version not set: depends on the nginx version",
                    f"{u.loc_label(loc)} does not set proxy_http_version: before nginx 1.29.7 that means HTTP/1.0 "
                    "upstream (WebSocket impossible), from 1.29.7 on HTTP/1.1 (works); the version is unknown "
                    "(give --nginx-version).",
                    [],
                    ("http_version", None),
                )
            )

    headers = effective.proxy_headers(loc, version)
    by_name: dict[str, tuple[str, str, object]] = {}
    for name, val, d in headers:
        by_name.setdefault(name.lower(), (name, val, d))
    up = by_name.get("upgrade")
    conn = by_name.get("connection")
    if up is not None and up[2] is not None:
        ev.append(up[2])
    if conn is not None and conn[2] is not None:
        ev.append(conn[2])

    if up is None:
        problems.append(
            _Problem(
                Status.FAIL,
                "The Upgrade header is not forwarded",
                f"{u.loc_label(loc)} does not set `proxy_set_header Upgrade $http_upgrade`; Upgrade is hop-by-hop, "
                "so the backend never sees the client's request to switch to WebSocket.",
                [],
                ("upgrade", None),
            )
        )
    elif "$http_upgrade" not in up[1] and up[1].lower() != "websocket":
        problems.append(
            _Problem(
                Status.FAIL,
                f"Upgrade is forwarded as {up[1]!r}",
                f"{u.loc_label(loc)} sends `Upgrade: {up[1]}` upstream instead of the client's value ($http_upgrade).",
                [up[2]],
                ("upgrade", up[2]),
            )
        )

    conn_problem = _connection_problem(config, loc, conn, version)
    if conn_problem is not None:
        problems.append(conn_problem)
    elif conn is not None and conn[1].lower() == "upgrade":
        keepalive = r.upstream.child("keepalive") if r.upstream is not None else None
        note = "a literal `Connection upgrade` is sent on polling requests too"
        if keepalive is not None:
            note += f", which defeats `keepalive {' '.join(keepalive.args)}` of upstream {r.upstream_name}"
        notes.append(note + "; the `map $http_upgrade $connection_upgrade` idiom is cleaner")

    lost = _lost_headers(loc)
    if lost is not None:
        level, outer, names = lost
        problems.append(
            _Problem(
                Status.WARN,
                f"{u.loc_name(loc)} drops the proxy headers set at {outer.name} level: {', '.join(names)}",
                f"proxy_set_header is inherited only by levels that set none, so the headers set at "
                f"{outer.name} level ({outer.where}) — {', '.join(names)} — never reach the backend: it sees "
                "Host as the upstream name and nginx's address as the client.",
                [],
                ("lost", (level, outer, names)),
            )
        )
        ev += [
            d
            for d in outer.children("proxy_set_header")
            if d.args and d.args[0].lower() in {n.lower() for n in names}
        ]
    return problems, notes, ev


def _connection_problem(
    config: Config, loc: Directive, conn: tuple[str, str, Directive | None] | None, version: str | None
) -> _Problem | None:
    from wsdoctor.nginx import effective

    if conn is None or conn[2] is None:
        implicit = "no Connection header" if version and _new(version) else "`Connection: close`"
        if version is None:
            implicit = "`Connection: close` (before 1.29.7) or no Connection header (from 1.29.7)"
        return _Problem(
            Status.FAIL,
            "The Connection header is not set to upgrade",
            f"{u.loc_label(loc)} does not set `proxy_set_header Connection`, so nginx sends {implicit} upstream "
            "and the backend refuses the WebSocket upgrade.",
            [],
            ("connection", None),
        )
    name, val, d = conn
    low = val.strip().lower()
    if low == "upgrade" or "upgrade" in [x.strip() for x in low.split(",")]:
        return None
    if val == "":
        return _Problem(
            Status.FAIL,
            'Connection "" removes the upgrade',
            f'{u.loc_label(loc)} sets `proxy_set_header Connection ""` ({d.where}): that is the keepalive idiom for '
            "plain HTTP, and it strips the Connection: upgrade a WebSocket handshake needs.",
            [d],
            ("connection", d),
        )
    if val.startswith("$"):
        var = val.strip()
        if var == "$http_connection":
            return None  # the client's own "Connection: Upgrade" is passed on
        mapped = effective.map_value(config, var, "websocket")
        if mapped is not None and mapped.lower() == "upgrade":
            return None
        if mapped is None:
            return _Problem(
                Status.FAIL,
                f"Connection is set from {var}, which no map defines",
                f"{u.loc_label(loc)} sends `Connection: {var}` ({d.where}) but no `map $http_upgrade {var}` "
                "defines it (nginx -t: unknown variable).",
                [d],
                ("connection", d),
            )
        return _Problem(
            Status.FAIL,
            f"{var} maps a WebSocket request to {mapped!r}",
            f"{u.loc_label(loc)} sends `Connection: {var}`, which is {mapped!r} for a WebSocket request, not "
            "'upgrade'.",
            [d],
            ("connection", d),
        )
    return _Problem(
        Status.FAIL,
        f"Connection is forwarded as {val!r}",
        f"{u.loc_label(loc)} sends `Connection: {val}` upstream ({d.where}); a WebSocket handshake needs "
        "`Connection: upgrade`.",
        [d],
        ("connection", d),
    )


def _new(version: str) -> bool:
    from wsdoctor.nginx.version import at_least

    return bool(at_least(version, (1, 29, 7)))


def _lost_headers(loc: Directive):
    """(level that sets headers, outer level whose headers are lost, lost names) or None."""
    levels = [loc, *(a for a in loc.ancestors() if a.name in _HEADER_LEVELS)]
    sets = [lv for lv in levels if lv.children("proxy_set_header")]
    if len(sets) < 2:
        return None
    level, outer = sets[0], sets[1]
    mine = {d.args[0].lower() for d in level.children("proxy_set_header") if d.args}
    lost = []
    for d in outer.children("proxy_set_header"):
        if d.args and d.args[0].lower() not in mine and d.args[0] not in lost:
            lost.append(d.args[0])
    if not lost:
        return None
    return level, outer, lost


def _fix(facts: Facts, r: Route, problems: list[_Problem]) -> Fix:
    from wsdoctor.nginx.patch import Patch

    config = facts.config
    loc = r.location
    p = Patch(config)
    parts: list[str] = []
    from wsdoctor.nginx.effective import map_value

    good_map = (map_value(config, "$connection_upgrade", "websocket") or "").lower() == "upgrade"
    conn_value = "$connection_upgrade" if good_map else '"upgrade"'

    local_headers = [d for d in loc.children("proxy_set_header") if d.file == loc.file]
    anchor = (
        local_headers[-1] if local_headers else r.proxy_pass if r.proxy_pass in (loc.block or []) else None
    )
    if anchor is not None and anchor.file != loc.file:
        anchor = None
    new_lines: list[str] = []
    try:
        for prob in problems:
            kind, target = prob.edit
            if kind == "http_version":
                if target is not None:
                    p.replace_statement(target, "proxy_http_version 1.1;")
                else:
                    new_lines.append("proxy_http_version 1.1;")
                parts.append("proxy_http_version 1.1")
            elif kind == "upgrade":
                if target is not None and target.parent is loc:
                    p.replace_statement(target, "proxy_set_header Upgrade $http_upgrade;")
                else:
                    new_lines.append("proxy_set_header Upgrade $http_upgrade;")
                parts.append("Upgrade $http_upgrade")
            elif kind == "connection":
                stmt = f"proxy_set_header Connection {conn_value};"
                if target is not None and target.parent is loc:
                    p.replace_statement(target, stmt)
                else:
                    new_lines.append(stmt)
                parts.append(f"Connection {conn_value}")
            elif kind == "lost":
                level, outer, names = target
                wanted = {n.lower() for n in names}
                for d in outer.children("proxy_set_header"):
                    if d.args and d.args[0].lower() in wanted:
                        new_lines.append(d.text())
                parts.append("repeat " + ", ".join(names) + " in the location")
        if new_lines:
            # Setting a header in the location stops inheritance: the server's headers must come along too.
            if any(x.startswith("proxy_set_header") for x in new_lines) and not loc.children(
                "proxy_set_header"
            ):
                setting = {x.split()[1].lower() for x in new_lines if x.startswith("proxy_set_header")}
                kept = [d.text() for d in _inherited(loc) if d.args and d.args[0].lower() not in setting]
                new_lines = kept + [x for x in new_lines if x not in kept]
            p.insert_in_block(loc, new_lines, after=anchor)
        diff = p.diff()
    except (ValueError, KeyError, IndexError):
        diff = ""
    return Fix(summary=f"In {u.loc_label(loc)}: " + "; ".join(parts) + ".", diff=diff)


def _inherited(loc: Directive) -> list:
    """The proxy_set_header directives LOC inherits now (a first one set in LOC would cut them all off)."""
    for a in loc.ancestors():
        if a.name in _HEADER_LEVELS and a.children("proxy_set_header"):
            return a.children("proxy_set_header")
    return []


def _live_only(facts: Facts) -> Finding:
    ws = facts.websocket
    assert ws is not None
    ex = ws.exchange
    reason = u.config_missing(facts) or u.NO_CONFIG
    if _upgrade_refused(ex):
        by_backend = ex.answered_by in (ENGINEIO_PY, ENGINEIO_NODE)
        return u.finding(
            ID,
            Status.FAIL,
            "The WebSocket upgrade is refused through the proxy",
            f"The WebSocket request got {u.status_line(ex)} from {u.who(ex)}"
            + (
                " — the backend saw no Upgrade/Connection headers, so the proxy drops them"
                if by_backend
                else ""
            )
            + f"; the config would give the exact diff, but {reason}.",
            [u.probe_ev(ex)],
            Fix(
                summary="Forward the upgrade: proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade; "
                'proxy_set_header Connection "upgrade"; give the config for the exact diff.'
            ),
        )
    return u.skip(
        ID,
        TITLE,
        f"the WebSocket request got {u.status_line(ex)}, see route/upstream; {reason}",
        [u.probe_ev(ex)],
    )
