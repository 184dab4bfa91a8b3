"""`sticky` (runbook issue "different backend on reconnect"): does one Socket.IO session stay on one backend?

Sticky sessions are needed only while HTTP long-polling is in use: each poll is a new HTTP request, and a
backend that did not create the session answers 400 "Session ID unknown" / "Invalid session". With
``transports: ['websocket']`` a session is one connection and nothing needs pinning. So
this fails only when polling is in the client's transports AND the upstream has several servers AND nothing
pins a client: round robin, ``least_conn``, ``random``, or a ``hash`` on a key that is empty for Socket.IO
(``$cookie_io``: no cookie by default; ``$arg_sid``: none at the handshake) — an empty key falls back to round
robin. ``ip_hash`` behind another proxy (every client arrives from the same few addresses) is warned. Live, one
polling session kept over several requests through the proxy shows the refusals.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wsdoctor.checks import _util as u
from wsdoctor.checks._flow import Flow, Verdict, reading, skip
from wsdoctor.checks._util import Place
from wsdoctor.facts import ENGINEIO_NODE, ENGINEIO_PY, Fact, Facts, LogEvent, StickyProbe
from wsdoctor.nginx.version import at_least
from wsdoctor.report import Evidence, Fix, Status

if TYPE_CHECKING:
    from wsdoctor.nginx.model import Config, Directive
    from wsdoctor.nginx.routing import Route

ID = "sticky"
TITLE = "Session affinity for polling"
NEEDS = (Fact.CONFIG, Fact.STICKY, Fact.HANDSHAKE_PROXY)
READS = ("upstream", "server", "hash", "ip_hash", "least_conn", "random", "sticky", "proxy_pass")

PINNING_KEYS = (
    "$remote_addr",
    "$binary_remote_addr",
    "$http_x_forwarded_for",
    "$http_x_real_ip",
    "$realip_remote_addr",
)
SUGGESTED = "hash $remote_addr consistent"
_EMPTY_KEYS = {
    "$cookie_io": "Socket.IO sets no `io` cookie unless the server enables `cookie`",
    "$arg_sid": "the handshake request has no sid yet",
    "$http_cookie": "Socket.IO sends no cookie by default",
}
_CHANGING_KEYS = {
    "$request_uri": "every polling request has a fresh `t=` timestamp",
    "$args": "every polling request has a fresh `t=` timestamp",
    "$query_string": "every polling request has a fresh `t=` timestamp",
    "$arg_t": "`t` is a fresh timestamp on every polling request",
    "$request_id": "it is new for every request",
    "$msec": "it changes every millisecond",
}


# --- live half: one polling session through the proxy, and the access log's refusals ----------------------


@dataclass
class _Seen:
    probe: StickyProbe | None
    refusals: list[LogEvent]  # access-log 400s on polling requests that carry a sid


def _live(facts: Facts, place: Place) -> _Seen:
    probe = (
        None if place.corrected else facts.sticky
    )  # the probe used the client's request, not the corrected one
    return _Seen(probe, u.logs_for(facts, ID))


# --- the verdict ----------------------------------------------------------------------------------------


def _combine(facts: Facts, place: Place, said: Verdict | None, seen: _Seen) -> Verdict:
    live = seen.probe
    if said is None:
        return _live_only(facts, live, place.why or "") if live is not None else skip(place.why or "")
    assert facts.client is not None
    polling = "polling" in facts.client.transports
    status, title, fix = said.status, said.title, said.fix
    evidence = said.evidence + u.log_evidence(seen.refusals)
    if live is None:
        if seen.refusals and status is Status.PASS and polling:
            return Verdict(
                Status.WARN,
                "The access log shows refused polling sessions",
                said.then(
                    f"the access log has {u.plural(len(seen.refusals), 'polling request')} with a sid answered 400: "
                    "sessions did change backend (nginx behind another balancer, or a backend restart).",
                    ", but ",
                ),
                evidence,
                Fix(
                    summary="Run with the live probes (no --offline) to see whether sessions stay on one backend now."
                ),
            )
        return Verdict(status, title, said.summary, evidence, fix)

    ev = evidence + [u.probe_ev(ex) for ex in live.refused[:2]]
    if live.refused:
        refused = (
            f"live: {len(live.refused)} of {live.requests} polling requests of one session were refused with "
            f"{u.status_line(live.refused[0])}"
        )
        if not polling:
            assert place.route is not None
            return Verdict(
                Status.WARN,
                "Polling sessions break through this proxy",
                f"The client uses only WebSocket, so it is not affected, but {refused}: any client on the default "
                "transports (polling first) fails.",
                ev,
                fix or _fix(facts, place.route, "round robin"),
            )
        if status is Status.FAIL:
            return Verdict(Status.FAIL, title, said.then(f"{refused}, as predicted."), ev, fix)
        return Verdict(
            Status.FAIL,
            "Config and live proxy disagree: sessions are not sticky",
            said.then(
                f"{refused}: nginx is probably behind another balancer or runs another config.", ", but "
            ),
            ev,
            fix,
        )
    if live.ok and live.requests:
        ok = f"live: {live.requests} polling requests of one session were all accepted"
        if status is Status.FAIL:
            return Verdict(
                Status.WARN,
                "Config and live proxy disagree on stickiness",
                said.then(f"{ok}: luck with few servers, or the running config differs.", ", but "),
                ev + [u.probe_ev(ex) for ex in live.exchanges[:1]],
                fix,
            )
        return Verdict(status, title, said.then(f"{ok}."), ev, fix)
    if live.error:
        dead = u.endpoint_down(facts)
        failed = f"live, {dead}" if dead else f"the live probe failed: {u.short_error(live.error)}"
        return Verdict(status, title, said.then(f"{failed}."), ev, fix)
    return Verdict(status, title, said.summary, ev, fix)


# --- config half: the balancing method against the transports and the servers ---------------------------


def _config(facts: Facts, place: Place) -> Verdict:
    r, config, c = place.route, facts.config, facts.client
    assert r is not None and config is not None and c is not None
    polling = "polling" in c.transports
    up = r.upstream
    servers = r.upstream_servers
    if up is not None:  # servers marked down or backup take no share of the sessions
        servers = [
            " ".join(s.args[:1]) for s in up.children("server") if not {"down", "backup"} & set(s.args[1:])
        ]
    ev: list[Evidence] = []
    if up is not None:
        ev = u.cfg_lines_ev(config, [up, *_balancers(up), *up.children("server")])
    elif r.proxy_pass is not None:
        ev = u.cfg_lines_ev(config, [r.proxy_pass])
    name = r.upstream_name or r.upstream_target
    if not polling:
        return Verdict(
            Status.PASS,
            TITLE,
            f"The client uses only the websocket transport ({', '.join(c.transports)}): a session is one connection, "
            "so no sticky sessions are needed (broadcasting across instances still needs an adapter, e.g. Redis).",
            ev,
            None,
        )
    if up is not None and not servers:
        return Verdict(
            Status.PASS,
            TITLE,
            f"upstream {name} has no usable server (see upstream): nothing to pin.",
            ev,
            None,
        )
    if up is None or len(servers) <= 1:
        return Verdict(
            Status.PASS,
            TITLE,
            f"{name} is a single server ({', '.join(servers) or 'one address'}): every request of a session reaches it.",
            ev,
            None,
        )
    bal = _balancers(up)
    n = len(servers)
    if not bal:
        return Verdict(
            Status.FAIL,
            f"Round robin over {n} servers breaks polling sessions",
            f"upstream {name} ({up.where}) spreads requests round robin over {n} servers, and the client polls "
            f"({', '.join(c.transports)}): the second request of a session lands on another backend, which "
            f"answers {_refusal(facts)}.",
            ev,
            _fix(facts, r, "round robin"),
        )
    d = bal[0]
    method = d.name
    if method == "ip_hash":
        behind = _behind_proxy(config)
        if behind:
            return Verdict(
                Status.WARN,
                "ip_hash behind another proxy pins everyone to one backend",
                f"upstream {name} uses ip_hash ({d.where}), but nginx sits behind another proxy ({behind[0]}) "
                "without set_real_ip_from: every client arrives from the proxy's address, so ip_hash sends them "
                "all to one backend.",
                ev + u.cfg_lines_ev(config, behind[1]),
                _realip_fix(facts, behind),
            )
        return Verdict(
            Status.PASS,
            TITLE,
            f"upstream {name} pins clients with ip_hash ({d.where}; first three IPv4 octets): a polling session "
            f"stays on one of its {n} servers.",
            ev,
            None,
        )
    if method == "hash":
        key = d.args[0] if d.args else ""
        bad = _bad_key(key)
        if bad:
            return Verdict(
                Status.FAIL,
                f"hash {key} does not pin Socket.IO sessions",
                f"upstream {name} hashes on {key} ({d.where}), but {bad[1]}; "
                + (
                    "an empty key falls back to round robin"
                    if bad[0] == "empty"
                    else "a changing key moves every request"
                )
                + f", so polling requests of one session spread over {n} servers.",
                ev,
                _fix(facts, r, f"hash {key}", d),
            )
        return Verdict(
            Status.PASS,
            TITLE,
            f"upstream {name} pins clients with `hash {' '.join(d.args)}` ({d.where}) over {n} servers.",
            ev,
            None,
        )
    if method == "sticky":
        v = facts.nginx_version
        ok = at_least(v, (1, 29, 6)) if v else None
        extra = "" if ok else "; open-source nginx has `sticky` only from 1.29.6, older needs NGINX Plus"
        return Verdict(Status.PASS, TITLE, f"upstream {name} uses `sticky` ({d.where}){extra}.", ev)
    # least_conn, random, least_time: load balancing, not affinity.
    return Verdict(
        Status.FAIL,
        f"{method} over {n} servers breaks polling sessions",
        f"upstream {name} balances with {method} ({d.where}), which does not pin a client, and the client polls: "
        f"requests of one session reach different backends, which answer {_refusal(facts)}.",
        ev,
        _fix(facts, r, method, d),
    )


def _refusal(facts: Facts) -> str:
    """What a backend answers to a session it did not create, in its own words when they are known.

    python-engineio says 400 "Invalid session <sid>", Node's engine.io 400 {"code":1,"message":"Session ID
    unknown"}: which one is known from any live answer of a backend; offline only the meaning can be given.
    """
    kind = _backend_kind(facts)
    if kind == ENGINEIO_PY:
        return '400 "Invalid session <sid>"'
    if kind == ENGINEIO_NODE:
        return '400 "Session ID unknown"'
    return "400 because it does not know the session"


def _backend_kind(facts: Facts) -> str | None:
    exchanges = [h.exchange for h in facts.handshakes.values()]
    if facts.sticky is not None:
        exchanges += facts.sticky.refused + facts.sticky.exchanges
    if facts.websocket is not None:
        exchanges.append(facts.websocket.exchange)
    if facts.connect is not None:
        exchanges += facts.connect.exchanges
    for ex in exchanges:
        if ex.answered_by in (ENGINEIO_PY, ENGINEIO_NODE):
            return ex.answered_by
    return None


def _balancers(up: Directive) -> list:
    return [
        d
        for d in up.block or ()
        if d.name in ("ip_hash", "hash", "sticky", "least_conn", "random", "least_time")
    ]


def _bad_key(key: str) -> tuple[str, str] | None:
    variables = re.findall(r"\$\{?([A-Za-z0-9_]+)\}?", key)
    if not variables:
        return ("constant", "the key is a constant") if key else ("empty", "the key is empty")
    names = ["$" + v for v in variables]
    if any(v in PINNING_KEYS for v in names):
        return None
    for v in names:
        if v in _CHANGING_KEYS:
            return ("changing", f"{v} changes ({_CHANGING_KEYS[v]})")
    for v in names:
        if v in _EMPTY_KEYS:
            return ("empty", f"{v} is empty ({_EMPTY_KEYS[v]})")
        if v.startswith("$cookie_"):
            return ("empty", f"{v} is empty (unless your app sets that cookie)")
    return None


def _behind_proxy(config: Config) -> tuple[str, list] | None:
    """Signs that nginx receives traffic from another proxy, and no real_ip setup to undo it."""
    signs: list = []
    reason = ""
    set_from = False
    for d in config.walk():
        if d.name == "set_real_ip_from":
            set_from = True
        elif d.name == "real_ip_header" and not signs:
            signs, reason = [d], "real_ip_header is set"
        elif d.name == "listen" and "proxy_protocol" in d.args and not signs:
            signs, reason = [d], "listen … proxy_protocol"
        elif (
            d.name not in ("#", "log_format")
            and not signs
            and any(
                "$http_x_forwarded_for" in a or "$proxy_protocol_addr" in a or "$http_cf_connecting_ip" in a
                for a in d.args
            )
        ):
            signs, reason = [d], f"{d.name} reads the client address from a header"
    if set_from or not signs:
        return None
    return reason, signs


def _fix(facts: Facts, r: Route, what: str, existing: Directive | None = None) -> Fix:
    up = r.upstream
    assert up is not None

    def edit(p):
        if existing is not None:
            p.replace_statement(existing, f"{SUGGESTED};")
        else:
            p.insert_in_block(up, [f"{SUGGESTED};"])

    return Fix(
        summary=(f"Add `{SUGGESTED}` to" if existing is None else f"Replace {what} by `{SUGGESTED}` in")
        + f" upstream {r.upstream_name} (or make the client use "
        "transports: ['websocket'], which needs no affinity).",
        diff=u.diff_of(facts.config, edit),
    )


def _realip_fix(facts: Facts, behind: tuple[str, list]) -> Fix:
    config = facts.config
    http = config.http() if config is not None else None
    lines = ["set_real_ip_from 10.0.0.0/8;  # wsdoctor: the address range of the proxy in front of nginx"]
    if behind[0] != "real_ip_header is set":
        lines.append("real_ip_header X-Forwarded-For;")
    return Fix(
        summary="Tell nginx the real client address (set_real_ip_from the front proxy's range + real_ip_header), "
        "so ip_hash pins real clients; adjust the address range.",
        diff=u.diff_of(config, lambda p: p.insert_in_block(http, lines)) if http is not None else "",
    )


def _live_only(facts: Facts, live: StickyProbe, why: str) -> Verdict:
    """The config cannot be judged (WHY): the polling session through the proxy alone speaks."""
    if live.refused:
        return Verdict(
            Status.FAIL,
            "Polling sessions are refused through the proxy",
            f"{len(live.refused)} of {live.requests} polling requests of one session were refused with "
            f"{u.status_line(live.refused[0])}: requests reach a backend that did not create the session; the "
            f"config would show why, but {why}.",
            [u.probe_ev(ex) for ex in live.refused[:2]],
            Fix(
                summary="Pin sessions in the upstream (hash $remote_addr consistent / ip_hash) or use websocket only."
            ),
        )
    if live.ok and live.requests:
        return Verdict(
            Status.PASS,
            TITLE,
            f"{live.requests} polling requests of one session were all accepted; the config cannot be judged: {why}.",
        )
    if u.endpoint_down(facts):
        return skip(u.unjudged(facts, why))
    return skip(f"{why}; the sticky probe did not finish: {u.short_error(live.error) or 'no requests'}")


check = Flow(ID, TITLE, reading(READS, upstream=True), _config, _live, _combine)
