"""Every scenario, under both ``--backends``, as the real socket.io-client (Node) experiences it.

``wsdoctor/lab/node/client.js`` runs socket.io-client 4.8 (or 2.x) once per call, with reconnection
off, and reports what happened: connected or the ``connect_error`` message (and its description, e.g.
the HTTP status), the transports, the instance that answered the ``instance`` event and the ``whoami``
ack, and a drop while it held the connection. Each lab is started once per scenario and kind (shared
for the session); the client runs of one test go concurrently.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.lab.helpers import KINDS, lab_of, socketio_client, ssl_context, wait_for_text
from wsdoctor.lab import Lab

pytestmark = pytest.mark.lab

HANDSHAKE = {"EIO": "4", "transport": "polling"}
BOTH = "polling,websocket"
WS = "websocket"
V2_MESSAGE = "It seems you are trying to reach a Socket.IO server in v2.x with a v3.x client"


def error(result: dict) -> tuple[str, object]:
    """(message, description) of a failed connection; the test fails if it connected."""
    assert not result["connected"], f"expected a connect_error, the client connected: {result}"
    return result["error"]["message"], result["error"]["description"]


def assert_on_one_instance(lab: Lab, result: dict) -> str:
    """Connected, the `instance` event and the `whoami` ack name the same backend: one session, one backend."""
    assert result["connected"] and result["error"] is None, result
    instance = result["instance"]
    assert instance in lab.info()["instances"], result
    assert result["acks"].get("whoami") == instance, result
    return instance


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


async def test_healthy_upgrades_stays_on_one_backend_and_survives_pings(lab_factory) -> None:
    """pingInterval 1 s, pingTimeout 2 s: a pong that did not cross nginx would end the session within 3 s.
    Both kinds of backend at once (the hold is the test's wait: it is spent once)."""
    await asyncio.gather(
        *(
            _healthy_upgrades(lab_of(lab_factory, "healthy", k, ping_interval=1.0, ping_timeout=2.0))
            for k in KINDS
        )
    )


async def _healthy_upgrades(lab: Lab) -> None:
    upgraded, ws_only, held = await asyncio.gather(
        socketio_client(lab, transports=BOTH, acks=("whoami",)),
        socketio_client(lab, transports=WS, acks=("whoami", "headers")),
        socketio_client(lab, transports=BOTH, acks=("whoami",), hold=3.5),
    )
    instance = assert_on_one_instance(lab, upgraded)
    assert (upgraded["transport_at_open"], upgraded["transport"], upgraded["upgraded"]) == (
        "polling",
        "websocket",
        True,
    )
    assert assert_on_one_instance(lab, ws_only) == instance  # ip_hash: the same backend for 127.0.0.1
    assert ws_only["transport_at_open"] == "websocket"
    headers = ws_only["acks"]["headers"]
    assert headers["host"] == "127.0.0.1" and headers["x-forwarded-proto"] == "https"
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert_on_one_instance(lab, held)
    assert held["disconnect"] is None and held["transport"] == "websocket", held
    log = await wait_for_text(lab.info()["backend_log"], f"connected sid={held['id']} ")
    assert (
        f"[{instance}] connected sid={held['id']} from 127.0.0.1 sub=wsdoctor-lab-user token via auth" in log
    )


async def test_healthy_hash_keeps_one_backend(lab_factory, kind: str) -> None:
    lab = lab_of(lab_factory, "healthy-hash", kind)
    upgraded, polling = await asyncio.gather(
        socketio_client(lab, transports=BOTH, acks=("whoami",)),
        socketio_client(lab, transports="polling", acks=("whoami",)),
    )
    assert assert_on_one_instance(lab, upgraded) == assert_on_one_instance(lab, polling)
    assert upgraded["upgraded"] and polling["transport"] == "polling"


async def test_healthy_websocket_only_round_robin(lab_factory, kind: str) -> None:
    """Round robin: websocket-only clients connect (one connection each); a polling client would not."""
    lab = lab_of(lab_factory, "healthy-websocket-only", kind)
    assert lab.info()["client_transports"] == ["websocket"]
    ws_only = [await socketio_client(lab, transports=WS, acks=("whoami",)) for _ in range(3)]
    seen = {assert_on_one_instance(lab, result) for result in ws_only}
    assert len(seen) >= 2, ws_only  # round robin really spreads the sessions
    polling = await socketio_client(lab, transports="polling")
    message, status = error(polling)
    assert message in ("xhr post error", "xhr poll error") and status == 400, polling


async def test_healthy_fast_ping_survives_idle_periods(lab_factory) -> None:
    """proxy_read_timeout 8s, pingInterval 2 s: idle longer than the timeout, still connected (polling too).
    Both kinds of backend at once (the wait is the test: it is spent once)."""
    labs = {kind: lab_of(lab_factory, "healthy-fast-ping", kind) for kind in KINDS}
    results = await asyncio.gather(
        *(socketio_client(lab, transports=t, hold=9) for lab in labs.values() for t in (BOTH, "polling"))
    )
    assert len(results) == 2 * len(KINDS)
    for result in results:
        assert result["connected"] and result["disconnect"] is None, result


async def test_seed_runbook_client_fails_and_the_fix_connects(lab_factory, kind: str) -> None:
    lab = lab_of(lab_factory, "seed", kind)
    info = lab.info()
    runbook, fixed = await asyncio.gather(
        # io('wss://HOST/dev/aiwm/chat', {transports: ['websocket']}): path /socket.io/, namespace /dev/aiwm/chat
        socketio_client(lab, url=info["client_url"], path=None, transports=WS),
        socketio_client(lab, transports=WS, acks=("whoami",)),
    )
    assert error(runbook) == ("websocket error", "Unexpected server response: 404")
    assert_on_one_instance(lab, fixed)
    await wait_for_text(info["error_log"], '/html/socket.io/index.html" is not found')


async def test_no_rewrite_fails_on_both_transports(lab_factory, kind: str) -> None:
    lab = lab_of(lab_factory, "no-rewrite", kind)
    polling, ws_only = await asyncio.gather(
        socketio_client(lab, transports=BOTH), socketio_client(lab, transports=WS)
    )
    assert error(polling) == ("xhr poll error", 404)  # the backend's own 404 for the unrewritten path
    # An upgrade at an unknown path: Node drops it without a byte (nginx then answers 502), uvicorn 500.
    want = 502 if kind == "node" else 500
    assert error(ws_only) == ("websocket error", f"Unexpected server response: {want}")


async def test_backend_down_fails_over(lab_factory, kind: str) -> None:
    lab = lab_of(lab_factory, "backend-down", kind)
    upgraded, ws_only = await asyncio.gather(
        socketio_client(lab, transports=BOTH, acks=("whoami",)),
        socketio_client(lab, transports=WS, acks=("whoami",)),
    )
    for result in (upgraded, ws_only):
        assert assert_on_one_instance(lab, result) in ("backend-0", "backend-1")
    assert upgraded["upgraded"]


async def test_backend_down_all_is_502(lab_factory, kind: str) -> None:
    lab = lab_of(lab_factory, "backend-down-all", kind)
    polling, ws_only = await asyncio.gather(
        socketio_client(lab, transports=BOTH), socketio_client(lab, transports=WS)
    )
    assert error(polling) == ("xhr poll error", 502)
    assert error(ws_only) == ("websocket error", "Unexpected server response: 502")


async def test_short_timeout_drops_idle_connections(lab_factory) -> None:
    """proxy_read_timeout 3s < pingInterval 5 s: nginx cuts the idle tunnel (and the held long-poll).
    Both kinds of backend at once (the hold is the test's wait: it is spent once)."""
    await asyncio.gather(*(_short_timeout_drops(lab_of(lab_factory, "short-timeout", k)) for k in KINDS))


async def _short_timeout_drops(lab: Lab) -> None:
    upgraded, ws_only, polling = await asyncio.gather(
        socketio_client(lab, transports=BOTH, hold=6),
        socketio_client(lab, transports=WS, hold=6),
        socketio_client(lab, transports="polling", hold=6),
    )
    for result in (upgraded, ws_only):
        assert result["connected"] and result["transport"] == "websocket", result
        drop = result["disconnect"]
        assert drop is not None and drop["reason"] == "transport close", result
        last_frame = result["upgraded_at"] or result["connected_at"]
        assert 2.5 <= drop["at"] - last_frame <= 4.5, result  # ~3 s after the last frame
    drop = polling["disconnect"]
    assert polling["connected"] and drop is not None, polling
    assert (drop["reason"], drop["description"]) == ("transport error", "xhr poll error"), polling
    assert 2.5 <= drop["at"] - polling["connected_at"] <= 4.5, polling
    await wait_for_text(
        lab.info()["error_log"], "upstream timed out (110: Connection timed out) while proxying upgraded"
    )


async def test_no_sticky_polling_fails_websocket_only_works(lab_factory, kind: str) -> None:
    lab = lab_of(lab_factory, "no-sticky", kind)
    # One client at a time: round robin is over all requests, so concurrent sessions could, by chance,
    # land every request of one session on the same backend.
    polling = await socketio_client(lab, transports="polling")
    upgrade = await socketio_client(lab, transports=BOTH)
    ws_only = await socketio_client(lab, transports=WS, acks=("whoami",))
    for result in (polling, upgrade):
        message, status = error(result)
        # The session's next request (the CONNECT POST or the first poll) reaches another backend.
        assert message in ("xhr post error", "xhr poll error") and status == 400, result
    assert_on_one_instance(lab, ws_only)


async def test_bad_auth_is_refused_with_the_servers_message(lab_factory, kind: str) -> None:
    lab = lab_of(lab_factory, "bad-auth", kind)
    info = lab.info()
    polling, ws_only, valid = await asyncio.gather(
        socketio_client(lab, transports=BOTH),
        socketio_client(lab, transports=WS),
        socketio_client(lab, transports=WS, token=info["valid_token"], acks=("whoami",)),
    )
    # Node's middleware next(err) carries err.data; python's ConnectionRefusedError carries none.
    data = {"reason": "token expired"} if kind == "node" else None
    for result in (polling, ws_only):
        assert not result["connected"] and result["error"]["message"] == "authentication failed", result
        assert result["error"]["data"] == data, result
    assert_on_one_instance(lab, valid)
    await wait_for_text(info["backend_log"], "jwt ExpiredSignatureError: Signature has expired")


async def test_no_upgrade_stays_on_polling_websocket_only_fails(lab_factory, kind: str) -> None:
    lab = lab_of(lab_factory, "no-upgrade", kind)
    upgrade, ws_only = await asyncio.gather(
        socketio_client(lab, transports=BOTH, acks=("whoami",)), socketio_client(lab, transports=WS)
    )
    assert_on_one_instance(lab, upgrade)
    assert upgrade["transport"] == "polling" and not upgrade["upgraded"], upgrade
    assert upgrade["upgrade_error"]["message"] == "probe error: Error: websocket error", upgrade
    assert error(ws_only) == ("websocket error", "Unexpected server response: 400")


async def test_header_inheritance_backend_sees_the_upstream_name(lab_factory, kind: str) -> None:
    lab = lab_of(lab_factory, "header-inheritance", kind)
    result = await socketio_client(lab, transports=WS, acks=("whoami", "headers"))
    assert_on_one_instance(lab, result)
    seen = result["acks"]["headers"]
    assert seen["host"] == "chat_ws"  # $proxy_host, not the client's Host
    assert not {"x-forwarded-for", "x-forwarded-proto", "x-real-ip"} & set(seen)


async def test_cors_duplicate_connects_in_node_but_doubles_the_header(lab_factory, kind: str) -> None:
    """socket.io-client in Node does not check CORS (browsers do): it connects; the headers are doubled."""
    lab = lab_of(lab_factory, "cors-duplicate", kind)
    result = await socketio_client(lab, transports=BOTH, acks=("whoami",))
    assert_on_one_instance(lab, result)
    origin = lab.info()["origin"]
    async with httpx.AsyncClient(verify=ssl_context(lab), timeout=5) as http:
        r = await http.get(f"{lab.public_base}{lab.path}/", params=HANDSHAKE, headers={"Origin": origin})
    assert r.status_code == 200
    assert r.headers.get_list("access-control-allow-origin") == [origin, origin]


@pytest.mark.parametrize("kind", ["node"])  # the scenario's server is Node socket.io 2 under both --backends
async def test_version_mismatch_v4_client_fails_v2_client_connects(lab_factory, kind: str) -> None:
    lab = lab_of(lab_factory, "version-mismatch", kind)
    assert lab.info()["server"] == "socketio2"  # the scenario's own server under both --backends
    polling, ws_query, ws_auth, v2, v2_ws, v2_bad = await asyncio.gather(
        socketio_client(lab, transports=BOTH),
        socketio_client(lab, transports=WS, token_in="query"),  # the token where 2.x servers read it
        socketio_client(lab, transports=WS),  # the token in the CONNECT auth, which 2.x ignores
        socketio_client(lab, transports=BOTH, client="2", acks=("whoami",)),
        socketio_client(lab, transports=WS, client="2", acks=("whoami",)),
        socketio_client(lab, transports=WS, client="2", token="not-a-jwt"),
    )
    assert error(polling) == ("server error", None)  # the Engine.IO 3 payload cannot be parsed
    assert error(ws_query)[0].startswith(V2_MESSAGE)  # the 2.x server's `40` without a sid
    # Without the token in the query the 2.x middleware refuses first: 44"authentication failed", a
    # string where v4 expects {"message":…}, so the v4 client's message is empty.
    assert error(ws_auth) == ("", None)
    for result in (v2, v2_ws):
        assert result["client"].startswith("socket.io-client 2.")
        assert_on_one_instance(lab, result)
    assert v2["upgraded"]
    assert error(v2_bad)[0] == "authentication failed"


async def test_plain_websocket_is_not_socketio(lab_factory, kind: str) -> None:
    lab = lab_of(lab_factory, "plain-websocket", kind)
    assert lab.info()["server"] == ("ws" if kind == "node" else "python-websockets")
    polling, ws_only = await asyncio.gather(
        socketio_client(lab, transports=BOTH), socketio_client(lab, transports=WS)
    )
    assert error(polling) == ("xhr poll error", 426)  # the WebSocket server's own 426, through nginx
    assert error(ws_only) == ("server error", None)  # 101, then a frame that is not an Engine.IO packet
    async with httpx.AsyncClient(verify=ssl_context(lab), timeout=5) as http:
        r = await http.get(f"{lab.public_base}{lab.path}/", params=HANDSHAKE)
    assert r.status_code == 426 and r.headers["server"].startswith("nginx")
    if kind == "node":
        assert (r.headers["content-type"], r.text) == ("text/plain", "Upgrade Required")
    else:
        assert r.text.startswith("Failed to open a WebSocket connection: ") and "WebSocket client" in r.text


async def test_literal_upgrade_polling_fails_websocket_works(lab_factory, kind: str) -> None:
    lab = lab_of(lab_factory, "literal-upgrade", kind)
    polling, upgrade, ws_only = await asyncio.gather(
        socketio_client(lab, transports="polling"),
        socketio_client(lab, transports=BOTH),
        socketio_client(lab, transports=WS, acks=("whoami",)),
    )
    assert error(polling) == ("xhr poll error", 400)
    assert error(upgrade) == ("xhr poll error", 400)
    assert_on_one_instance(lab, ws_only)
    # The 400 is the backend's refusal of a key-less WebSocket upgrade, relayed by nginx.
    async with httpx.AsyncClient(verify=ssl_context(lab), timeout=5) as http:
        r = await http.get(f"{lab.public_base}{lab.path}/", params=HANDSHAKE)
    assert r.status_code == 400
    if kind == "node":
        assert (r.headers["content-type"], r.text) == (
            "text/html",
            "Missing or invalid Sec-WebSocket-Key header",
        )
    else:
        assert r.text == "Failed to open a WebSocket connection: missing Sec-WebSocket-Key header.\n"


async def test_http10_upstream_still_upgrades(lab_factory, kind: str) -> None:
    """No proxy_http_version: nginx 1.22 sends HTTP/1.0 upstream, and both backends still upgrade."""
    lab = lab_of(lab_factory, "http10", kind)
    upgrade, ws_only = await asyncio.gather(
        socketio_client(lab, transports=BOTH, acks=("whoami",)),
        socketio_client(lab, transports=WS, acks=("whoami",)),
    )
    assert_on_one_instance(lab, upgrade)
    assert upgrade["upgraded"] and upgrade["transport"] == "websocket", upgrade
    assert_on_one_instance(lab, ws_only)
    access = await wait_for_text(lab.info()["access_log"], 'transport=websocket HTTP/1.1" 101')
    assert 'transport=websocket HTTP/1.1" 101' in access


def test_every_scenario_is_covered_here() -> None:
    """A new scenario must come with its real-client test in this module."""
    from wsdoctor.lab import SCENARIOS

    covered = {
        "healthy", "healthy-hash", "healthy-websocket-only", "healthy-fast-ping", "seed", "no-rewrite", "backend-down", "backend-down-all", "short-timeout", "no-sticky",
        "bad-auth", "no-upgrade", "header-inheritance", "cors-duplicate", "version-mismatch",
        "plain-websocket", "literal-upgrade", "http10",
    }  # fmt: skip
    assert set(SCENARIOS) == covered
