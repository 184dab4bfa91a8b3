"""`upstream` (runbook issue 502): does every server of the upstream answer an Engine.IO handshake?

A 502 means nginx could not get an answer from a backend. The config says which servers the Socket.IO
location reaches; the probes ask each one for a handshake at the URI nginx would send (from the proxy host
when ``--ssh``); the error log names the refusals (``connect() failed (111…)``, ``no live upstreams``).
Offline only the config can speak: an upstream with no usable server, or a proxy_pass to a name that is
neither an upstream block nor a resolvable host, fails without any probe.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from wsdoctor.checks import _util as u
from wsdoctor.checks._flow import Flow, Verdict, skip
from wsdoctor.checks._util import Place
from wsdoctor.facts import EXPRESS, OFFLINE, CommandResult, Fact, Facts, Handshake, LogEvent
from wsdoctor.nginx import effective
from wsdoctor.report import Evidence, Fix, Status
from wsdoctor.routes import proxied

if TYPE_CHECKING:
    from wsdoctor.nginx.routing import Route


ID = "upstream"
TITLE = "Backends answer"
NEEDS = (Fact.CONFIG, Fact.HANDSHAKE_BACKENDS, Fact.HANDSHAKE_PROXY, Fact.LOGS, Fact.COMMANDS)
READS = ("upstream", "server", "proxy_pass")


def _where(facts: Facts) -> Place:
    """The proxied location and its upstream; without one the probes of --backend still speak."""
    place = u.socketio_place(facts, READS, upstream=True)
    if place.route is not None and proxied(place.route):
        return place  # a refused statement in the upstream or proxy_pass makes it wait for syntax
    return Place(None)


# --- config half: failures the config alone proves -------------------------------------------------------


def _config(facts: Facts, place: Place) -> Verdict | None:
    """An upstream block without a usable server fails whatever the probes say."""
    r = place.route
    if r is None or r.proxy_pass is None or facts.config is None or r.upstream is None:
        return None  # a proxy_pass to a plain host name may resolve (/etc/hosts, Docker DNS): only probes can tell
    servers = r.upstream.children("server")
    usable = [s for s in servers if "down" not in s.args[1:] and "backup" not in s.args[1:]]
    if usable:
        return None
    what = "no server" if not servers else "only servers marked down/backup"
    return Verdict(
        Status.FAIL,
        f"Upstream {r.upstream_name} has {what}",
        f"{u.loc_label(r.location)} proxies to upstream {r.upstream_name} ({r.upstream.where}), which has "
        f"{what}: nginx answers 502 to every request.",
        u.cfg_lines_ev(facts.config, [r.upstream, *servers, r.proxy_pass]),
        Fix(
            summary=f"Give upstream {r.upstream_name} a usable server (`server HOST:PORT;`, without `down`)."
        ),
    )


# --- live half: each backend's handshake, the proxy's 5xx, the error log ------------------------------------


@dataclass
class _Seen:
    backends: dict[str, Handshake]
    failures: list[LogEvent]  # the error log's upstream failures
    proxy_5xx: Handshake | None  # the handshake through the proxy, when nginx answered 502/503/504


def _live(facts: Facts, place: Place) -> _Seen:
    proxy = u.proxy_handshake(facts)
    proxy_5xx = proxy if proxy is not None and proxy.exchange.status in (502, 503, 504) else None
    return _Seen(u.backend_handshakes(facts), u.logs_for(facts, ID), proxy_5xx)


# --- the verdict ----------------------------------------------------------------------------------------


def _combine(facts: Facts, place: Place, said: Verdict | None, seen: _Seen) -> Verdict:
    r = place.route
    if said is not None:
        return said
    if place.why:
        return skip(place.why)
    backends, logs, proxy = seen.backends, seen.failures, seen.proxy_5xx
    if not backends and not logs and proxy is None:
        return _unprobed(facts, r)

    # A backend that answers HTTP at all is up; a 404 there means nginx sends the wrong path (route's finding).
    cut = {k: h for k, h in backends.items() if not h.ok and _cut_by_ssh(h)}
    backends = {k: h for k, h in backends.items() if k not in cut}
    dead = {k: h for k, h in backends.items() if not h.ok and _unreachable(h)}
    wrong_path = {k: h for k, h in backends.items() if not h.ok and not _unreachable(h)}
    alive = {k: h for k, h in backends.items() if h.ok}
    not_sio = u.not_socketio(facts)
    if not_sio and not dead and proxy is None:
        n = len(wrong_path)
        return skip(
            f"{_all(n)} of {(r.upstream_name if r is not None else None) or 'the upstream'} "
            f"answer{'s' if n == 1 else ''}, but {not_sio}"
        )
    evidence: list[Evidence] = [u.probe_ev(h.exchange) for h in dead.values()]
    if proxy is not None:
        evidence.append(u.probe_ev(proxy.exchange))
    evidence += u.log_evidence(logs)
    evidence += _command_ev(
        facts, list(dead) or list(backends) or (r.upstream_servers if r is not None else [])
    )
    upstream_name = (r.upstream_name if r is not None else None) or "the upstream"
    cfg_ev = _upstream_ev(facts, r)

    if cut and not dead:
        return _not_judged(cut, alive, upstream_name, [u.probe_ev(h.exchange) for h in cut.values()] + cfg_ev)
    if dead:
        return _down(facts, r, dead, len(backends), alive, upstream_name, evidence + cfg_ev)
    if proxy is not None and wrong_path and not alive:
        h0 = next(iter(wrong_path.values()))
        n = len(wrong_path)
        return Verdict(
            Status.PASS,
            TITLE,
            f"{_all(n)} of {upstream_name} {'is' if n == 1 else 'are'} up, but answer "
            f"{u.status_line(h0.exchange)} at {_probe_path(wrong_path)}, the path nginx sends (see route); through "
            f"the proxy nginx answered {u.status_line(proxy.exchange)} because it took them out after failed "
            "requests there (max_fails 1, fail_timeout 10 s by default"
            + (
                "; Node drops a WebSocket upgrade at a path it does not serve after 1 s without a byte, which "
                "nginx counts as a failure)."
                if h0.exchange.answered_by == EXPRESS
                else ")."
            ),
            [u.probe_ev(h0.exchange), u.probe_ev(proxy.exchange), *u.log_evidence(logs), *cfg_ev],
            lead=False,
        )
    if proxy is not None:
        return Verdict(
            Status.FAIL,
            f"The proxy answers {proxy.exchange.status}",
            f"Through the proxy the handshake got {u.status_line(proxy.exchange)} although "
            f"{u.plural(len(alive), 'backend')} answer directly: nginx cannot reach them from where it runs; "
            "check the addresses and firewalls, or probe them from the proxy host with --ssh.",
            evidence + cfg_ev,
            Fix(summary="Compare the upstream's server addresses with where the backends listen (ss -ltnp)."),
            lead=False,
        )
    if wrong_path:
        h0 = next(iter(wrong_path.values()))
        path = _probe_path(wrong_path)
        up_count = len(wrong_path) + len(alive)
        return Verdict(
            Status.PASS,
            TITLE,
            f"{_all(up_count)} of {upstream_name} {'is' if up_count == 1 else 'are'} up, but {len(wrong_path)} "
            f"answer{'s' if len(wrong_path) == 1 else ''} "
            f"{u.status_line(h0.exchange)} at {path}, the path nginx sends: no 502 here, the path is wrong "
            "(see route).",
            [u.probe_ev(h0.exchange), *cfg_ev],
            lead=False,
        )
    if logs and not alive:
        why = (
            OFFLINE if u.offline(facts) else (facts.unavailable.get(Fact.HANDSHAKE_BACKENDS) or "not probed")
        )
        return Verdict(
            Status.WARN,
            "The error log shows upstream failures",
            f"The backends were not probed: {why}; the error log has {u.plural(len(logs), 'upstream failure')}, "
            f"the last: {logs[-1].text.strip()[:160]}",
            evidence + cfg_ev,
            Fix(summary="Probe the backends (drop --offline) and look for restarts at the times logged."),
            lead=False,
        )
    if logs:
        return Verdict(
            Status.WARN,
            "Backends answer now, but the error log shows failures",
            f"{_all(len(alive), 'backend')} answer{'s' if len(alive) == 1 else ''} the handshake now, but the error "
            f"log has {u.plural(len(logs), 'upstream failure')}, the last: {logs[-1].text.strip()[:160]}",
            evidence + cfg_ev,
            Fix(summary="Look for backend restarts or crashes at the times logged (pm2 logs / journalctl)."),
            lead=False,
        )
    slow = {k: h for k, h in alive.items() if h.exchange.elapsed >= _slow_after(facts)}
    if slow:
        names = ", ".join(f"{_short(k)} ({h.exchange.elapsed:.1f} s)" for k, h in slow.items())
        return Verdict(
            Status.WARN,
            f"Slow backend{'s' if len(slow) > 1 else ''}: {', '.join(_short(k) for k in slow)}",
            f"{len(slow)} of {len(backends)} servers of {upstream_name} answer the Engine.IO handshake, but slowly: "
            f"{names}, where a handshake takes milliseconds: the process is overloaded or blocked (a busy event "
            "loop delays every client's pings and polls too).",
            [u.probe_ev(h.exchange) for h in slow.values()] + cfg_ev,
            Fix(
                summary="Look at the slow backend's CPU and event-loop lag (`top -p PID`, its own metrics) and what "
                "it was doing at this time in its logs."
            ),
            lead=False,
        )
    ping = next((h.ping_interval for h in alive.values() if h.ping_interval), None)
    uri = _probe_path(alive)
    return Verdict(
        Status.PASS,
        TITLE,
        f"{_all(len(alive))} of {upstream_name} answer{'s' if len(alive) == 1 else ''} the Engine.IO handshake"
        + (f" at {uri}" if uri else "")
        + (f", pingInterval {ping / 1000:g} s" if ping else "")
        + ".",
        [u.probe_ev(h.exchange) for h in list(alive.values())[:1]] + cfg_ev,
    )


def _unprobed(facts: Facts, r: Route | None) -> Verdict:
    """No backend handshake, no failure logged, no 5xx through the proxy: why nothing could be said."""
    if u.offline(facts):
        return skip(f"{OFFLINE}; {_servers_text(r)}".rstrip("; "))
    why = facts.unavailable.get(Fact.HANDSHAKE_BACKENDS)
    dead = u.endpoint_down(facts)
    if why:
        return skip(f"{dead}; {why}" if dead else why)
    if r is None and not facts.target.backends:
        why = u.config_missing(facts) or u.client_missing(facts) or "no backend to probe (use --backend)"
        return skip(f"{dead}; {why}" if dead else why)
    return skip(f"{dead}; no backend handshake was measured" if dead else "no backend handshake was measured")


def _down(
    facts: Facts,
    r: Route | None,
    dead: dict[str, Handshake],
    probed: int,
    alive: dict[str, Handshake],
    upstream_name: str,
    evidence: list[Evidence],
) -> Verdict:
    """Backends that give no handshake: which, what exactly happened (refused, hung, reset, …), what to do."""
    order = [_short(x) for x in (r.upstream_servers if r is not None else [])]
    dead = dict(
        sorted(dead.items(), key=lambda kv: order.index(_short(kv[0])) if _short(kv[0]) in order else 99)
    )
    failures = {_short(k): _failure(facts, _short(k), h) for k, h in dead.items()}
    names = ", ".join(failures)
    texts = {k: f.text for k, f in failures.items()}
    if len(set(texts.values())) == 1:
        reasons = f"{names}: {next(iter(texts.values()))}"
    else:
        reasons = "; ".join(f"{k}: {w}" for k, w in texts.items())
    kinds = {f.kind for f in failures.values()}
    n = len(dead)
    if alive:
        summary = (
            f"{n} of {probed} servers of {upstream_name} {'fails' if n == 1 else 'fail'} the Engine.IO handshake, "
            f"{reasons}. " + _failover_text(facts, r, n, hung=kinds == {"hung"})
        )
    else:
        summary = (
            f"No server of {upstream_name} answers the Engine.IO handshake, {reasons}: nginx answers "
            + ("504 once proxy_read_timeout runs out." if kinds == {"hung"} else "502.")
        )
    title_word = {
        "refused": "down",
        "hung": "not answering (hung)",
        "reset": "resetting connections",
        "unreachable": "unreachable",
    }.get(next(iter(kinds)) if len(kinds) == 1 else "", "failing")
    plural = "s" if n > 1 else ""
    return Verdict(
        Status.FAIL,
        f"Backend{plural} {title_word}: {names}",
        summary,
        evidence,
        Fix(
            summary=" ".join(
                dict.fromkeys(
                    _FIXES[f.kind].format(it="them" if n > 1 else "it", names=names)
                    for f in failures.values()
                )
            )
        ),
        lead=False,
    )


@dataclass
class _Failure:
    kind: str  # "refused", "hung", "reset", "unreachable", "gateway", "other"
    text: str  # what happened, in words that agree with the evidence shown


_FIXES = {
    "refused": "Start the backend process on {names} (e.g. `pm2 restart …` / `systemctl start …`) or take {it} "
    "out of the upstream; its own log says why it stopped.",
    "hung": "The process on {names} is stuck, not gone: look at its state (`ps -o pid,stat,pcpu,cmd -p PID`: T = stopped, "
    "resume it with `kill -CONT PID`; R at 100 % CPU = a busy loop; S = blocked on something) and its log, then "
    "restart it if it does not recover.",
    "reset": "Something accepts the connection and drops it: look at the backend's log for errors at this time, "
    "and at any firewall or local proxy in between.",
    "unreachable": "Check the route from the proxy host to the backend (address, firewall, the host itself).",
    "gateway": "Something between nginx and the backend answers for it: find what listens on that address.",
    "other": "Check the backend process and its log.",
}


def _failure(facts: Facts, server: str, h: Handshake) -> _Failure:
    """What exactly happened to a backend's handshake, worded so that it agrees with `ss` when it ran."""
    ex = h.exchange
    listening = _listening(facts, server)
    if ex.status is not None:
        return _Failure("gateway", h.error or u.status_line(ex))
    err = (ex.error or h.error or "no answer").strip()
    low = err.lower()
    if _not_listening(facts, server):
        return _Failure("refused", "nothing listens on that port, says `ss -ltnp` on the proxy host")
    if "refused" in low:
        if listening is not None:
            return _Failure(
                "refused",
                "connection refused, though `ss -ltnp` showed the port listening when it ran: the process "
                "stopped in between (or restarts in a loop)",
            )
        return _Failure("refused", "connection refused, nothing listens there")
    if ("timed out" in low or "timeout" in low) and ex.stage in ("request", "response", "body"):
        text = f"it accepts the connection but did not answer within {_timeout(facts):g} s (hung)"
        if listening is not None and listening > 0:
            text += (
                f"; `ss -ltnp` shows its port listening with {u.plural(listening, 'connection')} waiting in the "
                "accept queue: the process is not accepting (stopped or blocked)"
            )
        elif listening is not None:
            text += "; `ss -ltnp` shows its port listening"
        return _Failure("hung", text)
    if "timed out" in low or "timeout" in low:
        return _Failure(
            "unreachable",
            f"the TCP connection was not answered within {_timeout(facts):g} s (a firewall drops it, or the host is "
            "down)",
        )
    if "reset" in low or "closed the connection without answering" in low:
        return _Failure("reset", "it accepts the connection and closes it without an answer (reset)")
    if "could not connect" in low or "cannot reach" in low or "connect failed" in low:
        return _Failure("unreachable", "the proxy host cannot connect to it (down or unreachable from there)")
    if "resolve" in low or "name or service" in low:
        return _Failure("unreachable", "the name does not resolve")
    return _Failure("other", u.short_error(err, 120).rstrip("."))


