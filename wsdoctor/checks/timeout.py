"""`timeout` (runbook issue "drops after 60 s"): will nginx close a quiet tunnel before the server's next ping?

nginx closes a proxied WebSocket only when *nothing* crosses it for ``proxy_read_timeout``; a Socket.IO server
pings every ``pingInterval`` (25 s by default), which keeps the tunnel alive well under the default 60 s. So
the effective read timeout is judged against the server's real pingInterval (from its handshake; offline the
default 25 s, said so), not against a magic "7 days" — which is harmless for reads but hides dead peers.
``proxy_connect_timeout`` above 75 s is pointless (the OS gives up first) and only delays failover: warned.
Live, a held tunnel (``--hold``) shows when and how it closed; the error log's ``while proxying upgraded
connection`` lines are the drops.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from wsdoctor.checks import _util as u
from wsdoctor.checks._flow import Flow, Problem, Verdict, problems_text, reading, skip, worst
from wsdoctor.checks._util import Place
from wsdoctor.facts import Fact, Facts, HoldProbe, LogEvent
from wsdoctor.nginx import effective
from wsdoctor.nginx.effective import Setting, parse_duration
from wsdoctor.report import Evidence, Fix, Status

if TYPE_CHECKING:
    from wsdoctor.nginx.model import Directive
    from wsdoctor.nginx.routing import Route


ID = "timeout"
TITLE = "Proxy timeouts vs pingInterval"
NEEDS = (Fact.CONFIG, Fact.HANDSHAKE_PROXY, Fact.HANDSHAKE_BACKENDS, Fact.HOLD, Fact.LOGS)
READS = ("proxy_read_timeout", "proxy_send_timeout", "proxy_connect_timeout")

CONNECT_MAX = 75.0  # nginx: "cannot usually exceed 75 seconds"
CONNECT_SUGGESTED = "5s"
LONG_READ = 3600.0  # above this a read timeout only keeps dead peers' sockets around
MARGIN = 5.0  # seconds of slack a ping needs over the network
# Idle tunnels closed by nginx's timer; "recv() failed … while proxying upgraded connection" is a peer reset.
_DROPS = ("upgraded-timeout", "101-idle-timeout")


# --- config half: the effective timeouts against the server's ping -------------------------------------


@dataclass
class _Said:
    route: Route
    read: Setting
    read_s: float | None
    read_text: str
    ping: float
    ping_text: str
    problems: list[Problem]  # each with its edit: (directive name, existing directive or None, new value)
    notes: list[str]
    evidence: list[Evidence]

    def read_edit(self) -> tuple[str, Directive | None, str]:
        return ("proxy_read_timeout", self.read.directive, u.nginx_duration(max(60.0, 2 * self.ping)))


def _config(facts: Facts, place: Place) -> _Said:
    r = place.route
    assert r is not None and facts.config is not None
    loc = r.config_block
    ping, ping_src = u.ping_interval(facts)
    read = effective.scalar(loc, "proxy_read_timeout", facts.nginx_version)
    connect = effective.scalar(loc, "proxy_connect_timeout", facts.nginx_version)
    read_s, connect_s = _seconds(read), _seconds(connect)
    evidence = u.cfg_lines_ev(
        facts.config, [r.location, *(s.directive for s in (read, connect) if s.directive)]
    )
    said = _Said(
        r,
        read,
        read_s,
        _setting_text("proxy_read_timeout", read, read_s),
        ping,
        f"pingInterval {u.human_seconds(ping)} ({ping_src})",
        [],
        [],
        evidence,
    )
    read_text, ping_text = said.read_text, said.ping_text
    if read_s is not None and read_s <= ping:
        said.problems.append(
            Problem(
                Status.FAIL,
                f"proxy_read_timeout {u.human_seconds(read_s)} is shorter than the server's ping",
                f"nginx closes a tunnel after {read_text} without traffic, but the server only pings every "
                f"{ping_text}: idle clients are dropped every {u.human_seconds(read_s)}.",
                said.read_edit(),
            )
        )
    elif read_s is not None and read_s < ping + MARGIN:
        said.problems.append(
            Problem(
                Status.WARN,
                f"proxy_read_timeout {u.human_seconds(read_s)} leaves little room over the ping",
                f"{read_text} is only {read_s - ping:.1f} s longer than {ping_text}: a ping delayed by the network "
                "drops the tunnel.",
                said.read_edit(),
            )
        )
    if connect_s is not None and connect_s > CONNECT_MAX:
        said.problems.append(
            Problem(
                Status.WARN,
                f"proxy_connect_timeout {u.human_seconds(connect_s)} is absurd",
                f"{_setting_text('proxy_connect_timeout', connect, connect_s)}: nginx documents it 'cannot usually "
                "exceed 75 seconds', and a huge value only delays failover to the next server when a backend is down; "
                f"keep it at a few seconds.",
                ("proxy_connect_timeout", connect.directive, CONNECT_SUGGESTED),
            )
        )
    if read_s is not None and read_s >= LONG_READ:
        said.notes.append(
            f"a read timeout of {u.human_seconds(read_s)} is harmless but keeps dead peers' sockets that long; "
            "Socket.IO's ping/pong already detects them"
        )
    return said


# --- live half: a held tunnel and the error log's drops ---------------------------------------------------


@dataclass
class _Seen:
    hold: HoldProbe | None
    drops: list[LogEvent]
    evidence: list[Evidence]


def _live(facts: Facts, place: Place) -> _Seen:
    hold = None if place.corrected else facts.hold  # the held tunnel used the client's request, not this one
    drops = u.logs_for(facts, ID, _DROPS)
    evidence = ([_hold_ev(hold)] if hold is not None else []) + (u.log_evidence(drops) if drops else [])
    return _Seen(hold, drops, evidence)


# --- the verdict ----------------------------------------------------------------------------------------


def _combine(facts: Facts, place: Place, said: _Said | None, seen: _Seen) -> Verdict:
    hold = seen.hold
    if said is None:
        why = place.why or ""
        if hold is not None and hold.closed:
            return Verdict(
                Status.FAIL,
                f"The tunnel dropped after {hold.held_for:.1f} s",
                f"A WebSocket held open through the proxy closed after {hold.held_for:.1f} s, "
                f"{_close_text(hold)}; the config would show which timeout closed it, but {why}.",
                [_hold_ev(hold)],
                Fix(summary="Give the nginx config (--nginx-conf/--ssh) to see which timeout closed it."),
            )
        return skip(u.unjudged(facts, why))

    live_fail, live_ok = _live_clauses(said, seen)
    problems, r = said.problems, said.route
    evidence = said.evidence + seen.evidence
    fix = _fix(facts, r, [p.edit for p in problems]) if problems else None
    if live_fail and not any(p.status is Status.FAIL for p in problems):
        summary = (
            f"{said.read_text} and {said.ping_text} should keep the tunnel alive, but {live_fail}."
            if not problems
            else f"{problems[0].sentence} And {live_fail}."
        )
        if (
            fix is None
            and said.read_s is not None
            and hold is not None
            and hold.closed
            and said.read_s <= hold.held_for + 1.5
        ):
            fix = _fix(facts, r, [said.read_edit()])
        return Verdict(
            Status.FAIL,
            "The tunnel is dropped",
            summary,
            evidence,
            fix
            or Fix(
                summary="Find what closes the tunnel: a load balancer in front of nginx with a shorter idle "
                "timeout (raise it above pingInterval), or the server itself (its logs at the drop time)."
            ),
        )
    if problems:
        main = worst(problems)
        summary = problems_text(problems)
        if not any(p.title.startswith("proxy_read_timeout") for p in problems) and said.read_s is not None:
            summary += f" {said.read_text} outlasts {said.ping_text}, so pings keep idle tunnels open."
        if live_fail:
            summary += f" Live: {live_fail}."
        elif live_ok:
            summary += f" Live: {live_ok}."
        if said.notes:
            summary += " Note: " + "; ".join(said.notes) + "."
        return Verdict(main.status, main.title, summary, evidence, fix)
    summary = f"{said.read_text} is longer than {said.ping_text}, so pings keep idle tunnels open"
    if live_ok:
        summary += f"; live: {live_ok}"
    if said.notes:
        summary += "; " + "; ".join(said.notes)
    return Verdict(Status.PASS, TITLE, summary + ".", evidence)


def _live_clauses(said: _Said, seen: _Seen) -> tuple[str | None, str | None]:
    """(what failed, what held) live, in words that compare a drop with the read timeout."""
    hold = seen.hold
    live_fail = live_ok = None
    if hold is not None:
        if hold.closed:
            read_s = said.read_s
            near = read_s is not None and abs(hold.held_for - read_s) <= max(1.5, 0.2 * read_s)
            live_fail = (
                f"a tunnel held through the proxy closed after {hold.held_for:.1f} s, {_close_text(hold)}"
                + (f", matching {said.read_text}" if near else "")
            )
            if not near:
                live_fail += (
                    f" — not nginx's {said.read_text}: look at a load balancer in front (cloud LBs idle out at "
                    "30–60 s) or at the server"
                )
        elif hold.error is None and hold.held_for > 0:
            live_ok = f"a tunnel held {hold.held_for:.0f} s stayed open ({hold.pings} pings answered)"
    if seen.drops and live_fail is None:
        live_fail = (
            f"the error log shows {u.plural(len(seen.drops), 'tunnel')} closed by a timeout while proxying"
        )
    return live_fail, live_ok


# --- helpers --------------------------------------------------------------------------------------------


def _seconds(setting: Setting) -> float | None:
    if not setting.value:
        return None
    return parse_duration(setting.value[0])


def _setting_text(name: str, setting: Setting, seconds: float | None) -> str:
    value = setting.value[0] if setting.value else "?"
    shown = value
    if seconds is not None and u.human_seconds(seconds).replace(" ", "") != value:
        shown = f"{value} ({u.human_seconds(seconds)})"
    if setting.directive is not None:
        return f"{name} {shown} at {setting.directive.where}"
    return f"{name} {shown} (nginx default)"


def _close_text(hold: HoldProbe) -> str:
    if hold.close_code is None:
        return "no close frame: the TCP connection was cut"
    return f"close frame {hold.close_code}" + (f" {hold.close_reason!r}" if hold.close_reason else "")


def _hold_ev(hold: HoldProbe) -> Evidence:
    lines = [
        f"held for {hold.held_for:.1f} s of {hold.requested:.0f} s requested",
        f"closed: {'yes' if hold.closed else 'no'}" + (f" ({_close_text(hold)})" if hold.closed else ""),
        f"server pings answered: {hold.pings}"
        + (f", pingInterval {hold.ping_interval / 1000:g} s" if hold.ping_interval else ""),
    ]
    if hold.error:
        lines.append(f"error: {hold.error}")
    return Evidence(kind="probe", where=f"hold {hold.where}", text="\n".join(lines))


def _fix(facts: Facts, r: Route, edits: list[tuple[str, Directive | None, str]]) -> Fix:
    """Each edit in the location: its own line replaced, else a new one after its last proxy_*timeout line."""
    loc = r.location
    assert loc is not None
    anchor = None
    for d in loc.block or ():
        if d.name.startswith("proxy_") and d.file == loc.file and d.name.endswith("timeout"):
            anchor = d
    if anchor is None:
        anchor = r.proxy_pass if r.proxy_pass is not None and r.proxy_pass.parent is loc else None

    def edit(p):
        for name, existing, value in edits:
            u.set_in_block(p, loc, name, value, existing, after=anchor)

    return Fix(
        summary=f"In {u.loc_label(loc)}: " + "; ".join(f"{name} {value}" for name, _d, value in edits) + ".",
        diff=u.diff_of(facts.config, edit),
    )


check = Flow(ID, TITLE, reading(READS), _config, _live, _combine)
