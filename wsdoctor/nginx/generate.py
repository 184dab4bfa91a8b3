"""``wsdoctor generate``: a correct nginx config and the matching client code for a Socket.IO service.

Everything the checks look for is built in, so the output passes them (tests/checks/test_generate.py runs every
check on it, ``nginx -t`` on the real binary, and real clients through real nginx):

- the location is the *engine path* the client requests (``/PREFIX/socket.io/``, ``^~`` so no regex location
  can steal it), and ``proxy_pass`` maps it to the backends' own engine path (``location /a/ { proxy_pass
  http://up/b/; }`` replaces the prefix ``/a/`` by ``/b/``);
- HTTP/1.1 upstream, ``Upgrade $http_upgrade`` and ``Connection $connection_upgrade`` (the ``map`` idiom, so
  polling requests keep upstream keepalive), Host and X-Forwarded-* set in the location itself (a location with
  any ``proxy_set_header`` inherits none from its server);
- ``proxy_read_timeout`` derived from the backends' pingInterval, a short connect timeout, no buffering;
- session affinity only when polling is enabled and there are several backends;
- syntax by nginx version (``http2``; ``proxy_http_version`` and upstream keepalive defaults change in 1.29.7);
- the clients: ``io('wss://host/NAMESPACE', {path: '/PREFIX/socket.io'})`` — the prefix in ``path``, never in
  the URL (the URL's path is the namespace) — and the same for python-socketio.
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass, field
from typing import Any

from wsdoctor.wire.client import (
    DEFAULT_TRANSPORTS,
    KNOWN_TRANSPORTS,
    client_code,
    js_string,
    normalize_path_option,
)


class GenerateError(ValueError):
    """An option no correct config can be generated from; the message says what to pass instead."""


_HOSTPORT = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$")
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_SERVER_NAME = re.compile(r"^(\*\.)?[A-Za-z0-9.-]+$")
_VERSION = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?$")
_NAMESPACE = re.compile(r"^/[A-Za-z0-9_.~/-]*$")
_LISTEN = re.compile(r"^(?:(\[[0-9a-fA-F:.]+\]|[0-9.]+|\*):)?(\d{1,5})$")

#: nginx 1.29.7 made HTTP/1.1 the upstream default and turned keepalive on in explicit upstream blocks.
HTTP11_DEFAULT = (1, 29, 7)
#: nginx 1.25.1 replaced ``listen … http2`` by the ``http2 on;`` directive.
HTTP2_DIRECTIVE = (1, 25, 1)
HTTP2_LISTEN = (1, 9, 5)
MIN_READ_TIMEOUT = 60  # seconds: nginx's own default, never generated lower


def parse_version(text: str | None) -> tuple[int, int, int] | None:
    """``"1.22.1"`` → (1, 22, 1); None for None. Raises GenerateError on anything else."""
    if text is None or text == "":
        return None
    m = _VERSION.match(text.strip())
    if not m:
        raise GenerateError(f"--nginx-version takes a version like 1.22.1, not {text!r}")
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


@dataclass
class SetupOptions:
    server_name: str = "api.example.com"
    public_path: str = "/"  # the public prefix ("/dev/aiwm/chat/"); the engine path is PREFIX/socket.io/
    backend_path: str = "/socket.io/"  # the backends' engine path ("/chat/socket.io/")
    backends: list[str] = field(default_factory=lambda: ["127.0.0.1:3000"])
    upstream: str = "socketio_backends"
    transports: tuple[str, ...] = DEFAULT_TRANSPORTS
    cert: str = "/etc/ssl/certs/server.pem"
    key: str = "/etc/ssl/private/server.key"
    namespace: str = "/"  # the Socket.IO namespace the clients join (not part of any HTTP path)
    ping_interval: int = 25000  # ms: the backends' pingInterval (Socket.IO's default)
    client_version: int = 4  # the clients' socket.io-client major version
    nginx_version: str | None = None  # the proxy's nginx ("1.22.1"); None: syntax every version accepts
    listen: str = "443"  # [ADDR:]PORT of the TLS server; 443 also gets the port-80 redirect
    define_map: bool = True  # False when the http block already has `map $http_upgrade $connection_upgrade`

    @property
    def read_timeout(self) -> int:
        """Seconds: twice the pingInterval (a late ping does not close a tunnel), never below 60."""
        return max(MIN_READ_TIMEOUT, math.ceil(2 * self.ping_interval / 1000))

    @property
    def listen_port(self) -> int:
        m = _LISTEN.match(self.listen)
        return int(m.group(2)) if m else 443

    @property
    def listen_address(self) -> str | None:
        m = _LISTEN.match(self.listen)
        return m.group(1) if m else None


@dataclass
class Generated:
    nginx_conf: str  # a drop-in for http{} (conf.d/ or sites-enabled/): map, upstream, servers
    clients: dict[str, str]  # "socket.io-client" (JS) and "python-socketio" code
    public_engine_path: str  # "/dev/aiwm/chat/socket.io/": what the client requests
    backend_engine_path: str  # "/chat/socket.io/": what the backends serve
    notes: list[str]
    reasons: list[tuple[str, str]] = field(default_factory=list)  # (config line, why it is there)

    @property
    def client_js(self) -> str:
        return self.clients["socket.io-client"]

    @property
    def client_py(self) -> str:
        return self.clients["python-socketio"]

    def text(self) -> str:
        """Every part, as ``wsdoctor generate`` prints them."""
        notes = "".join(f"# - {n}\n" for n in self.notes)
        return (
            "# ---- nginx: put this in /etc/nginx/conf.d/ (or sites-enabled/), then `nginx -t && nginx -s reload`\n"
            + self.nginx_conf
            + "\n// ---- client (socket.io-client)\n"
            + self.client_js
            + "\n\n# ---- client (python-socketio)\n"
            + self.client_py
            + "\n"
            + ("\n# Notes\n" + notes if notes else "")
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": 1,
            "nginx": self.nginx_conf,
            "clients": dict(self.clients),
            "notes": list(self.notes),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"


def _validate(o: SetupOptions) -> None:
    if not _SERVER_NAME.match(o.server_name):
        raise GenerateError(f"--server-name {o.server_name!r} is not a host name; use e.g. api.example.com")
    if not _NAME.match(o.upstream):
        raise GenerateError(f"--upstream {o.upstream!r} must be a plain name (letters, digits, _ . -)")
    if not o.backends:
        raise GenerateError("no backend given; pass --backend HOST:PORT (repeatable)")
    for b in o.backends:
        m = _HOSTPORT.match(b)
        if not m or not 0 < int(m.group(2)) < 65536:
            raise GenerateError(f"--backend {b!r} is not HOST:PORT; use e.g. --backend 127.0.0.1:3350")
    bad = [t for t in o.transports if t not in KNOWN_TRANSPORTS or t == "webtransport"]
    if bad or not o.transports:
        raise GenerateError(
            f"--transports takes polling,websocket, websocket or polling, not {','.join(o.transports)!r}"
        )
    for name, value in (("--public-path", o.public_path), ("--backend-path", o.backend_path)):
        if any(c.isspace() or c in ";{}#'\"$?\\" for c in value):
            raise GenerateError(f"{name} {value!r} holds characters nginx would misread; use a plain /path/")
    for name, value in (("--cert", o.cert), ("--key", o.key)):
        if not value.startswith("/") or any(c.isspace() or c in ";{}#'\"$" for c in value):
            raise GenerateError(f"{name} {value!r} must be an absolute path without spaces or quotes")
    if not _NAMESPACE.match(o.namespace or "/"):
        raise GenerateError(f"--namespace {o.namespace!r} must start with / (e.g. /chat), letters and / only")
    if not 100 <= o.ping_interval <= 3_600_000:
        raise GenerateError(
            f"--ping-interval {o.ping_interval} is in milliseconds (Socket.IO's default is 25000); "
            "pass the backends' pingInterval"
        )
    if o.client_version not in (2, 3, 4):
        raise GenerateError(
            f"--client-version takes 2, 3 or 4 (socket.io-client's major), not {o.client_version}"
        )
    parse_version(o.nginx_version)
    m = _LISTEN.match(o.listen or "")
    if not m or not 0 < int(m.group(2)) < 65536:
        raise GenerateError(f"--listen {o.listen!r} is not [ADDRESS:]PORT; use e.g. 443 or 127.0.0.1:8443")


def engine_paths(public_path: str, backend_path: str) -> tuple[str, str]:
    """(public engine path, backend engine path), both with one leading and one trailing slash.

    A public path already ending in ``/socket.io`` is taken as the engine path itself.
    """
    pub = normalize_path_option(public_path or "/")
    if not pub.rstrip("/").endswith("/socket.io"):
        pub = pub.rstrip("/") + "/socket.io/"
    back = normalize_path_option(backend_path or "/socket.io/")
    return re.sub("/+", "/", pub), re.sub("/+", "/", back)


class _Conf:
    """The config's lines, each with the reason it is there (the setup wizard shows them side by side)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.reasons: list[tuple[str, str]] = []

    def add(self, line: str, why: str = "") -> None:
        self.lines.append(line)
        if why:
            self.reasons.append((line.strip(), why))

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _listen_lines(o: SetupOptions, version: tuple[int, int, int] | None) -> list[tuple[str, str]]:
    m = _LISTEN.match(o.listen)
    assert m is not None
    addr, port = m.group(1), m.group(2)
    http2_listen = version is not None and HTTP2_LISTEN <= version < HTTP2_DIRECTIVE
    suffix = " ssl http2" if http2_listen else " ssl"
    why = "TLS: clients connect with wss:// (https:// for polling)"
    if http2_listen:
        why += "; http2 on the listen line before nginx 1.25.1 (WebSocket itself stays on HTTP/1.1)"
    if addr:
        return [(f"    listen {addr}:{port}{suffix};", why)]
    return [(f"    listen {port}{suffix};", why), (f"    listen [::]:{port}{suffix};", "the same on IPv6")]