def _timeout(facts: Facts) -> float:
    return float(getattr(facts.target, "timeout", None) or 5.0)


def _slow_after(facts: Facts) -> float:
    """A handshake this slow (seconds) is worth a warning: loopback and LAN answer in milliseconds."""
    return max(1.0, 0.4 * _timeout(facts))


def _listening(facts: Facts, server: str) -> int | None:
    """The accept-queue length (Recv-Q) of SERVER's listening socket in `ss -ltnp`, None when `ss` did not
    show it listening (or did not run)."""
    port = server.rsplit(":", 1)[-1]
    ss = next((cr for name, cr in facts.commands.items() if name.split()[:1] == ["ss"]), None)
    if ss is None or not port.isdigit():
        return None
    for line in ss.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[0] == "LISTEN" and fields[3].rsplit(":", 1)[-1] == port:
            return int(fields[1]) if fields[1].isdigit() else 0
    return None


# --- helpers --------------------------------------------------------------------------------------------


def _cut_by_ssh(h: Handshake) -> bool:
    """The backend's probe was cut by the SSH connection's drop (its tunnel), not by the backend."""
    return h.exchange.status is None and "ssh connection" in (h.exchange.error or "").lower()


def _not_judged(
    cut: dict[str, Handshake], alive: dict[str, Handshake], upstream: str, ev: list[Evidence]
) -> Verdict:
    names = ", ".join(_short(k) for k in cut)
    why = next(iter(cut.values())).exchange.error or "the SSH connection dropped"
    answered = f"; {u.plural(len(alive), 'other backend')} of {upstream} answered before it" if alive else ""
    return Verdict(
        Status.WARN,
        f"{names}: not judged (the SSH connection dropped)",
        f"{why[:1].upper() + why[1:]} to {names}, so nothing is known about {'it' if len(cut) == 1 else 'them'}{answered}.",
        ev,
        Fix(
            summary="Re-run once the SSH connection to the proxy host holds (check the network or the host's "
            "sshd, e.g. its MaxStartups/ClientAlive settings)."
        ),
        lead=False,
    )


