"""Facts: everything gathered about a target, each with where it came from.

Gatherers (config loading, probes, remote commands, log tails) fill a Facts;
checks are pure functions of it. A fact that is still being gathered is named
in ``pending``; one that could not be gathered has its reason in ``unavailable``
(so a check can say ``skip`` with that reason instead of guessing).

This module is the contract between gatherers and checks: probes produce the
dataclasses below, checks read them. Nothing here imports Textual.
"""

from __future__ import annotations

import shlex
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:  # heavy modules only for type checkers
    from wsdoctor.nginx.model import Config
    from wsdoctor.target import Target
    from wsdoctor.wire.client import ClientRequest

# Who answered an HTTP request, decided from the body (behind nginx every answer carries `Server: nginx`).
NGINX = "nginx"  # nginx's own page (`<hr><center>nginx…</center>`): nginx wrote it
ENGINEIO_PY = "python-engineio"
ENGINEIO_NODE = "node-engine.io"
NODE_WS = "node-ws"  # Node's `ws` library: 426 Upgrade Required, its refusals of a bad WebSocket handshake
PY_WEBSOCKETS = "python-websockets"  # python `websockets` (a plain server, or uvicorn's WebSocket layer)
EXPRESS = "express"  # Express's own 404 page (`<pre>Cannot GET /path</pre>`): the Node app beside Socket.IO
OTHER = "other"  # an answer nginx did not write, from a server we cannot name
NOBODY = "nobody"  # no answer at all (refused, timed out, reset)
#: Every answer a backend wrote (whatever the proxy in front relays).
BACKEND_ANSWERS = (ENGINEIO_PY, ENGINEIO_NODE, NODE_WS, PY_WEBSOCKETS, EXPRESS, OTHER)


class Fact(StrEnum):
    """The names of the facts, as used in ``Facts.pending`` / ``Facts.unavailable`` and in each check's NEEDS.

    A StrEnum, so a name compares equal to its string and a misspelt one fails at import time.
    """

    CONFIG = "config"  # facts.config (+ config_source)
    VERSION = "version"  # facts.nginx_version
    HANDSHAKE_PROXY = "handshake:proxy"  # facts.handshakes["proxy"]
    HANDSHAKE_BACKENDS = (
        "handshake:backends"  # facts.handshakes[<backend base URL>] for every upstream server
    )
    WEBSOCKET = "websocket"
    UPGRADE = "upgrade"
    CONNECT = "connect"
    STICKY = "sticky"
    HOLD = "hold"
    TLS = "tls"
    CORS = "cors"
    LOGS = "logs"  # facts.logs (nginx error/access tails, backend log lines)
    COMMANDS = "commands"  # facts.commands ("nginx -t", "ss -ltnp", …)


# Why a fact is missing, said once for the gatherers that record it and the checks that skip on it.
NO_CONFIG = "no nginx config given (use --nginx-conf, --nginx-dump or --ssh)"
NO_URL = "no client URL given (use --url, e.g. --url wss://api.example.com --path /prefix/socket.io)"
OFFLINE = "--offline: no probes were sent"

# The facts the live probes produce.
PROBE_FACTS = (
    Fact.HANDSHAKE_PROXY,
    Fact.HANDSHAKE_BACKENDS,
    Fact.WEBSOCKET,
    Fact.UPGRADE,
    Fact.CONNECT,
    Fact.STICKY,
    Fact.HOLD,
    Fact.TLS,
    Fact.CORS,
)
FACT_NAMES = tuple(Fact)

# Where a network operation stalled.
STAGES = ("dns", "connect", "tls", "request", "response", "upgrade", "first-frame", "body")


