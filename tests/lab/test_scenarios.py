"""Every broken scenario shows a real client exactly the symptom it claims (and nothing vaguer).

Clients are real and speak the wire by hand (httpx for polling, websockets for the tunnel) so the
assertions are on the status, the headers, the body and the frames a client really gets. The bytes are
python-socketio's, so these labs run the python backends (the `python` fixture below); Node's answers are
asserted in tests/lab/test_real_client.py and tests/probes/test_node.py.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.lab.helpers import (
    http_client,
    lab_of,
    open_packet,
    public_http,
    public_ws,
    recv_text,
    socketio_connect,
    ssl_context,
    wait_for_text,
    websocket,
)
from wsdoctor.lab import Lab

pytestmark = pytest.mark.lab

HANDSHAKE = {"EIO": "4", "transport": "polling"}


def python(lab_factory, scenario: str) -> Lab:  # noqa: ANN001
    """The session's shared lab of SCENARIO with python-socketio backends."""
    return lab_of(lab_factory, scenario, "python")


async def test_seed_runbook_client_gets_nginx_404_and_the_fix_works(lab_factory) -> None:
    lab = python(lab_factory, "seed")
    info = lab.info()
    assert info["client_url"] == f"{lab.url}/dev/aiwm/chat" and info["client_transports"] == ["websocket"]
    # io('wss://HOST/dev/aiwm/chat', {transports: ['websocket']}) requests /socket.io/?EIO=4&transport=websocket.
    with pytest.raises(InvalidStatus) as refused:
        async with websocket(lab, url=f"{lab.url}/socket.io/?EIO=4&transport=websocket"):
            pass
    response = refused.value.response
    assert response.status_code == 404
    assert response.headers["Server"] == "nginx"  # nginx answered (server_tokens off), not a backend
    assert b"<center>nginx</center>" in response.body
    await wait_for_text(info["error_log"], '/html/socket.io/index.html" is not found')

    # The fix, with this very config: URL without the path, path = the prefixed engine path.
    async with websocket(lab) as ws:
        frames = await socketio_connect(ws, lab.token)
    assert frames[-1].startswith('40{"sid":')
    # The runbook's own location logs received the working request.
    ws_log = f"{info['dir']}/logs/api.x-or.cloud/path-dev-aiwm-ws.access.log"
    await wait_for_text(ws_log, '"GET /dev/aiwm/chat/socket.io/?EIO=4&transport=websocket HTTP/1.1" 101')


async def test_no_rewrite_404_comes_from_the_backend(lab_factory) -> None:
    lab = python(lab_factory, "no-rewrite")
    async with http_client(lab) as http:
        r = await http.get(public_http(lab), params=HANDSHAKE)
    assert r.status_code == 404
    # python-engineio's own 404 (text/plain "Not Found"), relayed by nginx: not nginx's HTML page.
    assert (r.headers["content-type"], r.text) == ("text/plain", "Not Found")
    # The backend received the unrewritten path (its uvicorn access log).
    logs = [Path(f"{lab.info()['dir']}/logs/backend-{i}.out") for i in range(3)]
    want = '"GET /dev/aiwm/chat/socket.io/?EIO=4&transport=polling HTTP/1.1" 404'
    texts = [p.read_text() for p in logs]
    if not any(want in t for t in texts):  # uvicorn writes its access line just after the answer
        await asyncio.sleep(0.3)
        texts = [p.read_text() for p in logs]
    assert any(want in t for t in texts), texts


