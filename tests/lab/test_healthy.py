"""The healthy lab is truthful: the real python-socketio client works through the real nginx.

These tests read python-socketio's own bytes (the `OK` of a POST, the events before the CONNECT ack), so
they run against the python backends; tests/lab/test_real_client.py covers both kinds with socket.io-client.

Polling -> websocket upgrade and websocket only, the instance id by event and by ack, and a session
that outlives several ping intervals (scaled down: pingInterval 1 s, pingTimeout 2 s, so a pong that
did not cross nginx would end the session within 3 s; the test holds 3.5 s).
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import socketio

from tests.lab.helpers import (
    http_client,
    open_packet,
    public_http,
    recv_text,
    socketio_connect,
    wait_for_text,
    websocket,
)
from wsdoctor.lab import Lab

try:  # python-socketio's AsyncClient needs aiohttp (not a wsdoctor dependency)
    import aiohttp
except ImportError:  # pragma: no cover - the raw-protocol tests below still run
    aiohttp = None

needs_aiohttp = pytest.mark.skipif(aiohttp is None, reason="python-socketio's AsyncClient needs aiohttp")

pytestmark = pytest.mark.lab


@asynccontextmanager
async def real_client(
    lab: Lab, transports: list[str]
) -> AsyncIterator[tuple[socketio.AsyncClient, asyncio.Queue]]:
    """A connected python-socketio AsyncClient (TLS verified with the lab's CA) and its `instance` events."""
    ctx = ssl.create_default_context(cafile=lab.ca_file)
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx))
    client = socketio.AsyncClient(http_session=session, reconnection=False, request_timeout=5)
    instances: asyncio.Queue[str] = asyncio.Queue()

    @client.on("instance")
    async def on_instance(instance: str) -> None:
        instances.put_nowait(instance)

    try:
        await client.connect(
            lab.url,
            socketio_path=lab.path,
            transports=transports,
            auth={"token": lab.token},
            wait_timeout=5,
        )
        yield client, instances
    finally:
        await client.disconnect()
        await session.close()


@pytest.fixture(scope="module")
def fast_lab(lab_factory) -> Lab:
    return lab_factory("healthy", ping_interval=1.0, ping_timeout=2.0, backends="python")


async def wait_transport(client: socketio.AsyncClient, want: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while client.transport() != want:
        assert time.monotonic() < deadline, f"transport stayed {client.transport()!r}, never became {want!r}"
        await asyncio.sleep(0.05)


@needs_aiohttp
async def test_polling_upgrades_to_websocket_and_survives_pings(fast_lab: Lab) -> None:
    async with real_client(fast_lab, ["polling", "websocket"]) as (client, instances):
        await wait_transport(client, "websocket")
        instance = await asyncio.wait_for(instances.get(), 5)
        assert instance in fast_lab.info()["instances"]
        assert await client.call("whoami", timeout=5) == instance

        # Several ping intervals (1 s each, pong due within 2 s): the tunnel and the session stay up.
        await asyncio.sleep(3.5)
        assert client.connected and client.eio.state == "connected"
        assert client.transport() == "websocket"
        assert await client.call("whoami", timeout=5) == instance
        sid = client.get_sid()
        eio_sid = client.eio.sid
        log = Path(fast_lab.info()["backend_log"]).read_text()
        assert f"[{instance}] connected sid={sid} " in log
        assert f"disconnected sid={sid} " not in log  # never dropped and reconnected
    # The session really started on polling and upgraded through nginx: a polling handshake, then
    # the websocket with the same Engine.IO session (101, logged when the tunnel closed).
    access = await wait_for_text(fast_lab.info()["access_log"], f"sid={eio_sid}")
    assert re.search(rf'"GET {fast_lab.path}/\?transport=polling&EIO=4[^"]*" 200 ', access)
    assert re.search(rf'"GET {fast_lab.path}/\?transport=websocket&EIO=4&sid={eio_sid}[^"]*" 101 ', access)


@needs_aiohttp
async def test_websocket_only(fast_lab: Lab) -> None:
    async with real_client(fast_lab, ["websocket"]) as (client, instances):
        assert client.transport() == "websocket"
        instance = await asyncio.wait_for(instances.get(), 5)
        assert await client.call("whoami", timeout=5) == instance
        headers = await client.call("headers", timeout=5)
        # The healthy location forwards the client's Host and the X-Forwarded-* headers.
        assert headers["host"] == "127.0.0.1"
        assert headers["x-forwarded-proto"] == "https"
        assert headers["x-forwarded-for"] == "127.0.0.1"


async def test_polling_session_stays_on_one_backend(fast_lab: Lab) -> None:
    """ip_hash: every request of one polling session reaches the backend that created it."""
    async with http_client(fast_lab) as http:
        base = public_http(fast_lab)
        r = await http.get(base, params={"EIO": "4", "transport": "polling"})
        assert r.status_code == 200
        params = {"EIO": "4", "transport": "polling", "sid": open_packet(r.text)["sid"]}
        post = await http.post(base, params=params, content="40" + json.dumps({"token": fast_lab.token}))
        assert (post.status_code, post.text) == (200, "OK")
        got = await http.get(base, params=params)  # the instance event, then the CONNECT ack
        packets = got.text.split("\x1e")
        assert packets[0].startswith('42["instance","backend-') and packets[-1].startswith('40{"sid":')
        instance = packets[0][len('42["instance","') : -2]
        for ack_id in range(1, 5):
            post = await http.post(base, params=params, content=f'42{ack_id}["whoami"]')
            assert (post.status_code, post.text) == (200, "OK")
            got = await http.get(base, params=params)
            assert (got.status_code, got.text) == (200, f'43{ack_id}["{instance}"]')


async def test_raw_tunnel_answers_pings_and_stays_open(fast_lab: Lab) -> None:
    """The same through a hand-made client: every server ping crosses nginx and is answered."""
    async with websocket(fast_lab) as ws:
        frames = await socketio_connect(ws, fast_lab.token)
        assert open_packet(frames[0])["pingInterval"] == 1000 and frames[-1].startswith('40{"sid":')
        pings, started = 0, time.monotonic()
        while time.monotonic() - started < 3.3:
            frame = await recv_text(ws, timeout=2.5)  # a ping every second, or the test fails
            assert frame == "2", frame
            await ws.send("3")
            pings += 1
        await ws.send('421["whoami"]')
        frame = await recv_text(ws)
        assert frame.startswith('431["backend-')
    assert pings >= 3
