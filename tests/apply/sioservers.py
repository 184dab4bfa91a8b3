"""Socket.IO backends for the generated-config tests: python-socketio under uvicorn in threads, on free loopback
ports, serving one engine path and every namespace (the lab's backends serve only ``/``).

Each answers ``whoami`` (in any namespace) with its instance id, so a test sees which backend a session is on.
"""

from __future__ import annotations

from typing import Any

import socketio

from tests.probes.servers import UvicornThread


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


class Backend(UvicornThread):
    def __init__(self, instance: str, path: str, ping_interval: float = 2.0) -> None:
        self.instance = instance
        super().__init__(instance, _app(instance, path, ping_interval))
        self.address = f"127.0.0.1:{self.port}"
