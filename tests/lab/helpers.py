"""Small real clients for the lab tests: Engine.IO over httpx (polling) and websockets (tunnel).

They speak the wire protocol by hand on purpose: the tests must see exactly what a client sees
(status, headers, body, frames), not what a library makes of it.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from wsdoctor.lab import Lab

TIMEOUT = 5.0


def ssl_context(lab: Lab) -> ssl.SSLContext:
    """Verify the lab's certificate with its own CA (never verification off)."""
    return ssl.create_default_context(cafile=lab.ca_file)


def public_http(lab: Lab, path: str | None = None) -> str:
    """``https://127.0.0.1:PORT{path}/`` — the Engine.IO endpoint through nginx, for polling."""
    return f"{lab.public_base}{path or lab.path}/"


def public_ws(lab: Lab, path: str | None = None) -> str:
    return f"{lab.url}{path or lab.path}/?EIO=4&transport=websocket"


@asynccontextmanager
async def http_client(lab: Lab) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(verify=ssl_context(lab), timeout=TIMEOUT) as client:
        yield client


def open_packet(text: str) -> dict[str, Any]:
    """The JSON of an Engine.IO open packet ``0{…}``."""
    assert text.startswith("0{"), f"not an Engine.IO open packet: {text[:200]!r}"
    return json.loads(text[1:])


@asynccontextmanager
async def websocket(
    lab: Lab, path: str | None = None, url: str | None = None
) -> AsyncIterator[ClientConnection]:
    """A raw WebSocket to the lab; no client-side pings (they would keep an idle tunnel busy)."""
    async with connect(
        url or public_ws(lab, path),
        ssl=ssl_context(lab),
        open_timeout=TIMEOUT,
        close_timeout=1,
        ping_interval=None,
    ) as ws:
        yield ws


async def recv_text(ws: ClientConnection, timeout: float = TIMEOUT) -> str:
    frame = await asyncio.wait_for(ws.recv(), timeout)
    return frame if isinstance(frame, str) else frame.decode()


async def socketio_connect(ws: ClientConnection, token: str) -> list[str]:
    """Open packet, then CONNECT with ``{"token": …}``: the frames up to the CONNECT answer (40 or 44)."""
    frames = [await recv_text(ws)]
    open_packet(frames[0])
    await ws.send("40" + json.dumps({"token": token}))
    while True:
        frame = await recv_text(ws)
        if frame == "2":  # a server ping while we wait: answer it like a client
            await ws.send("3")
            continue
        frames.append(frame)
        if frame.startswith(("40", "44")):
            return frames


async def wait_for_text(path: str | Path, needle: str, timeout: float = 5.0) -> str:
    """The content of the log at PATH once it holds NEEDLE (nginx writes logs a moment after the event)."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        try:
            text = Path(path).read_text(errors="replace")
        except FileNotFoundError:
            text = ""
        if needle in text:
            return text
        await asyncio.sleep(0.05)
    raise AssertionError(f"{needle!r} did not appear in {path} within {timeout} s; it holds:\n{text[-3000:]}")
