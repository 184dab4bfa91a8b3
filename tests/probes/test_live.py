"""Probes against a real python-socketio backend (uvicorn), directly and through a round-robin proxy."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.probes.servers import ENGINE_PATH, RoundRobinProxy, SocketIOBackend, good_token
from wsdoctor.facts import ENGINEIO_PY, NOBODY
from wsdoctor.probes import ProbeContext, connect, cors, handshake, hold, sticky, upgrade, websocket

PATH = ENGINE_PATH + "/"
pytestmark = pytest.mark.timeout(30)


def ctx(**kw: object) -> ProbeContext:
    return ProbeContext(timeout=1.0, **kw)  # type: ignore[arg-type]


async def test_handshake_reads_the_open_packet(backends: dict[str, SocketIOBackend]) -> None:
    b = backends["b1"]
    hs = await handshake(b.base, PATH, ctx=ctx(), where=b.base)
    assert hs.ok and hs.error is None and hs.where == b.base
    assert hs.sid and hs.ping_interval == 25000 and hs.ping_timeout == 20000 and hs.max_payload == 1000000
    assert hs.upgrades == ["websocket"]
    ex = hs.exchange
    assert ex.status == 200 and ex.answered_by == ENGINEIO_PY and ex.body.startswith(b"0{")
    assert "EIO=4" in ex.url and "transport=polling" in ex.url
    assert ex.transcript().startswith(f"GET {ENGINE_PATH}/?EIO=4&transport=polling")


async def test_handshake_full_url_form_and_wrong_path(backends: dict[str, SocketIOBackend]) -> None:
    b = backends["b1"]
    hs = await handshake(f"{b.base}{PATH}?EIO=4&transport=polling", ctx=ctx())
    assert hs.ok
    wrong = await handshake(b.base, "/socket.io/", ctx=ctx())
    assert not wrong.ok and wrong.exchange.status == 404
    assert wrong.exchange.answered_by == ENGINEIO_PY  # the python app's own 404, not nginx's
    assert wrong.error == "the handshake got 404 Not Found from python-engineio: Not Found"


async def test_websocket_direct(backends: dict[str, SocketIOBackend]) -> None:
    b = backends["b1"]
    ws = await websocket(b.base, PATH, ctx=ctx())
    assert ws.ok and ws.error is None
    assert ws.exchange.status == 101 and ws.exchange.url.startswith("ws://")
    assert ws.open_packet is not None and ws.open_packet["upgrades"] == []
    assert ws.exchange.answered_by == ENGINEIO_PY
    assert ws.exchange.frames[0].startswith("< 0{")
    bad = await websocket(b.base, "/elsewhere/socket.io/", ctx=ctx())
    assert not bad.ok and bad.exchange.status == 500  # python ASGIApp: a WebSocket to a wrong path
    assert "refused with 500" in (bad.error or "")


async def test_upgrade_probe(backends: dict[str, SocketIOBackend]) -> None:
    up = await upgrade(backends["b1"].base, PATH, ctx=ctx())
    assert up.ok, up.error
    assert [e.status for e in up.exchanges] == [200, 101]
    assert up.exchanges[1].frames[:3] == ["> 2probe", "< 3probe", "> 5"]
    assert "sid=" in up.exchanges[1].url


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_connect_ok_buffers_events_before_ack(
    backends: dict[str, SocketIOBackend], transport: str
) -> None:
    token = good_token()
    c = await connect(backends["b1"].base, PATH, ctx=ctx(token=token), transport=transport)
    assert c.ok and c.error is None and c.refused_message is None
    assert c.sent_token and not c.sent_auth_header
    # python-socketio emits inside connect() before the 40 ack: buffered, not taken for the answer
    assert c.events_before_ack == ['2["instance",{"id":"b1"}]']
    assert [p[:2] for p in c.packets[-2:]] == ["42", "40"]
    everything = repr(c)
    assert token not in everything, "the token must never be recorded"


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_connect_refused_with_message(backends: dict[str, SocketIOBackend], transport: str) -> None:
    c = await connect(backends["b1"].base, PATH, ctx=ctx(token="not-a-jwt-token"), transport=transport)
    assert not c.ok
    assert c.refused_message == "authentication failed"
    assert c.error == "the server refused the CONNECT to /: authentication failed"
    assert c.events_before_ack == []
    assert "not-a-jwt-token" not in repr(c)


async def test_connect_header_auth_and_unknown_namespace(backends: dict[str, SocketIOBackend]) -> None:
    token = good_token()
    c = await connect(backends["b1"].base, PATH, ctx=ctx(token=token, auth_header=True))
    assert c.ok and c.sent_auth_header
    sent = dict(c.exchanges[0].request_headers)
    assert sent["Authorization"] == "Bearer ***"
    assert token not in repr(c)
    ns = await connect(backends["b1"].base, PATH, ctx=ctx(token=token), namespace="/dev/aiwm/chat")
    assert not ns.ok and ns.refused_message == "Unable to connect"


async def test_sticky_single_backend_passes(backends: dict[str, SocketIOBackend]) -> None:
    st = await sticky(backends["b1"].base, PATH, ctx=ctx(token=good_token()))
    assert st.ok and st.refused == [] and st.requests >= 6
    assert [e.method for e in st.exchanges[:3]] == ["GET", "POST", "GET"]
    assert all(e.status == 200 for e in st.exchanges)


async def test_sticky_round_robin_fails_reliably(backends: dict[str, SocketIOBackend]) -> None:
    b1, b2 = backends["b1"], backends["b2"]
    for _ in range(3):  # reliably: every run
        async with RoundRobinProxy([("127.0.0.1", b1.port), ("127.0.0.1", b2.port)]) as rr:
            st = await sticky(rr.base, PATH, ctx=ctx(token=good_token()))
        assert not st.ok and st.refused
        first = st.refused[0]
        assert first.status == 400 and b"Invalid session" in first.body
        assert "were refused" in (st.error or "") and "Invalid session" in (st.error or "")
    # the same proxy over one backend twice keeps the session: the proxy itself is not the problem
    async with RoundRobinProxy([("127.0.0.1", b1.port)] * 2) as rr:
        st = await sticky(rr.base, PATH, ctx=ctx(token=good_token()))
    assert st.ok, st.error


async def test_upgrade_through_round_robin_is_refused(backends: dict[str, SocketIOBackend]) -> None:
    b1, b2 = backends["b1"], backends["b2"]
    async with RoundRobinProxy([("127.0.0.1", b1.port), ("127.0.0.1", b2.port)]) as rr:
        up = await upgrade(rr.base, PATH, ctx=ctx())
    # python-engineio refuses the unknown sid; under uvicorn a refused WebSocket is a bare 403
    assert not up.ok and up.exchanges[1].status == 403
    assert up.error == "the WebSocket upgrade was refused with 403 Forbidden from the server"


async def test_cors_allowed_and_refused(backends: dict[str, SocketIOBackend]) -> None:
    b = backends["b1"]
    ok = await cors(b.base, PATH, ctx=ctx(), origin="https://app.example")
    assert ok.allow_origin == ["https://app.example"] and ok.error is None
    assert ok.allow_credentials == ["true"]
    bad = await cors(b.base, PATH, ctx=ctx(), origin="https://evil.example")
    assert bad.allow_origin == [] and bad.exchange.status == 400
    assert "is not an accepted origin" in (bad.error or "")


async def test_hold_answers_pings_and_stays(backends: dict[str, SocketIOBackend]) -> None:
    h = await hold(backends["fast"].base, PATH, ctx=ctx(token=good_token()), seconds=1.0)
    assert not h.closed and h.error is None
    assert 0.95 <= h.held_for < 1.5
    assert h.pings >= 2  # ping every 0.3 s, each answered
    assert h.exchange is not None and "> 3" in h.exchange.frames


async def test_hold_through_idle_timeout_proxy_measures_the_drop(
    backends: dict[str, SocketIOBackend],
) -> None:
    # like nginx with proxy_read_timeout 0.5 s in front of a backend pinging every 25 s
    async with RoundRobinProxy([("127.0.0.1", backends["b1"].port)], idle=0.5) as rr:
        start = time.monotonic()
        h = await hold(rr.base, PATH, ctx=ctx(token=good_token()), seconds=3)
        took = time.monotonic() - start
    assert h.closed and h.close_code is None  # no close frame: the TCP connection just ended
    assert 0.45 <= h.held_for < 1.0 and took < 1.5
    assert h.ping_interval == 25000 and h.pings == 0
    assert h.last_received is not None and h.last_received < 0.3
    assert "without a WebSocket close frame" in (h.error or "")


async def test_probes_run_concurrently(backends: dict[str, SocketIOBackend]) -> None:
    b = backends["b1"]
    c = ctx(token=good_token())
    start = time.monotonic()
    results = await asyncio.gather(
        *[handshake(b.base, PATH, ctx=c) for _ in range(5)],
        websocket(b.base, PATH, ctx=c),
        connect(b.base, PATH, ctx=c),
        sticky(b.base, PATH, ctx=c),
        hold(backends["fast"].base, PATH, ctx=c, seconds=0.5),
    )
    assert all(getattr(r, "ok", None) or getattr(r, "closed", None) is False for r in results)
    assert time.monotonic() - start < 1.5


async def test_backend_down_is_nobody(backends: dict[str, SocketIOBackend]) -> None:
    from tests.probes.servers import bound_socket

    s = bound_socket()
    port = s.getsockname()[1]
    s.close()  # a port where nothing listens any more
    hs = await handshake(f"http://127.0.0.1:{port}", PATH, ctx=ctx())
    assert not hs.ok and hs.exchange.answered_by == NOBODY and hs.exchange.stage == "connect"
    assert hs.error == f"connection to 127.0.0.1:{port} refused: nothing listens there"


async def test_host_override_and_connect_to(backends: dict[str, SocketIOBackend]) -> None:
    """--ssh forwarding and --server-name: dial a local port, keep the URL and Host the real server expects."""
    b = backends["b1"]
    c = ctx(host_header="api.x-or.cloud", connect_to=("127.0.0.1", b.port))
    hs = await handshake("http://backend.internal:3350", PATH, ctx=c, where="http://backend.internal:3350")
    assert hs.ok, hs.error
    assert hs.exchange.url.startswith("http://backend.internal:3350/chat/socket.io/?EIO=4")
    assert [v for k, v in hs.exchange.request_headers if k.lower() == "host"] == ["api.x-or.cloud"]
    ws = await websocket("http://backend.internal:3350", PATH, ctx=c)
    assert ws.ok and ws.exchange.url.startswith("ws://backend.internal:3350/")