async def test_backend_down_one_port_refuses_and_nginx_fails_over(lab_factory) -> None:
    lab = python(lab_factory, "backend-down")
    info = lab.info()
    assert info["stopped_backends"] == [2] and "backend-2" not in info["pids"]
    down_port = info["backend_ports"][2]
    async with httpx.AsyncClient(timeout=2) as direct:
        with pytest.raises(httpx.ConnectError):
            await direct.get(f"{info['backends'][2]}/chat/socket.io/", params=HANDSHAKE)
        ok = await direct.get(f"{info['backends'][0]}/chat/socket.io/", params=HANDSHAKE)
        assert ok.status_code == 200
    async with http_client(lab) as http:
        r = await http.get(public_http(lab), params=HANDSHAKE)
    assert r.status_code == 200 and open_packet(r.text)["sid"]  # failed over to a live backend
    log = await wait_for_text(
        info["error_log"], "connect() failed (111: Connection refused) while connecting"
    )
    assert f'upstream: "http://127.0.0.1:{down_port}/chat/socket.io/' in log
    async with websocket(lab) as ws:
        frames = await socketio_connect(ws, lab.token)
    assert frames[-2] in ('42["instance","backend-0"]', '42["instance","backend-1"]')


async def test_backend_down_all_is_502(lab_factory) -> None:
    lab = python(lab_factory, "backend-down-all")
    info = lab.info()
    assert info["stopped_backends"] == [0, 1, 2]
    async with http_client(lab) as http:
        first = await http.get(public_http(lab), params=HANDSHAKE)
        second = await http.get(public_http(lab), params=HANDSHAKE)
    for r in (first, second):
        assert r.status_code == 502 and "<center>nginx/" in r.text
    await wait_for_text(
        info["error_log"], "connect() failed (111: Connection refused) while connecting to upstream"
    )
    await wait_for_text(info["error_log"], "no live upstreams while connecting to upstream")


async def test_short_timeout_drops_the_idle_tunnel_at_the_proxy_timeout(lab_factory) -> None:
    lab = python(lab_factory, "short-timeout")
    async with websocket(lab) as ws:
        frames = await socketio_connect(ws, lab.token)
        assert open_packet(frames[0])["pingInterval"] == 5000
        last = time.monotonic()
        with pytest.raises(ConnectionClosed):
            while True:  # nothing crosses the tunnel until the first ping at 5 s: nginx cuts it first
                frame = await recv_text(ws, timeout=10)
                pytest.fail(f"got {frame!r} before the drop")
        idle = time.monotonic() - last
    assert 2.5 <= idle <= 4.5, f"the tunnel dropped after {idle:.2f} s idle, expected ~3 s"
    info = lab.info()
    await wait_for_text(
        info["error_log"], "upstream timed out (110: Connection timed out) while proxying upgraded"
    )
    access = await wait_for_text(info["access_log"], 'transport=websocket HTTP/1.1" 101')
    times = re.findall(r'transport=websocket HTTP/1\.1" 101 .* (\d+\.\d+)$', access, re.M)
    assert times and 2.5 <= float(times[-1]) <= 4.5  # $request_time of the 101 = the tunnel's life


async def test_no_sticky_second_polling_request_reaches_another_backend(lab_factory) -> None:
    lab = python(lab_factory, "no-sticky")
    info = lab.info()
    async with http_client(lab) as http:
        r = await http.get(public_http(lab), params=HANDSHAKE)
        assert r.status_code == 200
        sid = open_packet(r.text)["sid"]
        second = await http.get(public_http(lab), params={**HANDSHAKE, "sid": sid})
    assert second.status_code == 400
    assert second.json() == f"Invalid session {sid}"  # python-engineio's answer for an unknown sid
    # Who owns the session? Only one backend accepts a packet for it (40 = Socket.IO CONNECT).
    owners = []
    async with httpx.AsyncClient(timeout=2) as direct:
        for base in info["backends"]:
            post = await direct.post(
                f"{base}/chat/socket.io/", params={**HANDSHAKE, "sid": sid}, content="40"
            )
            if post.status_code == 200:
                owners.append(base.removeprefix("http://"))
    assert len(owners) == 1
    access = await wait_for_text(info["access_log"], f'sid={sid} HTTP/1.1" 400')
    line = next(ln for ln in access.splitlines() if f'sid={sid} HTTP/1.1" 400' in ln)
    refused_by = line.split()[-2]  # $upstream_addr
    assert refused_by != owners[0] and refused_by in [b.removeprefix("http://") for b in info["backends"]]


