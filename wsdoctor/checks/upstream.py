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
from wsdoctor.facts import OFFLINE, CommandResult, Fact, Facts, Handshake, LogEvent
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
    dead = {k: h for k, h in backends.items() if not h.ok and _unreachable(h)}
    wrong_path = {k: h for k, h in backends.items() if not h.ok and not _unreachable(h)}
    alive = {k: h for k, h in backends.items() if h.ok}
    evidence: list[Evidence] = [u.probe_ev(h.exchange) for h in dead.values()]
    if proxy is not None:
        evidence.append(u.probe_ev(proxy.exchange))
    evidence += u.log_evidence(logs)
    evidence += _command_ev(
        facts, list(dead) or list(backends) or (r.upstream_servers if r is not None else [])
    )
    upstream_name = (r.upstream_name if r is not None else None) or "the upstream"
    cfg_ev = _upstream_ev(facts, r)

    if dead:
        return _down(facts, r, dead, len(backends), alive, upstream_name, evidence + cfg_ev)
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
    """Backends that give no handshake: which, why, and what the others' failover saves."""
    order = [_short(x) for x in (r.upstream_servers if r is not None else [])]
    dead = dict(
        sorted(dead.items(), key=lambda kv: order.index(_short(kv[0])) if _short(kv[0]) in order else 99)
    )
    names = ", ".join(_short(k) for k in dead)
    reasons_by = {_short(k): _why(h, _not_listening(facts, _short(k))) for k, h in dead.items()}
    if len(set(reasons_by.values())) == 1:
        reasons = f"{names}: {next(iter(reasons_by.values()))}"
    else:
        reasons = "; ".join(f"{k}: {w}" for k, w in reasons_by.items())
    if alive:
        summary = (
            f"{len(dead)} of {probed} servers of {upstream_name} "
            f"{'fails' if len(dead) == 1 else 'fail'} the Engine.IO handshake, {reasons}. "
            + _failover_text(facts, r, len(dead))
        )
    else:
        summary = (
            f"No server of {upstream_name} answers the Engine.IO handshake, {reasons}: nginx answers 502."
        )
    return Verdict(
        Status.FAIL,
        f"Backend{'s' if len(dead) > 1 else ''} down: {names}",
        summary,
        evidence,
        Fix(
            summary=f"Start the backend process{'es' if len(dead) > 1 else ''} on {names} (e.g. `pm2 restart …` / "
            "`systemctl start …`) or take "
            + ("them" if len(dead) > 1 else "it")
            + f" out of the upstream; check {'their' if len(dead) > 1 else 'its'} own logs for the crash."
        ),
        lead=False,
    )


# --- helpers --------------------------------------------------------------------------------------------


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


def _why(h: Handshake, not_listening: bool = False) -> str:
    """Why a backend gave no handshake, short: the probe's error names the address already (the summary too)."""
    if not_listening:
        return "nothing listens on that port, says `ss -ltnp` on the proxy host"
    ex = h.exchange
    if ex.status is not None:
        return h.error or u.status_line(ex)
    err = (ex.error or h.error or "no answer").strip()
    low = err.lower()
    if "refused" in low:
        return "connection refused, nothing listens there"
    if "timed out" in low or "timeout" in low:
        return "no answer, the connection timed out"
    if "could not connect" in low or "cannot reach" in low or "connect failed" in low:
        return "the proxy host cannot connect, the backend is down or unreachable from there"
    if "resolve" in low or "name or service" in low:
        return "the name does not resolve"
    return u.short_error(err, 120).rstrip(".")


def _all(n: int, word: str = "server") -> str:
    """The subject of a count: "All 3 servers", "The only server"."""
    return f"All {n} {word}s" if n != 1 else f"The only {word}"


def _failover_text(facts: Facts, r: Route | None, n_dead: int) -> str:
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
