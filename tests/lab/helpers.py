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
import pytest
from websockets.asyncio.client import ClientConnection, connect

from wsdoctor.lab import Lab
from wsdoctor.lab.lab import DEFAULT_BACKENDS, NODE_DIR, node_binary

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


# --- the real socket.io-client (Node), run as wsdoctor/lab/node/client.js ----------------------------

CLIENT_JS = NODE_DIR / "client.js"
KINDS = ("node", "python")  # --backends


def node_or_skip() -> str:
    """The node binary; the test is skipped (with what to run) only when Node is not installed at all."""
    node = node_binary()
    if node is None:
        pytest.skip("Node.js is not installed: `./run setup` installs Debian's nodejs and npm")
    return node


def lab_of(lab_factory: Any, scenario: str, kind: str, **options: Any) -> Lab:
    """The session's shared lab of SCENARIO with KIND backends (the default kind shares the key that
    other test packages use, so the same lab serves them all)."""
    if kind == "node":
        node_or_skip()
    if kind != DEFAULT_BACKENDS:
        options["backends"] = kind
    return lab_factory(scenario, **options)


async def socketio_client(
    lab: Lab,
    *,
    transports: str = "polling,websocket",
    url: str | None = None,
    path: str | None = "",
    token: str | None = None,
    token_in: str | None = None,
    client: str = "4",
    acks: tuple[str, ...] = (),
    hold: float = 0.0,
    timeout: float = 5.0,
) -> dict[str, Any]:
    """Run the real socket.io-client once against LAB: what it experienced, as client.js reports it.

    URL defaults to the lab's public URL and PATH ("" = the lab's path; None = the client's default
    /socket.io/), TOKEN to the lab's token.
    """
    node = node_or_skip()
    argv = [node, str(CLIENT_JS), "--url", url or lab.url, "--ca", lab.ca_file]
    argv += ["--token", token if token is not None else lab.token, "--transports", transports]
    if path is not None:
        argv += ["--path", path or lab.path]
    if token_in:
        argv += ["--token-in", token_in]
    argv += ["--client", client, "--timeout", str(timeout), "--hold", str(hold)]
    for name in acks:
        argv += ["--ack", name]
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout + hold + 20)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"client.js did not finish: {argv}") from None
    lines = out.decode().strip().splitlines()
    assert proc.returncode == 0 and len(lines) == 1, (proc.returncode, out, err[-2000:])
    return json.loads(lines[0])
