"""The Socket.IO CONNECT probe: join the client's namespace with the token, as socket.io-client does.

Socket.IO 3/4 (protocol 5, Engine.IO 4): the token travels in the CONNECT packet's ``auth``
(``40/ns,{"token":…}``); the server answers ``40{"sid"}`` (joined) or ``44{"message",…}`` (refused; python's
unknown namespace: ``44/ns,"Unable to connect"``). Socket.IO 2 (protocol 4, Engine.IO 3) has no CONNECT
payload: socket.io-client 2.x sends the token in the query of every request, the server joins ``/`` by
itself and says ``40`` or ``44"<message>"``; other namespaces are asked for with ``40/ns,``. With
``--auth-header`` the token also goes as ``Authorization: Bearer`` on every HTTP request. python-socketio
sends the events a ``connect`` handler emits *before* the ``40`` ack: they are kept in
``events_before_ack`` and never taken for the answer. Server pings (``2``) are answered (``3``).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from wsdoctor.facts import ConnectProbe, Exchange
from wsdoctor.probes.context import ProbeContext
from wsdoctor.probes.net import engine_url, open_client, timeout_message
from wsdoctor.probes.polling import PollingSession, answer_problem, other_eio
from wsdoctor.probes.tunnel import _goodbye, first_open_packet, refusal
from wsdoctor.probes.wsconn import WsClosed, WsConn, open_ws, recv_within
from wsdoctor.wire import socketio as sio
from wsdoctor.wire.engineio import Packet, PacketType, ProtocolError, decode_packet, version_refusal
from wsdoctor.wire.socketio import SioType


def _namespace(ns: str | None) -> str:
    ns = (ns or "/").strip() or "/"
    return ns if ns.startswith("/") else "/" + ns


class _Watch:
    """Reads the server's packets for one CONNECT and decides when the answer has come."""

    def __init__(self, probe: ConnectProbe) -> None:
        self.probe = probe
        self.done = False
        self.version = probe.protocol  # the Socket.IO protocol the packets are decoded in

    def feed(self, pkt: Packet) -> str | None:
        """Take one Engine.IO packet; returns "pong" when the server pinged and must be answered."""
        p = self.probe
        if pkt.binary:
            p.packets.append(pkt.text)
            return None
        raw = f"{int(pkt.type)}{pkt.data}"
        p.packets.append(raw[:2000])
        if pkt.type == PacketType.PING:
            return "pong"
        if pkt.type == PacketType.CLOSE:
            p.error = "the server closed the Engine.IO session (1) before answering the CONNECT"
            self.done = True
            return None
        if pkt.type != PacketType.MESSAGE:
            return None
        try:
            packet = sio.decode(pkt.text, version=self.version)
        except ProtocolError as e:
            p.error = f"the server sent a packet that is not Socket.IO ({e}): {raw[:120]}"
            return None
        if packet.namespace != p.namespace:
            return None
        if packet.type == SioType.CONNECT:
            p.ok = True
            self.done = True
        elif packet.type == SioType.CONNECT_ERROR:
            p.refused_message = packet.error_message or (str(packet.data) if packet.data is not None else "")
            if self.version == 4 and isinstance(packet.data, dict) and packet.error_message is None:
                p.refused_data = packet.data  # Socket.IO 2 sends err.data instead of the message when set
            p.refused_data = packet.error_data
            p.error = f"the server refused the CONNECT to {p.namespace}: {p.refused_message}"
            self.done = True
        elif packet.type == SioType.DISCONNECT:
            p.refused_message = _message(packet.data)
            p.error = f"the server disconnected namespace {p.namespace} right after the CONNECT" + (
                f": {p.refused_message}" if p.refused_message else ""
            )
            self.done = True
        elif packet.type in (SioType.EVENT, SioType.BINARY_EVENT) and not p.ok:
            p.events_before_ack.append(pkt.text[:2000])
        return None


def _message(data: Any) -> str | None:
    if isinstance(data, str):
        return data
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return data["message"]
    return None


async def connect(
    url: str,
    path: str | None = None,
    *,
    ctx: ProbeContext | None = None,
    where: str = "proxy",
    namespace: str = "/",
    transport: str = "websocket",
    eio: int | None = None,
) -> ConnectProbe:
    """Socket.IO CONNECT to NAMESPACE over TRANSPORT ("websocket" or "polling") with the context's token,
    in the protocol of Engine.IO EIO (4: Socket.IO 3/4, 3: Socket.IO 2; default: the client's)."""
    ctx = ctx if ctx is not None else ProbeContext()
    ns = _namespace(namespace)
    spoken = eio or ctx.eio
    probe = ConnectProbe(where=where, namespace=ns, transport=transport)
    probe.sent_token = bool(ctx.token)
    probe.sent_auth_header = bool(ctx.auth_header and ctx.token)
    try:
        engine_url(url, path, transport=transport)
    except ValueError as e:
        probe.error = str(e)
        return probe
    if transport == "websocket":
        await _over_websocket(probe, ctx, url, path, spoken)
    elif transport == "polling":
        await _over_polling(probe, ctx, url, path, spoken)
    else:
        probe.error = f"unknown transport {transport!r} (polling or websocket)"
    return probe


