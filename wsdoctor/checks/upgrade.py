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
from wsdoctor.nginx.model import Directive
from wsdoctor.nginx.version import at_least
from wsdoctor.report import Evidence, Fix, Status

if TYPE_CHECKING:
    from wsdoctor.nginx.model import Config
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
    if _kinds(main) == {"trap_upgrade", "trap_connection"}:
        return _trap_live(facts, place, said, main, summary)
    if seen.ok and not seen.fail and all(_kinds(p) == {"http_version"} for p in problems):
        # The live 101 decides: this backend accepts the HTTP/1.0 upgrade.
        return Verdict(
            Status.PASS,
            TITLE,
            f"{seen.ok[0].upper()}{seen.ok[1:]}: the backend accepts the upgrade although "
            f"{u.loc_label(r.location)} speaks HTTP/1.0 upstream ({_http10_where(main)}); a backend that follows "
            "RFC 6455 strictly (python `websockets`) would answer 505, so `proxy_http_version 1.1` stays the "
            "safe setting.",
            evidence,
        )
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


def _kinds(p: Problem) -> set[str]:
    edits = p.edit if isinstance(p.edit, list) else [p.edit]
    return {e[0] for e in edits if e}


def _http10_where(p: Problem) -> str:
    edits = p.edit if isinstance(p.edit, list) else [p.edit]
    target = next((e[1] for e in edits if e and e[0] == "http_version"), None)
    return (
        f"proxy_http_version 1.0 at {target.where}" if target is not None else "nginx's default before 1.29.7"
    )


def _trap_live(facts: Facts, place: Place, said: _Said, main: Problem, summary: str) -> Verdict:
    """The literal-Upgrade trap breaks polling, not WebSocket: the polling handshake through the proxy is the
    live evidence (a 101 for the WebSocket request is what the trap predicts too)."""
    hs = None if place.corrected else u.proxy_handshake(facts)
    evidence = list(said.evidence)
    fix = _fix(facts, said.route, said.problems)
    if hs is None or u.endpoint_down(facts):
        return Verdict(Status.FAIL, main.title, summary, evidence, fix)
    evidence.append(u.probe_ev(hs.exchange))
    if hs.ok:
        return Verdict(
            Status.WARN,
            "Config and live proxy disagree on the literal Upgrade",
            summary
            + " But live, the polling handshake through the proxy succeeds: the config given is probably "
            "not the one nginx runs.",
            evidence,
            fix,
        )
    return Verdict(
        Status.FAIL,
        main.title,
        summary + f" Live: the polling handshake got {u.status_line(hs.exchange)} from {u.who(hs.exchange)}, "
        "as predicted.",
        evidence,
        fix,
    )


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
    assert config is not None
    loc = r.location
    version = facts.nginx_version
    polls = _polls(facts)
    problems: list[Problem] = []
    notes: list[str] = []
    ev: list = []

    headers = effective.proxy_headers(loc, version)
    by_name: dict[str, tuple[str, str, Directive | None]] = {}
    for name, val, d in headers:
        by_name.setdefault(name.lower(), (name, val, d))
    up = by_name.get("upgrade")
    conn = by_name.get("connection")
    ev += [h[2] for h in (up, conn) if h is not None and h[2] is not None]

    # What keeps every WebSocket out: each is a reason under one consequence (what the client loses).
    blocked: list[Problem] = []
    literal = up is not None and "$" not in up[1] and up[1].strip().lower() == "websocket"
    if up is None:
        blocked.append(
            Problem(
                Status.FAIL,
                "The Upgrade header is not forwarded",
                "`proxy_set_header Upgrade $http_upgrade` is not set: Upgrade is hop-by-hop, so the backend "
                "never sees the client's request to switch to WebSocket.",
                ("upgrade", None),
            )
        )
    elif "$http_upgrade" not in up[1] and not literal:
        blocked.append(
            Problem(
                Status.FAIL,
                f"Upgrade is forwarded as {up[1]!r}",
                f"the backend gets `Upgrade: {up[1]}` ({_at(up[2])}) instead of the client's value "
                "($http_upgrade).",
                ("upgrade", up[2]),
            )
        )
    conn_problem = _connection_problem(config, conn, version)
    if conn_problem is not None:
        blocked.append(conn_problem)
    if blocked:
        title, opening = _consequence(facts, loc)
        problems.append(
            Problem(
                Status.FAIL,
                title,
                opening + " Why: " + " ".join(_sentence_case(p.sentence) for p in blocked),
                [p.edit for p in blocked],
            )
        )
    elif literal and _says_upgrade(_for_polling(config, conn)):
        assert up is not None and conn is not None
        if polls:
            problems.append(
                Problem(
                    Status.FAIL,
                    "Every request is sent upstream as a WebSocket upgrade: polling clients never connect",
                    f"{u.loc_label(loc)} sends the literal `Upgrade: websocket` ({_at(up[2])}) with "
                    f"`Connection: {conn[1]}` ({_at(conn[2])}) on every request, so each polling request "
                    "reaches the backend as an upgrade request and gets 400 (Node: `Missing or invalid "
                    "Sec-WebSocket-Key header`): clients with the default transports (polling first) never "
                    "connect, while websocket-only clients do. Forward the client's own header instead: "
                    "`Upgrade $http_upgrade` with `Connection $connection_upgrade` from "
                    "`map $http_upgrade $connection_upgrade`.",
                    [("trap_upgrade", up[2]), ("trap_connection", conn[2])],
                )
            )
        else:
            notes.append(
                "the literal `Upgrade: websocket` makes every request through it an upgrade request: "
                "harmless for websocket-only clients, but a polling client would get 400 "
                "(`$http_upgrade` with the `map $http_upgrade $connection_upgrade` idiom avoids that)"
            )
    elif literal:
        notes.append("Upgrade is the literal `websocket`; `$http_upgrade` is the idiom")
    if not blocked and polls and conn is not None and conn[1].strip().lower() == "upgrade":
        keepalive = r.upstream.child("keepalive") if r.upstream is not None else None
        note = "a literal `Connection upgrade` is sent on polling requests too"
        if keepalive is not None:
            note += f", which defeats `keepalive {' '.join(keepalive.args)}` of upstream {r.upstream_name}"
        notes.append(note + "; the `map $http_upgrade $connection_upgrade` idiom is cleaner")

    hv = effective.scalar(loc, "proxy_http_version", version)
    if hv.directive is not None:
        ev.append(hv.directive)
    version_problem = _http_version_problem(loc, hv, version)
    if version_problem is not None:
        problems.append(version_problem)

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


