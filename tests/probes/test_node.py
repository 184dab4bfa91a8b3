"""Node's real answers, recognised from the real servers: Socket.IO 4, Socket.IO 2 and a plain `ws` server.

Every engine.io error code (0–5), `ws`'s handshake refusals, Express's 404, `Invalid namespace`, a
middleware's `next(err)` with `data`, Socket.IO 2's string errors: each is provoked on the real Node server
(the lab's backend.js, pinned npm packages) and must be attributed to the backend (never to nginx) and read
for what it means. The probes are proven against each server too, in both Engine.IO versions.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.probes.servers import ENGINE_PATH, NodeBackend, good_token
from wsdoctor.checks import _util as u
from wsdoctor.facts import ENGINEIO_NODE, EXPRESS, NODE_WS, Exchange
from wsdoctor.probes import ProbeContext, connect, handshake, hold, sticky, upgrade, websocket
from wsdoctor.probes.net import fetch, open_client

PATH = ENGINE_PATH + "/"
pytestmark = pytest.mark.timeout(60)


def ctx(**kw: object) -> ProbeContext:
    return ProbeContext(timeout=3.0, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, NodeBackend]]:
    """The Node servers of this module, started once: Socket.IO 4 (plain, refusing every request,
    with allowEIO3), Socket.IO 2 and a plain ws server."""
    base = Path(tmp_path_factory.mktemp("node"))
    wanted = {
        "sio4": ("socketio4", (), 25),
        "sio4-refuse": ("socketio4", ("--refuse-requests", "origin refused by allowRequest"), 25),
        "sio4-eio3": ("socketio4", ("--allow-eio3", "yes"), 25),
        "sio2": ("socketio2", (), 25),
        "ws": ("ws", (), 25),
        # pingInterval 0.3 s, pingTimeout 0.5 s: a session whose pings are not answered (Engine.IO 4) or not
        # sent (Engine.IO 3: the client pings) ends within a second
        "sio4-fast": ("socketio4", (), 0.3),
        "sio2-fast": ("socketio2", (), 0.3),
    }
    started: dict[str, NodeBackend] = {}
    try:
        for name, (server, extra, ping) in wanted.items():
            timeout = 0.5 if ping < 1 else 20
            started[name] = NodeBackend(
                server, base, extra=extra, ping_interval=ping, ping_timeout=timeout
            ).start()
        yield started
    finally:
        for b in started.values():
            b.stop()


async def raw(
    base: str,
    method: str,
    query: str,
    headers: list[tuple[str, str]] | None = None,
    body: bytes | None = None,
) -> Exchange:
    """One request exactly as given (PATH?QUERY), recorded by the probes' own fetch."""
    c = ctx()
    url = f"{base}{PATH}?{query}"
    async with open_client(c, url) as (client, tracker):
        return await fetch(client, tracker, c, method, url, headers=headers, content=body)


UPGRADE_NO_KEY = [("Connection", "Upgrade"), ("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13")]


@pytest.mark.parametrize("name", ["sio4", "sio2"])
async def test_engineio_error_codes_0_to_3(node: dict[str, NodeBackend], name: str) -> None:
    b = node[name].base
    cases = [
        (
            "GET",
            "EIO=4&transport=foo",
            None,
            u.UNKNOWN_TRANSPORT,
            b'{"code":0,"message":"Transport unknown"}',
        ),
        ("GET", "EIO=4&transport=polling&sid=nope", None, u.UNKNOWN_SESSION, b'"code":1'),
        (
            "POST",
            "EIO=4&transport=polling",
            b"1:6" if name == "sio2" else b"6",
            u.POST_WITHOUT_SID,
            b'"code":2',
        ),
        ("GET", "EIO=4&transport=websocket", None, u.NO_UPGRADE_HEADERS, b'"code":3'),
    ]
    for method, query, body, means, words in cases:
        ex = await raw(b, method, query, body=body)
        assert ex.status == 400, (query, ex.status, ex.body)
        assert words in ex.body, ex.body
        assert ex.answered_by == ENGINEIO_NODE and u.by_backend(ex), (query, ex.answered_by)
        assert u.answer_means(ex) == means, (query, ex.body)


async def test_engineio_code_4_allow_request(node: dict[str, NodeBackend]) -> None:
    b = node["sio4-refuse"].base
    ex = await raw(b, "GET", "EIO=4&transport=polling")
    assert ex.status == 403 and b'"code":4' in ex.body and b"origin refused by allowRequest" in ex.body
    assert ex.answered_by == ENGINEIO_NODE and u.answer_means(ex) == u.REFUSED_REQUEST
    # The same refusal of an upgrade is a bare 400 text: still the backend, never nginx.
    ws = await websocket(b, PATH, ctx=ctx())
    assert not ws.ok and ws.exchange.status == 400 and ws.exchange.body == b"origin refused by allowRequest"
    assert u.by_backend(ws.exchange)


