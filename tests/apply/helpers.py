"""What the apply tests share: a target for a lab over SSH, a real python-socketio client, and an nginx of the
test's own (``Proxy``: ``include conf.d/*.conf`` in its http block, like a fresh host waiting for a site file).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import ssl
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import socketio

from wsdoctor.lab import Lab
from wsdoctor.lab import procs as lab_procs
from wsdoctor.target import Target

NGINX = "/usr/sbin/nginx"


def ssh_target(lab: Lab, **extra: object) -> Target:
    """The target `wsdoctor apply` gets for LAB over its sshd (the lab's client URL, path and token)."""
    info = lab.info()
    s = info["ssh"]
    t = Target(
        url=info["client_url"],
        path=info["client_path"],
        transports=tuple(info["client_transports"]),
        token=info["token"],
        ca_file=info["ca_file"],
        ssh=f"{s['user']}@{s['host']}:{s['port']}",
        identity=s["key"],
        known_hosts=s["known_hosts"],
    )
    for k, v in extra.items():
        setattr(t, k, v)
    return t


def ssh_argv(lab: Lab) -> list[str]:
    s = lab.info()["ssh"]
    return [
        "--ssh",
        f"{s['user']}@{s['host']}:{s['port']}",
        "--identity",
        s["key"],
        "--known-hosts",
        s["known_hosts"],
    ]


def sha(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@asynccontextmanager
async def real_client(
    url: str, path: str, token: str, ca_file: str, transports: list[str], namespace: str = "/"
) -> AsyncIterator[socketio.AsyncClient]:
    """A connected python-socketio AsyncClient (TLS verified with CA_FILE)."""
    ctx = ssl.create_default_context(cafile=ca_file)
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx))
    client = socketio.AsyncClient(http_session=session, reconnection=False, request_timeout=5)
    try:
        await client.connect(
            url,
            socketio_path=path,
            transports=transports,
            namespaces=[namespace],
            auth={"token": token},
            wait_timeout=5,
        )
        yield client
    finally:
        await client.disconnect()
        await session.close()


async def wait_transport(client: socketio.AsyncClient, want: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while client.transport() != want:
        assert time.monotonic() < deadline, f"transport stayed {client.transport()!r}, never became {want!r}"
        await asyncio.sleep(0.05)


@dataclass
class Proxy:
    """An nginx of the test's own: ``nginx -p DIR -c DIR/nginx.conf -g 'daemon off;'``, sites in DIR/conf.d."""

    dir: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    sites: Path = field(init=False)

    def __post_init__(self) -> None:
        self.sites = self.dir / "conf.d"
        for d in (self.dir, self.sites, self.dir / "logs", self.dir / "tmp"):
            d.mkdir(parents=True, exist_ok=True)
        t = self.dir / "tmp"
        self.conf.write_text(
            "user root;\nworker_processes 1;\n"
            f"pid {self.dir}/nginx.pid;\nerror_log {self.dir}/logs/error.log info;\n"
            "events { worker_connections 256; }\n"
            "http {\n"
            f"    access_log {self.dir}/logs/access.log;\n"
            f"    client_body_temp_path {t}/body;\n    proxy_temp_path {t}/proxy;\n"
            f"    fastcgi_temp_path {t}/fastcgi;\n    uwsgi_temp_path {t}/uwsgi;\n    scgi_temp_path {t}/scgi;\n"
            f"    include {self.sites}/*.conf;\n"
            "}\n"
        )

    @property
    def conf(self) -> Path:
        return self.dir / "nginx.conf"

    @property
    def error_log(self) -> Path:
        return self.dir / "logs/error.log"

    def start(self) -> Proxy:
        out = open(self.dir / "logs/nginx.out", "ab")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen(
            [NGINX, "-p", f"{self.dir}/", "-c", str(self.conf), "-g", "daemon off;"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        out.close()
        deadline = time.monotonic() + 10
        while not self.workers():
            assert self.proc.poll() is None, (self.dir / "logs/nginx.out").read_text()
            assert time.monotonic() < deadline, "the test's nginx did not start"
            time.sleep(0.02)
        return self

    def workers(self) -> set[int]:
        if self.proc is None:
            return set()
        return {
            p
            for p in lab_procs.descendants(self.proc.pid)
            if "worker process" in lab_procs.cmdline(p) and "shutting down" not in lab_procs.cmdline(p)
        }

    def reload(self) -> None:
        """SIGHUP, then wait until the old workers no longer accept connections."""
        assert self.proc is not None
        old = self.workers()
        os.kill(self.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while True:
            now = self.workers()
            if now and not now & old:
                return
            assert time.monotonic() < deadline, "the test's nginx did not reload"
            time.sleep(0.02)

    def listening(self) -> bool:
        return lab_procs.listening(self.port)

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        self.proc = None