def _nginx(o: SetupOptions, pub: str, back: str, notes: list[str]) -> _Conf:
    version = parse_version(o.nginx_version)
    new_defaults = version is not None and version >= HTTP11_DEFAULT
    polling = "polling" in o.transports
    several = len(o.backends) > 1
    c = _Conf()
    if o.define_map:
        c.add(
            "# WebSocket requests get 'Connection: upgrade'; plain ones (polling) no Connection header at all,"
        )
        c.add("# so they can reuse the upstream keepalive connections")
        c.add(
            "map $http_upgrade $connection_upgrade {",
            "the Connection header to send upstream, from the client's Upgrade header",
        )
        c.add("    default upgrade;", "a WebSocket handshake: forward it as an upgrade")
        c.add("    ''      '';", "no Upgrade (polling): no Connection header, so keepalive works")
        c.add("}")
        c.add("")
    else:
        notes.append(
            "the running config already defines `map $http_upgrade $connection_upgrade`: this file uses it "
            "(a second definition would fail nginx -t)"
        )
    c.add(f"upstream {o.upstream} {{", f"the {len(o.backends)} Socket.IO process(es)")
    if polling and several:
        c.add("    # polling sends each request separately: keep a session on one backend")
        c.add(
            "    hash $remote_addr consistent;",
            "polling is on and there are several backends: every request of a session must reach the "
            "backend that created it (else 400 'Session ID unknown')",
        )
        notes.append(
            "behind a CDN or another load balancer, add `set_real_ip_from <its range>; real_ip_header "
            "X-Forwarded-For;` so $remote_addr is the client's address (else every client lands on one backend)"
        )
    elif several:
        c.add("    # websocket only: a session is one connection, no affinity needed")
    for b in o.backends:
        c.add(
            f"    server {b} max_fails=3 fail_timeout=10s;",
            "a backend; after 3 failed connects it is skipped for 10 s",
        )
    keepalive_why = (
        "a pool of idle connections for polling requests (on by default since nginx 1.29.7; this sets its size)"
        if new_defaults
        else "keep idle connections for polling requests (off by default before nginx 1.29.7)"
    )
    c.add("    keepalive 16;", keepalive_why)
    c.add("}")
    c.add("")
    port = o.listen_port
    if port == 443 and not o.listen_address:
        c.add("server {", "plain http:// requests are sent to https://")
        c.add("    listen 80;")
        c.add("    listen [::]:80;")
        c.add(f"    server_name {o.server_name};")
        c.add("    return 301 https://$host$request_uri;", "a browser typing http:// lands on https://")
        c.add("}")
        c.add("")
    c.add("server {")
    for line, why in _listen_lines(o, version):
        c.add(line, why)
    if version is not None and version >= HTTP2_DIRECTIVE:
        c.add("    http2 on;", "HTTP/2 for polling and the rest of the site (WebSocket stays on HTTP/1.1)")
    c.add(f"    server_name {o.server_name};", "the public host name the clients connect to")
    c.add(f"    ssl_certificate {o.cert};", "the certificate for that name (full chain)")
    c.add(f"    ssl_certificate_key {o.key};")
    c.add("")
    rewrite = back != pub
    c.add(f"    # socket.io-client requests {pub}?EIO=4&transport=… (its `path` option);")
    c.add(f"    # the backends serve {back}" + (f", so nginx replaces {pub} by {back}" if rewrite else ""))
    c.add(
        f"    location ^~ {pub} {{",
        "the engine path the clients request; ^~ so no regex location can take it",
    )
    target = f"http://{o.upstream}" + (back if rewrite else "")
    c.add(
        f"        proxy_pass {target};",
        f"replaces {pub} by {back}, the path the backends serve"
        if rewrite
        else "the URI is passed unchanged",
    )
    c.add(
        "        proxy_http_version 1.1;",
        "the default since nginx 1.29.7; kept so the config also works on older nginx"
        if new_defaults
        else "nginx speaks HTTP/1.0 upstream before 1.29.7: WebSocket and keepalive need 1.1",
    )
    c.add(
        "        proxy_set_header Upgrade $http_upgrade;",
        "Upgrade is hop-by-hop: nginx never forwards it unless set",
    )
    c.add(
        "        proxy_set_header Connection $connection_upgrade;",
        "'upgrade' for WebSocket, none for polling",
    )
    c.add("        # set here, not only at server level: a location with any proxy_set_header inherits none")
    c.add("        proxy_set_header Host $host;", "the backend sees the public host name")
    c.add("        proxy_set_header X-Real-IP $remote_addr;", "the client's address")
    c.add(
        "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;", "the client's address chain"
    )
    c.add("        proxy_set_header X-Forwarded-Proto $scheme;", "the backend knows the client used https")
    c.add(
        f"        # idle tunnels stay open while the backends ping more often than this "
        f"(pingInterval {o.ping_interval / 1000:g} s)"
    )
    c.add(
        f"        proxy_read_timeout {o.read_timeout}s;",
        f"longer than the backends' pingInterval ({o.ping_interval / 1000:g} s): their pings keep a tunnel "
        "busy, so nginx never closes a live one",
    )
    c.add(f"        proxy_send_timeout {o.read_timeout}s;", "the same for writes to a slow client")
    c.add(
        "        proxy_connect_timeout 5s;", "short: a dead backend fails over quickly (75 s is the maximum)"
    )
    c.add("        proxy_buffering off;", "polling answers go out at once")
    c.add("    }")
    c.add("}")
    return c


