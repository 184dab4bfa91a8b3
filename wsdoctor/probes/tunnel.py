"""WebSocket probes: a direct tunnel (``transport=websocket``), the polling→websocket upgrade, and a held tunnel.

- ``websocket``: what a ``transports: ['websocket']`` client does: ``101`` and the open packet as the first
  frame, or the refusal (its status and body say who refused: nginx's HTML 400/404/502, python's 403/500,
  Node's raw 400);
- ``upgrade``: what the default client does after polling: a WebSocket with ``&sid=``, ``2probe`` →
  ``3probe`` → ``5``; through a non-sticky proxy the WebSocket may reach another backend and be refused;
- ``hold``: keep a tunnel open SECONDS, answer the server's pings like a client, and measure when and how
  it closed (a close frame, an Engine.IO close, or the TCP connection just ending, as nginx does when
  ``proxy_read_timeout`` strikes on a silent tunnel).
"""

from __future__ import annotations

import asyncio
import time

from wsdoctor.facts import ENGINEIO_NODE, ENGINEIO_PY, Exchange, HoldProbe, UpgradeProbe, WebSocketProbe
from wsdoctor.probes.context import ProbeContext
from wsdoctor.probes.net import engine_url, open_client, timeout_message
from wsdoctor.probes.polling import WHO, PollingSession, answer_problem, snippet
from wsdoctor.probes.wsconn import WsClosed, WsConn, open_ws, recv_within
from wsdoctor.wire import socketio as sio
from wsdoctor.wire.engineio import (
    OpenPacket,
    ProtocolError,
    decode_packet,
    parse_open,
    python_key_order,
)


def _ctx(ctx: ProbeContext | None) -> ProbeContext:
    return ctx if ctx is not None else ProbeContext()


def refusal(ex: Exchange) -> str:
    """Why there is no tunnel, in one sentence."""
    if ex.status is None:
        return ex.error or "no answer"
    if ex.status == 101:
        return ex.error or "the tunnel opened"
    return answer_problem(ex, "the WebSocket upgrade").replace(" got ", " was refused with ", 1)


async def first_open_packet(conn: WsConn, ex: Exchange, ctx: ProbeContext, eio: int = 4) -> OpenPacket | None:
    """Read the first frame (stage first-frame); it must be the open packet. Problems go into EX."""
    # one budget from the upgrade request to the first frame, like every other exchange
    deadline = asyncio.get_running_loop().time() + max(ctx.timeout - ex.elapsed, 0.05)
    try:
        msg = await recv_within(conn, deadline)
    except TimeoutError:
        ex.stage, ex.error = "first-frame", timeout_message(ctx.timeout, "first-frame")
        return None
    except WsClosed as e:
        ex.stage, ex.error = "first-frame", f"the tunnel closed before the first frame: {e.detail}"
        return None
    try:
        pkt = decode_packet(msg, version=eio)
        op = parse_open(pkt)
    except ProtocolError as e:
        shown = msg if isinstance(msg, str) else f"<binary {len(msg)} bytes>"
        ex.stage = "first-frame"
        ex.error = f"the first frame is not an Engine.IO open packet ({e}): {snippet(shown.encode())}"
        return None
    order = python_key_order(op)
    if order is not None:
        ex.answered_by = ENGINEIO_PY if order else ENGINEIO_NODE
    return op


async def _goodbye(conn: WsConn) -> None:
    """Engine.IO close (``1``) before the WebSocket close frame: leave nothing behind on the server."""
    try:
        await conn.send("1")
    except WsClosed:
        pass


async def websocket(
    url: str,
    path: str | None = None,
    *,
    ctx: ProbeContext | None = None,
    where: str = "proxy",
    eio: int = 4,
) -> WebSocketProbe:
    """``GET {path}?EIO=4&transport=websocket`` with Upgrade: 101 and the open packet, or the refusal."""
    ctx = _ctx(ctx)
    try:
        target = engine_url(url, path, transport="websocket", eio=eio)
    except ValueError as e:
        return WebSocketProbe(
            where=where, exchange=Exchange("GET", url, error=str(e), stage="request"), error=str(e)
        )
    async with open_ws(ctx, target) as (ex, conn, _tracker):
        probe = WebSocketProbe(where=where, exchange=ex)
        if conn is None:
            probe.error = refusal(ex)
            return probe
        op = await first_open_packet(conn, ex, ctx, eio)
        if op is None:
            probe.error = ex.error
            return probe
        probe.ok, probe.open_packet = True, dict(op.raw)
        await _goodbye(conn)
    return probe


