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
import contextlib
import time
from urllib.parse import urlsplit

from wsdoctor.facts import ENGINEIO_NODE, ENGINEIO_PY, Exchange, HoldProbe, UpgradeProbe, WebSocketProbe
from wsdoctor.probes.context import ProbeContext
from wsdoctor.probes.net import engine_url, open_client, timeout_message
from wsdoctor.probes.polling import WHO, PollingSession, answer_problem, other_eio, snippet
from wsdoctor.probes.wsconn import WsClosed, WsConn, open_ws, recv_within
from wsdoctor.wire import socketio as sio
from wsdoctor.wire.engineio import (
    OpenPacket,
    ProtocolError,
    decode_packet,
    parse_open,
    python_key_order,
    version_refusal,
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


async def first_open_packet(
    conn: WsConn, ex: Exchange, ctx: ProbeContext, eio: int = 4, foreign: list[str] | None = None
) -> OpenPacket | None:
    """Read the first frame (stage first-frame); it must be the open packet. Problems go into EX; a first
    frame that is no Engine.IO packet at all (a plain WebSocket server's greeting) goes into FOREIGN too."""
    # one budget from the upgrade request to the first frame, like every other exchange
    deadline = asyncio.get_running_loop().time() + max(ctx.timeout - ex.elapsed, 0.05)
    try:
        msg = await recv_within(conn, deadline)
    except TimeoutError:
        ex.stage, ex.error = "first-frame", timeout_message(ctx.timeout, "first-frame")
        return None
    except WsClosed as e:
        ex.stage, ex.error = "first-frame", f"the tunnel closed before the first frame: {e.detail}"
        if conn.head and not conn.head.startswith(b"\x81"):  # not a text frame: an HTTP answer after the 101
            ex.error += f"; after its 101 the server sent {_show_bytes(bytes(conn.head))}"
        return None
    try:
        pkt = decode_packet(msg, version=eio)
        op = parse_open(pkt)
    except ProtocolError as e:
        shown = msg if isinstance(msg, str) else f"<binary {len(msg)} bytes>"
        ex.stage = "first-frame"
        ex.error = f"the first frame is not an Engine.IO open packet ({e}): {snippet(shown.encode())}"
        if foreign is not None:
            foreign.append(shown[:300])
        return None
    order = python_key_order(op)
    if order is not None:
        ex.answered_by = ENGINEIO_PY if order else ENGINEIO_NODE
    return op


def _show_bytes(data: bytes, n: int = 160) -> str:
    text = " ".join(data[:n].decode("utf-8", "replace").split())
    return repr(text) + ("…" if len(data) > n else "")


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
    eio: int | None = None,
    retry: bool = True,
) -> WebSocketProbe:
    """``GET {path}?EIO=4&transport=websocket`` with Upgrade: 101 and the open packet, or the refusal.

    EIO defaults to the client's; a refusal of that version is followed by the other one (``retry``).
    """
    ctx = _ctx(ctx)
    asked = eio or ctx.eio
    try:
        target = engine_url(url, path, transport="websocket", eio=asked)
    except ValueError as e:
        return WebSocketProbe(
            where=where, exchange=Exchange("GET", url, error=str(e), stage="request"), error=str(e), eio=asked
        )
    foreign: list[str] = []
    async with open_ws(ctx, target) as (ex, conn, _tracker):
        probe = WebSocketProbe(where=where, exchange=ex, eio=asked)
        if conn is None:
            probe.error = refusal(ex)
        else:
            op = await first_open_packet(conn, ex, ctx, 4, foreign)
            if op is None:
                probe.error = ex.error
                probe.foreign_frame = foreign[0] if foreign else None
            else:
                probe.ok, probe.open_packet = True, dict(op.raw)
                await _goodbye(conn)
    if retry and conn is None and version_refusal(ex.status, ex.body):
        probe.retry = await websocket(url, path, ctx=ctx, where=where, eio=other_eio(asked), retry=False)
    return probe


