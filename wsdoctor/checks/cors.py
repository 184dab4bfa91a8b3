"""`cors` (checklist): does nginx add CORS headers on top of the Socket.IO server's own?

A Socket.IO server configured with ``cors`` answers with its own ``Access-Control-Allow-Origin``; nginx's
``add_header Access-Control-Allow-Origin`` in the same location (directly, through an ``include`` of a shared
CORS snippet, or inherited from the server level — ``add_header`` is inherited only by levels that set none)
adds a second one, and browsers reject a response with two values. The runbook says "DO NOT include CORS
config here" for that reason. Live, a handshake with an ``Origin`` counts the headers actually returned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from wsdoctor.checks import _util as u
from wsdoctor.checks._flow import Flow, Verdict, reading, skip
from wsdoctor.checks._util import Place
from wsdoctor.facts import CorsProbe, Fact, Facts
from wsdoctor.nginx import effective
from wsdoctor.report import Evidence, Fix, Status

if TYPE_CHECKING:
    from wsdoctor.nginx.model import Config, Directive
    from wsdoctor.nginx.routing import Route


ID = "cors"
TITLE = "CORS headers"
NEEDS = (Fact.CONFIG, Fact.CORS, Fact.HANDSHAKE_PROXY)
READS = ("add_header", "include", "proxy_hide_header")

ACAO = "access-control-allow-origin"
CORS_PREFIX = "access-control-"


# --- config half: the add_header lines in effect at the location ----------------------------------------


@dataclass
class _Said:
    route: Route
    added: (
        tuple[str, str] | None
    )  # (value, where) of nginx's own Access-Control-Allow-Origin on top of the server's
    hidden: (
        bool  # the location hides the backend's Access-Control-Allow-Origin (then nginx's is the only one)
    )
    evidence: list[Evidence]
    fix: Fix | None


def _config(facts: Facts, place: Place) -> _Said:
    r = place.route
    assert r is not None and facts.config is not None and r.location is not None
    loc = r.config_block
    added = effective.add_headers(loc)
    acao = [(n, v, d) for n, v, d in added if n.lower() == ACAO]
    cors_all = [(n, v, d) for n, v, d in added if n.lower().startswith(CORS_PREFIX)]
    hidden = any(
        d.args and d.args[0].lower() == ACAO
        for lv in [loc, *loc.ancestors()]
        for d in lv.children("proxy_hide_header")
    )
    if not acao or hidden:
        return _Said(r, None, hidden, [], None)
    d0 = acao[0][2]
    inherited = d0.parent is not loc and d0.parent is not r.location
    src = f"{d0.where}" + (f", inherited from {d0.parent.name} level" if inherited else "")
    evidence = u.cfg_lines_ev(facts.config, [d for _, _, d in cors_all]) + _include_ev(facts.config, loc, d0)
    return _Said(r, (acao[0][1], src), hidden, evidence, _fix(facts, r, cors_all, inherited))


# --- live half: a handshake with an Origin --------------------------------------------------------------


def _live(facts: Facts, place: Place) -> CorsProbe | None:
    return (
        None if place.corrected else facts.cors
    )  # the probe used the client's request, not the corrected one


# --- the verdict ----------------------------------------------------------------------------------------


def _combine(facts: Facts, place: Place, said: _Said | None, live: CorsProbe | None) -> Verdict:
    live_ev: list[Evidence] = [u.probe_ev(live.exchange)] if live is not None else []
    values = list(live.allow_origin) if live is not None else []
    if said is None:
        why = place.why or ""
        if live is not None and len(values) >= 2:
            return Verdict(
                Status.FAIL,
                "Two Access-Control-Allow-Origin headers",
                f"The handshake with Origin {live.origin} returned {len(values)} Access-Control-Allow-Origin headers "
                f"{', '.join(repr(v) for v in values)}: browsers refuse the response; the config would give the exact "
                f"diff, but {why}.",
                live_ev,
                Fix(
                    summary="Remove the add_header Access-Control-* lines from the Socket.IO location (give the config "
                    "for the exact diff); the Socket.IO server's `cors` option is enough."
                ),
            )
        if live is not None and live.error is None:
            return Verdict(
                Status.PASS, TITLE, f"{_live_text(live)}; the config cannot be judged: {why}.", live_ev
            )
        return skip(u.unjudged(facts, why))

    loc = said.route.location
    label = u.loc_label(loc)
    if said.added is not None:
        value, src = said.added
        if live is not None and len(values) >= 2:
            return Verdict(
                Status.FAIL,
                "Two Access-Control-Allow-Origin headers",
                f"nginx adds Access-Control-Allow-Origin {value} in {u.loc_name(loc)} at {src}, on top of "
                f"the Socket.IO server's own: the handshake with Origin {live.origin} got {len(values)} values, "
                f"{', '.join(repr(v) for v in values)}, which browsers refuse.",
                said.evidence + live_ev,
                said.fix,
            )
        if live is not None and len(values) == 1:
            return Verdict(
                Status.WARN,
                "nginx adds CORS headers to the Socket.IO location",
                f"{u.loc_name(loc)} adds Access-Control-Allow-Origin at {src}; live there is one value, {values[0]!r}, "
                "so the server sends none today — enabling the server's `cors` option would duplicate it.",
                said.evidence + live_ev,
                said.fix,
            )
        return Verdict(
            Status.WARN,
            "nginx adds CORS headers to the Socket.IO location",
            f"{u.loc_name(loc)} adds Access-Control-Allow-Origin {value} at {src}; if the Socket.IO server sets its "
            "own with its `cors` option, browsers get two values and refuse the handshake.",
            said.evidence,
            said.fix,
        )

    if live is not None and len(values) >= 2:
        return Verdict(
            Status.FAIL,
            "Config and live proxy disagree: two Access-Control-Allow-Origin headers",
            f"The config adds no Access-Control-Allow-Origin in {label}, but the handshake with Origin "
            f"{live.origin} returned {len(values)}, {', '.join(repr(v) for v in values)}: something else adds one, "
            "another proxy in front or a running config that differs.",
            live_ev,
            Fix(
                summary="Find the second source of Access-Control-Allow-Origin and keep only the Socket.IO server's."
            ),
        )
    summary = f"nginx adds no Access-Control-Allow-Origin in {label}: CORS is left to the Socket.IO server"
    if said.hidden:
        summary = f"{label} hides the backend's Access-Control-Allow-Origin and adds its own: one value reaches browsers"
    if live is not None and live.error is None:
        summary += f"; {_live_text(live)}"
    return Verdict(Status.PASS, TITLE, summary + ".", live_ev)


def _live_text(live: CorsProbe) -> str:
    vals = live.allow_origin
    if not vals:
        return f"live: no Access-Control-Allow-Origin for Origin {live.origin}, so same-origin clients only"
    return f"live: one Access-Control-Allow-Origin, {vals[0]!r}, for Origin {live.origin}"


def _include_ev(config: Config, loc: Directive, d: Directive) -> list[Evidence]:
    """When the add_header comes from an included file, show the include line in the location too."""
    if d.file == loc.file:
        return []
    inc = [i for i in loc.children("include") if d.file in (i.includes or [])]
    return u.cfg_lines_ev(config, inc)


def _fix(facts: Facts, r: Route, cors_all: list[tuple[str, str, Directive]], inherited: bool) -> Fix:
    """An inherited header: hide the backend's; the location's own: delete them (or comment out their include)."""
    loc = r.location
    assert loc is not None
    if inherited:
        anchor = u.last_proxy_line(loc)
        part = "hide the backend's Access-Control-Allow-Origin so only the inherited one remains"

        def edit(p):
            p.insert_in_block(loc, ["proxy_hide_header Access-Control-Allow-Origin;"], after=anchor)

    else:
        part = "remove nginx's CORS headers from this location; the Socket.IO server's `cors` option answers"

        def edit(p):
            includes_done: set[int] = set()
            for _n, _v, d in cors_all:
                if d.file == loc.file:
                    p.delete_statement(d)
                    continue
                inc = next((i for i in loc.children("include") if d.file in (i.includes or [])), None)
                if inc is not None and id(inc) not in includes_done:
                    includes_done.add(id(inc))
                    p.comment_out(inc, "Socket.IO sets its own CORS headers")

    return Fix(summary=f"In {u.loc_label(loc)}: {part}.", diff=u.diff_of(facts.config, edit))


check = Flow(ID, TITLE, reading(READS), _config, _live, _combine)