def _namespace(o: SetupOptions) -> str:
    ns = o.namespace or "/"
    return "/" + ns.strip("/") if ns.strip("/") else "/"


def _origin(o: SetupOptions) -> str:
    port = o.listen_port
    return f"wss://{o.server_name}" + ("" if port == 443 else f":{port}")


def _js_client(o: SetupOptions, pub: str) -> str:
    ns = _namespace(o)
    if o.client_version >= 3:
        return 'import { io } from "socket.io-client";\n\n' + client_code(
            _origin(o), pub, ns, tuple(o.transports), auth=True
        )
    # socket.io-client 2.x: no CONNECT `auth` payload; the token travels in the query.
    url = _origin(o) + ("" if ns == "/" else ns)
    opts = [f"path: {js_string(pub.rstrip('/'))}", "query: { token }"]
    if tuple(o.transports) != DEFAULT_TRANSPORTS:
        opts.append("transports: [" + ", ".join(js_string(t) for t in o.transports) + "]")
    body = ",\n".join(f"  {x}" for x in opts)
    return (
        "// socket.io-client 2.x speaks Engine.IO 3: the server needs allowEIO3 (Node socket.io 3/4)\n"
        'import io from "socket.io-client";\n\n'
        f"const socket = io({js_string(url)}, {{\n{body},\n}});"
    )