async def test_engineio_code_5_and_the_version_retry(node: dict[str, NodeBackend]) -> None:
    b = node["sio4"].base
    ex = await raw(b, "GET", "EIO=3&transport=polling")
    assert ex.status == 400 and ex.body == b'{"code":5,"message":"Unsupported protocol version"}'
    assert ex.answered_by == ENGINEIO_NODE and u.answer_means(ex) == u.VERSION
    # A socket.io-client 2 handshake is refused; the probe asks once more in Engine.IO 4: what it speaks.
    hs = await handshake(b, PATH, ctx=ctx(client_version=2))
    assert not hs.ok and hs.eio == 3 and u.answer_means(hs.exchange) == u.VERSION
    assert hs.retry is not None and hs.retry.ok and hs.retry.server_eio == 4 and hs.spoken is hs.retry
    speech = u.handshake_speech(hs)
    assert (speech.kind, speech.client_ok) == (u.EIO4, False)
    # With allowEIO3 the same request is answered, in Engine.IO 3.
    allowed = await handshake(node["sio4-eio3"].base, PATH, ctx=ctx(client_version=2))
    assert allowed.ok and allowed.server_eio == 3 and allowed.retry is None


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("sio4", b"Missing or invalid Sec-WebSocket-Key header"),
        ("sio2", b"Bad Request"),
        ("ws", b"Missing or"),
    ],
)
async def test_ws_refuses_an_upgrade_without_a_key(
    node: dict[str, NodeBackend], name: str, words: bytes
) -> None:
    """What `proxy_set_header Upgrade websocket;` makes of every polling request: the backend's 400."""
    ex = await raw(node[name].base, "GET", "EIO=4&transport=polling", headers=UPGRADE_NO_KEY)
    assert ex.status == 400 and ex.body.startswith(words), ex.body
    assert ex.answered_by == NODE_WS and u.answer_means(ex) == u.KEYLESS_UPGRADE


async def test_ws_refuses_a_bad_version_and_plain_http(node: dict[str, NodeBackend]) -> None:
    b = node["ws"].base
    bad = [("Connection", "Upgrade"), ("Upgrade", "websocket"), ("Sec-WebSocket-Version", "7")]
    bad.append(("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="))
    ex = await raw(b, "GET", "x=1", headers=bad)
    assert ex.status == 400 and ex.body == b"Missing or invalid Sec-WebSocket-Version header"
    assert ex.answered_by == NODE_WS and u.by_backend(ex)
    plain = await raw(b, "GET", "EIO=4&transport=polling")
    assert (plain.status, plain.body) == (426, b"Upgrade Required")
    assert plain.answered_by == NODE_WS and u.answer_means(plain) == u.PLAIN_WEBSOCKET
    assert u.who(plain) == "a plain WebSocket server behind nginx (Node `ws`)"


async def test_plain_ws_is_no_engineio_server(node: dict[str, NodeBackend]) -> None:
    b = node["ws"].base
    ws = await websocket(b, PATH, ctx=ctx())
    assert not ws.ok and ws.exchange.status == 101
    assert ws.foreign_frame == '{"type":"hello","instance":"node-ws"}'
    assert u.websocket_speech(ws).kind == u.PLAIN_WS
    hs = await handshake(b, PATH, ctx=ctx())
    assert u.handshake_speech(hs).kind == u.PLAIN_WS


@pytest.mark.parametrize("name", ["sio4", "sio2"])
async def test_express_404_is_the_backend(node: dict[str, NodeBackend], name: str) -> None:
    hs = await handshake(node[name].base, "/wrong/socket.io/", ctx=ctx())
    ex = hs.exchange
    assert ex.status == 404 and b"<pre>Cannot GET /wrong/socket.io/</pre>" in ex.body
    assert ex.answered_by == EXPRESS and u.answer_means(ex) == u.APP_NOT_FOUND
    assert u.status_line(ex) == "404 Not Found Cannot GET /wrong/socket.io/"


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_invalid_namespace_and_middleware_data(node: dict[str, NodeBackend], transport: str) -> None:
    b = node["sio4"].base
    ns = await connect(b, PATH, ctx=ctx(token=good_token()), namespace="/admin", transport=transport)
    assert not ns.ok and ns.refused_message == "Invalid namespace" and u.refuses_namespace(ns.refused_message)
    refused = await connect(b, PATH, ctx=ctx(token="not-a-jwt"), transport=transport)
    assert not refused.ok and refused.refused_message == "authentication failed"
    assert refused.refused_data == {"reason": "invalid token"}
    assert "not-a-jwt" not in repr(refused)
    ok = await connect(b, PATH, ctx=ctx(token=good_token()), transport=transport)
    assert ok.ok and ok.protocol == 5


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_socketio2_connect_in_its_own_protocol(node: dict[str, NodeBackend], transport: str) -> None:
    """Socket.IO 2: the token in the query, no CONNECT for "/", `44"<message>"` a plain string."""
    b = node["sio2"].base
    token = good_token()
    ok = await connect(b, PATH, ctx=ctx(token=token), transport=transport, eio=3)
    assert ok.ok and ok.protocol == 4 and ok.error is None, ok
    assert all(token not in ex.url for ex in ok.exchanges) and "token=***" in ok.exchanges[0].url
    bad = await connect(b, PATH, ctx=ctx(token="not-a-jwt"), transport=transport, eio=3)
    assert not bad.ok and bad.refused_message == "authentication failed"
    ns = await connect(b, PATH, ctx=ctx(token=token), namespace="/admin", transport=transport, eio=3)
    assert not ns.ok and u.refuses_namespace(ns.refused_message), ns


