"""Hostile and broken servers: every probe returns a clear fact (error + stage) within the timeout.

No traceback, no hang, bounded memory: a server that never answers, answers garbage, sends an endless
body or endless headers, drips a byte at a time, or breaks the WebSocket after the 101.
"""

from __future__ import annotations

import asyncio
import time
import tracemalloc

import pytest

from tests.probes import hostile
from wsdoctor.facts import ENGINEIO_NODE, NGINX, NOBODY, STAGES
from wsdoctor.probes import ProbeContext, connect, cors, handshake, hold, sticky, upgrade, websocket

TIMEOUT = 1.0
pytestmark = pytest.mark.timeout(30)


def ctx() -> ProbeContext:
    return ProbeContext(timeout=TIMEOUT, token="tok-secret-value")


def base(port: int) -> str:
    return f"http://127.0.0.1:{port}"


async def timed(coro):  # noqa: ANN001, ANN201
    start = time.monotonic()
    result = await coro
    return result, time.monotonic() - start


async def test_silent_server_times_out_at_response() -> None:
    async with hostile.serve(hostile.silent) as port:
        hs, took = await timed(handshake(base(port), "/socket.io/", ctx=ctx()))
    assert took < TIMEOUT + 0.5
    assert not hs.ok and hs.exchange.stage == "response" and hs.exchange.answered_by == NOBODY
    assert hs.error == "timed out after 1.0 s waiting for the HTTP response"


async def test_silent_server_times_out_at_upgrade() -> None:
    async with hostile.serve(hostile.silent) as port:
        ws, took = await timed(websocket(base(port), "/socket.io/", ctx=ctx()))
    assert took < TIMEOUT + 0.5
    assert not ws.ok and ws.exchange.stage == "upgrade"
    assert ws.error == "timed out after 1.0 s waiting for the answer to the WebSocket upgrade"


async def test_garbage_answer_is_named() -> None:
    async with hostile.serve(hostile.garbage) as port:
        hs, took = await timed(handshake(base(port), "/socket.io/", ctx=ctx()))
    assert took < TIMEOUT + 0.5
    assert not hs.ok and hs.exchange.stage == "response" and hs.exchange.status is None
    assert hs.error is not None and "not HTTP" in hs.error and "SSH-2.0-OpenSSH" in hs.error
    async with hostile.serve(hostile.garbage_then_silence) as port:
        hs, took = await timed(handshake(base(port), "/socket.io/", ctx=ctx()))
    assert took < TIMEOUT + 0.5 and hs.exchange.stage == "response"
    assert hs.error == (
        "timed out after 1.0 s waiting for the HTTP response; all it sent was '220 mail.example ESMTP ready\\r\\n', "
        "which is not a complete HTTP answer"
    )


@pytest.mark.parametrize("handler", [hostile.endless_body, hostile.endless_chunked])
async def test_endless_body_is_capped_in_memory(handler) -> None:  # noqa: ANN001
    c = ctx()
    c.body_cap = 64 * 1024
    async with hostile.serve(handler) as port:
        tracemalloc.start()
        try:
            hs, took = await timed(handshake(base(port), "/socket.io/", ctx=c))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert len(hs.exchange.body) == 64 * 1024 and hs.exchange.status == 200
    assert took < TIMEOUT + 0.5
    assert peak < 4 * 1024 * 1024, f"peak {peak} bytes: the body was not capped"
    assert not hs.ok and "no Engine.IO open packet" in (hs.error or "")


async def test_endless_headers_fail_cleanly() -> None:
    async with hostile.serve(hostile.endless_headers) as port:
        hs, took = await timed(handshake(base(port), "/socket.io/", ctx=ctx()))
    assert took < TIMEOUT + 0.5
    assert not hs.ok and hs.exchange.status is None and hs.exchange.stage == "response"
    assert hs.error


async def test_drip_body_times_out_with_partial_body() -> None:
    async with hostile.serve(hostile.drip(head_first=True)) as port:
        hs, took = await timed(handshake(base(port), "/socket.io/", ctx=ctx()))
    assert took < TIMEOUT + 0.5
    ex = hs.exchange
    assert ex.status == 200 and ex.stage == "body" and 1 <= len(ex.body) <= 6
    assert ex.error == f"timed out after 1.0 s reading the response body ({len(ex.body)} bytes received)"


async def test_drip_status_line_times_out_at_response() -> None:
    async with hostile.serve(hostile.drip(head_first=False)) as port:
        hs, took = await timed(handshake(base(port), "/socket.io/", ctx=ctx()))
    assert took < TIMEOUT + 0.5
    assert hs.exchange.status is None and hs.exchange.stage == "response"


async def test_nginx_and_node_answers_are_told_apart() -> None:
    async with hostile.serve(hostile.NGINX_404) as port:
        hs = await handshake(base(port), "/socket.io/", ctx=ctx())
    assert hs.exchange.answered_by == NGINX and hs.exchange.status == 404
    assert (hs.error or "").startswith("the handshake got 404 Not Found from nginx itself: <html> <head>")
    async with hostile.serve(hostile.NODE_SESSION_UNKNOWN) as port:
        st = await sticky(base(port), "/socket.io/", ctx=ctx())
    assert not st.ok and st.exchanges[0].answered_by == ENGINEIO_NODE
    async with hostile.serve(hostile.NODE_OPEN) as port:
        hs = await handshake(base(port), "/socket.io/", ctx=ctx())
    assert hs.ok and hs.exchange.answered_by == ENGINEIO_NODE and hs.ping_interval == 25000