def _py_client(o: SetupOptions, pub: str) -> str:
    ns = _namespace(o)
    origin = "https://" + _origin(o)[len("wss://") :]
    transports = ", ".join(json.dumps(t) for t in o.transports)
    if o.client_version < 3:
        return (
            "# python-socketio 4.x (pip install 'python-socketio<5') speaks Socket.IO 2 / Engine.IO 3;\n"
            "# it has no CONNECT auth payload: the token travels in the query string\n"
            "import os\n\nimport socketio\n\n"
            "sio = socketio.Client()\n"
            "sio.connect(\n"
            f'    {json.dumps(origin)} + "?token=" + os.environ["SOCKETIO_TOKEN"],\n'
            f"    socketio_path={json.dumps(pub.rstrip('/'))},\n"
            f"    namespaces=[{json.dumps(ns)}],\n"
            f"    transports=[{transports}],\n"
            ")\n"
            "sio.wait()"
        )
    return (
        "import asyncio\nimport os\n\nimport socketio\n\n\n"
        "async def main() -> None:\n"
        "    sio = socketio.AsyncClient()\n\n"
        + ("    @sio.event\n" if ns == "/" else f"    @sio.event(namespace={json.dumps(ns)})\n")
        + "    async def connect() -> None:\n"
        f'        print("connected", sio.transport(), flush=True)\n\n'
        "    await sio.connect(\n"
        f"        {json.dumps(origin)},\n"
        f"        socketio_path={json.dumps(pub.rstrip('/'))},\n"
        f"        namespaces=[{json.dumps(ns)}],\n"
        f"        transports=[{transports}],\n"
        '        auth={"token": os.environ["SOCKETIO_TOKEN"]},\n'
        "    )\n"
        "    await sio.wait()\n\n\n"
        "asyncio.run(main())"
    )