def _unreachable(h: Handshake) -> bool:
    """No HTTP answer at all (refused, timed out, reset) or a gateway error from something in between."""
    status = h.exchange.status
    return status is None or status in (502, 503, 504)


def _short(key: str) -> str:
    return key.split("://", 1)[-1].rstrip("/")


def _not_listening(facts: Facts, server: str) -> bool:
    """`ss -ltnp` on the proxy host says nothing listens on SERVER's port (the gatherer's own line)."""
    port = server.rsplit(":", 1)[-1]
    ss = next((cr for name, cr in facts.commands.items() if name.split()[:1] == ["ss"]), None)
    if ss is None or not port.isdigit():
        return False
    m = re.search(r"nothing listens on port ([^\n]*)", ss.stdout)
    return bool(m and re.search(rf"(?<![\d.]){port}(?!\d)", m.group(1)))


def _all(n: int, word: str = "server") -> str:
    """The subject of a count: "All 3 servers", "The only server"."""
    return f"All {n} {word}s" if n != 1 else f"The only {word}"


def _failover_text(facts: Facts, r: Route | None, n_dead: int, hung: bool = False) -> str:
    """What one dead backend among live ones costs, as nginx really behaves.

    nginx fails over (``proxy_next_upstream error timeout``, the default), so new requests still reach a live
    server; what is lost is the state on the dead one: its polling sessions and WebSocket tunnels, and with
    ip_hash/hash its clients are re-mapped to other servers, where they reconnect without their in-memory state.
    """
    it = "it" if n_dead == 1 else "them"
    on = "the dead backend" if n_dead == 1 else "the dead backends"
    nxt = None
    if r is not None and r.location is not None:
        block = r.config_block or r.location
        nxt = effective.scalar(block, "proxy_next_upstream", facts.nginx_version)
    values = [v.lower() for v in (nxt.value if nxt is not None and nxt.value else ["error", "timeout"])]
    where = f" at {nxt.directive.where}" if nxt is not None and nxt.directive is not None else ", the default"
    if "off" in values or not ({"error", "timeout"} & set(values)):
        return (
            f"proxy_next_upstream {' '.join(values)}{where} does not fail over on a refused connection, so "
            f"requests sent to {it} get 502."
        )
    method = None
    if r is not None and r.upstream is not None:
        method = next(
            (d.name for d in r.upstream.block or () if d.name in ("ip_hash", "hash", "sticky")), None
        )
    text = (
        f"nginx fails over to the others, proxy_next_upstream {' '.join(values)}{where}, so clients still "
        f"connect; but the polling sessions and WebSocket tunnels on {on} are lost"
    )
    if hung:
        text = (
            f"nginx fails over to the others once a request to {it} times out (proxy_read_timeout), "
            f"proxy_next_upstream {' '.join(values)}{where}, so clients connect late; the polling sessions and "
            f"WebSocket tunnels on {on} are stuck"
        )
    if method in ("ip_hash", "hash"):
        text += (
            f", and {method} re-maps the clients of {on} to other servers: they reconnect and lose any "
            "in-memory state"
        )
    else:
        text += ": those clients reconnect and lose any in-memory state"
    return text + "."


