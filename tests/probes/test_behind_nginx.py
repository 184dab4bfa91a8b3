"""Every probe through the lab's real nginx, against Node Socket.IO 4, Node Socket.IO 2 and python-socketio.

Each probe must get its answer at once (bounded well under its timeout), speak the server's protocol (the
Socket.IO 2 server answers even ``EIO=4`` in Engine.IO 3), and send only what a socket.io-client of that
version sends: the sticky session never repeats a CONNECT of a namespace it joined. Through a round-robin
upstream the sticky probe is refused in the backend's own words.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest

from tests.lab.helpers import lab_of
from tests.probes.test_node import assert_one_connect
from wsdoctor.checks import _util as u
from wsdoctor.facts import ENGINEIO_NODE, ENGINEIO_PY
from wsdoctor.lab import Lab
from wsdoctor.probes import ProbeContext, connect, cors, handshake, hold, sticky, upgrade, websocket
from wsdoctor.wire.client import client_request

pytestmark = [pytest.mark.lab, pytest.mark.timeout(90)]

# (scenario, --backends, the Engine.IO version the servers speak)
SERVERS = {
    "node-socketio4": ("healthy", "node", 4),
    "node-socketio2": ("version-mismatch", "node", 3),
    "python-socketio": ("healthy", "python", 4),
}


def _client(lab: Lab, client_version: int = 4):  # noqa: ANN202
    info = lab.info()
    c = client_request(info["url"], info["path"], client_version=client_version)
    ctx = ProbeContext(
        timeout=5.0, ca_file=info["ca_file"], token=info["token"], client_version=client_version
    )
    return c, ctx.prepare()


@pytest.mark.parametrize("server", sorted(SERVERS))
async def test_every_probe_through_nginx(lab_factory, server: str) -> None:
    scenario, kind, eio = SERVERS[server]
    lab = lab_of(lab_factory, scenario, kind)
    c, ctx = _client(lab)
    poll, ws_url = c.url_for("polling"), c.url_for("websocket")
    started = time.monotonic()
    hs = await handshake(poll, ctx=ctx)
    assert hs.ok and hs.server_eio == eio and hs.exchange.answered_by in (ENGINEIO_NODE, ENGINEIO_PY)
    ws = await websocket(ws_url, ctx=ctx, eio=eio)
    assert ws.ok, ws.error
    up = await upgrade(poll, ctx=ctx)
    assert up.ok and up.eio == eio, up.error
    st = await sticky(poll, ctx=ctx)
    assert st.ok and st.eio == eio and st.requests >= 6 and not st.refused, st.error
    assert_one_connect(st.exchanges)
    for transport in ("websocket", "polling"):
        cp = await connect(c.url_for(transport), ctx=ctx, transport=transport, eio=eio)
        assert cp.ok and cp.protocol == (4 if eio == 3 else 5), (transport, cp.error)
    h = await hold(ws_url, ctx=ctx, seconds=0.5, eio=eio)
    assert h.opened and not h.closed and h.error is None, h.error
    origin = f"{c.scheme}://{c.netloc}"
    co = await cors(poll, origin=origin, ctx=ctx)
    assert co.error is None and origin in co.allow_origin, (co.error, co.allow_origin)
    assert time.monotonic() - started < 10  # every answer came at once: no probe waited on a timeout


@pytest.mark.parametrize("kind", ["node", "python"])  # the round-robin lab: Socket.IO 4 or python-socketio
async def test_sticky_through_round_robin_is_refused_in_the_backends_words(lab_factory, kind: str) -> None:
    lab = lab_of(lab_factory, "no-sticky", kind)
    c, ctx = _client(lab)
    st = await sticky(c.url_for("polling"), ctx=ctx)
    assert not st.ok and st.refused, st
    assert all(u.answer_means(ex) == u.UNKNOWN_SESSION and u.by_backend(ex) for ex in st.refused)
    assert_one_connect(st.exchanges)
    # Every request of the session, its closing `1` included, says who sent it, as one client does.
    sid = re.search(r"[?&]sid=([^&]+)", st.refused[0].url).group(1)  # type: ignore[union-attr]
    lines = await _session_lines(lab.info()["access_log"], sid, at_least=len(st.exchanges))
    assert lines and all('"wsdoctor-probe"' in line for line in lines), lines


async def _session_lines(log: str, sid: str, at_least: int, timeout: float = 5.0) -> list[str]:
    """The access-log lines of session SID once AT_LEAST of them (+ the close) are written, or what is there."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [line for line in Path(log).read_text().splitlines() if f"sid={sid}" in line]
        if len(lines) > at_least - 1 or time.monotonic() > deadline:  # the handshake has no sid; the close has
            return lines
        await asyncio.sleep(0.05)


async def test_socketio_client_2_probes_through_nginx(lab_factory) -> None:
    """--client-version 2: EIO=3 from the first request, the token in the query, client pings."""
    lab = lab_of(lab_factory, "version-mismatch", "node")
    c, ctx = _client(lab, client_version=2)
    assert c.query == "EIO=3&transport=polling"
    hs = await handshake(c.url_for("polling"), ctx=ctx)
    assert hs.ok and hs.eio == 3 and hs.server_eio == 3 and hs.retry is None
    st = await sticky(c.url_for("polling"), ctx=ctx)
    assert st.ok and st.eio == 3, st.error
    assert any(ex.method == "POST" and ex.request_body == b"1:2" for ex in st.exchanges)  # the client pings
    cp = await connect(c.url_for("websocket"), ctx=ctx, transport="websocket")
    assert cp.ok and cp.protocol == 4 and "token=***" in cp.exchanges[0].url, cp
    # The same client against Socket.IO 4 without allowEIO3 is refused; the probe then speaks Engine.IO 4.
    lab4 = lab_of(lab_factory, "healthy", "node")
    c4, ctx4 = _client(lab4, client_version=2)
    refused = await handshake(c4.url_for("polling"), ctx=ctx4)
    assert not refused.ok and u.answer_means(refused.exchange) == u.VERSION
    assert refused.retry is not None and refused.retry.ok and refused.retry.server_eio == 4
