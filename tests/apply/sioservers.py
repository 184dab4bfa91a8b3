"""Socket.IO backends for the generated-config tests: python-socketio under uvicorn in threads, on free loopback
ports, serving one engine path and every namespace (the lab's backends serve only ``/``).

Each answers ``whoami`` (in any namespace) with its instance id, so a test sees which backend a session is on.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import socketio
import uvicorn


def _app(instance: str, path: str, ping_interval: float) -> socketio.ASGIApp:
    sio = socketio.AsyncServer(
        async_mode="asgi",
        namespaces="*",
        ping_interval=ping_interval,
        ping_timeout=ping_interval,
        cors_allowed_origins="*",
        logger=False,
        engineio_logger=False,
    )

    @sio.on("connect", namespace="*")
    async def connect(namespace: str, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        pass

    @sio.on("whoami", namespace="*")
    async def whoami(namespace: str, sid: str, *args: Any) -> str:
        return f"{instance}{namespace}"

    return socketio.ASGIApp(sio, socketio_path=path.strip("/"))


class Backend:
    def __init__(self, instance: str, path: str, ping_interval: float = 2.0) -> None:
        self.instance = instance
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = self._sock.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        config = uvicorn.Config(
            _app(instance, path, ping_interval),
            log_level="critical",
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def start(self) -> Backend:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"backend {self.instance} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(5)
        self._sock.close()