# What the HTTP/1.0 warning says about the backends (docs/nginx.md, "HTTP version to the backend").
_HTTP10_DEPENDS = (
    "nginx still passes the upgrade whenever the backend answers 101, and Node socket.io (ws), python-socketio "
    "on uvicorn and on aiohttp accept an HTTP/1.0 upgrade request, but a server that follows RFC 6455 "
    "strictly (python `websockets`) refuses it with 505; RFC 6455 and nginx's docs ask for "
    "`proxy_http_version 1.1`. A live 101 through the proxy decides."
)


def _http_version_problem(loc: Directive, hv: effective.Setting, version: str | None) -> Problem | None:
    """HTTP/1.0 upstream: a warning whose outcome depends on the backend (None when 1.1 is in effect)."""
    value = (hv.value or [""])[0]
    if not hv.default:
        if value != "1.0":
            return None
        assert hv.directive is not None
        return Problem(
            Status.WARN,
            "proxy_http_version 1.0: the WebSocket upgrade depends on the backend",
            f"{u.loc_label(loc)} talks HTTP/1.0 to the backend ({hv.directive.where}); {_HTTP10_DEPENDS}",
            ("http_version", hv.directive),
        )
    new = at_least(version, (1, 29, 7)) if version else None
    if new:
        return None
    if new is False:
        return Problem(
            Status.WARN,
            "proxy_http_version is not set: nginx speaks HTTP/1.0 upstream, so the upgrade depends on the backend",
            f"{u.loc_label(loc)} does not set proxy_http_version, and nginx {version} sends requests upstream "
            f"as HTTP/1.0 (1.1 is the default only from 1.29.7); {_HTTP10_DEPENDS}",
            ("http_version", None),
        )
    return Problem(
        Status.WARN,
        "proxy_http_version not set: depends on the nginx version",
        f"{u.loc_label(loc)} does not set proxy_http_version: from nginx 1.29.7 on that is HTTP/1.1 upstream, "
        f"before it HTTP/1.0, and then {_HTTP10_DEPENDS} The version is unknown (give --nginx-version).",
        ("http_version", None),
    )


