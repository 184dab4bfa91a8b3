"""What the setup wizard can learn about the proxy host before asking anything.

With the host's Runner (SSH, or this machine): the running nginx (version, main config, the ``include``
patterns of its http block, where a new site file would be read from, its server names and certificates), the
listening TCP ports with their processes (``ss -ltnp``), pm2 apps and systemd units, and — for every candidate
backend (the servers of the config's upstreams, and the ports local Node/Python processes listen on) — where
its Socket.IO engine lives and its pingInterval, found by a real Engine.IO handshake at the candidate paths
(through the SSH connection, so what answers is what nginx would reach). Backends are grouped by the process
that serves them (its pm2 app, systemd unit, or program and working directory): a host runs several services,
and the wizard asks which one when it cannot tell.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from dataclasses import dataclass, field

from wsdoctor.apply.hostfs import Host
from wsdoctor.apply.nginxctl import Nginx, NginxError, process_table
from wsdoctor.apply.plans import http_includes, running_config
from wsdoctor.facts import Handshake
from wsdoctor.nginx.model import Config
from wsdoctor.probes import ProbeContext
from wsdoctor.probes import handshake as eio_handshake
from wsdoctor.remote import host as h
from wsdoctor.remote.session import RemoteSession

PROBE_TIMEOUT = 3.0
MAX_CANDIDATES = 256  # listening ports probed at most (a busy host listens on many)
PARALLEL = 20
COMMON_PATHS = (
    "/socket.io/",
    "/chat/socket.io/",
    "/ws/socket.io/",
    "/api/socket.io/",
    "/realtime/socket.io/",
)
_SS_LINE = re.compile(r"^LISTEN\s+\d+\s+\d+\s+(\S+):(\d+)\s+\S+\s*(.*)$")
_SS_PROC = re.compile(r'\("([^"]+)",pid=(\d+)')
_BACKEND = re.compile(r"node|python|uvicorn|gunicorn|hypercorn|daphne|pm2|deno|bun|java|ruby|php", re.I)


@dataclass
class Listener:
    address: str  # as nginx would reach it: 127.0.0.1 for a wildcard bind
    port: int
    process: str = ""
    pid: int | None = None

    @property
    def hostport(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"


@dataclass
class Backend:
    hostport: str
    engine_path: str | None = None  # "/chat/socket.io/" where the handshake answered
    ping_interval: int | None = None  # ms
    ping_timeout: int | None = None
    eio: int = 4
    group: str = ""  # who serves it: "pm2 chat", "systemd chat.service", "python in /srv/chat"
    error: str | None = None


@dataclass
class Discovered:
    host: str
    nginx_conf: str | None = None
    nginx_version: str | None = None
    includes: list[str] = field(default_factory=list)
    into: str | None = None  # where a new site file would be read from
    server_names: list[str] = field(default_factory=list)
    certs: dict[str, tuple[str, str]] = field(default_factory=dict)  # server_name -> (cert, key)
    listeners: list[Listener] = field(default_factory=list)
    services: list[str] = field(default_factory=list)
    backends: list[Backend] = field(default_factory=list)  # those with a Socket.IO engine
    notes: list[str] = field(default_factory=list)
    has_upgrade_map: bool = False  # the http block defines $connection_upgrade already
    upstream_names: list[str] = field(default_factory=list)  # taken: a new upstream needs another name

    def groups(self) -> dict[str, list[Backend]]:
        """Socket.IO backends by the service that runs them, biggest first."""
        out: dict[str, list[Backend]] = {}
        for b in self.backends:
            if b.engine_path:
                out.setdefault(b.group or "other", []).append(b)
        return dict(sorted(out.items(), key=lambda kv: (-len(kv[1]), kv[0])))


def _listeners(ss: str) -> list[Listener]:
    out: list[Listener] = []
    for line in ss.splitlines():
        m = _SS_LINE.match(line.strip())
        if not m:
            continue
        addr = m.group(1).strip("[]")
        if addr in ("0.0.0.0", "*", "::"):
            addr = "127.0.0.1"
        proc = _SS_PROC.search(m.group(3))
        out.append(
            Listener(
                addr, int(m.group(2)), proc.group(1) if proc else "", int(proc.group(2)) if proc else None
            )
        )
    return out


def _suggest_into(includes: list[str]) -> str | None:
    """A file name an http-level include would read: conf.d/*.conf → conf.d/socketio.conf."""
    for pattern in includes:
        d, base = os.path.split(pattern)
        if "*" in d or "?" in d:
            continue
        if base == "*.conf":
            return f"{d}/socketio.conf"
        if base == "*":
            return f"{d}/socketio"
    return None


def _names_and_certs(config: Config) -> tuple[list[str], dict[str, tuple[str, str]]]:
    names: list[str] = []
    certs: dict[str, tuple[str, str]] = {}
    for server in config.servers():
        cert = server.child("ssl_certificate")
        key = server.child("ssl_certificate_key")
        for sn in server.children("server_name"):
            for name in sn.args:
                if name and name not in ("_", "localhost") and not name.startswith("~") and name not in names:
                    names.append(name)
                    if cert is not None and key is not None and cert.args and key.args:
                        certs[name] = (cert.args[0], key.args[0])
    return names, certs


def _upstream_servers(config: Config) -> list[str]:
    out: list[str] = []
    for up in config.upstreams().values():
        for s in up.children("server"):
            if s.args and not s.args[0].startswith("unix:") and s.args[0] not in out:
                out.append(s.args[0] if ":" in s.args[0] else s.args[0] + ":80")
    return out


def _config_paths(config: Config) -> list[str]:
    """Engine paths the running config already sends upstream (proxy_pass URI parts + socket.io/)."""
    out: list[str] = []
    for d in config.walk():
        if d.name == "proxy_pass" and d.args:
            m = re.match(r"^https?://[^/]+(/.*)$", d.args[0])
            if m and "$" not in m.group(1):
                p = m.group(1)
                p = p if p.endswith("/socket.io/") else p.rstrip("/") + "/socket.io/"
                if p not in out:
                    out.append(p)
    return out


def _groups(host: Host, listeners: list[Listener], hints: dict[str, h.CommandResult]) -> dict[int, str]:
    """pid → who runs it: its systemd unit, else its program and working directory."""
    pids = sorted({x.pid for x in listeners if x.pid})
    if not pids:
        return {}
    script = (
        'for p do c=$(readlink "/proc/$p/cwd" 2>/dev/null); u=$(sed -n "s|.*/\\([^/]*\\.service\\)$|\\1|p" '
        '"/proc/$p/cgroup" 2>/dev/null | head -n 1); printf "%s\\t%s\\t%s\\n" "$p" "$c" "$u"; done'
    )
    result = host.sh(script, *(str(p) for p in pids))
    names = {x.pid: x.process for x in listeners if x.pid}
    out: dict[int, str] = {}
    for line in result.stdout.splitlines():
        parts = line.split("\t")
        if len(parts) != 3 or not parts[0].isdigit():
            continue
        pid, cwd, unit = int(parts[0]), parts[1], parts[2]
        if unit and not unit.startswith(("session-", "user@", "ssh", "init.scope")) and "nginx" not in unit:
            out[pid] = f"systemd {unit}"
        else:
            out[pid] = f"{names.get(pid) or 'process'} in {cwd or '?'}"
    return out


