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

from typing import TYPE_CHECKING

from wsdoctor.checks import _util as u
from wsdoctor.facts import Facts, HoldProbe
from wsdoctor.report import Evidence, Finding, Fix, Status

if TYPE_CHECKING:
    from wsdoctor.nginx.effective import Setting
    from wsdoctor.nginx.routing import Route


ID = "timeout"
TITLE = "Proxy timeouts vs pingInterval"
NEEDS = ("config", "handshake:proxy", "handshake:backends", "hold", "logs")

CONNECT_MAX = 75.0  # nginx: "cannot usually exceed 75 seconds"
CONNECT_SUGGESTED = "5s"
LONG_READ = 3600.0  # above this a read timeout only keeps dead peers' sockets around
MARGIN = 5.0  # seconds of slack a ping needs over the network


def check(facts: Facts) -> Finding:
    place = u.socketio_place(facts, ("proxy_read_timeout", "proxy_send_timeout", "proxy_connect_timeout"))
    r, why = place.route, place.why
    hold = None if place.corrected else facts.hold  # the held tunnel used the client's request, not this one
    # Idle tunnels closed by nginx's timer; "recv() failed … while proxying upgraded connection" is a peer reset.
    logs = u.logs_for(facts, ID, ("upgraded-timeout", "101-idle-timeout"))
    if why:
        if hold is not None and hold.closed:
            return u.finding(
                ID,
                Status.FAIL,
                f"The tunnel dropped after {hold.held_for:.1f} s",
                f"A WebSocket held open through the proxy closed after {hold.held_for:.1f} s, "
                f"{_close_text(hold)}; the config would show which timeout closed it, but {why}.",
                [_hold_ev(hold)],
                Fix(summary="Give the nginx config (--nginx-conf/--ssh) to see which timeout closed it."),
            )
        dead = u.endpoint_down(facts)
        return u.skip(ID, TITLE, f"{dead}; {why}" if dead and facts.config is None else why)
    assert r is not None and facts.config is not None
    from wsdoctor.nginx import effective

    config = facts.config
    loc = r.config_block if getattr(r, "config_block", None) is not None else r.location
    version = facts.nginx_version
    ping, ping_src = u.ping_interval(facts)
    read = effective.scalar(loc, "proxy_read_timeout", version)
    connect = effective.scalar(loc, "proxy_connect_timeout", version)
    read_s = _seconds(read)
    connect_s = _seconds(connect)
    evidence = u.cfg_lines_ev(config, [r.location, *(s.directive for s in (read, connect) if s.directive)])
    ping_text = f"pingInterval {u.human_seconds(ping)} ({ping_src})"
    read_text = _setting_text("proxy_read_timeout", read, read_s)

    problems: list[tuple[Status, str, str]] = []  # (status, title, sentence)
    edits: list[tuple[str, object, str]] = []  # (directive name, existing directive or None, new value)

    if read_s is not None and read_s <= ping:
        problems.append(
            (
                Status.FAIL,
                f"proxy_read_timeout {u.human_seconds(read_s)} is shorter than the server's ping",
                f"nginx closes a tunnel after {read_text} without traffic, but the server only pings every "
                f"{ping_text}: idle clients are dropped every {u.human_seconds(read_s)}.",
            )
        )
        edits.append(("proxy_read_timeout", read.directive, u.nginx_duration(max(60.0, 2 * ping))))
    elif read_s is not None and read_s < ping + MARGIN:
        problems.append(
            (
                Status.WARN,
                f"proxy_read_timeout {u.human_seconds(read_s)} leaves little room over the ping",
                f"{read_text} is only {read_s - ping:.1f} s longer than {ping_text}: a ping delayed by the network "
                "drops the tunnel.",
            )
        )
        edits.append(("proxy_read_timeout", read.directive, u.nginx_duration(max(60.0, 2 * ping))))

    if connect_s is not None and connect_s > CONNECT_MAX:
        problems.append(
            (
                Status.WARN,
                f"proxy_connect_timeout {u.human_seconds(connect_s)} is absurd",
                f"{_setting_text('proxy_connect_timeout', connect, connect_s)}: nginx documents it 'cannot usually "
                "exceed 75 seconds', and a huge value only delays failover to the next server when a backend is down; "
                f"keep it at a few seconds.",
            )
        )
        edits.append(("proxy_connect_timeout", connect.directive, CONNECT_SUGGESTED))

    # Live: a held tunnel and the error log.
    live_ev: list[Evidence] = []
    live_fail: str | None = None
    live_ok: str | None = None
    if hold is not None:
        live_ev.append(_hold_ev(hold))
        if hold.closed:
            near = read_s is not None and abs(hold.held_for - read_s) <= max(1.5, 0.2 * read_s)
            live_fail = (
                f"a tunnel held through the proxy closed after {hold.held_for:.1f} s, {_close_text(hold)}"
                + (f", matching {read_text}" if near else "")
            )
            if not near:
                live_fail += (
                    f" — not nginx's {read_text}: look at a load balancer in front (cloud LBs idle out at "
                    "30–60 s) or at the server"
                )
        elif hold.error is None and hold.held_for > 0:
            live_ok = f"a tunnel held {hold.held_for:.0f} s stayed open ({hold.pings} pings answered)"
    if logs:
        live_ev += u.log_evidence(logs)
        if live_fail is None:
            live_fail = (
                f"the error log shows {u.plural(len(logs), 'tunnel')} closed by a timeout while proxying"
            )

    notes: list[str] = []
    if read_s is not None and read_s >= LONG_READ:
        notes.append(
            f"a read timeout of {u.human_seconds(read_s)} is harmless but keeps dead peers' sockets that long; "
            "Socket.IO's ping/pong already detects them"
        )

    fix = _fix(facts, r, edits) if edits else None
    if live_fail and not any(p[0] is Status.FAIL for p in problems):
        title = "The tunnel is dropped"
        summary = place.say(
            f"{read_text} and {ping_text} should keep the tunnel alive, but {live_fail}."
            if not problems
            else f"{problems[0][2]} And {live_fail}."
        )
        if (
            fix is None
            and read_s is not None
            and hold is not None
            and hold.closed
            and read_s <= hold.held_for + 1.5
        ):
            fix = _fix(
                facts, r, [("proxy_read_timeout", read.directive, u.nginx_duration(max(60.0, 2 * ping)))]
            )
        return u.finding(
            ID,
            Status.FAIL,
            title,
            summary,
            evidence + live_ev,
            fix
            or Fix(
                summary="Find what closes the tunnel: a load balancer in front of nginx with a shorter idle "
                "timeout (raise it above pingInterval), or the server itself (its logs at the drop time)."
            ),
        )
    if problems:
        worst = Status.FAIL if any(p[0] is Status.FAIL for p in problems) else Status.WARN
        main = next(p for p in problems if p[0] is worst)
        others = [p[2] for p in problems if p is not main]
        summary = place.say(main[2]) + (f" Also: {' '.join(others)}" if others else "")
        if not any(p[1].startswith("proxy_read_timeout") for p in problems) and read_s is not None:
            summary += f" {read_text} outlasts {ping_text}, so pings keep idle tunnels open."
        if live_fail:
            summary += f" Live: {live_fail}."
        elif live_ok:
            summary += f" Live: {live_ok}."
        if notes:
            summary += " Note: " + "; ".join(notes) + "."
        return u.finding(ID, worst, main[1], summary, evidence + live_ev, fix)
    summary = place.say(f"{read_text} is longer than {ping_text}, so pings keep idle tunnels open")
    if live_ok:
        summary += f"; live: {live_ok}"
    if notes:
        summary += "; " + "; ".join(notes)
    return u.finding(ID, Status.PASS, TITLE, summary + ".", evidence + live_ev)


def _seconds(setting: Setting) -> float | None:
    from wsdoctor.nginx.effective import parse_duration

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


def _fix(facts: Facts, r: Route, edits: list[tuple[str, object, str]]) -> Fix:
    from wsdoctor.nginx.patch import Patch

    config = facts.config
    loc = r.location
    p = Patch(config)
    parts = []
    try:
        anchor = None
        for d in loc.block or ():
            if d.name.startswith("proxy_") and d.file == loc.file and d.name.endswith("timeout"):
                anchor = d
        if anchor is None:
            anchor = r.proxy_pass if r.proxy_pass is not None and r.proxy_pass.parent is loc else None
        for name, existing, value in edits:
            if existing is not None and existing.parent is loc:
                p.replace_statement(existing, f"{name} {value};")
            else:
                p.insert_in_block(loc, [f"{name} {value};"], after=anchor)
            parts.append(f"{name} {value}")
        diff = p.diff()
    except (ValueError, KeyError, IndexError):
        diff = ""
    return Fix(summary=f"In {u.loc_label(loc)}: " + "; ".join(parts) + ".", diff=diff)