def _polls(facts: Facts) -> bool:
    """The client uses the polling transport (socket.io-client's default: polling first, then the upgrade)."""
    return facts.client is None or "polling" in facts.client.transports


def _consequence(facts: Facts, loc: Directive) -> tuple[str, str]:
    """(title, opening sentence): what a location that lets no WebSocket through costs this client."""
    if _polls(facts):
        return (
            "No WebSocket: clients fall back to long-polling (degraded, not down)",
            f"No WebSocket gets through {u.loc_label(loc)}: clients with the default transports fall back to "
            "HTTP long-polling and keep working — degraded, not down (every message becomes an HTTP request, "
            "with more latency and load, and each session needs sticky routing) — while websocket-only "
            "clients cannot connect at all.",
        )
    return (
        "WebSocket clients cannot connect: the upgrade is not forwarded",
        f"WebSocket clients cannot connect through {u.loc_label(loc)}: the upgrade never reaches the backend, "
        "and with the websocket transport only there is no polling to fall back to.",
    )


def _for_polling(config: Config, conn: tuple[str, str, Directive | None] | None) -> str | None:
    """The Connection value a polling request carries upstream (it sends no Upgrade: $http_upgrade is "")."""
    if conn is None:
        return None
    value = conn[1].strip()
    if value == "$http_connection":
        return None  # the client's own: keep-alive for a poll
    if value.startswith("$"):
        return effective.map_value(config, value, "")
    return value


def _says_upgrade(value: str | None) -> bool:
    return value is not None and "upgrade" in [x.strip() for x in value.lower().split(",")]


def _at(d: Directive | None) -> str:
    return d.where if d is not None else "nginx's default"


def _sentence_case(text: str) -> str:
    return text[:1].upper() + text[1:]