async def _probe(session: RemoteSession, hostport: str, paths: list[str]) -> Backend:
    host, _, port = hostport.rpartition(":")
    host = host.strip("[]")
    b = Backend(hostport)
    ctx = ProbeContext(timeout=PROBE_TIMEOUT)
    try:
        ctx.connect_to = await session.call(session.forward, host, int(port))
    except Exception as e:  # noqa: BLE001 - unreachable from the proxy host: that is what we learn
        b.error = str(e).rstrip(".")
        return b
    base = f"http://{hostport}"
    for path in paths:
        hs: Handshake = await eio_handshake(base, path, ctx=ctx, where=base)
        if hs.ok:
            b.engine_path, b.ping_interval, b.ping_timeout = path, hs.ping_interval, hs.ping_timeout
            return b
        if hs.exchange.status is None:  # no HTTP server there at all
            b.error = hs.error
            return b
        body = hs.exchange.body.decode("utf-8", "replace").lower()
        if hs.exchange.status == 400 and "protocol" in body:
            old = await eio_handshake(base, path, ctx=ctx, where=base, eio=3)
            if old.ok:
                b.engine_path, b.ping_interval, b.ping_timeout, b.eio = (
                    path,
                    old.ping_interval,
                    old.ping_timeout,
                    3,
                )
                return b
    return b


