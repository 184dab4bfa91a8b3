"""`upstream` (runbook issue 502): does every server of the upstream answer an Engine.IO handshake?

A 502 means nginx could not get an answer from a backend. The config says which servers the Socket.IO
location reaches; the probes ask each one for a handshake at the URI nginx would send (from the proxy host
when ``--ssh``); the error log names the refusals (``connect() failed (111…)``, ``no live upstreams``).
Offline only the config can speak: an upstream with no usable server, or a proxy_pass to a name that is
neither an upstream block nor a resolvable host, fails without any probe.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wsdoctor.checks import _util as u
from wsdoctor.facts import Facts, Handshake
from wsdoctor.report import Evidence, Finding, Fix, Status

if TYPE_CHECKING:
    from wsdoctor.nginx.routing import Route


ID = "upstream"
TITLE = "Backends answer"
NEEDS = ("config", "handshake:backends", "handshake:proxy", "logs", "commands")


def check(facts: Facts) -> Finding:
    r = u.route_of(facts) if facts.config is not None and facts.client is not None else None
    static = _config_decides(facts, r)
    if static is not None:
        return static

    backends = u.backend_handshakes(facts)
    logs = u.logs_for(facts, ID)
    proxy = u.proxy_handshake(facts)
    proxy_5xx = proxy is not None and proxy.exchange.status in (502, 503, 504)
    if not backends and not logs and not proxy_5xx:
        if u.offline(facts):
            return u.skip(ID, TITLE, f"{u.OFFLINE}; {_servers_text(r)}".rstrip("; "))
        why = facts.unavailable.get("handshake:backends")
        if why:
            return u.skip(ID, TITLE, why)
        if r is None and not facts.target.backends:
            return u.skip(
                ID,
                TITLE,
                u.config_missing(facts) or u.client_missing(facts) or "no backend to probe (use --backend)",
            )
        return u.skip(ID, TITLE, "no backend handshake was measured")

    # A backend that answers HTTP at all is up; a 404 there means nginx sends the wrong path (route's finding).
    dead = {k: h for k, h in backends.items() if not h.ok and _unreachable(h)}
    wrong_path = {k: h for k, h in backends.items() if not h.ok and not _unreachable(h)}
    alive = {k: h for k, h in backends.items() if h.ok}
    evidence: list[Evidence] = []
    for h in dead.values():
        evidence.append(u.probe_ev(h.exchange))
    if proxy_5xx:
        assert proxy is not None
        evidence.append(u.probe_ev(proxy.exchange))
    evidence += u.log_evidence(logs)
    evidence += [
        u.cmd_ev(cr) for name, cr in facts.commands.items() if name.split()[0] in ("ss", "pm2", "systemctl")
    ]
    upstream_name = (r.upstream_name if r is not None else None) or "the upstream"
    cfg_ev = _upstream_ev(facts, r)

    if dead:
        names = ", ".join(_short(k) for k in dead)
        generic = {_why(h).replace(_short(k), "each") for k, h in dead.items()}
        if len(dead) > 1 and len(generic) == 1:
            reasons = f"{names}: {generic.pop()}"
        else:
            reasons = "; ".join(f"{_short(k)}: {_why(h)}" for k, h in dead.items())
        if alive:
            summary = (
                f"{len(dead)} of {len(backends)} servers of {upstream_name} fail the Engine.IO handshake ({reasons}); "
                "nginx retries the others, but clients pinned to a dead one (ip_hash/hash) get 502."
            )
            status = Status.FAIL
        else:
            summary = f"No server of {upstream_name} answers the Engine.IO handshake ({reasons}): nginx answers 502."
            status = Status.FAIL
        return u.finding(
            ID,
            status,
            f"Backend{'s' if len(dead) > 1 else ''} down: {names}",
            summary,
            evidence + cfg_ev,
            Fix(
                summary=f"Start the backend process(es) on {names} (e.g. `pm2 restart …` / `systemctl start …`) "
                "or take them out of the upstream; check their own logs for the crash."
            ),
        )
    if proxy_5xx:
        assert proxy is not None
        return u.finding(
            ID,
            Status.FAIL,
            f"The proxy answers {proxy.exchange.status}",
            f"Through the proxy the handshake got {u.status_line(proxy.exchange)} although "
            f"{len(alive)} backend(s) answer directly: nginx cannot reach them from where it runs "
            "(addresses, firewall, or probe them from the proxy host with --ssh).",
            evidence + cfg_ev,
            Fix(summary="Compare the upstream's server addresses with where the backends listen (ss -ltnp)."),
        )
    if wrong_path:
        h0 = next(iter(wrong_path.values()))
        path = _probe_path(wrong_path)
        up_count = len(wrong_path) + len(alive)
        return u.finding(
            ID,
            Status.PASS,
            TITLE,
            f"All {up_count} server(s) of {upstream_name} are up, but {len(wrong_path)} answer "
            f"{u.status_line(h0.exchange)} at {path}, the path nginx sends: no 502 here, the path is wrong "
            "(see route).",
            [u.probe_ev(h0.exchange), *cfg_ev],
        )
    if logs and not alive:
        why = u.OFFLINE if u.offline(facts) else (facts.unavailable.get("handshake:backends") or "not probed")
        return u.finding(
            ID,
            Status.WARN,
            "The error log shows upstream failures",
            f"The backends were not probed ({why}), and the error log has {len(logs)} upstream failure(s), "
            f"the last: {logs[-1].text.strip()[:160]}",
            evidence + cfg_ev,
            Fix(summary="Probe the backends (drop --offline) and look for restarts at the times logged."),
        )
    if logs:
        return u.finding(
            ID,
            Status.WARN,
            "Backends answer now, but the error log shows failures",
            f"All {len(alive)} backends answer the handshake now, but the error log has {len(logs)} upstream "
            f"failure(s), the last: {logs[-1].text.strip()[:160]}",
            evidence + cfg_ev,
            Fix(summary="Look for backend restarts or crashes at the times logged (pm2 logs / journalctl)."),
        )
    ping = next((h.ping_interval for h in alive.values() if h.ping_interval), None)
    uri = _probe_path(alive)
    return u.finding(
        ID,
        Status.PASS,
        TITLE,
        f"All {len(alive)} server(s) of {upstream_name} answer the Engine.IO handshake"
        + (f" at {uri}" if uri else "")
        + (f" (pingInterval {ping / 1000:g} s)" if ping else "")
        + ".",
        [u.probe_ev(h.exchange) for h in list(alive.values())[:1]] + cfg_ev,
    )


def _unreachable(h: Handshake) -> bool:
    """No HTTP answer at all (refused, timed out, reset) or a gateway error from something in between."""
    status = h.exchange.status
    return status is None or status in (502, 503, 504)


def _short(key: str) -> str:
    return key.split("://", 1)[-1].rstrip("/")


def _why(h: Handshake) -> str:
    ex = h.exchange
    if ex.status is None:
        return ex.error or h.error or "no answer"
    return h.error or u.status_line(ex)


def _probe_path(hs: dict) -> str:
    from urllib.parse import urlsplit

    for h in hs.values():
        return urlsplit(h.exchange.url).path
    return ""


def _servers_text(r: Route) -> str:
    if r is None or not r.upstream_servers:
        return ""
    return f"upstream {r.upstream_name}: {', '.join(r.upstream_servers)}"


def _upstream_ev(facts: Facts, r: Route) -> list[Evidence]:
    if facts.config is None or r is None:
        return []
    if r.upstream is not None:
        return u.cfg_lines_ev(facts.config, [r.upstream, *r.upstream.children("server")])
    if r.proxy_pass is not None:
        return u.cfg_lines_ev(facts.config, [r.proxy_pass])
    return []


def _config_decides(facts: Facts, r: Route) -> Finding | None:
    """Failures the config alone proves: an upstream block without a usable server."""
    if r is None or r.proxy_pass is None or facts.config is None:
        return None
    config = facts.config
    if r.upstream is not None:
        servers = r.upstream.children("server")
        usable = [s for s in servers if "down" not in s.args[1:] and "backup" not in s.args[1:]]
        if not usable:
            what = "no server" if not servers else "only servers marked down/backup"
            return u.finding(
                ID,
                Status.FAIL,
                f"Upstream {r.upstream_name} has {what}",
                f"{u.loc_label(r.location)} proxies to upstream {r.upstream_name} ({r.upstream.where}), which has "
                f"{what}: nginx answers 502 to every request.",
                u.cfg_lines_ev(config, [r.upstream, *servers, r.proxy_pass]),
                Fix(
                    summary=f"Give upstream {r.upstream_name} a usable server (`server HOST:PORT;`, without `down`)."
                ),
            )
    # A proxy_pass to a plain host name may resolve (/etc/hosts, Docker DNS): only the probes can tell.
    return None