def _connection_problem(
    config: Config, conn: tuple[str, str, Directive | None] | None, version: str | None
) -> Problem | None:
    if conn is None or conn[2] is None:
        implicit = "no Connection header" if version and _new(version) else "`Connection: close`"
        if version is None:
            implicit = "`Connection: close` (before 1.29.7) or no Connection header (from 1.29.7)"
        return Problem(
            Status.FAIL,
            "The Connection header is not set to upgrade",
            f"`proxy_set_header Connection` is not set, so nginx sends {implicit} upstream and the backend "
            "refuses the WebSocket upgrade.",
            ("connection", None),
        )
    _name, val, d = conn
    if _says_upgrade(val.strip()):
        return None
    if val == "":
        return Problem(
            Status.FAIL,
            'Connection "" removes the upgrade',
            f'`proxy_set_header Connection ""` ({d.where}) is the keepalive idiom for plain HTTP: it strips the '
            "`Connection: upgrade` a WebSocket handshake needs.",
            ("connection", d),
        )
    if val.startswith("$"):
        var = val.strip()
        if var == "$http_connection":
            return None  # the client's own "Connection: Upgrade" is passed on
        mapped = effective.map_value(config, var, "websocket")
        if mapped is not None and _says_upgrade(mapped):
            return None
        if mapped is None:
            return Problem(
                Status.FAIL,
                f"Connection is set from {var}, which no map defines",
                f"the backend gets `Connection: {var}` ({d.where}) but no `map $http_upgrade {var}` defines it "
                "(nginx -t: unknown variable).",
                ("connection", d),
            )
        return Problem(
            Status.FAIL,
            f"{var} maps a WebSocket request to {mapped!r}",
            f"the backend gets `Connection: {var}` ({d.where}), which is {mapped!r} for a WebSocket request, "
            "not 'upgrade'.",
            ("connection", d),
        )
    return Problem(
        Status.FAIL,
        f"Connection is forwarded as {val!r}",
        f"the backend gets `Connection: {val}` ({d.where}); a WebSocket handshake needs `Connection: upgrade`.",
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


_MAP = ("map $http_upgrade $connection_upgrade {", "    default upgrade;", "    ''      close;", "}")


def _fix(facts: Facts, r: Route, problems: list[Problem]) -> Fix:
    """Every problem's edit: own lines replaced where they are (the location, a file it includes, the server),
    new ones in the location after its last proxy_set_header (or its proxy_pass); a first proxy_set_header
    there brings the inherited ones along. The summary names each place the diff touches."""
    config = facts.config
    loc = r.location
    assert config is not None and loc is not None
    good_map = _good_map(config)
    conn_value = "$connection_upgrade" if good_map else '"upgrade"'
    add_map = False

    local_headers = [d for d in loc.children("proxy_set_header") if d.file == loc.file]
    anchor = (
        local_headers[-1] if local_headers else r.proxy_pass if r.proxy_pass in (loc.block or []) else None
    )
    if anchor is not None and anchor.file != loc.file:
        anchor = None
    here = f"In {u.loc_label(loc)}"
    parts: dict[str, list[str]] = {here: []}  # place -> what changes there, in order
    replaced: list[tuple[Directive, str]] = []
    new_lines: list[str] = []

    def put(target: Directive | None, statement: str, said: str) -> None:
        """TARGET replaced by STATEMENT where it is, else STATEMENT added in the location."""
        if target is not None:
            replaced.append((target, statement))
            parts.setdefault(_place(loc, target), []).append(said)
        else:
            new_lines.append(statement)
            parts[here].append(said)

    edits = [e for prob in problems for e in (prob.edit if isinstance(prob.edit, list) else [prob.edit])]
    for kind, target in edits:
        own = target if isinstance(target, Directive) and target.parent is loc else None
        if kind == "http_version":  # an inherited 1.0 is overridden in the location
            put(own, "proxy_http_version 1.1;", "proxy_http_version 1.1")
        elif kind == "upgrade":
            put(own, "proxy_set_header Upgrade $http_upgrade;", "Upgrade $http_upgrade")
        elif kind == "connection":
            put(own, f"proxy_set_header Connection {conn_value};", f"Connection {conn_value}")
        elif kind == "trap_upgrade":  # where it is: every location that inherits it has the same trap
            put(target, "proxy_set_header Upgrade $http_upgrade;", "Upgrade $http_upgrade")
        elif kind == "trap_connection" and (good_map or config.maps().get("$connection_upgrade") is None):
            add_map = not good_map
            put(target, "proxy_set_header Connection $connection_upgrade;", "Connection $connection_upgrade")
        elif kind == "lost":
            _level, outer, names = target
            wanted = {n.lower() for n in names}
            for d in outer.children("proxy_set_header"):
                if d.args and d.args[0].lower() in wanted:
                    new_lines.append(d.text())
            parts[here].append("repeat " + ", ".join(names) + " in the location")
    # Setting a header in the location stops inheritance: the server's headers must come along too.
    if any(x.startswith("proxy_set_header") for x in new_lines) and not loc.children("proxy_set_header"):
        setting = {x.split()[1].lower() for x in new_lines if x.startswith("proxy_set_header")}
        kept = [d.text() for d in _inherited(loc) if d.args and d.args[0].lower() not in setting]
        new_lines = kept + [x for x in new_lines if x not in kept]
    http = config.http() if add_map else None

    def edit(p):
        for d, statement in replaced:
            p.replace_statement(d, statement)
        if new_lines:
            p.insert_in_block(loc, new_lines, after=anchor)
        if http is not None:
            p.insert_in_block(http, list(_MAP))

    said = [f"{place}: {'; '.join(what)}." for place, what in parts.items() if what]
    if http is not None:
        said.append(f"At http level ({http.where}): add `{' '.join(' '.join(_MAP).split())}`.")
    return Fix(summary=" ".join(said), diff=u.diff_of(config, edit))


def _good_map(config: Config) -> bool:
    """``$connection_upgrade`` is defined and gives upgrade for a WebSocket request, not for a poll."""
    return _says_upgrade(
        effective.map_value(config, "$connection_upgrade", "websocket")
    ) and not _says_upgrade(effective.map_value(config, "$connection_upgrade", ""))


def _place(loc: Directive, d: Directive) -> str:
    """Where the fix edits D, in the words of its summary: the location, a file it includes, the server."""
    if d.parent is loc and d.file == loc.file:
        return f"In {u.loc_label(loc)}"
    if d.parent is loc:
        return f"In {d.file}, which {u.loc_name(loc)} includes (every block that includes it gets the change)"
    if d.parent is not None and d.parent.name == "server":
        return f"In {u.server_label(d.parent)} (for every location of it that sets no proxy_set_header)"
    if d.parent is not None:
        return f"At {d.parent.name} level ({d.parent.where})"
    return f"In {d.where}"


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
