"""What every check needs: the skip reasons, the place judged, evidence builders, fix diffs, small wording.

Kept in one place so that every check says the same thing the same way: the same skip sentence for a missing
config, the same ``file:line`` evidence with the exact lines, the same probe transcript, the same diff. Not a
check itself (its name starts with ``_``; ``checks.run_all`` only runs the ids of ``report.CHECK_IDS``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wsdoctor.checks._args import statement_errors
from wsdoctor.facts import (
    BACKEND_ANSWERS,
    ENGINEIO_NODE,
    ENGINEIO_PY,
    EXPRESS,
    NGINX,
    NO_CONFIG,
    NO_URL,
    NOBODY,
    NODE_WS,
    OFFLINE,
    PY_WEBSOCKETS,
    CommandResult,
    ConnectProbe,
    Exchange,
    Fact,
    Facts,
    Handshake,
    HoldProbe,
    LogEvent,
    WebSocketProbe,
)
from wsdoctor.logkinds import KINDS
from wsdoctor.nginx.patch import Patch
from wsdoctor.report import Evidence, Finding, Fix, Status, corrected_lead, redact
from wsdoctor.routes import corrected_request, proxied, route_for
from wsdoctor.wire.engineio import NODE_ERRORS, PY_UNSUPPORTED

if TYPE_CHECKING:
    from wsdoctor.nginx.model import Config, Directive
    from wsdoctor.nginx.routing import Route

DEFAULT_PING_MS = 25000  # socket.io / python-socketio default pingInterval
DEFAULT_PING_TIMEOUT_MS = 20000


# --- what is missing ---------------------------------------------------------


def config_missing(facts: Facts) -> str | None:
    """Why there is no config (a skip reason), or None when there is one."""
    if facts.config is not None:
        return None
    return facts.unavailable.get(Fact.CONFIG) or NO_CONFIG


def client_missing(facts: Facts) -> str | None:
    """Why there is no client request (a skip reason), or None when there is one."""
    return None if facts.client is not None else NO_URL


def offline(facts: Facts) -> bool:
    return bool(getattr(facts.target, "offline", False))


def fact_reason(facts: Facts, name: Fact, default: str) -> str:
    """The recorded reason fact NAME is unavailable, else DEFAULT."""
    if offline(facts):
        return facts.unavailable.get(name) or OFFLINE
    return facts.unavailable.get(name) or default


def finding(
    cid: str,
    status: Status,
    title: str,
    summary: str,
    evidence: list[Evidence] | None = None,
    fix: Fix | None = None,
    corrected: str | None = None,
) -> Finding:
    """A finding with secret-looking text already removed (Authorization values, cookies, JWTs, token=…).

    Reports redact again with the literal secrets; this pass protects every other consumer of a Finding
    (the TUI shows findings as they stream in).
    """
    ev = [Evidence(e.kind, redact(e.where), redact(e.text), e.highlight) for e in evidence or []]
    if fix is not None:
        fix = Fix(summary=redact(fix.summary), diff=redact(fix.diff), code=redact(fix.code))
    return Finding(
        id=cid,
        status=status,
        title=redact(title),
        summary=redact(summary),
        evidence=ev,
        fix=fix,
        corrected=corrected,
    )


# --- the place judged -----------------------------------------------------------


@dataclass
class Place:
    """Where the Socket.IO requests land, for the checks that judge that location's settings.

    ``why`` is the skip reason when there is no such place; ``corrected`` is set when the client's own request
    misses it and the location is the one the corrected request reaches (the checks then say so).
    """

    route: Route | None
    why: str | None = None
    corrected: str | None = None

    @property
    def lead(self) -> str:
        """The words that open a summary about the corrected request ("For the corrected request …: "), or ""."""
        return corrected_lead(self.corrected) if self.corrected else ""

    def say(self, sentence: str) -> str:
        """SENTENCE, opened by the lead when there is one (its first word then lower-cased, acronyms kept)."""
        if not self.corrected or not sentence:
            return sentence
        first = sentence[:1].lower() if sentence[1:2].islower() else sentence[:1]
        return self.lead + first + sentence[1:]


# What makes a location the Socket.IO place at all: every check that judges the place builds on these, as
# route does, so a refused `proxy_pass` or `location` makes them all wait for `syntax` the same way.
PLACE_READS = ("location", "proxy_pass")


def socketio_place(facts: Facts, reads: tuple[str, ...] = (), upstream: bool = False) -> Place:
    """The proxied location the Socket.IO requests reach, or why there is none.

    READS are the directive names the asking check builds on (PLACE_READS are always added: the place itself
    rests on them): a statement there that nginx refuses (or that a missing ``;`` swallowed into another) makes
    the check wait for `syntax` instead of judging a directive nginx never loads. UPSTREAM adds the upstream
    block to the places looked at.
    """
    reads = tuple(dict.fromkeys(PLACE_READS + reads))
    why = config_missing(facts) or client_missing(facts)
    if why:
        return Place(None, why)
    r = route_for(facts)
    if r is None:
        return Place(None, NO_CONFIG)
    corrected = None
    if not proxied(r):
        fix = corrected_request(facts)
        if fix is not None:
            r, corrected = fix.route, fix.path
    if proxied(r):
        return Place(r, syntax_blocker(facts, r, reads, upstream), corrected)
    lost = load_blocker(facts)
    if lost:
        return Place(r, lost)
    if r.server is None:
        return Place(r, "no server block takes the client's request (see route)")
    if r.location is None:
        return Place(r, f"the request {r.uri.split('?')[0]} reaches no location in this config (see route)")
    if r.redirect is not None:
        return Place(r, f"nginx answers the request with a 301 to {r.redirect} (see route)")
    if r.return_status is not None:
        return Place(r, f"{loc_name(r.location)} answers `return {r.return_status}` (see route)")
    return Place(r, f"{loc_name(r.location)} does not proxy the request (see route)")


# --- what nginx would refuse ------------------------------------------------------


def syntax_problems(facts: Facts) -> list[tuple[Directive, str, str]]:
    """(directive, nginx's message, "fail"|"warn") for every statement `nginx -t` refuses or a missing ';' glued."""
    if facts.config is None:
        return []
    return statement_errors(facts.config, facts.nginx_version)


def syntax_blocker(facts: Facts, r: Route, reads: tuple[str, ...], upstream: bool = False) -> str | None:
    """A skip reason when a refused statement sits where R's request is configured and concerns READS.

    Concerns: the statement is one of READS, swallowed one (its name is among the arguments), or is one of the
    enclosing blocks itself; a glued statement nginx accepts (a warning) counts only when it swallowed one.
    Only the location chain (location, ``if``, server, http, main) and, with UPSTREAM, the upstream block
    count: an error elsewhere does not change what this location does. When no server takes the request,
    every server counts (a lost ``listen`` may be why).
    """
    problems = syntax_problems(facts)
    if not problems:
        return None
    chain = [b for b in (r.config_block, r.location, r.server) if b is not None]
    chain += [a for b in chain[-1:] for a in b.ancestors()]
    if r.server is None and facts.config is not None:
        chain += facts.config.servers()
        chain += [facts.config.http()] if facts.config.http() is not None else []
    if upstream and r.upstream is not None:
        chain.append(r.upstream)
    ids = {id(b) for b in chain}
    wanted = set(reads)
    for d, message, severity in problems:
        in_scope = d.parent is None or id(d.parent) in ids or id(d) in ids
        if not in_scope:
            continue
        swallowed = wanted.intersection(d.args)
        if severity == "warn" and swallowed:  # nginx accepts it, but the statement named is lost
            name = sorted(swallowed)[0]
            return (
                f'a missing ";" before "{name}" at {d.where} makes it an argument of "{d.name}" (see syntax)'
            )
        if severity == "fail" and (id(d) in ids or d.name in wanted or swallowed):
            short = message.split(";")[0].replace(f' in "{d.name}" directive', "")
            return f'nginx refuses "{d.name}" at {d.where}: {short}; judged once that is fixed (see syntax)'
    return None


def load_blocker(facts: Facts) -> str | None:
    """A skip reason when the loader lost part of the config (unbalanced brace, missing include): a missing
    server or location may just be in what was lost."""
    if facts.config is None or not facts.config.errors:
        return None
    e = facts.config.errors[0]
    if e.kind == "truncated":
        return f"the nginx -T output is truncated after {e.where}: the config is incomplete (see syntax)"
    return (
        f"{e.where}: {e.message}, so part of the config could not be read; judged once that is fixed "
        "(see syntax)"
    )


# --- fix diffs ---------------------------------------------------------------------------

_PLACEMENT_ERRORS = (ValueError, KeyError, IndexError)  # what Patch raises when an edit cannot be placed


def diff_of(config: Config | None, edit: Callable[[Patch], object]) -> str:
    """The unified diff EDIT makes to CONFIG's files, or "" when it cannot be placed (no config, a statement
    whose text is not where the parser saw it): a fix then still says what to change, without a diff."""
    if config is None:
        return ""
    p = Patch(config)
    try:
        edit(p)
        return p.diff()
    except _PLACEMENT_ERRORS:
        return ""


def set_in_block(
    p: Patch, block: Directive, name: str, value: str, existing: Directive | None, after=None
) -> None:
    """``NAME VALUE;`` in BLOCK: EXISTING replaced when it is BLOCK's own, else a new line after AFTER."""
    if existing is not None and existing.parent is block:
        p.replace_statement(existing, f"{name} {value};")
    else:
        p.insert_in_block(block, [f"{name} {value};"], after=after)


# --- a dead endpoint ----------------------------------------------------------------

DEAD = "the endpoint does not answer (see route)"


def dead_exchange(facts: Facts) -> Exchange | None:
    """The probe through the proxy that got no HTTP answer at all (refused, timed out, TLS failed), else None."""
    hs = proxy_handshake(facts)
    ex = hs.exchange if hs is not None else facts.websocket.exchange if facts.websocket is not None else None
    if ex is None or ex.status is not None:
        return None
    return ex


def tls_fails(facts: Facts) -> bool:
    return facts.tls is not None and not facts.tls.ok


def unjudged(facts: Facts, why: str) -> str:
    """The skip reason of a check that cannot judge the config (WHY): with no config at all, the dead endpoint
    (route names it) comes first, since nothing else could speak either."""
    dead = endpoint_down(facts)
    return f"{dead}; {why}" if dead and facts.config is None else why


def endpoint_down(facts: Facts) -> str | None:
    """The shared skip reason of the live checks when the endpoint answers nothing (route names the cause)."""
    ex = dead_exchange(facts)
    if ex is None:
        return None
    if ex.stage == "tls" and tls_fails(facts):
        return "the TLS handshake with the endpoint fails (see tls)"
    return DEAD


def no_answer_reason(ex: Exchange) -> str:
    """The probe's failure, short: "connection refused at connect", "timed out after 5.0 s at response"."""
    err = (ex.error or "no answer").strip()
    low = err.lower()
    if "refused" in low:
        err = "connection refused"
    elif "reset" in low:
        err = "connection reset"
    else:
        err = short_error(err, 120).rstrip(".")
    return err + (f" at {ex.stage}" if ex.stage else "")


def loc_name(d: Directive | None) -> str:
    """``location /dev/aiwm/chat/``."""
    if d is None:
        return "no location"
    return f"{d.name} {' '.join(d.args)}".strip()


def loc_label(d: Directive | None) -> str:
    """``location /dev/aiwm/chat/ (/etc/nginx/sites-enabled/api.x-or.cloud:12)``."""
    if d is None:
        return "no location"
    return f"{loc_name(d)} ({d.where})"


def server_label(d: Directive | None) -> str:
    if d is None:
        return "no server"
    names = [a for sn in d.children("server_name") for a in sn.args]
    name = names[0] if names else "_"
    return f"server {name} ({d.where})"


def is_regex_location(d: Directive) -> bool:
    return d.name == "location" and bool(d.args) and d.args[0] in ("~", "~*")


def location_path(d: Directive) -> str | None:
    """The prefix of a prefix/exact location (``/dev/aiwm/chat/``), None for regex or named ones."""
    if d.name != "location" or not d.args:
        return None
    if d.args[0] in ("=", "^~") and len(d.args) > 1:
        return d.args[1]
    if d.args[0] in ("~", "~*") or d.args[0].startswith("@"):
        return None
    return d.args[0]


def last_proxy_line(loc: Directive) -> Directive | None:
    """LOC's last ``proxy_*`` line in its own file: where a new proxy setting goes (None: at the block's end)."""
    return next(
        (d for d in reversed(loc.block or []) if d.name.startswith("proxy_") and d.file == loc.file), None
    )


def sets_upgrade(d: Directive) -> bool:
    """The block (or its nested levels) sets the Upgrade header: it is meant for WebSocket."""
    return any(h.args and h.args[0].lower() == "upgrade" for h in d.children("proxy_set_header"))


# --- evidence -----------------------------------------------------------------


def excerpt_lines(config: Config, file: str, lines: list[int], context: int = 0) -> str:
    """Numbered lines of FILE (each with CONTEXT lines around), '…' between groups that are not adjacent."""
    text = config.lines(file)
    if not text:
        return ""
    wanted: set[int] = set()
    for ln in lines:
        for n in range(max(1, ln - context), min(len(text), ln + context) + 1):
            wanted.add(n)
    if not wanted:
        return ""
    order = sorted(wanted)
    width = len(str(order[-1]))
    out: list[str] = []
    prev = None
    for n in order:
        if prev is not None and n != prev + 1:
            out.append(" " * width + " | …")
        out.append(f"{n:>{width}} | {text[n - 1]}")
        prev = n
    return "\n".join(out)


def cfg_ev(config: Config, d: Directive, before: int = 1, after: int = 1) -> Evidence:
    """The directive's line with a little context, highlighted."""
    return Evidence(
        kind="config",
        where=f"{config.display_path(d.file)}:{d.line}",
        text=config.excerpt(d.file, d.line, before, after) or d.text(),
        highlight=(d.line,),
    )


def cfg_lines_ev(config: Config, directives: list[Directive], context: int = 0) -> list[Evidence]:
    """One evidence per file, showing exactly the given directives' lines (the first one's file:line as where)."""
    by_file: dict[str, list[Directive]] = {}
    for d in directives:
        if d is not None:
            by_file.setdefault(d.file, []).append(d)
    out: list[Evidence] = []
    for file, ds in by_file.items():
        ds = sorted(ds, key=lambda x: x.line)
        lines = sorted({d.line for d in ds})
        out.append(
            Evidence(
                kind="config",
                where=f"{config.display_path(file)}:{ds[0].line}",
                text=excerpt_lines(config, file, lines, context) or "\n".join(d.text() for d in ds),
                highlight=tuple(lines),
            )
        )
    return out


def block_ev(config: Config, block: Directive, wanted: list[Directive] | None = None) -> list[Evidence]:
    """A block's opening line plus the given inner directives (in their files)."""
    return cfg_lines_ev(config, [block, *(wanted or [])])


def probe_ev(ex: Exchange, secrets: tuple[str, ...] | list[str] = ()) -> Evidence:
    """The exchange's transcript, secrets already removed (the TUI shows findings before any report does)."""
    return Evidence(
        kind="probe", where=redact(f"{ex.method} {ex.url}", secrets), text=redact(ex.transcript(), secrets)
    )


def log_ev(ev: LogEvent) -> Evidence:
    where = f"{ev.file}:{ev.line_no}" if ev.line_no else ev.file
    return Evidence(kind="log", where=where, text=redact(ev.text))


def cmd_ev(cr: CommandResult) -> Evidence:
    host = "" if cr.host in ("", "local") else f" on {cr.host}"
    body = "\n".join(x for x in (cr.stdout.strip(), cr.stderr.strip()) if x)
    if cr.error:
        body = (body + "\n" if body else "") + f"(could not run: {cr.error})"
    elif cr.exit_status is not None:
        body = (body + "\n" if body else "") + f"(exit status {cr.exit_status})"
    return Evidence(kind="command", where=f"$ {cr.display}{host}", text=body)


def connect_ev(cp: ConnectProbe, secrets: list[str], packets: int, transport: bool = False) -> list[Evidence]:
    """The CONNECT's last exchange and its last PACKETS packets, secrets removed (the token travels in
    ``40{"token":…}``); TRANSPORT names the transport in the packets' heading."""
    out = [probe_ev(ex, secrets) for ex in cp.exchanges[-1:]]
    if cp.packets:
        over = f" over {cp.transport}" if transport else ""
        text = redact("\n".join(p[:300] for p in cp.packets[-packets:]), secrets)
        out.append(Evidence(kind="probe", where=f"CONNECT {cp.namespace}{over} ({cp.where})", text=text))
    return out


_NAMESPACE_REFUSALS = ("invalid namespace", "unable to connect")


def refuses_namespace(message: object) -> bool:
    """A CONNECT refusal (``44{"message"}``) that says the namespace is unknown, not the token."""
    return any(s in str(message).lower() for s in _NAMESPACE_REFUSALS)


def logs_for(facts: Facts, check_id: str, kinds: tuple[str, ...] | None = None) -> list[LogEvent]:
    return [e for e in facts.logs if e.check == check_id and (kinds is None or e.kind in kinds)]


_VOLATILE = re.compile(
    r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d "  # error-log time
    r"|\[\d\d/\w{3}/\d{4}:[\d:]+ [+-]\d{4}\]"  # access-log time
    r"|\d+#\d+: |\*\d+ "  # pid#tid, connection number
    r"|[?&]t=[\w.-]+"  # the polling cache-buster
    r"|\b\d+\.\d{3}\b"  # $request_time and friends
)


def _log_rank(e: LogEvent) -> int:
    if e.source == "error":
        kind = KINDS.get(e.kind)
        return 0 if kind is not None and kind.explains else 1
    return 2 if e.source == "backend" else 3


def log_evidence(events: list[LogEvent], limit: int = 4) -> list[Evidence]:
    """The few log lines that explain the verdict, newest first.

    nginx's error-log lines say why (``no live upstreams``, ``connect() failed (111…)``, ``while proxying
    upgraded connection``); access-log lines only repeat the status the probe already shows. So error lines
    come first, the explaining kinds before the rest, then backend lines; an access-log line is shown only when
    nothing better fills the space (one at most beside error lines). Lines that differ only by time,
    connection number or the polling ``t=`` are one line.
    """
    seen: set[str] = set()
    picked: list[LogEvent] = []
    order = sorted(range(len(events)), key=lambda i: (_log_rank(events[i]), -i))
    access = 0
    for i in order:
        e = events[i]
        key = e.source + ":" + _VOLATILE.sub("", e.text)
        if key in seen:
            continue
        seen.add(key)
        if e.source == "access":
            if access and any(p.source != "access" for p in picked):
                continue
            access += 1
        picked.append(e)
        if len(picked) >= limit:
            break
    return [log_ev(e) for e in picked]


# --- live facts -----------------------------------------------------------------


def proxy_handshake(facts: Facts) -> Handshake | None:
    """The handshake through the proxy in the version the server speaks (the client's own when the server
    refused it and the other version answered: that mismatch is `protocol`'s; the rest judges the route)."""
    hs = facts.handshakes.get("proxy")
    return None if hs is None else hs.spoken or hs


def backend_handshakes(facts: Facts) -> dict[str, Handshake]:
    """Each backend's handshake, in the version it speaks (see proxy_handshake)."""
    return {k: v.spoken or v for k, v in facts.handshakes.items() if k != "proxy"}


def ping_interval(facts: Facts) -> tuple[float, str]:
    """The server's pingInterval in seconds and where it came from (handshake), or the default, saying so."""
    hs = proxy_handshake(facts)
    if hs is not None and hs.ping_interval:
        return hs.ping_interval / 1000, "the handshake through the proxy"
    for where, h in backend_handshakes(facts).items():
        if h.ping_interval:
            return h.ping_interval / 1000, f"the handshake at {where}"
    if facts.hold is not None and facts.hold.ping_interval:
        return facts.hold.ping_interval / 1000, "the held tunnel's open packet"
    return DEFAULT_PING_MS / 1000, "assumed: the Socket.IO default, no handshake measured"


# --- who answered, and what the answer means ----------------------------------------
#
# Decided from the answer itself before any check concludes: behind nginx every answer carries
# `Server: nginx`, so the body tells (docs/servers.md has each server's words).

_WHO = {
    NGINX: "nginx itself",
    ENGINEIO_PY: "the python-engineio backend",
    ENGINEIO_NODE: "the Node engine.io backend",
    NODE_WS: "the backend's WebSocket layer (Node `ws`)",
    PY_WEBSOCKETS: "the backend's WebSocket layer (python `websockets`)",
    EXPRESS: "the backend's Node app (Express)",
    NOBODY: "nobody",
}


@dataclass
class DropCause:
    """Why a held tunnel closed early, as the probes right after the drop show it."""

    clause: str  # continues "the tunnel closed after N s — not nginx's proxy_read_timeout: …"
    fix: str
    evidence: list[Evidence]


def drop_cause(facts: Facts, hold: HoldProbe | None) -> DropCause | None:
    """Why a held tunnel closed early, when what was asked right after the drop says it; else None.

    A new connection to the proxy is refused: nginx itself went away. A backend that answered its handshake
    at the start refuses (or does not answer) right after the drop: the tunnel died with it.
    """
    if hold is None or not hold.closed:
        return None
    after = hold.after
    c = facts.client
    if after is not None and "refused" in (after.error or "").lower():
        at = c.netloc if c is not None else after.url
        return DropCause(
            f"nginx is no longer running there: right after the drop a new connection to {at} was refused, so "
            "the proxy itself went away (stopped, killed or crashed), not a timeout",
            "Start nginx again on the proxy host (`nginx -t`, then `systemctl start nginx`) and find in its error "
            "log and the system log (`journalctl -u nginx`, the OOM killer) why it stopped.",
            [Evidence("probe", f"TCP connect to {after.url} right after the drop", after.error or "")],
        )
    gone = []
    for base, again in hold.backends_after.items():
        first = facts.handshakes.get(base)
        if first is None or first.spoken is None:
            continue  # it was not answering at the start either: upstream says so
        if again.spoken is None and again.exchange.status is None:
            gone.append((base.split("://", 1)[-1], again))
    if not gone:
        return None
    names = ", ".join(n for n, _ in gone)
    evidence = [probe_ev(h.exchange) for _, h in gone[:2]]
    if len(gone) == 1:
        name, again = gone[0]
        return DropCause(
            f"the backend {name}, which answered its handshake at the start of the run, gets "
            f"{no_answer_reason(again.exchange)} right after the drop: the tunnel went down with that backend "
            "(nginx closes a client's tunnel when its backend goes away)",
            f"Find why the backend on {name} stopped (its own log, pm2/systemd restarts) and start it again; "
            "clients reconnect to another backend, losing their session state.",
            evidence,
        )
    return DropCause(
        f"the backends {names}, which answered at the start of the run, no longer answer right after the "
        "drop: the tunnel went down with its backend",
        f"Find why the backends on {names} stopped (their logs, pm2/systemd restarts) and start them again.",
        evidence,
    )


def who(ex: Exchange) -> str:
    """Who answered, in words."""
    if ex.status is None:
        return "nobody"
    if answer_means(ex) == PLAIN_WEBSOCKET:
        lib = "Node `ws`" if ex.answered_by == NODE_WS else "python `websockets`"
        return f"a plain WebSocket server behind nginx ({lib})"
    return _WHO.get(ex.answered_by, "a server behind nginx that is not Engine.IO (not nginx's own page)")


def by_backend(ex: Exchange) -> bool:
    """Something behind nginx wrote this answer (nginx only relayed it)."""
    return ex.status is not None and ex.answered_by in BACKEND_ANSWERS


# What an answer means, when its words say it (answer_means): one tag each.
OPEN = "open"  # an Engine.IO open packet: a session
UNKNOWN_SESSION = "unknown-session"  # Node code 1 / python "Invalid session": no such session on that backend
UNKNOWN_TRANSPORT = "unknown-transport"
POST_WITHOUT_SID = "post-without-sid"
NO_UPGRADE_HEADERS = (
    "no-upgrade-headers"  # transport=websocket arrived without Upgrade (the proxy dropped it)
)
REFUSED_REQUEST = "refused-request"  # Node code 4: the app's allowRequest said no
VERSION = "version"  # the EIO version asked for is not spoken (Node code 5, python's sentence)
ORIGIN = "origin"  # python: "<origin> is not an accepted origin."
KEYLESS_UPGRADE = (
    "keyless-upgrade"  # a WebSocket upgrade without Sec-WebSocket-Key (a plain request sent as one)
)
PLAIN_WEBSOCKET = "plain-websocket"  # 426 Upgrade Required: a WebSocket server that speaks nothing else
APP_NOT_FOUND = "app-not-found"  # the backend app's 404 (Express "Cannot GET", python "Not Found")
NGINX_PAGE = "nginx-page"  # nginx's own error page

_NODE_CODES = {
    0: UNKNOWN_TRANSPORT,
    1: UNKNOWN_SESSION,
    2: POST_WITHOUT_SID,
    3: NO_UPGRADE_HEADERS,
    4: REFUSED_REQUEST,
    5: VERSION,
}
_PY_STRINGS = (
    ("Invalid session", UNKNOWN_SESSION),
    ("Invalid transport", UNKNOWN_TRANSPORT),
    ("Invalid websocket upgrade", NO_UPGRADE_HEADERS),
    (PY_UNSUPPORTED, VERSION),
    ("is not an accepted origin", ORIGIN),
)
_KEYLESS = ("Missing or invalid Sec-WebSocket-Key header", "missing Sec-WebSocket-Key header")


def answer_means(ex: Exchange) -> str:
    """What an answer says, as one of the tags above ("" when its words say nothing we know)."""
    if ex.status is None:
        return ""
    text = ex.body[:2048].decode("utf-8", "replace").strip()
    if ex.answered_by == NGINX:
        return NGINX_PAGE
    if ex.status == 200 and ex.answered_by in (ENGINEIO_NODE, ENGINEIO_PY) and text[:1].isdigit():
        return OPEN if ":0{" in text[:12] or text.startswith("0{") else ""
    if ex.status == 426 and ex.answered_by in (NODE_WS, PY_WEBSOCKETS):
        return PLAIN_WEBSOCKET
    if any(k in text for k in _KEYLESS) or (ex.answered_by == NODE_WS and text == "Bad Request"):
        return KEYLESS_UPGRADE
    if ex.answered_by == EXPRESS or (ex.answered_by == ENGINEIO_PY and ex.status == 404):
        return APP_NOT_FOUND
    if ex.answered_by == ENGINEIO_NODE:
        if text.startswith("{"):
            try:
                code = json.loads(text).get("code")
            except (ValueError, AttributeError, RecursionError):
                code = None
            return _NODE_CODES.get(code, "") if isinstance(code, int) else ""
        for code, message in NODE_ERRORS.items():  # an upgrade refused: the bare message
            if text == message:
                return _NODE_CODES[code]
        return ""
    if ex.answered_by == ENGINEIO_PY:
        for needle, tag in _PY_STRINGS:
            if needle in text:
                return tag
    return ""


# --- what a server speaks -------------------------------------------------------------

EIO4 = "eio4"  # Engine.IO 4: Socket.IO 3/4
EIO3 = "eio3"  # Engine.IO 3: Socket.IO 2
PLAIN_WS = "plain-websocket"  # a WebSocket server that speaks no Engine.IO
PLAIN_HTTP = "http"  # an HTTP server that answers the handshake with something else than Engine.IO

SPEECH_WORDS = {
    EIO4: "Engine.IO 4 (Socket.IO 3/4)",
    EIO3: "Engine.IO 3 (Socket.IO 2)",
    PLAIN_WS: "a plain WebSocket server, not Socket.IO",
    PLAIN_HTTP: "plain HTTP, not Engine.IO",
}


@dataclass
class Speech:
    """What one place (the proxy, a backend) answers in, and the exchange that shows it."""

    where: str
    kind: str = ""  # EIO4, EIO3, PLAIN_WS, PLAIN_HTTP; "" when its answers do not tell
    shown_by: Exchange | None = None
    # The client's own version (EIO=4, or 3 for socket.io-client 2.x): True answered, False refused as a
    # version it does not speak, None when its answer does not tell.
    client_ok: bool | None = None
    refusal: Exchange | None = None  # the answer refusing the client's version


def handshake_speech(hs: Handshake) -> Speech:
    """What a polling handshake (and its retry in the other version) shows the server speaks."""
    sp = Speech(hs.where)
    spoken = hs.spoken
    if hs.ok:
        sp.client_ok = True
    elif answer_means(hs.exchange) == VERSION:
        sp.client_ok, sp.refusal = False, hs.exchange
    if spoken is not None:
        sp.kind = EIO3 if spoken.server_eio == 3 else EIO4
        sp.shown_by = spoken.exchange
        return sp
    ex = hs.exchange
    means = answer_means(ex)
    if means == PLAIN_WEBSOCKET:
        sp.kind, sp.shown_by = PLAIN_WS, ex
    elif means == VERSION:
        sp.kind, sp.shown_by = EIO4 if hs.eio == 3 else EIO3, ex  # it refuses this one: it speaks the other
    elif ex.status is not None and 200 <= ex.status < 300 and by_backend(ex):
        sp.kind, sp.shown_by = PLAIN_HTTP, ex
    return sp


def websocket_speech(ws: WebSocketProbe) -> Speech:
    """What a direct WebSocket shows: an Engine.IO open packet (Socket.IO 2 leaves out maxPayload when asked
    EIO=4), or a 101 whose first frame is no Engine.IO packet at all (a plain WebSocket server)."""
    sp = Speech(ws.where)
    if ws.ok and ws.open_packet is not None:
        eio3 = ws.eio == 3 or "maxPayload" not in ws.open_packet
        sp.kind, sp.shown_by = (EIO3 if eio3 else EIO4), ws.exchange
        sp.client_ok = True
    elif ws.foreign_frame is not None:
        sp.kind, sp.shown_by = PLAIN_WS, ws.exchange
    return sp


def proxy_speech(facts: Facts) -> Speech | None:
    """What the endpoint through the proxy speaks: the polling handshake, else the direct WebSocket."""
    hs = facts.handshakes.get("proxy")
    sp = handshake_speech(hs) if hs is not None else None
    if (sp is None or not sp.kind) and facts.websocket is not None:
        ws = websocket_speech(facts.websocket)
        if ws.kind:
            if sp is not None:
                ws.client_ok = sp.client_ok if sp.client_ok is False else ws.client_ok
                ws.refusal = sp.refusal
            return ws
    return sp


def backend_speeches(facts: Facts) -> dict[str, Speech]:
    """What each backend speaks (at the path nginx sends, or where its Engine.IO was found)."""
    out = {}
    for base, hs in facts.handshakes.items():
        if base == "proxy":
            continue
        sp = handshake_speech(hs)
        if not sp.kind:
            found = next((p for p in facts.path_probes.values() if p.where == base), None)
            if found is not None:
                sp = handshake_speech(found)
        out[base] = sp
    return out


def not_socketio(facts: Facts) -> str | None:
    """The skip reason of the checks that only make sense for Socket.IO when the endpoint (through the proxy,
    else every backend) is a plain WebSocket or HTTP server; None otherwise."""
    sp = proxy_speech(facts)
    kinds = {sp.kind} if sp is not None and sp.kind else {s.kind for s in backend_speeches(facts).values()}
    kinds.discard("")
    if len(kinds) == 1 and (kind := kinds.pop()) in (PLAIN_WS, PLAIN_HTTP):
        what = "a plain WebSocket server" if kind == PLAIN_WS else "a plain HTTP server"
        return f"the endpoint is {what}, not Socket.IO (see protocol)"
    return None


def backend_words(ex: Exchange) -> str:
    """The answer's own words that prove who wrote it, quoted: the evidence that rules nginx in or out."""
    text = body_text(ex, 160)
    if ex.answered_by == NGINX:
        return "nginx's own error page (`<center>nginx…</center>`)"
    return f"`{text[:100]}`" if text else "an empty body (nginx's own answers are its HTML page)"


def body_text(ex: Exchange, limit: int = 120) -> str:
    text = ex.body[: max(limit, 400)].decode("utf-8", "replace").strip()
    text = re.sub(r"\s+", " ", text)
    pre = re.search(r"(?i)<pre>(.*?)</pre>", text)
    if pre:  # Express's error page: the message is in <pre>
        return pre.group(1).strip()[:limit]
    text = text[:limit]
    if "<title>" in text.lower():
        m = re.search(r"(?i)<title>(.*?)</title>", text)
        if m:
            return m.group(1).strip()
    return text


def status_line(ex: Exchange) -> str:
    if ex.status is None:
        return f"no answer ({ex.error or 'unknown error'}{' at ' + ex.stage if ex.stage else ''})"
    head = f"{ex.status}{' ' + ex.reason if ex.reason else ''}"
    body = body_text(ex)
    if body.startswith(str(ex.status)) or body.lower() in (ex.reason.lower(), head.lower()):
        body = ""  # nginx's and uvicorn's pages only repeat the status line
    return head + (f" {body[:100]}" if body else "")


# --- wording ------------------------------------------------------------------


def short_error(text: str | None, limit: int = 200) -> str:
    """A probe's error as one line for a summary: an HTML page it quotes is cut, the rest capped."""
    if not text:
        return ""
    one = re.sub(r"\s+", " ", text.split(": <")[0]).strip()
    return one if len(one) <= limit else one[: limit - 1] + "…"


def human_seconds(s: float) -> str:
    """60 → "60 s", 604800 → "7 days", 90 → "90 s", 0.5 → "0.5 s"."""
    if s >= 86400 and s % 86400 == 0:
        n = int(s // 86400)
        return f"{n} day{'s' if n != 1 else ''}"
    if s >= 3600 and s % 3600 == 0:
        n = int(s // 3600)
        return f"{n} hour{'s' if n != 1 else ''}"
    if s >= 600 and s % 60 == 0:
        return f"{int(s // 60)} min"
    if s == int(s):
        return f"{int(s)} s"
    return f"{s:.1f} s"


def nginx_duration(s: float) -> str:
    """Seconds as nginx time syntax ("60s", "5m")."""
    s = math.ceil(s)
    if s % 60 == 0 and s >= 120:
        return f"{s // 60}m"
    return f"{s}s"


def version_text(facts: Facts) -> str:
    return f"nginx {facts.nginx_version}" if facts.nginx_version else "nginx (version unknown)"


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"