def _command_ev(facts: Facts, servers: list[str]) -> list[Evidence]:
    """pm2/systemctl output as is; ``ss -ltnp`` only for what it says about the servers' ports, else nothing.

    The listening-socket list of a shared host says nothing about this upstream; a line for a dead server's port
    (something listens on another address, or a process holds it without answering) or the gatherer's
    "nothing listens on port …" line does.
    """
    ports = {s.rsplit(":", 1)[-1] for s in (_short(x) for x in servers) if ":" in s}
    ports = {p for p in ports if p.isdigit()}
    out: list[Evidence] = []
    for name, cr in facts.commands.items():
        word = name.split()[0] if name.split() else ""
        if word in ("pm2", "systemctl"):
            out.append(u.cmd_ev(cr))
        elif word == "ss" and ports and cr.stdout:
            lines = cr.stdout.splitlines()
            head = lines[:1] if lines and lines[0].split()[:1] in (["State"], ["Netid"]) else []
            mention = re.compile(r"(?<![\d.])(?:" + "|".join(sorted(ports)) + r")(?!\d)")
            hits = []
            for ln in lines[len(head) :]:
                fields = ln.split()
                local = fields[3] if len(fields) > 4 and not ln.startswith("(") else ""
                if (local and local.rsplit(":", 1)[-1] in ports) or (
                    ln.startswith("(") and mention.search(ln)
                ):
                    hits.append(ln)
            if hits:
                out.append(u.cmd_ev(CommandResult(cr.argv, cr.host, cr.exit_status, "\n".join(head + hits))))
    return out


def _probe_path(hs: dict) -> str:
    for h in hs.values():
        return urlsplit(h.exchange.url).path
    return ""


def _servers_text(r: Route | None) -> str:
    if r is None or not r.upstream_servers:
        return ""
    return f"upstream {r.upstream_name}: {', '.join(r.upstream_servers)}"


def _upstream_ev(facts: Facts, r: Route | None) -> list[Evidence]:
    if facts.config is None or r is None:
        return []
    if r.upstream is not None:
        return u.cfg_lines_ev(facts.config, [r.upstream, *r.upstream.children("server")])
    if r.proxy_pass is not None:
        return u.cfg_lines_ev(facts.config, [r.proxy_pass])
    return []


check = Flow(ID, TITLE, _where, _config, _live, _combine)