async def test_bad_auth_connect_is_refused(lab_factory) -> None:
    lab = python(lab_factory, "bad-auth")
    info = lab.info()
    assert info["token"] != info["valid_token"]
    async with websocket(lab) as ws:
        frames = await socketio_connect(ws, lab.token)
    assert frames[1:] == ['44{"message":"authentication failed"}']
    await wait_for_text(info["backend_log"], "ExpiredSignatureError: Signature has expired")
    async with websocket(lab) as ws:  # the same path with a valid token is accepted
        frames = await socketio_connect(ws, info["valid_token"])
    assert frames[-1].startswith('40{"sid":')
    # Header auth (what browsers cannot send with websocket only) is accepted too, when present.
    bearer = {"Authorization": f"Bearer {info['valid_token']}"}
    async with connect(public_ws(lab), ssl=ssl_context(lab), additional_headers=bearer, open_timeout=5) as ws:
        open_packet(await recv_text(ws))
        await ws.send("40")
        assert (await recv_text(ws)).startswith('42["instance","backend-')
        assert (await recv_text(ws)).startswith('40{"sid":')
    await wait_for_text(info["backend_log"], "token via header")


async def test_no_upgrade_websocket_fails_polling_works(lab_factory) -> None:
    lab = python(lab_factory, "no-upgrade")
    with pytest.raises(InvalidStatus) as refused:
        async with websocket(lab):
            pass
    assert refused.value.response.status_code == 400
    assert refused.value.response.body == b'"Invalid websocket upgrade"'
    async with http_client(lab) as http:
        r = await http.get(public_http(lab), params=HANDSHAKE)
        assert r.status_code == 200
        sid = open_packet(r.text)["sid"]
    # The polling -> websocket upgrade with that session fails the same way.
    with pytest.raises(InvalidStatus) as upgrade:
        async with websocket(lab, url=f"{lab.url}{lab.path}/?EIO=4&transport=websocket&sid={sid}"):
            pass
    assert upgrade.value.response.status_code == 400


async def test_header_inheritance_backend_sees_lost_host(lab_factory) -> None:
    lab = python(lab_factory, "header-inheritance")
    async with websocket(lab) as ws:
        await socketio_connect(ws, lab.token)
        await ws.send('421["headers"]')
        frame = await recv_text(ws)
        while frame == "2":
            await ws.send("3")
            frame = await recv_text(ws)
    assert frame.startswith("431[")
    seen = json.loads(frame[3:])[0]
    assert seen["host"] == "chat_ws"  # $proxy_host: the upstream's name, not the client's Host
    assert not {"x-forwarded-for", "x-forwarded-proto", "x-real-ip"} & set(seen)
    async with http_client(lab) as http:
        chat = (await http.get(f"{lab.public_base}/dev/aiwm/chat/whoami-http")).json()
        rest = (await http.get(f"{lab.public_base}/dev/aiwm/whoami-http")).json()
    assert chat["path"] == "/chat/whoami-http" and chat["headers"]["host"] == "chat_ws"
    # The REST location sets no proxy_set_header, so it does inherit the server-level ones.
    assert rest["headers"]["host"] == "127.0.0.1" and rest["headers"]["x-forwarded-proto"] == "https"


async def test_cors_duplicate_two_allow_origin_headers(lab_factory) -> None:
    for scenario, count in (("cors-duplicate", 2), ("healthy", 1)):
        lab: Lab = python(lab_factory, scenario)
        origin = lab.info()["origin"]
        async with httpx.AsyncClient(verify=ssl_context(lab), timeout=5) as http:
            r = await http.get(public_http(lab), params=HANDSHAKE, headers={"Origin": origin})
        assert r.status_code == 200
        assert r.headers.get_list("access-control-allow-origin") == [origin] * count, scenario
