"""What every check needs: the skip reasons, evidence builders, the route, and small wording helpers.

Kept in one place so that eleven checks say the same thing the same way: the same skip sentence for a missing
config, the same ``file:line`` evidence with the exact lines, the same probe transcript. Not a check itself
(its name starts with ``_``; ``checks.run_all`` only runs the ids of ``report.CHECK_IDS``).
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

from wsdoctor.facts import NGINX, NOBODY, CommandResult, Exchange, Facts, Handshake, LogEvent
from wsdoctor.report import Evidence, Finding, Fix, Status, redact

if TYPE_CHECKING:
    from wsdoctor.nginx.model import Config, Directive
    from wsdoctor.nginx.routing import Route

NO_CONFIG = "no nginx config given (use --nginx-conf, --nginx-dump or --ssh)"
NO_URL = "no client URL given (use --url, e.g. --url wss://api.example.com --path /prefix/socket.io)"
OFFLINE = "--offline: no probes were sent"
DEFAULT_PING_MS = 25000  # socket.io / python-socketio default pingInterval
DEFAULT_PING_TIMEOUT_MS = 20000


# --- what is missing ---------------------------------------------------------


def config_missing(facts: Facts) -> str | None:
    """Why there is no config (a skip reason), or None when there is one."""
    if facts.config is not None:
        return None
    return facts.unavailable.get("config") or NO_CONFIG


def client_missing(facts: Facts) -> str | None:
    if facts.client is not None:
        return None
    return facts.unavailable.get("client") or NO_URL


def offline(facts: Facts) -> bool:
    return bool(getattr(facts.target, "offline", False))


def fact_reason(facts: Facts, name: str, default: str) -> str:
    """The recorded reason fact NAME is unavailable, else DEFAULT."""
    if offline(facts):
        return facts.unavailable.get(name) or OFFLINE
    return facts.unavailable.get(name) or default


def skip(cid: str, title: str, reason: str, evidence: list[Evidence] | None = None) -> Finding:
    return finding(cid, Status.SKIP, title, reason, evidence)


def finding(
    cid: str,
    status: Status,
    title: str,
    summary: str,
    evidence: list[Evidence] | None = None,
    fix: Fix | None = None,
) -> Finding:
    """A finding with secret-looking text already removed (Authorization values, cookies, JWTs, token=…).

    Reports redact again with the literal secrets; this pass protects every other consumer of a Finding
    (the TUI shows findings as they stream in).
    """
    ev = [Evidence(e.kind, redact(e.where), redact(e.text), e.highlight) for e in evidence or []]
    if fix is not None:
        fix = Fix(summary=redact(fix.summary), diff=redact(fix.diff), code=redact(fix.code))
    return Finding(id=cid, status=status, title=redact(title), summary=redact(summary), evidence=ev, fix=fix)


# --- the route ----------------------------------------------------------------


def route_of(facts: Facts) -> Route | None:
    """The engine's route for the client's first request (cached by the engine), None without config/client."""
    if facts.config is None or facts.client is None:
        return None
    from wsdoctor.nginx.routing import route_for

    return route_for(facts)


def route_uri(facts: Facts, uri: str) -> Route | None:
    """The route of another request URI to the same host/port as the client (what-if questions)."""
    if facts.config is None or facts.client is None:
        return None
    from wsdoctor.nginx.routing import route

    c = facts.client
    host = facts.target.server_name or c.host
    return route(facts.config, host, c.port, uri, c.scheme)


def proxied(r: Route | None) -> bool:
    """The request goes to a backend (a location with proxy_pass, no return, no 301)."""
    return (
        r is not None
        and r.location is not None
        and r.proxy_pass is not None
        and r.redirect is None
        and r.return_status is None
    )


def proxy_location(facts: Facts) -> tuple[Route | None, str | None]:
    """(route, None) when the client's request reaches a proxied location, else (route, why not) for a skip."""
    why = config_missing(facts) or client_missing(facts)
    if why:
        return None, why
    r = route_of(facts)
    if r is None:
        return None, NO_CONFIG
    if r.server is None:
        return r, "no server block takes the client's request (see route)"
    if r.location is None:
        return r, f"the request {r.uri.split('?')[0]} reaches no location in this config (see route)"
    if r.redirect is not None:
        return r, f"nginx answers the request with a 301 to {r.redirect} (see route)"
    if r.return_status is not None:
        return r, f"{loc_name(r.location)} answers `return {r.return_status}` (see route)"
    if r.proxy_pass is None:
        return r, f"{loc_name(r.location)} does not proxy the request (see route)"
    return r, None


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


def logs_for(facts: Facts, check_id: str, kinds: tuple[str, ...] | None = None) -> list[LogEvent]:
    return [e for e in facts.logs if e.check == check_id and (kinds is None or e.kind in kinds)]


def log_evidence(events: list[LogEvent], limit: int = 5) -> list[Evidence]:
    """The last LIMIT events (the most recent say most about now)."""
    return [log_ev(e) for e in events[-limit:]]


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