async def test_second_connect_closes_a_node_session(node: dict[str, NodeBackend]) -> None:
    """Why the sticky probe never repeats a CONNECT: Node closes the whole session on it (invalid state)."""
    b = node["sio4"].base
    c = ctx()
    url = f"{b}{PATH}?EIO=4&transport=polling"
    async with open_client(c, url) as (client, tracker):
        first = await fetch(client, tracker, c, "GET", url)
        sid = first.body.split(b'"sid":"')[1].split(b'"')[0].decode()
        s_url = f"{url}&sid={sid}"
        token = good_token()
        for _ in range(2):
            assert (
                await fetch(client, tracker, c, "POST", s_url, content=f'40{{"token":"{token}"}}'.encode())
            ).body == b"ok"
            got = await fetch(client, tracker, c, "GET", s_url)
        assert got.body.endswith(b"1")  # 6 (noop) then 1 (close): the session is gone
        gone = await fetch(client, tracker, c, "GET", s_url)
        assert gone.status == 400 and u.answer_means(gone) == u.UNKNOWN_SESSION


@pytest.mark.parametrize("name", ["sio4", "sio2"])
async def test_every_probe_speaks_each_server(node: dict[str, NodeBackend], name: str) -> None:
    b = node[name].base
    eio = 3 if name == "sio2" else 4
    c = ctx(token=good_token())
    hs = await handshake(b, PATH, ctx=c)
    assert hs.ok and hs.server_eio == eio and hs.eio == 4  # Socket.IO 2 answers EIO=4 in Engine.IO 3
    ws = await websocket(b, PATH, ctx=c, eio=eio)
    assert ws.ok, ws.error
    assert u.websocket_speech(ws).kind == (u.EIO3 if eio == 3 else u.EIO4)
    up = await upgrade(b, PATH, ctx=c)
    assert up.ok and up.eio == eio, up.error
    st = await sticky(b, PATH, ctx=c)
    assert st.ok and st.eio == eio and st.requests >= 6 and not st.refused, st.error
    assert_one_connect(st.exchanges)
    for transport in ("websocket", "polling"):
        cp = await connect(b, PATH, ctx=c, transport=transport, eio=eio)
        assert cp.ok, (transport, cp.error)
    h = await hold(b, PATH, ctx=c, seconds=0.5, eio=eio)
    assert h.opened and not h.closed and h.error is None, h.error


def assert_one_connect(exchanges: list[Exchange]) -> None:
    """Never a CONNECT of a namespace the session has joined: after a POSTed CONNECT was taken (200) and a
    poll brought the server's 40, no further CONNECT is sent."""
    joined = False
    for ex in exchanges:
        if ex.method == "POST" and b"40" in ex.request_body[:4]:
            assert not joined, "a second CONNECT of a joined namespace"
        if ex.method == "GET" and ex.status == 200 and (b"\x1e40" in ex.body or ex.body.startswith(b"40")):
            joined = True


@pytest.mark.parametrize(("name", "eio"), [("sio4-fast", 4), ("sio2-fast", 3)])
async def test_hold_keeps_a_fast_pinging_session_alive(
    node: dict[str, NodeBackend], name: str, eio: int
) -> None:
    """Engine.IO 4: the server pings, the probe answers; Engine.IO 3: the probe pings, the server answers."""
    h = await hold(node[name].base, PATH, ctx=ctx(token=good_token()), seconds=2.0, eio=eio)
    assert h.opened and not h.closed and h.error is None, h.error
    assert h.pings >= 4 and h.eio == eio
    sent = [f for f in (h.exchange.frames if h.exchange else []) if f.startswith("> ")]
    assert ("> 2" in sent) == (eio == 3) and ("> 3" in sent) == (eio == 4), sent


@pytest.mark.parametrize(("name", "eio"), [("sio4-fast", 4), ("sio2-fast", 3)])
async def test_sticky_answers_pings_while_polling(node: dict[str, NodeBackend], name: str, eio: int) -> None:
    st = await sticky(node[name].base, PATH, ctx=ctx(token=good_token()), requests=12)
    assert st.ok and st.eio == eio and not st.refused, st.error
    assert_one_connect(st.exchanges)