async def test_websocket_silent_after_101_times_out_at_first_frame() -> None:
    async with hostile.serve(hostile.websocket(hostile.ws_silent)) as port:
        ws, took = await timed(websocket(base(port), "/socket.io/", ctx=ctx()))
    assert took < TIMEOUT + 0.5
    assert ws.exchange.status == 101 and not ws.ok and ws.exchange.stage == "first-frame"
    assert (
        ws.error == "timed out after 1.0 s waiting for the first WebSocket frame (the Engine.IO open packet)"
    )


@pytest.mark.parametrize("then", [hostile.ws_garbage, hostile.ws_not_engineio])
async def test_websocket_garbage_after_101(then) -> None:  # noqa: ANN001
    async with hostile.serve(hostile.websocket(then)) as port:
        ws, took = await timed(websocket(base(port), "/socket.io/", ctx=ctx()))
    assert took < TIMEOUT + 0.5
    assert not ws.ok and ws.exchange.stage == "first-frame" and ws.error


async def test_hold_reports_close_frame_and_tcp_close() -> None:
    async with hostile.serve(hostile.ws_open_then(0.3, hostile.close_frame(1001, "going away"))) as port:
        h = await hold(base(port), "/socket.io/", ctx=ctx(), seconds=3)
    assert h.closed and h.close_code == 1001 and h.close_reason == "going away"
    assert 0.25 <= h.held_for < 0.9
    async with hostile.serve(hostile.ws_open_then(0.3, None)) as port:
        h = await hold(base(port), "/socket.io/", ctx=ctx(), seconds=3)
    assert h.closed and h.close_code is None and 0.25 <= h.held_for < 0.9
    # Right after the drop a new connection to the server was accepted: it did not go away.
    assert h.after is None
    async with hostile.serve(hostile.silent) as port:
        h, took = await timed(hold(base(port), "/socket.io/", ctx=ctx(), seconds=3))
    # The tunnel never opened: no drop to measure, the stage says where it stalled.
    assert not h.opened and not h.closed and h.stage == "upgrade" and took < TIMEOUT + 0.5


async def test_every_probe_survives_a_silent_server_concurrently() -> None:
    async with hostile.serve(hostile.silent) as port:
        u = base(port)
        results, took = await timed(
            asyncio.gather(
                upgrade(u, "/socket.io/", ctx=ctx()),
                connect(u, "/socket.io/", ctx=ctx()),
                connect(u, "/socket.io/", ctx=ctx(), transport="polling"),
                sticky(u, "/socket.io/", ctx=ctx()),
                cors(u, "/socket.io/", ctx=ctx(), origin="https://a.example"),
                websocket(u, "/socket.io/", ctx=ctx()),
            )
        )
    assert took < TIMEOUT + 0.5  # all at once, each bounded by its own timeout
    for result in results:
        assert result.error and "timed out after 1.0 s" in result.error
        assert not getattr(result, "ok", False)
        for ex in getattr(result, "exchanges", None) or [result.exchange]:
            assert ex.stage in STAGES
            assert "tok-secret-value" not in ex.transcript()


async def test_bad_urls_are_sentences_not_exceptions() -> None:
    hs = await handshake("ftp://example/", ctx=ctx())
    assert not hs.ok and hs.error and "http(s)://" in hs.error
    ws = await websocket("not a url", ctx=ctx())
    assert not ws.ok and ws.error


@pytest.mark.parametrize("kind", ["polling", "tunnel"])
async def test_cancelling_a_probe_is_prompt(kind: str) -> None:
    """Ctrl+C: a probe stuck on a dead server stops at once when cancelled (no swallowed cancellation)."""
    handler = hostile.silent if kind == "polling" else hostile.websocket(hostile.ws_silent)
    async with hostile.serve(handler) as port:
        slow = ProbeContext(timeout=30)
        probe = (
            handshake(base(port), "/socket.io/", ctx=slow)
            if kind == "polling"
            else hold(base(port), ctx=slow, seconds=30)
        )
        task = asyncio.create_task(probe)
        await asyncio.sleep(0.2)
        task.cancel()
        start = time.monotonic()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.monotonic() - start < 1.5


async def test_transcripts_show_the_exchange_without_secrets() -> None:
    async with hostile.serve(hostile.NODE_OPEN) as port:
        c = ProbeContext(
            timeout=TIMEOUT, token="tok-secret-value", auth_header=True, headers=[("Cookie", "io=abc")]
        )
        st = await sticky(base(port), "/socket.io/", ctx=c)
    text = "\n\n".join(ex.transcript() for ex in st.exchanges)
    assert "tok-secret-value" not in text and "io=abc" not in text
    assert "Authorization: Bearer ***" in text and "Cookie: ***" in text
    assert '40{"token":"***"}' in text  # the POSTed CONNECT, masked