def _speak(probe: ConnectProbe, ctx: ProbeContext, eio: int) -> tuple[str | None, str, list[tuple[str, str]]]:
    """(the CONNECT to send or None, as shown, the query) for Engine.IO EIO; sets the probe's protocol."""
    ns = probe.namespace
    if eio == 3:
        probe.protocol = 4
        query = [("token", ctx.token)] if ctx.token else []
        if ns == "/":
            return None, "", query  # Socket.IO 2 joins "/" by itself and says so
        text = "4" + sio.connect(ns, version=4)
        return text, text, query
    probe.protocol = 5
    auth = {"token": ctx.token} if ctx.token else None
    return "4" + sio.connect(ns, auth), "4" + sio.redacted_connect(ns, auth), []


async def _over_websocket(
    probe: ConnectProbe, ctx: ProbeContext, url: str, path: str | None, eio: int
) -> None:
    text, shown, query = _speak(probe, ctx, eio)
    target = engine_url(url, path, transport="websocket", eio=eio, extra=query)
    async with open_ws(ctx, target) as (ex, conn, _tracker):
        probe.exchanges.append(ex)
        if conn is None:
            probe.error = refusal(ex)
            refused_version = version_refusal(ex.status, ex.body)
        else:
            refused_version = False
            await _connect_on(probe, ctx, ex, conn, text, shown)
    if refused_version and len(probe.exchanges) == 1:
        # The server refuses this Engine.IO version: speak the one it does (the protocol check says so).
        probe.error = None
        await _over_websocket(probe, ctx, url, path, other_eio(eio))


async def _connect_on(
    probe: ConnectProbe, ctx: ProbeContext, ex: Exchange, conn: WsConn, text: str | None, shown: str
) -> None:
    op = await first_open_packet(conn, ex, ctx)
    if op is None:
        probe.error = ex.error
        return
    probe.packets.append(f"0{_compact(op.raw)}")
    watch = _Watch(probe)
    deadline = asyncio.get_running_loop().time() + ctx.timeout
    try:
        if text is not None:
            await conn.send(text, shown=shown)
        while not watch.done:
            msg = await recv_within(conn, deadline)
            try:
                pkt = decode_packet(msg)
            except ProtocolError as e:
                probe.error = f"the server sent a frame that is not Engine.IO ({e})"
                continue
            if watch.feed(pkt) == "pong":
                await conn.send("3")
    except TimeoutError:
        ex.stage = "first-frame"
        probe.error = ex.error = (
            f"timed out after {ctx.timeout:.1f} s waiting for the answer to the CONNECT to {probe.namespace}"
        )
        return
    except WsClosed as e:
        probe.error = f"the tunnel closed before the CONNECT was answered: {e.detail}"
        return
    if probe.ok:
        probe.error = None
    await _goodbye(conn)


async def _over_polling(probe: ConnectProbe, ctx: ProbeContext, url: str, path: str | None, eio: int) -> None:
    start = time.monotonic()
    text, shown, query = _speak(probe, ctx, eio)
    async with open_client(ctx, url) as (client, tracker):
        session = PollingSession(client, tracker, ctx, url, path, eio=eio, query=query)
        try:
            hs = await session.handshake(probe.where)
            probe.exchanges.append(hs.exchange)
            if hs.retry is not None:
                probe.exchanges.append(hs.retry.exchange)
            if hs.spoken is None:
                probe.error = f"no Engine.IO session: {hs.error}"
                return
            if session.eio != eio:  # the server answered in the other version: speak that one
                text, shown, session.query = _speak(probe, ctx, session.eio)
            assert session.open_packet is not None
            probe.packets.append(f"0{_compact(session.open_packet.raw)}")
            watch = _Watch(probe)
            for pkt in session.first_packets:
                watch.feed(pkt)
            if text is not None and not watch.done:
                ex = await session.post(text, shown=shown)
                probe.exchanges.append(ex)
                if ex.status != 200 or ex.error:
                    probe.error = _failed(ex, "the CONNECT POST")
                    return
            while not watch.done:
                if time.monotonic() - start > ctx.timeout * 2:
                    probe.error = timeout_message(ctx.timeout * 2, "response").replace(
                        "the HTTP response", f"the answer to the CONNECT to {probe.namespace}"
                    )
                    return
                ex, packets, problem = await session.get()
                probe.exchanges.append(ex)
                if ex.status != 200 or ex.error or problem:
                    probe.error = problem or _failed(ex, "a poll of the session")
                    return
                pong = False
                for pkt in packets:
                    pong = watch.feed(pkt) == "pong" or pong
                if pong:
                    probe.exchanges.append(await session.post("3"))
            if probe.ok:
                probe.error = None
        finally:
            await session.close_quietly()


def _failed(ex: Exchange, what: str) -> str:
    return ex.error if ex.status is None else answer_problem(ex, what)


def _compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))