def generate(o: SetupOptions) -> Generated:
    _validate(o)
    pub, back = engine_paths(o.public_path, o.backend_path)
    several = len(o.backends) > 1
    notes: list[str] = []
    conf = _nginx(o, pub, back, notes)
    version = parse_version(o.nginx_version)
    ns = _namespace(o)
    server_opts = f"path: '{back.rstrip('/')}'"
    py_opts = f"socketio_path='{back.strip('/')}'"
    if o.client_version == 2:
        server_opts += ", allowEIO3: true"
        notes.append(
            "socket.io-client 2.x speaks Engine.IO 3: Node socket.io 3/4 servers accept it only with "
            "`allowEIO3: true`; python-socketio 5 servers cannot serve it (python-socketio 4.x can); "
            "2.x clients send no `auth` payload, so the token travels in the query"
        )
    notes.append(
        f"the backends must serve Socket.IO at {back}: Node `new Server(http, {{ {server_opts} }})`, "
        f"python `socketio.ASGIApp(sio, {py_opts})`"
    )
    notes.append(
        f"the backends' pingInterval is {o.ping_interval / 1000:g} s, so proxy_read_timeout is "
        f"{o.read_timeout} s; pass --ping-interval MS if they use another value"
    )
    if ns != "/":
        notes.append(
            f"namespace {ns} is joined by the clients, not routed by nginx: the backends must define it "
            f"(Node `io.of('{ns}')`, python handlers with namespace='{ns}')"
        )
    if several:
        notes.append(
            "events broadcast to rooms reach clients on other backends only through an adapter (e.g. Redis)"
        )
    if version is None:
        notes.append(
            "no --nginx-version given: HTTP/2 is left off (its syntax depends on the version: "
            "`listen … http2` before 1.25.1, `http2 on;` after)"
        )
    client_path = f" --path {pub.rstrip('/')}"
    url = _origin(o) + ("" if ns == "/" else ns)
    notes.append(f"check it: wsdoctor check --url {url}{client_path} --ssh <proxy>")
    return Generated(
        nginx_conf=conf.text(),
        clients={"socket.io-client": _js_client(o, pub), "python-socketio": _py_client(o, pub)},
        public_engine_path=pub,
        backend_engine_path=back,
        notes=notes,
        reasons=conf.reasons,
    )


def options_from_namespace(ns: Any) -> SetupOptions:
    transports = tuple(
        t.strip() for t in str(getattr(ns, "transports", "") or "polling,websocket").split(",") if t.strip()
    )
    defaults = SetupOptions()
    ping = getattr(ns, "ping_interval", None)
    client_version = getattr(ns, "client_version", None)
    try:
        ping_ms = int(ping) if ping is not None else defaults.ping_interval
    except (TypeError, ValueError):
        raise GenerateError(f"--ping-interval takes milliseconds (e.g. 25000), not {ping!r}") from None
    try:
        client = int(client_version) if client_version is not None else defaults.client_version
    except (TypeError, ValueError):
        raise GenerateError(f"--client-version takes 2, 3 or 4, not {client_version!r}") from None
    return SetupOptions(
        server_name=getattr(ns, "server_name", None) or defaults.server_name,
        public_path=getattr(ns, "public_path", None) or defaults.public_path,
        backend_path=getattr(ns, "backend_path", None) or defaults.backend_path,
        backends=list(getattr(ns, "backend", None) or defaults.backends),
        upstream=getattr(ns, "upstream", None) or defaults.upstream,
        transports=transports,
        cert=getattr(ns, "cert", None) or defaults.cert,
        key=getattr(ns, "key", None) or defaults.key,
        namespace=getattr(ns, "namespace", None) or defaults.namespace,
        ping_interval=ping_ms,
        client_version=client,
        nginx_version=getattr(ns, "nginx_version", None) or None,
        listen=str(getattr(ns, "listen", None) or defaults.listen),
    )


def generate_command(ns: Any) -> int:
    """`wsdoctor generate`: print the config and the client code; a bad option is one line and exit 2."""
    try:
        out = generate(options_from_namespace(ns))
    except GenerateError as e:
        print(f"wsdoctor: {e}", file=sys.stderr)
        return 2
    sys.stdout.write(out.to_json() if getattr(ns, "format", "text") == "json" else out.text())
    return 0