async def upgrade(
    url: str,
    path: str | None = None,
    *,
    ctx: ProbeContext | None = None,
    where: str = "proxy",
) -> UpgradeProbe:
    """Polling handshake, then the WebSocket with ``&sid=``: send ``2probe``, expect ``3probe``, send ``5``."""
    ctx = _ctx(ctx)
    probe = UpgradeProbe(where=where)
    try:
        engine_url(url, path, transport="polling")
    except ValueError as e:
        probe.error = str(e)
        return probe
    async with open_client(ctx, url) as (client, tracker):
        session = PollingSession(client, tracker, ctx, url, path)
        hs = await session.handshake(where)
        probe.exchanges.append(hs.exchange)
        if not hs.ok:
            probe.error = f"no session to upgrade: {hs.error}"
            return probe
        if "websocket" not in (hs.upgrades or []):
            probe.error = f"the server offers no websocket upgrade (upgrades: {hs.upgrades or []})"
        target = engine_url(url, path, transport="websocket", sid=session.sid)
        try:
            async with open_ws(ctx, target) as (ex, conn, _t):
                probe.exchanges.append(ex)
                if conn is None:
                    probe.error = refusal(ex)
                    return probe
                deadline = asyncio.get_running_loop().time() + ctx.timeout
                await conn.send("2probe")
                try:
                    while True:
                        msg = await recv_within(conn, deadline)
                        if msg == "3probe":
                            break
                        if isinstance(msg, str) and msg.startswith("1"):
                            raise WsClosed(None, "", "the server sent an Engine.IO close instead of 3probe")
                    await conn.send("5")
                except TimeoutError:
                    ex.stage = "first-frame"
                    ex.error = timeout_message(ctx.timeout, "first-frame").replace(
                        "the first WebSocket frame (the Engine.IO open packet)", "3probe after 2probe"
                    )
                    probe.error = ex.error
                    return probe
                except WsClosed as e:
                    ex.stage, ex.error = "first-frame", f"no 3probe: {e.detail}"
                    probe.error = ex.error
                    return probe
                if probe.error is None:
                    probe.ok = True
                await _goodbye(conn)
        finally:
            if not probe.ok:
                await session.close_quietly()
    return probe


async def hold(
    url: str,
    path: str | None = None,
    *,
    seconds: float,
    ctx: ProbeContext | None = None,
    where: str = "proxy",
    namespace: str = "/",
) -> HoldProbe:
    """Keep a tunnel open SECONDS like an idle client (namespace joined, pings answered); say how it ended.

    The namespace is joined because Node closes a connection that joins none within connectTimeout (45 s),
    which would be mistaken for a proxy timeout.
    """
    ctx = _ctx(ctx)
    probe = HoldProbe(where=where, requested=seconds)
    try:
        target = engine_url(url, path, transport="websocket")
    except ValueError as e:
        probe.error, probe.stage = str(e), "request"
        return probe
    async with open_ws(ctx, target) as (ex, conn, _tracker):
        probe.exchange = ex
        if conn is None:
            probe.error, probe.stage, probe.closed = refusal(ex), ex.stage or "upgrade", True
            return probe
        op = await first_open_packet(conn, ex, ctx)
        if op is None:
            probe.error, probe.stage, probe.closed = ex.error, ex.stage, True
            return probe
        probe.ping_interval = op.ping_interval
        opened = conn.opened_at
        auth = {"token": ctx.token} if ctx.token else None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        try:
            await conn.send(
                "4" + sio.connect(namespace, auth), shown="4" + sio.redacted_connect(namespace, auth)
            )
            while True:
                msg = await recv_within(conn, deadline, stall=False)
                if msg == "2":
                    probe.pings += 1
                    await conn.send("3")
                elif isinstance(msg, str) and msg.startswith("1"):
                    raise WsClosed(
                        None, "Engine.IO close packet", "the server sent an Engine.IO close packet (1)"
                    )
        except TimeoutError:
            probe.held_for = time.monotonic() - opened
            probe.closed = False
            await _goodbye(conn)
        except WsClosed as e:
            probe.held_for = time.monotonic() - opened
            probe.closed = True
            probe.close_code, probe.close_reason = e.code, e.reason or e.detail
            probe.error = f"the tunnel closed after {probe.held_for:.1f} s: {e.detail}"
        if conn.last_received is not None:
            probe.last_received = conn.last_received - opened
    return probe


__all__ = ["WHO", "hold", "upgrade", "websocket"]