async def upgrade(
    url: str,
    path: str | None = None,
    *,
    ctx: ProbeContext | None = None,
    where: str = "proxy",
) -> UpgradeProbe:
    """Polling handshake, then the WebSocket with ``&sid=``: send ``2probe``, expect ``3probe``, send ``5``.

    Spoken in the version the server's handshake answered in (the probe packets are the same in both).
    """
    ctx = _ctx(ctx)
    probe = UpgradeProbe(where=where, eio=ctx.eio)
    try:
        engine_url(url, path, transport="polling")
    except ValueError as e:
        probe.error = str(e)
        return probe
    async with open_client(ctx, url) as (client, tracker):
        session = PollingSession(client, tracker, ctx, url, path, eio=ctx.eio)
        hs = await session.handshake(where)
        probe.exchanges.append(hs.exchange)
        if hs.retry is not None:
            probe.exchanges.append(hs.retry.exchange)
        spoken = hs.spoken
        if spoken is None:
            probe.error = f"no session to upgrade: {hs.error}"
            return probe
        probe.eio = session.eio
        if "websocket" not in (spoken.upgrades or []):
            probe.error = f"the server offers no websocket upgrade (upgrades: {spoken.upgrades or []})"
        target = engine_url(url, path, transport="websocket", eio=session.eio, sid=session.sid)
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
    eio: int | None = None,
) -> HoldProbe:
    """Keep a tunnel open SECONDS like an idle client (namespace joined, pings answered); say how it ended.

    The namespace is joined because Node closes a connection that joins none within connectTimeout (45 s),
    which would be mistaken for a proxy timeout. In Engine.IO 3 (EIO=3: Socket.IO 2) the client pings every
    pingInterval and the server answers; in Engine.IO 4 the server pings and the client answers. After an
    early close the proxy is asked again at once (``after``): whether it still answers tells a proxy that
    went away from a tunnel cut behind it.
    """
    ctx = _ctx(ctx)
    spoken = eio or ctx.eio
    probe = HoldProbe(where=where, requested=seconds, eio=spoken)
    query = [("token", ctx.token)] if spoken == 3 and ctx.token else []
    try:
        target = engine_url(url, path, transport="websocket", eio=spoken, extra=query)
    except ValueError as e:
        probe.error, probe.stage = str(e), "request"
        return probe
    async with open_ws(ctx, target) as (ex, conn, _tracker):
        probe.exchange = ex
        if conn is None:
            probe.error, probe.stage = refusal(ex), ex.stage or "upgrade"
            return probe
        op = await first_open_packet(conn, ex, ctx)
        if op is None:
            probe.error, probe.stage = ex.error, ex.stage
            return probe
        probe.opened = True
        probe.ping_interval = op.ping_interval
        opened = conn.opened_at
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        every = (op.ping_interval or 25000) / 1000
        next_ping = loop.time() + every
        try:
            if spoken == 3:
                if namespace != "/":  # Socket.IO 2 joins "/" by itself; other namespaces are asked for
                    await conn.send("4" + sio.connect(namespace, version=4))
            else:
                auth = {"token": ctx.token} if ctx.token else None
                await conn.send(
                    "4" + sio.connect(namespace, auth), shown="4" + sio.redacted_connect(namespace, auth)
                )
            while True:
                until = min(deadline, next_ping) if spoken == 3 else deadline
                try:
                    msg = await recv_within(conn, until, stall=False)
                except TimeoutError:
                    if spoken == 3 and loop.time() < deadline:
                        await conn.send("2")  # Engine.IO 3: the client pings
                        probe.pings += 1
                        next_ping = loop.time() + every
                        continue
                    raise
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
    if probe.closed:
        # Who is still there: a new connection to the proxy at once (refused: it went away). A connection
        # only, no request: a request would reach a backend and leave lines in nginx's error log.
        probe.after = await _gone(target, ctx)
    return probe


#: How long a connection the proxy accepted right after a drop must stay open to count as served: a listener
#: whose processes are dying (SIGKILLed, crashing) still completes TCP handshakes into its backlog, then resets
#: them when its last process closes the socket. A live nginx never closes a fresh connection this fast.
SETTLE = 0.3


async def _gone(url: str, ctx: ProbeContext, tries: int = 3) -> Exchange | None:
    """The failed TCP connection to URL's server (refused, timed out), or None when it accepts one and keeps it.

    A connection accepted and then reset or closed unanswered within SETTLE came from a listener on its way
    out: asked again, up to TRIES times, until it is refused or keeps a connection."""
    u = urlsplit(url)
    host, port = ctx.connect_to or (u.hostname or "", u.port or (443 if u.scheme == "https" else 80))
    ex = Exchange("CONNECT", f"{host}:{port}", stage="connect")
    limit = min(ctx.timeout, 2.0)
    for _ in range(tries):
        try:
            async with asyncio.timeout(limit):
                reader, writer = await asyncio.open_connection(host, port)
        except TimeoutError:
            ex.error = f"connecting to {host}:{port} timed out after {limit:.1f} s"
            return ex
        except OSError as e:
            refused = isinstance(e, ConnectionRefusedError) or "refused" in str(e).lower()
            ex.error = f"connection to {host}:{port} refused: nothing listens there" if refused else str(e)
            return ex
        try:
            cut = await asyncio.wait_for(reader.read(1), SETTLE) == b""
        except TimeoutError:
            cut = False  # kept open, silent, as a TLS or HTTP server waits for the client to speak
        except OSError:
            cut = True  # reset
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 0.5)
        if not cut:
            return None
    ex.error = f"{host}:{port} accepted connections but closed each at once: the proxy is going away"
    return ex


__all__ = ["WHO", "hold", "upgrade", "websocket"]