@dataclass
class Exchange:
    """One request and its answer, exactly as sent and received (bodies capped)."""

    method: str
    url: str  # full URL requested
    request_headers: list[tuple[str, str]] = field(default_factory=list)
    status: int | None = None  # None: no HTTP answer
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)  # response headers, in order, repeats kept
    body: bytes = b""  # first bytes only (capped by the probe)
    answered_by: str = NOBODY
    elapsed: float = 0.0  # seconds
    error: str | None = None  # one sentence: "connection refused", "timed out after 5.0 s"
    stage: str | None = None  # where it failed or stalled (one of STAGES)
    request_body: bytes = b""  # what a POST sent (secrets already masked by the probe)
    frames: list[str] = field(
        default_factory=list
    )  # after a 101: WebSocket messages, "> " sent, "< " received

    def header_values(self, name: str) -> list[str]:
        n = name.lower()
        return [v for k, v in self.headers if k.lower() == n]

    def transcript(self) -> str:
        """The request and the answer as an on-call engineer reads them (secrets redacted later)."""
        u = urlsplit(self.url)
        target = (u.path or "/") + (f"?{u.query}" if u.query else "")
        lines = [f"{self.method} {target} HTTP/1.1", f"Host: {u.netloc}"]
        lines += [f"{k}: {v}" for k, v in self.request_headers if k.lower() != "host"]
        if self.request_body:
            lines += ["", self.request_body[:600].decode("utf-8", "replace")]
        lines.append("")
        if self.status is None:
            lines.append(
                (f"(no answer at {self.stage}: " if self.stage else "(no answer: ")
                + f"{self.error or 'unknown error'})"
            )
        else:
            lines.append(f"HTTP/1.1 {self.status} {self.reason}".rstrip())
            lines += [f"{k}: {v}" for k, v in self.headers]
            if self.body:
                lines.append("")
                lines.append(self.body[:600].decode("utf-8", "replace"))
            if self.frames:
                lines.append("")
                lines += self.frames[:40]
            if self.error:
                lines.append(f"(then: {self.error}" + (f" at {self.stage})" if self.stage else ")"))
        return "\n".join(lines)


@dataclass
class Handshake:
    """Engine.IO polling handshake `GET {path}?EIO=4&transport=polling` at one place."""

    where: str  # "proxy" or a backend base URL ("http://127.0.0.1:3350")
    exchange: Exchange
    ok: bool = False  # got a valid open packet
    sid: str | None = None
    ping_interval: int | None = None  # ms
    ping_timeout: int | None = None  # ms
    max_payload: int | None = None
    upgrades: list[str] = field(default_factory=list)
    error: str | None = None
    eio: int = 4  # the EIO version asked for (the client's: 3 for socket.io-client 2.x)
    server_eio: int | None = None  # the Engine.IO version the open packet came in (3: `97:0{…}`), None: none
    # The same handshake with the other EIO version, sent when the server refused the first one's version
    # (Node's code 5, python's "unsupported version"): what the server does speak.
    retry: Handshake | None = None

    @property
    def spoken(self) -> Handshake | None:
        """The handshake that got an open packet (this one, or its retry with the other EIO), else None."""
        if self.ok:
            return self
        return self.retry if self.retry is not None and self.retry.ok else None


@dataclass
class WebSocketProbe:
    """Direct WebSocket `?EIO=4&transport=websocket` through the proxy (or at a backend)."""

    where: str
    exchange: Exchange  # the upgrade request and the answer (101 or the refusal)
    ok: bool = False  # 101 and an Engine.IO open packet as first frame
    open_packet: dict[str, Any] | None = None
    error: str | None = None
    eio: int = 4  # the EIO version asked for
    # A 101 whose first frame is no Engine.IO packet (a plain WebSocket server greeting): that frame.
    foreign_frame: str | None = None
    retry: WebSocketProbe | None = None  # asked again with the other EIO after a version refusal


@dataclass
class UpgradeProbe:
    """polling → websocket upgrade with the session id: 2probe / 3probe / 5."""

    where: str
    exchanges: list[Exchange] = field(default_factory=list)
    ok: bool = False
    error: str | None = None
    eio: int = 4  # the Engine.IO version spoken


@dataclass
class ConnectProbe:
    """Socket.IO CONNECT to the client's namespace with the token in `auth`."""

    where: str
    namespace: str
    transport: str  # "websocket" or "polling"
    exchanges: list[Exchange] = field(default_factory=list)
    packets: list[str] = field(default_factory=list)  # raw Engine.IO/Socket.IO packets seen, in order
    ok: bool = False  # got 40{"sid":…}
    refused_message: str | None = None  # the message of a 44 packet
    refused_data: Any = None
    events_before_ack: list[str] = field(default_factory=list)
    sent_token: bool = False
    sent_auth_header: bool = False
    error: str | None = None
    # The Socket.IO protocol spoken: 5 (socket.io 3/4: the token in the CONNECT auth) or 4 (socket.io 2: the
    # token in the query, no CONNECT for "/": the server joins it by itself).
    protocol: int = 5


@dataclass
class StickyProbe:
    """One polling session kept over several requests through the proxy."""

    where: str
    requests: int = 0  # requests made after the handshake
    refused: list[Exchange] = field(default_factory=list)  # 400 Session ID unknown / Invalid session
    exchanges: list[Exchange] = field(default_factory=list)  # all, in order (handshake first)
    ok: bool = False  # every request of the session was accepted
    error: str | None = None
    eio: int = 4  # the Engine.IO version spoken


