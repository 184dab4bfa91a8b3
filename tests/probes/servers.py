"""Servers the probe tests talk to, all on loopback free ports, all stopped by their fixtures.

- ``SocketIOBackend``: a real python-socketio ASGI app under uvicorn (in a thread: fast to start), engine
  path ``/chat/socket.io``, JWT HS256 in the CONNECT ``auth``, an ``instance`` event emitted inside
  ``connect`` (so it arrives *before* the ``40`` ack), a ``whoami`` ack.
- ``RoundRobinProxy``: a tiny HTTP proxy that sends each request to the next backend, like nginx without
  session affinity (one request per client connection: it answers ``Connection: close``); WebSocket
  tunnels are piped and, like nginx's ``proxy_read_timeout``, closed after ``idle`` seconds of silence.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Self

import jwt
import pytest
import socketio
import uvicorn

from wsdoctor.lab import procs
from wsdoctor.lab.lab import NODE_BACKEND, NODE_DIR, node_binary

SECRET = "wsdoctor-test-secret-of-at-least-32-bytes"
ENGINE_PATH = "/chat/socket.io"


def good_token(**extra: object) -> str:
    claims = {"sub": "probe-test", "exp": int(time.time()) + 3600, **extra}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def bound_socket() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    return s


def make_app(instance: str, ping_interval: float, ping_timeout: float) -> socketio.ASGIApp:
    sio = socketio.AsyncServer(
        async_mode="asgi",
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        cors_allowed_origins=["https://app.example"],
        logger=False,
        engineio_logger=False,
    )

    @sio.event
    async def connect(sid, environ, auth):  # noqa: ANN001 - python-socketio's signature
        token = (auth or {}).get("token") if isinstance(auth, dict) else None
        if not token:
            header = environ.get("HTTP_AUTHORIZATION", "")
            token = header[7:] if header.startswith("Bearer ") else None
        try:
            jwt.decode(token or "", SECRET, algorithms=["HS256"])
        except jwt.PyJWTError:
            raise socketio.exceptions.ConnectionRefusedError("authentication failed") from None
        await sio.emit("instance", {"id": instance}, to=sid)

    @sio.event
    async def whoami(sid):  # noqa: ANN001
        return instance

    return socketio.ASGIApp(sio, socketio_path=ENGINE_PATH)


class UvicornThread:
    """An ASGI app under uvicorn in a thread of this process, on a free loopback port (``port``, ``base``)."""

    def __init__(self, name: str, app: Any) -> None:
        self.name = name
        self._sock = bound_socket()
        self.port = self._sock.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="critical", lifespan="off", timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def start(self) -> Self:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"backend {self.name} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(5)
        self._sock.close()


class SocketIOBackend(UvicornThread):
    def __init__(self, instance: str, *, ping_interval: float = 25, ping_timeout: float = 20) -> None:
        self.instance = instance
        super().__init__(instance, make_app(instance, ping_interval, ping_timeout))


class RoundRobinProxy:
    """Per-request round robin over BACKENDS (host, port); tunnels closed after IDLE silent seconds."""

    def __init__(self, backends: list[tuple[str, int]], idle: float | None = None) -> None:
        self.backends = backends
        self.idle = idle
        self.hits: list[int] = []
        self._n = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()
        self.port = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> RoundRobinProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.CancelledError):
            pass  # cancelled at shutdown: end quietly
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        lines = head.decode("latin-1").split("\r\n")
        headers = [line.split(":", 1) for line in lines[1:] if ":" in line]
        names = {k.strip().lower(): v.strip() for k, v in headers}
        body = await reader.readexactly(int(names.get("content-length", "0") or 0))
        i = self._n % len(self.backends)
        self._n += 1
        self.hits.append(i)
        host, port = self.backends[i]
        br, bw = await asyncio.open_connection(host, port)
        try:
            if "upgrade" in names:
                bw.write(head + body)
                await self._tunnel(reader, writer, br, bw)
                return
            kept = [f"{k}:{v}" for k, v in headers if k.strip().lower() not in ("connection", "keep-alive")]
            bw.write(("\r\n".join([lines[0], *kept, "Connection: close", "", ""])).encode("latin-1") + body)
            rhead = await asyncio.wait_for(br.readuntil(b"\r\n\r\n"), 5)
            rlines = rhead.decode("latin-1").split("\r\n")
            rkept = [x for x in rlines[1:] if x and not x.lower().startswith("connection:")]
            writer.write(("\r\n".join([rlines[0], *rkept, "Connection: close", "", ""])).encode("latin-1"))
            while data := await asyncio.wait_for(br.read(65536), 5):
                writer.write(data)
                await writer.drain()
        finally:
            bw.close()

    async def _tunnel(self, cr, cw, br, bw) -> None:  # noqa: ANN001
        last = [time.monotonic()]

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            while data := await r.read(65536):
                last[0] = time.monotonic()
                w.write(data)
                await w.drain()

        tasks = [asyncio.ensure_future(pipe(cr, bw)), asyncio.ensure_future(pipe(br, cw))]
        try:
            while not any(t.done() for t in tasks):
                await asyncio.sleep(0.05)
                if self.idle is not None and time.monotonic() - last[0] > self.idle:
                    break  # like nginx: a silent tunnel is closed, no close frame
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


class NodeBackend:
    """A real Node server from the lab (``wsdoctor/lab/node/backend.js``) on a free loopback port.

    SERVER is ``socketio4`` (Socket.IO 4 on Express), ``socketio2`` (Socket.IO 2) or ``ws`` (a plain WebSocket
    server); EXTRA are more backend.js options (``--refuse-requests MSG``, ``--allow-eio3 yes``). Its JWT
    secret is :data:`SECRET`, so :func:`good_token` is valid for it too.
    """

    def __init__(
        self,
        server: str,
        directory: Path,
        *,
        extra: tuple[str, ...] = (),
        ping_interval: float = 25,
        ping_timeout: float = 20,
    ) -> None:
        self.server = server
        self.directory = directory
        self.port = procs.free_ports(1)[0]
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = directory / f"{server}-{self.port}.log"
        self._extra = extra
        self._ping = (ping_interval, ping_timeout)
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> NodeBackend:
        node = node_binary()
        if node is None or not (NODE_DIR / "node_modules").is_dir():
            pytest.skip("Node.js and the lab's npm packages are needed (./run setup)")
        secret = self.directory / "secret"
        secret.write_text(SECRET)
        argv = [
            node, str(NODE_BACKEND), "--server", self.server, "--lab-dir", f"{self.directory}/",
            "--port", str(self.port), "--instance", f"node-{self.server}", "--path", ENGINE_PATH,
            "--secret-file", str(secret), "--ping-interval", repr(self._ping[0]), "--ping-timeout", repr(self._ping[1]),
            "--cors-origin", "https://app.example", "--log", str(self.log), *self._extra,
        ]  # fmt: skip
        self._proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while not procs.listening(self.port, pid=self._proc.pid):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"node {self.server} did not start listening on {self.port}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
