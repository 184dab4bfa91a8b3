"""`upgrade` (checklist): can a WebSocket get through, and which headers reach the backend?

A WebSocket needs HTTP/1.1 to the backend (nginx's default is 1.0 before 1.29.7), ``Upgrade: websocket``
(hop-by-hop: nginx never forwards it unless told) and ``Connection: upgrade`` (nginx sends ``close`` by
default; ``Connection ""`` removes it). All of it after inheritance: ``proxy_set_header`` is inherited only
when a level sets none, so a location that sets just Upgrade/Connection silently drops the server's
Host and X-Forwarded-* — this check is where wsdoctor reports those lost headers. Live, a 101 through the
proxy (and the polling→websocket upgrade) confirms or contradicts the config.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from wsdoctor.checks import _util as u
from wsdoctor.checks._flow import Flow, Live, Problem, Verdict, problems_text, reading, skip, worst
from wsdoctor.checks._util import Place
from wsdoctor.facts import ENGINEIO_NODE, ENGINEIO_PY, NO_CONFIG, Exchange, Fact, Facts, WebSocketProbe
from wsdoctor.nginx import effective
from wsdoctor.nginx.version import at_least
from wsdoctor.report import Evidence, Fix, Status

if TYPE_CHECKING:
    from wsdoctor.nginx.model import Config, Directive
    from wsdoctor.nginx.routing import Route


ID = "upgrade"
TITLE = "WebSocket upgrade and forwarded headers"
NEEDS = (Fact.CONFIG, Fact.VERSION, Fact.WEBSOCKET, Fact.UPGRADE)
READS = ("proxy_http_version", "proxy_set_header")

_HEADER_LEVELS = ("location", "server", "http", "if", "limit_except")


# --- config half: HTTP/1.1 and the Upgrade/Connection headers after inheritance --------------------------


@dataclass
class _Said:
    route: Route
    problems: list[Problem]  # each with its edit: (kind, target) for _fix
    notes: list[str]
    evidence: list[Evidence]


def _config(facts: Facts, place: Place) -> _Said:
    r = place.route
    assert r is not None and facts.config is not None
    problems, notes, shown = _config_problems(facts, r)
    return _Said(r, problems, notes, u.cfg_lines_ev(facts.config, [r.location, *shown]))


# --- live half: a WebSocket through the proxy, and the polling→websocket upgrade ---------------------------


@dataclass
class _Seen(Live):
    dead: str | None = None  # the endpoint answers nothing (route names it)
    websocket: WebSocketProbe | None = None


def _live(facts: Facts, place: Place) -> _Seen:
    if place.corrected:  # the probes sent the client's request, not the corrected one
        return _Seen()
    ws, upg = facts.websocket, facts.upgrade
    proxy_hs = u.proxy_handshake(facts)
    seen = _Seen(dead=u.endpoint_down(facts), websocket=ws)
    inconclusive = proxy_hs is not None and not proxy_hs.ok  # polling fails too: not the upgrade's fault
    if ws is not None and not seen.dead:
        seen.evidence.append(u.probe_ev(ws.exchange))
    if seen.dead:
        seen.notes.append(f"live: {seen.dead}")
    elif inconclusive:
        seen.notes.append(
            f"live: the polling handshake through the proxy fails too, {u.status_line(proxy_hs.exchange)}, "
            "so the WebSocket result says nothing about the upgrade, see route/upstream"
        )
    elif ws is not None:
        if ws.ok:
            seen.ok = "live: 101 Switching Protocols through the proxy and an Engine.IO open packet"
        elif _upgrade_refused(ws.exchange):
            seen.fail = (
                f"live: the WebSocket request got {u.status_line(ws.exchange)} from {u.who(ws.exchange)}"
            )
    if upg is not None and not seen.dead:
        seen.evidence += [u.probe_ev(ex) for ex in upg.exchanges[-2:]]
        if upg.ok:
            seen.ok = (seen.ok + "; " if seen.ok else "live: ") + "the polling→websocket upgrade completed"
        elif upg.error and not inconclusive and seen.fail is None and (ws is None or ws.ok is False):
            seen.fail = f"live: the polling→websocket upgrade failed: {u.short_error(upg.error)}"
    return seen


# --- the verdict ----------------------------------------------------------------------------------------


def _combine(facts: Facts, place: Place, said: _Said | None, seen: _Seen) -> Verdict:
    if said is None:
        return _unjudged(facts, place.why or "", seen.websocket)
    r, problems = said.route, said.problems
    evidence = said.evidence + seen.evidence
    if not problems:
        notes = said.notes + seen.notes
        summary = (
            f"{u.loc_label(r.location)} speaks HTTP/1.1 upstream and forwards Upgrade and Connection"
            + (f"; {'; '.join(notes)}" if notes else "")
        )
        if seen.fail:
            return Verdict(
                Status.FAIL,
                "Config and live proxy disagree on the upgrade",
                summary + f", but {seen.fail}: the config given is probably not the one nginx runs.",
                evidence,
            )
        return Verdict(Status.PASS, TITLE, summary + (f"; {seen.ok}." if seen.ok else "."), evidence)

    main = worst(problems)
    summary = problems_text(problems)
    status = main.status
    if seen.fail:
        summary += f" {seen.fail[0].upper()}{seen.fail[1:]}" + (
            ", as predicted." if main.status is Status.FAIL else "."
        )
        status = Status.FAIL
    elif seen.ok and main.status is Status.FAIL:
        summary += f" But {seen.ok}: the config given is probably not the one nginx runs."
        status = Status.WARN
    elif seen.dead:
        summary += f" Live: {seen.dead}."
    return Verdict(status, main.title, summary, evidence, _fix(facts, r, problems))


def _unjudged(facts: Facts, why: str, ws: WebSocketProbe | None) -> Verdict:
    """The config cannot be judged (WHY): the WebSocket probe alone speaks, when it says something."""
    dead = u.endpoint_down(facts)
    if dead and facts.config is None:
        return skip(f"{dead}; {why}")
    if ws is not None and not ws.ok and facts.config is None:
        return _live_only(facts, ws)
    if ws is not None and ws.ok:
        return Verdict(
            Status.PASS,
            TITLE,
            f"101 Switching Protocols through the proxy; the config cannot be judged: {why}.",
            [u.probe_ev(ws.exchange)],
        )
    return skip(why)


def _upgrade_refused(ex: Exchange) -> bool:
    """A refusal that is the upgrade's fault (not a 404/502 that route/upstream explain)."""
    if ex.status is None:
        return ex.stage in ("upgrade", "first-frame")
    if ex.status in (404, 301, 302, 502, 503, 504):
        return False
    return ex.status != 101