def discover(session: RemoteSession, conf: str | None = None) -> Discovered:
    """Everything the wizard can find on SESSION's host (blocking; runs its probes on an event loop)."""
    runner = session.connect()
    host = Host(runner)
    found = Discovered(host=host.name)
    config: Config | None = None
    try:
        nginx = Nginx.find(host, conf=conf)
        found.nginx_conf, found.nginx_version = nginx.conf_path, nginx.version
        config = running_config(nginx)
    except NginxError as e:
        found.notes.append(str(e))
    if config is not None:
        found.includes = http_includes(config)
        found.into = _suggest_into(found.includes)
        found.server_names, found.certs = _names_and_certs(config)
        found.has_upgrade_map = "$connection_upgrade" in config.maps()
        found.upstream_names = list(config.upstreams())
        if found.into is None:
            found.notes.append(
                "the http block includes no directory of site files; add `include conf.d/*.conf;` to it first"
            )
    ss = h.listening_ports(runner)
    nginx_pids = {m.pid for m in h.nginx_masters(process_table(host))}
    found.listeners = [x for x in _listeners(ss.stdout) if x.process != "nginx" and x.pid not in nginx_pids]
    hints = h.backend_hints(runner)
    for name, result in hints.items():
        for line in result.stdout.splitlines():
            if line.strip():
                found.services.append(f"{name.split()[0]}: {line.split()[0]}")
    groups = _groups(host, found.listeners, hints)
    candidates: list[tuple[str, str]] = []  # (hostport, group)
    for hp in _upstream_servers(config) if config is not None else []:
        candidates.append((hp, "upstream servers of the running config"))
    for x in found.listeners:
        if _BACKEND.search(x.process) and x.hostport not in {c for c, _ in candidates}:
            candidates.append((x.hostport, groups.get(x.pid or 0, x.process)))
    paths = list(dict.fromkeys([*(_config_paths(config) if config is not None else []), *COMMON_PATHS]))
    found.backends = asyncio.run(_probe_all(session, candidates[:MAX_CANDIDATES], paths))
    if len(candidates) > MAX_CANDIDATES:
        found.notes.append(f"{len(candidates)} listening ports; only the first {MAX_CANDIDATES} were probed")
    return found


async def _probe_all(
    session: RemoteSession, candidates: list[tuple[str, str]], paths: list[str]
) -> list[Backend]:
    """Every candidate's engine: the first of each group is asked at every path; the rest of a group whose
    first answered are asked at that path first (the processes of one service serve the same path)."""
    gate = asyncio.Semaphore(PARALLEL)

    async def one(hostport: str, group: str, order: list[str]) -> Backend:
        async with gate:
            b = await _probe(session, hostport, order)
            b.group = group
            return b

    groups: dict[str, list[str]] = {}
    for hp, g in candidates:
        groups.setdefault(g, []).append(hp)

    async def group_of(group: str, members: list[str]) -> list[Backend]:
        first = await one(members[0], group, paths)
        order = (
            [first.engine_path, *[p for p in paths if p != first.engine_path]] if first.engine_path else paths
        )
        rest = await asyncio.gather(*(one(hp, group, order) for hp in members[1:]), return_exceptions=True)
        return [first, *(r for r in rest if isinstance(r, Backend))]

    results = await asyncio.gather(*(group_of(g, m) for g, m in groups.items()), return_exceptions=True)
    return [b for r in results if isinstance(r, list) for b in r]


def answers(found: Discovered, group: str | None = None) -> dict[str, object]:
    """The SetupOptions fields discovery settles (the wizard asks the rest): for GROUP (default: the biggest)."""
    out: dict[str, object] = {}
    groups = found.groups()
    chosen = groups.get(group) if group else next(iter(groups.values()), None)
    if chosen:
        out["backends"] = [b.hostport for b in chosen]
        paths = {b.engine_path for b in chosen}
        if len(paths) == 1:
            out["backend_path"] = paths.pop()
        pings = {b.ping_interval for b in chosen if b.ping_interval}
        if pings:
            out["ping_interval"] = max(pings)  # type: ignore[type-var]
        if any(b.eio == 3 for b in chosen):
            out["client_version"] = 2
    if found.nginx_version:
        out["nginx_version"] = found.nginx_version
    if found.has_upgrade_map:
        out["define_map"] = False
    name, n = "socketio_backends", 1
    while name in found.upstream_names:
        n += 1
        name = f"socketio_backends_{n}"
    out["upstream"] = name
    if found.into:
        out["into"] = found.into
    if len(found.server_names) == 1:
        out["server_name"] = found.server_names[0]
        with contextlib.suppress(KeyError):
            out["cert"], out["key"] = found.certs[found.server_names[0]]
    return out
