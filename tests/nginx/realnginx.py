"""A real nginx and an echo backend on loopback, to hold the engine's predictions to what nginx really does.

The echo backend answers every request with the request target and headers it received, as JSON, so a test
sees the exact URI and the Host/Upgrade/Connection headers nginx sent upstream. nginx runs in the
foreground (``daemon off``) under a private prefix; a new configuration is loaded with SIGHUP, and the test
waits until a marker server answers with the new generation number (old workers may still hold connections
for a moment after a reload).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

NGINX = "/usr/sbin/nginx"
MARKER_HOST = "gen.marker.invalid"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def _answer(self) -> None:
        # The target from the raw request line: http.server reduces a leading "//" in self.path.
        target = self.requestline.split(" ")[1] if self.requestline.count(" ") >= 2 else self.path
        body = json.dumps({"target": target, "headers": [[k, v] for k, v in self.headers.items()]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_HEAD = do_OPTIONS = do_PUT = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass


class EchoServer:
    """An HTTP server in a thread that echoes the request target and headers."""

    def __init__(self) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        n = name.lower()
        return next((v for k, v in self.headers if k.lower() == n), None)

    def echo(self) -> dict | None:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def echo_header(self, name: str) -> str | None:
        e = self.echo()
        if e is None:
            return None
        n = name.lower()
        return next((v for k, v in e["headers"] if k.lower() == n), None)


def http_request(
    port: int, target: str, host: str, headers: dict[str, str] | None = None, timeout: float = 5.0
) -> Response:
    """Send exactly ``GET TARGET HTTP/1.1`` (no client-side normalisation) and read the whole answer."""
    lines = [f"GET {target} HTTP/1.1", f"Host: {host}", "Connection: close"]
    extra = dict(headers or {})
    if "Connection" in extra:
        lines[2] = f"Connection: {extra.pop('Connection')}"
    lines += [f"{k}: {v}" for k, v in extra.items()]
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(raw)
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                b = s.recv(65536)
            except TimeoutError:
                break
            if not b:
                break
            chunks.append(b)
            data = b"".join(chunks)
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep:
                cl = next(
                    (
                        int(ln.split(b":", 1)[1])
                        for ln in head.split(b"\r\n")[1:]
                        if ln.lower().startswith(b"content-length:")
                    ),
                    None,
                )
                if cl is not None and len(body) >= cl:
                    break
    data = b"".join(chunks)
    head, _, body = data.partition(b"\r\n\r\n")
    hl = head.decode("latin-1").split("\r\n")
    status = int(hl[0].split()[1]) if hl and len(hl[0].split()) > 1 else 0
    hdrs = []
    for ln in hl[1:]:
        k, _, v = ln.partition(":")
        hdrs.append((k.strip(), v.strip()))
    return Response(status, hdrs, body)


def _children(pid: int) -> set[int]:
    """The live child processes of PID (read from /proc)."""
    out: set[int] = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1 and int(fields[1]) == pid and fields[0] != "Z":
            out.add(int(entry.name))
    return out


class RealNginx:
    """nginx under a private prefix, reloaded with generated ``http`` bodies."""

    def __init__(self, base: Path, echo_port: int, ports: list[int]) -> None:
        self.base = base
        self.echo_port = echo_port
        self.ports = ports
        self.port = ports[0]
        self.gen = 0
        self.proc: subprocess.Popen[bytes] | None = None
        for d in ("logs", "tmp", "html"):
            (base / d).mkdir(parents=True, exist_ok=True)
        self.conf = base / "nginx.conf"
        self.site = base / "site.conf"
        self.error_log = base / "logs" / "error.log"

    def _main_conf(self) -> str:
        b = self.base
        return f"""user root;
worker_processes 1;
pid {b}/nginx.pid;
error_log {b}/logs/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {b}/tmp/body;
    proxy_temp_path {b}/tmp/proxy;
    fastcgi_temp_path {b}/tmp/fastcgi;
    uwsgi_temp_path {b}/tmp/uwsgi;
    scgi_temp_path {b}/tmp/scgi;
    root {b}/html;
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        '' close;
    }}
    upstream echo_up {{
        server 127.0.0.1:{self.echo_port};
    }}
    include {b}/site.conf;
}}
"""

    def _write(self, servers: str) -> None:
        self.gen += 1
        marker = (
            f"server {{\n    listen 127.0.0.1:{self.port};\n    server_name {MARKER_HOST};\n"
            f'    location = /__generation {{ return 200 "{self.gen}"; }}\n}}\n'
        )
        self.site.write_text(servers + "\n" + marker)
        self.conf.write_text(self._main_conf())

    def start(self, servers: str) -> None:
        self._write(servers)
        self.proc = subprocess.Popen(
            [
                NGINX,
                "-p",
                str(self.base),
                "-e",
                str(self.error_log),
                "-c",
                str(self.conf),
                "-g",
                "daemon off;",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._wait_generation()

    def load(self, servers: str) -> None:
        """Replace the servers and reload; returns once only workers of the new configuration accept."""
        assert self.proc is not None
        self._write(servers)
        self._log_mark = self.error_log.stat().st_size if self.error_log.exists() else 0
        old = _children(self.proc.pid)
        os.kill(self.proc.pid, signal.SIGHUP)
        self._wait_generation()
        # An old worker keeps accepting on the shared socket until it has handled its QUIT: wait it out.
        deadline = time.monotonic() + 10.0
        while old & _children(self.proc.pid):
            if time.monotonic() > deadline:
                raise RuntimeError("old nginx workers did not exit after the reload")
            time.sleep(0.005)

    def _wait_generation(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"nginx exited: {err}{self._emerg()}")
            try:
                r = http_request(self.port, "/__generation", MARKER_HOST, timeout=1.0)
                last = r.body.decode(errors="replace")
                if r.status == 200 and last == str(self.gen):
                    return
            except OSError:
                pass
            emerg = self._emerg()
            if emerg:
                raise RuntimeError(f"nginx refused the generated config: {emerg}\n{self.site.read_text()}")
            time.sleep(0.01)
        raise RuntimeError(f"nginx did not load generation {self.gen} (last answer {last!r})")

    def _emerg(self) -> str:
        if not self.error_log.exists():
            return ""
        with open(self.error_log, errors="replace") as fh:
            fh.seek(getattr(self, "_log_mark", 0))
            return "".join(ln for ln in fh if "[emerg]" in ln)

    def request(
        self, target: str, host: str, headers: dict[str, str] | None = None, port: int | None = None
    ) -> Response:
        return http_request(port or self.port, target, host, headers)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None