def _config_problems(facts: Facts, r: Route) -> tuple[list[Problem], list[str], list]:
    config = facts.config
    loc = r.location
    version = facts.nginx_version
    problems: list[Problem] = []
    notes: list[str] = []
    ev: list = []

    hv = effective.scalar(loc, "proxy_http_version", version)
    if hv.directive is not None:
        ev.append(hv.directive)
    value = (hv.value or [""])[0]
    if not hv.default and value == "1.0":
        problems.append(
            Problem(
                Status.FAIL,
                "proxy_http_version 1.0 makes WebSocket impossible",
                f"{u.loc_label(loc)} talks HTTP/1.0 to the backend ({hv.directive.where}), and a WebSocket "
                "upgrade needs HTTP/1.1.",
                ("http_version", hv.directive),
            )
        )
    elif hv.default:
        new = at_least(version, (1, 29, 7)) if version else None
        if new is False:
            problems.append(
                Problem(
                    Status.FAIL,
                    "proxy_http_version is not set: nginx speaks HTTP/1.0 upstream",
                    f"{u.loc_label(loc)} does not set proxy_http_version, and nginx {version} defaults to HTTP/1.0 "
                    "upstream (1.1 only from 1.29.7), so no WebSocket upgrade can pass.",
                    ("http_version", None),
                )
            )
        elif new is None:
            problems.append(
                Problem(
                    Status.WARN,
                    "proxy_http_version not set: depends on the nginx version",
                    f"{u.loc_label(loc)} does not set proxy_http_version: before nginx 1.29.7 that means HTTP/1.0 "
                    "upstream (WebSocket impossible), from 1.29.7 on HTTP/1.1 (works); the version is unknown "
                    "(give --nginx-version).",
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
            Problem(
                Status.FAIL,
                "The Upgrade header is not forwarded",
                f"{u.loc_label(loc)} does not set `proxy_set_header Upgrade $http_upgrade`; Upgrade is hop-by-hop, "
                "so the backend never sees the client's request to switch to WebSocket.",
                ("upgrade", None),
            )
        )
    elif "$http_upgrade" not in up[1] and up[1].lower() != "websocket":
        problems.append(
            Problem(
                Status.FAIL,
                f"Upgrade is forwarded as {up[1]!r}",
                f"{u.loc_label(loc)} sends `Upgrade: {up[1]}` upstream instead of the client's value ($http_upgrade).",
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
            Problem(
                Status.WARN,
                f"{u.loc_name(loc)} drops the proxy headers set at {outer.name} level: {', '.join(names)}",
                f"proxy_set_header is inherited only by levels that set none, so the headers set at "
                f"{outer.name} level ({outer.where}) — {', '.join(names)} — never reach the backend: it sees "
                "Host as the upstream name and nginx's address as the client.",
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
) -> Problem | None:
    if conn is None or conn[2] is None:
        implicit = "no Connection header" if version and _new(version) else "`Connection: close`"
        if version is None:
            implicit = "`Connection: close` (before 1.29.7) or no Connection header (from 1.29.7)"
        return Problem(
            Status.FAIL,
            "The Connection header is not set to upgrade",
            f"{u.loc_label(loc)} does not set `proxy_set_header Connection`, so nginx sends {implicit} upstream "
            "and the backend refuses the WebSocket upgrade.",
            ("connection", None),
        )
    name, val, d = conn
    low = val.strip().lower()
    if low == "upgrade" or "upgrade" in [x.strip() for x in low.split(",")]:
        return None
    if val == "":
        return Problem(
            Status.FAIL,
            'Connection "" removes the upgrade',
            f'{u.loc_label(loc)} sets `proxy_set_header Connection ""` ({d.where}): that is the keepalive idiom for '
            "plain HTTP, and it strips the Connection: upgrade a WebSocket handshake needs.",
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
            return Problem(
                Status.FAIL,
                f"Connection is set from {var}, which no map defines",
                f"{u.loc_label(loc)} sends `Connection: {var}` ({d.where}) but no `map $http_upgrade {var}` "
                "defines it (nginx -t: unknown variable).",
                ("connection", d),
            )
        return Problem(
            Status.FAIL,
            f"{var} maps a WebSocket request to {mapped!r}",
            f"{u.loc_label(loc)} sends `Connection: {var}`, which is {mapped!r} for a WebSocket request, not "
            "'upgrade'.",
            ("connection", d),
        )
    return Problem(
        Status.FAIL,
        f"Connection is forwarded as {val!r}",
        f"{u.loc_label(loc)} sends `Connection: {val}` upstream ({d.where}); a WebSocket handshake needs "
        "`Connection: upgrade`.",
        ("connection", d),
    )


def _new(version: str) -> bool:
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


def _fix(facts: Facts, r: Route, problems: list[Problem]) -> Fix:
    """Every problem's edit in the location: own lines replaced, new ones after its last proxy_set_header (or
    its proxy_pass); a first proxy_set_header there brings the inherited ones along."""
    config = facts.config
    loc = r.location
    assert config is not None and loc is not None
    good_map = (effective.map_value(config, "$connection_upgrade", "websocket") or "").lower() == "upgrade"
    conn_value = "$connection_upgrade" if good_map else '"upgrade"'

    local_headers = [d for d in loc.children("proxy_set_header") if d.file == loc.file]
    anchor = (
        local_headers[-1] if local_headers else r.proxy_pass if r.proxy_pass in (loc.block or []) else None
    )
    if anchor is not None and anchor.file != loc.file:
        anchor = None
    parts: list[str] = []
    replaced: list[tuple[Directive, str]] = []
    new_lines: list[str] = []
    for prob in problems:
        kind, target = prob.edit
        if kind == "http_version":
            if target is not None:
                replaced.append((target, "proxy_http_version 1.1;"))
            else:
                new_lines.append("proxy_http_version 1.1;")
            parts.append("proxy_http_version 1.1")
        elif kind == "upgrade":
            if target is not None and target.parent is loc:
                replaced.append((target, "proxy_set_header Upgrade $http_upgrade;"))
            else:
                new_lines.append("proxy_set_header Upgrade $http_upgrade;")
            parts.append("Upgrade $http_upgrade")
        elif kind == "connection":
            stmt = f"proxy_set_header Connection {conn_value};"
            if target is not None and target.parent is loc:
                replaced.append((target, stmt))
            else:
                new_lines.append(stmt)
            parts.append(f"Connection {conn_value}")
        elif kind == "lost":
            _level, outer, names = target
            wanted = {n.lower() for n in names}
            for d in outer.children("proxy_set_header"):
                if d.args and d.args[0].lower() in wanted:
                    new_lines.append(d.text())
            parts.append("repeat " + ", ".join(names) + " in the location")
    # Setting a header in the location stops inheritance: the server's headers must come along too.
    if any(x.startswith("proxy_set_header") for x in new_lines) and not loc.children("proxy_set_header"):
        setting = {x.split()[1].lower() for x in new_lines if x.startswith("proxy_set_header")}
        kept = [d.text() for d in _inherited(loc) if d.args and d.args[0].lower() not in setting]
        new_lines = kept + [x for x in new_lines if x not in kept]

    def edit(p):
        for d, statement in replaced:
            p.replace_statement(d, statement)
        if new_lines:
            p.insert_in_block(loc, new_lines, after=anchor)

    return Fix(summary=f"In {u.loc_label(loc)}: " + "; ".join(parts) + ".", diff=u.diff_of(config, edit))


def _inherited(loc: Directive) -> list:
    """The proxy_set_header directives LOC inherits now (a first one set in LOC would cut them all off)."""
    for a in loc.ancestors():
        if a.name in _HEADER_LEVELS and a.children("proxy_set_header"):
            return a.children("proxy_set_header")
    return []


def _live_only(facts: Facts, ws: WebSocketProbe) -> Verdict:
    """No config: a refused upgrade is named from the probe alone, anything else is route's or upstream's."""
    ex = ws.exchange
    reason = u.config_missing(facts) or NO_CONFIG
    if _upgrade_refused(ex):
        by_backend = ex.answered_by in (ENGINEIO_PY, ENGINEIO_NODE)
        return Verdict(
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
    return skip(
        f"the WebSocket request got {u.status_line(ex)}, see route/upstream; {reason}", [u.probe_ev(ex)]
    )


check = Flow(ID, TITLE, reading(READS), _config, _live, _combine)
