"""What every check needs: the skip reasons, the place judged, evidence builders, fix diffs, small wording.

Kept in one place so that every check says the same thing the same way: the same skip sentence for a missing
config, the same ``file:line`` evidence with the exact lines, the same probe transcript, the same diff. Not a
check itself (its name starts with ``_``; ``checks.run_all`` only runs the ids of ``report.CHECK_IDS``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wsdoctor.checks._args import statement_errors
from wsdoctor.facts import (
    NGINX,
    NO_CONFIG,
    NO_URL,
    NOBODY,
    OFFLINE,
    CommandResult,
    ConnectProbe,
    Exchange,
    Fact,
    Facts,
    Handshake,
    LogEvent,
)
from wsdoctor.logkinds import KINDS
from wsdoctor.nginx.patch import Patch
from wsdoctor.report import Evidence, Finding, Fix, Status, corrected_lead, redact
from wsdoctor.routes import corrected_request, proxied, route_for

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
    return facts.handshakes.get("proxy")


def backend_handshakes(facts: Facts) -> dict[str, Handshake]:
    return {k: v for k, v in facts.handshakes.items() if k != "proxy"}


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


def who(ex: Exchange) -> str:
    """Who answered, in words."""
    if ex.status is None:
        return "nobody"
    return {
        NGINX: "nginx itself",
        "python-engineio": "the python-engineio backend",
        "node-engine.io": "the Node engine.io backend",
        NOBODY: "nobody",
    }.get(ex.answered_by, "a server that is neither nginx nor Engine.IO")


def body_text(ex: Exchange, limit: int = 120) -> str:
    text = ex.body[:limit].decode("utf-8", "replace").strip()
    text = re.sub(r"\s+", " ", text)
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