@dataclass
class HoldProbe:
    """A tunnel held open for --hold seconds, pings answered."""

    where: str
    held_for: float = 0.0  # seconds the tunnel stayed open
    requested: float = 0.0  # --hold
    closed: bool = False  # the tunnel closed before `requested`
    close_code: int | None = None  # None: no close frame (TCP closed)
    close_reason: str = ""
    pings: int = 0  # server pings answered
    ping_interval: int | None = None  # ms, from the open packet
    error: str | None = None
    exchange: Exchange | None = None  # the WebSocket upgrade that opened the tunnel, and its frames
    stage: str | None = None  # where it failed when the tunnel never opened (one of STAGES)
    last_received: float | None = None  # seconds after opening when the last frame arrived (idle gap)
    opened: bool = False  # the tunnel opened (101 and the open packet); False: `error`/`stage` say why not
    eio: int = 4  # the Engine.IO version spoken (3: the client pings, 4: the server does)
    # Right after an early close, a new TCP connection to the proxy, when it failed (refused: the proxy went
    # away). None: it was accepted, or the tunnel did not close early.
    after: Exchange | None = None
    # Right after an early close, each backend asked again (base URL -> its handshake then).
    backends_after: dict[str, Handshake] = field(default_factory=dict)


@dataclass
class TlsProbe:
    host: str
    port: int
    ok: bool = False
    verified: bool = False  # chain verified (False with --insecure)
    insecure: bool = False
    hostname_ok: bool | None = None
    subject: str = ""
    issuer: str = ""
    san: list[str] = field(default_factory=list)
    not_after: str | None = None  # ISO 8601
    days_left: int | None = None
    alpn: str | None = None
    version: str | None = None
    error: str | None = None
    stage: str | None = None


@dataclass
class CorsProbe:
    where: str
    origin: str
    exchange: Exchange
    allow_origin: list[str] = field(default_factory=list)  # every Access-Control-Allow-Origin value
    allow_credentials: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class LogEvent:
    """A log line classified as evidence for one check."""

    source: str  # "error", "access", "backend"
    file: str
    line_no: int | None
    text: str  # the line itself (control characters stripped)
    kind: (
        str  # classification, e.g. "connect-refused", "no-live-upstreams", "upgraded-timeout", "socketio-404"
    )
    check: str  # the check id it speaks for
    time: str | None = None
    upstream: str | None = None  # the `upstream: "http://…"` field of an error line
    status: int | None = None
    request: str | None = None
    duration: float | None = None


@dataclass
class CommandResult:
    """A command run on the proxy host (or locally), as evidence."""

    argv: list[str]
    host: str  # "local" or the SSH host
    exit_status: int | None
    stdout: str = ""
    stderr: str = ""
    error: str | None = None  # could not run: timeout, not found, sudo needs a password

    @property
    def display(self) -> str:
        return " ".join(shlex.quote(a) for a in self.argv)


@dataclass
class Facts:
    target: Target
    config: Config | None = None
    config_source: str | None = None  # "nginx -T on root@host", "/etc/nginx/nginx.conf", "dump.txt"
    nginx_version: str | None = None  # "1.22.1"
    version_source: str | None = None  # "--nginx-version", "nginx -v", …
    client: ClientRequest | None = None
    handshakes: dict[str, Handshake] = field(default_factory=dict)  # "proxy" or backend base URL
    websocket: WebSocketProbe | None = None
    upgrade: UpgradeProbe | None = None
    connect: ConnectProbe | None = None
    sticky: StickyProbe | None = None
    hold: HoldProbe | None = None
    tls: TlsProbe | None = None
    cors: CorsProbe | None = None
    logs: list[LogEvent] = field(default_factory=list)
    commands: dict[str, CommandResult] = field(default_factory=dict)  # "nginx -t", "ss", "pm2", …
    ssh_host: str | None = None
    # Handshakes at other paths of a backend that answered 404 at the URI nginx sends: where its
    # Engine.IO really lives (keyed by full URL), so `route` can give the exact proxy_pass fix.
    path_probes: dict[str, Handshake] = field(default_factory=dict)
    # Fact names still being gathered ("config", "handshake:proxy", "websocket", "connect", "sticky", …).
    pending: set[str] = field(default_factory=set)
    # Fact names that could not be gathered, with the one-sentence reason.
    unavailable: dict[str, str] = field(default_factory=dict)

    def missing(self, name: str) -> str | None:
        """Why fact NAME is absent (for a skip), or None when it is there or still pending."""
        return self.unavailable.get(name)


# A gatherer: a coroutine that fills Facts (and takes its names out of ``pending`` when done, whatever happens).
Gatherer = Callable[[Facts], Awaitable[None]]
