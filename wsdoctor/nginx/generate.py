"""``wsdoctor generate``: a correct nginx config and the matching socket.io-client code for a Socket.IO service.

Everything the checks look for is built in, so the output passes them (tests/checks/test_generate.py runs every
check on it and ``nginx -t`` on the real binary):

- the location is the *engine path* the client requests (``/PREFIX/socket.io/``, ``^~`` so no regex location
  can steal it), and ``proxy_pass`` maps it to the backends' own engine path (KNOWLEDGE.md §2's table);
- HTTP/1.1 upstream, ``Upgrade $http_upgrade`` and ``Connection $connection_upgrade`` (the ``map`` idiom, so
  polling requests keep upstream keepalive), Host and X-Forwarded-* set in the location itself (inheritance);
- ``proxy_read_timeout`` above the Socket.IO pingInterval, a short connect timeout, no buffering for polling;
- session affinity only when polling is enabled and there are several backends;
- the client: ``io('wss://host', {path: '/PREFIX/socket.io'})`` — the prefix in ``path``, never in the URL.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from typing import Any

from wsdoctor.wire.client import DEFAULT_TRANSPORTS, KNOWN_TRANSPORTS, client_code, normalize_path_option


class GenerateError(ValueError):
    """An option no correct config can be generated from; the message says what to pass instead."""


_HOSTPORT = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$")
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_SERVER_NAME = re.compile(r"^(\*\.)?[A-Za-z0-9.-]+$")


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
    read_timeout: str = "60s"  # above the Socket.IO default pingInterval (25 s)


@dataclass
class Generated:
    nginx_conf: str  # a site file for http{} (conf.d/ or sites-enabled/): map, upstream, servers
    client_js: str
    public_engine_path: str  # "/dev/aiwm/chat/socket.io/": what the client requests
    backend_engine_path: str  # "/chat/socket.io/": what the backends serve
    notes: list[str]

    def text(self) -> str:
        """Both parts, as `wsdoctor generate` prints them."""
        notes = "".join(f"# - {n}\n" for n in self.notes)
        return (
            "# ---- nginx: put this in /etc/nginx/conf.d/ (or sites-enabled/), then `nginx -t && nginx -s reload`\n"
            + self.nginx_conf
            + "\n// ---- client (socket.io-client)\n"
            + self.client_js
            + "\n"
            + ("\n# Notes\n" + notes if notes else "")
        )


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
    bad = [t for t in o.transports if t not in KNOWN_TRANSPORTS]
    if bad or not o.transports:
        raise GenerateError(
            f"--transports takes polling,websocket or websocket, not {','.join(o.transports)!r}"
        )
    for name, value in (("--public-path", o.public_path), ("--backend-path", o.backend_path)):
        if any(c.isspace() or c in ";{}#'\"$" for c in value):
            raise GenerateError(f"{name} {value!r} holds characters nginx would misread; use a plain /path/")
    for name, value in (("--cert", o.cert), ("--key", o.key)):
        if not value.startswith("/") or any(c.isspace() or c in ";{}#'\"" for c in value):
            raise GenerateError(f"{name} {value!r} must be an absolute path without spaces or quotes")


def engine_paths(public_path: str, backend_path: str) -> tuple[str, str]:
    """(public engine path, backend engine path), both with one leading and one trailing slash.

    A public path already ending in ``/socket.io`` is taken as the engine path itself.
    """
    pub = normalize_path_option(public_path or "/")
    if not pub.rstrip("/").endswith("/socket.io"):
        pub = pub.rstrip("/") + "/socket.io/"
    back = normalize_path_option(backend_path or "/socket.io/")
    return re.sub("/+", "/", pub), re.sub("/+", "/", back)


def generate(o: SetupOptions) -> Generated:
    _validate(o)
    pub, back = engine_paths(o.public_path, o.backend_path)
    polling = "polling" in o.transports
    several = len(o.backends) > 1
    notes: list[str] = []

    upstream = [f"upstream {o.upstream} {{"]
    if polling and several:
        upstream.append("    # polling sends each request separately: keep a session on one backend")
        upstream.append("    hash $remote_addr consistent;")
        notes.append(
            "behind a CDN or another load balancer, add `set_real_ip_from <its range>; real_ip_header "
            "X-Forwarded-For;` so $remote_addr is the client's address (else every client lands on one backend)"
        )
    elif several:
        upstream.append("    # websocket only: a session is one connection, no affinity needed")
    upstream += [f"    server {b} max_fails=3 fail_timeout=10s;" for b in o.backends]
    upstream.append("    keepalive 16;")
    upstream.append("}")

    target = f"http://{o.upstream}" + ("" if back == pub else back)
    location = [
        f"    # socket.io-client requests {pub}?EIO=4&transport=… (its `path` option);",
        f"    # the backends serve {back}" + ("" if back == pub else f", so nginx replaces {pub} by {back}"),
        f"    location ^~ {pub} {{",
        f"        proxy_pass {target};",
        "        proxy_http_version 1.1;",
        "        proxy_set_header Upgrade $http_upgrade;",
        "        proxy_set_header Connection $connection_upgrade;",
        "        # set here, not only at server level: a location with any proxy_set_header inherits none",
        "        proxy_set_header Host $host;",
        "        proxy_set_header X-Real-IP $remote_addr;",
        "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "        proxy_set_header X-Forwarded-Proto $scheme;",
        "        # idle tunnels stay open as long as the server pings more often than this (25 s by default)",
        f"        proxy_read_timeout {o.read_timeout};",
        f"        proxy_send_timeout {o.read_timeout};",
        "        proxy_connect_timeout 5s;",
        "        proxy_buffering off;",
        "    }",
    ]
    conf = "\n".join(
        [
            "# WebSocket requests get 'Connection: upgrade'; plain ones (polling) no Connection header at all,",
            "# so they can reuse the upstream keepalive connections",
            "map $http_upgrade $connection_upgrade {",
            "    default upgrade;",
            "    ''      '';",
            "}",
            "",
            *upstream,
            "",
            "server {",
            "    listen 80;",
            "    listen [::]:80;",
            f"    server_name {o.server_name};",
            "    return 301 https://$host$request_uri;",
            "}",
            "",
            "server {",
            "    listen 443 ssl;",
            "    listen [::]:443 ssl;",
            f"    server_name {o.server_name};",
            f"    ssl_certificate {o.cert};",
            f"    ssl_certificate_key {o.key};",
            "",
            *location,
            "}",
            "",
        ]
    )
    client = 'import { io } from "socket.io-client";\n\n' + client_code(
        f"wss://{o.server_name}", pub, "/", tuple(o.transports), auth=True
    )
    notes.append(
        f"the backends must serve Socket.IO at {back}: Node `new Server(http, {{ path: '{back.rstrip('/')}' }})`, "
        f"python `socketio.ASGIApp(sio, socketio_path='{back.strip('/')}')`"
    )
    if several:
        notes.append(
            "events broadcast to rooms reach clients on other backends only through an adapter (e.g. Redis)"
        )
    notes.append(
        "check it: wsdoctor check --url wss://" + o.server_name + f" --path {pub.rstrip('/')} --ssh <proxy>"
    )
    return Generated(
        nginx_conf=conf, client_js=client, public_engine_path=pub, backend_engine_path=back, notes=notes
    )


def options_from_namespace(ns: Any) -> SetupOptions:
    transports = tuple(
        t.strip() for t in str(getattr(ns, "transports", "") or "polling,websocket").split(",") if t.strip()
    )
    defaults = SetupOptions()
    return SetupOptions(
        server_name=getattr(ns, "server_name", None) or defaults.server_name,
        public_path=getattr(ns, "public_path", None) or defaults.public_path,
        backend_path=getattr(ns, "backend_path", None) or defaults.backend_path,
        backends=list(getattr(ns, "backend", None) or defaults.backends),
        upstream=getattr(ns, "upstream", None) or defaults.upstream,
        transports=transports,
        cert=getattr(ns, "cert", None) or defaults.cert,
        key=getattr(ns, "key", None) or defaults.key,
    )


def generate_command(ns: Any) -> int:
    """`wsdoctor generate`: print the config and the client code; a bad option is one line and exit 2."""
    try:
        out = generate(options_from_namespace(ns))
    except GenerateError as e:
        print(f"wsdoctor: {e}", file=sys.stderr)
        return 2
    sys.stdout.write(out.text())
    return 0
