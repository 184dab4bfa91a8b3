"""Engine.IO long-polling probes: the handshake, CORS, and one session kept over several requests (sticky).

A polling session is what socket.io-client does first: ``GET ?EIO=4&transport=polling`` opens it (the
answer is the open packet with the session id), then every ``POST``/``GET`` carries ``&sid=``. Behind a
proxy each of those requests is routed again, so with several backends and no session affinity most
land on a backend that never heard of the session: 400 ``Session ID unknown`` (Node) or
``"Invalid session …"`` (python). That is the sticky probe.

A GET poll blocks on the server until it has something to send (up to pingInterval), so the sticky
probe never GETs an empty queue: each GET follows a POSTed Socket.IO CONNECT, which every server
answers at once (``40{"sid"}`` or ``44{…}``).
"""

from __future__ import annotations

import asyncio
import time

import httpx

from wsdoctor.facts import (
    ENGINEIO_NODE,
    ENGINEIO_PY,
    NGINX,
    NOBODY,
    OTHER,
    CorsProbe,
    Exchange,
    Handshake,
    StickyProbe,
)
from wsdoctor.probes.context import ProbeContext
from wsdoctor.probes.net import Tracker, engine_url, fetch, open_client
from wsdoctor.wire import socketio as sio
from wsdoctor.wire.engineio import OpenPacket, Packet, PacketType, ProtocolError, decode_payload, parse_open

WHO = {
    NGINX: "nginx itself",
    ENGINEIO_PY: "python-engineio",
    ENGINEIO_NODE: "Node engine.io",
    OTHER: "the server",
    NOBODY: "nobody",
}


def snippet(body: bytes, n: int = 120) -> str:
    """The start of a body on one line, for a one-sentence error."""
    text = " ".join(body[:n].decode("utf-8", "replace").split())
    return text + ("…" if len(body) > n else "")


def answer_problem(ex: Exchange, what: str) -> str:
    """'the handshake got 404 Not Found from nginx itself: <html>…' (or the network error)."""
    if ex.error and ex.status is None:
        return ex.error
    msg = f"{what} got {ex.status} {ex.reason}".rstrip() + f" from {WHO.get(ex.answered_by, ex.answered_by)}"
    body = snippet(ex.body)
    return msg + (f": {body}" if body else "")


def is_session_refusal(ex: Exchange) -> bool:
    """400 Session ID unknown / Invalid session: the request reached a backend without the session."""
    text = ex.body[:2048].decode("utf-8", "replace")
    return ex.status == 400 and ("Session ID unknown" in text or "Invalid session" in text)


class PollingSession:
    """One Engine.IO polling session through one httpx client (requests strictly one after another)."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        tracker: Tracker,
        ctx: ProbeContext,
        url: str,
        path: str | None,
        *,
        eio: int = 4,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        self.client, self.tracker, self.ctx = client, tracker, ctx
        self.url, self.path, self.eio = url, path, eio
        self.headers = list(headers or [])
        self.sid: str | None = None
        self.open_packet: OpenPacket | None = None
        self.first_packets: list[Packet] = []  # what came with the open packet

    def _url(self) -> str:
        return engine_url(
            self.url, self.path, transport="polling", eio=self.eio, sid=self.sid, timestamp=True
        )

    async def handshake(self, where: str) -> Handshake:
        ex = await fetch(self.client, self.tracker, self.ctx, "GET", self._url(), headers=self.headers)
        hs = Handshake(where=where, exchange=ex)
        if ex.status != 200 or ex.error:
            hs.error = answer_problem(ex, "the handshake") if ex.status != 200 else ex.error
            return hs
        try:
            packets = decode_payload(ex.body, version=self.eio)
            if not packets or packets[0].type != PacketType.OPEN:
                raise ProtocolError("the first packet is not an open packet (0)")
            op = parse_open(packets[0])
        except ProtocolError as e:
            hs.error = f"the handshake got 200 but no Engine.IO open packet ({e}): {snippet(ex.body)}"
            return hs
        self.sid, self.open_packet, self.first_packets = op.sid, op, packets[1:]
        hs.ok, hs.sid = True, op.sid
        hs.ping_interval, hs.ping_timeout, hs.max_payload = op.ping_interval, op.ping_timeout, op.max_payload
        hs.upgrades = list(op.upgrades)
        return hs

    async def post(self, text: str, *, shown: str | None = None) -> Exchange:
        """POST one payload; SHOWN is what the evidence records instead (a masked token)."""
        ex = await fetch(
            self.client,
            self.tracker,
            self.ctx,
            "POST",
            self._url(),
            headers=self.headers,
            content=text.encode(),
        )
        ex.request_body = (shown if shown is not None else text).encode()
        return ex

    async def get(self) -> tuple[Exchange, list[Packet], str | None]:
        """One GET poll: the exchange, its packets, and a decoding problem if any."""
        ex = await fetch(self.client, self.tracker, self.ctx, "GET", self._url(), headers=self.headers)
        if ex.status != 200 or ex.error:
            return ex, [], None
        try:
            return ex, decode_payload(ex.body, version=self.eio), None
        except ProtocolError as e:
            return ex, [], f"the poll answer is not an Engine.IO payload ({e}): {snippet(ex.body)}"

    async def close_quietly(self) -> None:
        """Tell the server we are gone (``1``), so probes leave no session behind; never waits long."""
        if not self.sid:
            return
        try:
            async with asyncio.timeout(min(self.ctx.timeout, 1.0)):
                await self.client.post(
                    self._url(), content=b"1", headers=[("Content-Type", "text/plain;charset=UTF-8")]
                )
        except Exception:  # noqa: BLE001 - best effort cleanup
            pass


def _ctx(ctx: ProbeContext | None) -> ProbeContext:
    return ctx if ctx is not None else ProbeContext()


async def handshake(
    url: str,
    path: str | None = None,
    *,
    ctx: ProbeContext | None = None,
    where: str = "proxy",
    eio: int = 4,
    headers: list[tuple[str, str]] | None = None,
) -> Handshake:
    """``GET {path}?EIO=4&transport=polling`` at URL: the open packet, or what answered instead.

    URL is a base (``http://127.0.0.1:3350``) with PATH (``/chat/socket.io/``: the URI nginx would send),
    or, with PATH None, the full request URL (the public URL of the client's request).
    """
    ctx = _ctx(ctx)
    try:
        engine_url(url, path, transport="polling")
    except ValueError as e:
        return Handshake(
            where=where, exchange=Exchange("GET", url, error=str(e), stage="request"), error=str(e)
        )
    async with open_client(ctx, url) as (client, tracker):
        session = PollingSession(client, tracker, ctx, url, path, eio=eio, headers=headers)
        hs = await session.handshake(where)
        await session.close_quietly()
    return hs


async def cors(
    url: str,
    path: str | None = None,
    *,
    origin: str,
    ctx: ProbeContext | None = None,
    where: str = "proxy",
) -> CorsProbe:
    """The handshake with an ``Origin`` header: every Access-Control-Allow-Origin value the answer carries."""
    ctx = _ctx(ctx)
    hs = await handshake(url, path, ctx=ctx, where=where, headers=[("Origin", origin)])
    ex = hs.exchange
    probe = CorsProbe(where=where, origin=origin, exchange=ex)
    probe.allow_origin = ex.header_values("Access-Control-Allow-Origin")
    probe.allow_credentials = ex.header_values("Access-Control-Allow-Credentials")
    if ex.status is None:
        probe.error = ex.error
    elif not hs.ok:
        probe.error = hs.error
    return probe


async def sticky(
    url: str,
    path: str | None = None,
    *,
    ctx: ProbeContext | None = None,
    where: str = "proxy",
    requests: int = 6,
    namespace: str = "/",
) -> StickyProbe:
    """One polling session over REQUESTS (at least 6) requests after the handshake; refused ones recorded.

    Rounds of POST CONNECT → GET (its answer is immediate); after a refused POST the next request is a POST
    again, so no GET ever waits on an empty queue. The session is closed at the end.
    """
    ctx = _ctx(ctx)
    requests = max(requests, 6)
    probe = StickyProbe(where=where)
    try:
        engine_url(url, path, transport="polling")
    except ValueError as e:
        probe.error = str(e)
        return probe
    auth = {"token": ctx.token} if ctx.token else None
    connect_text = "4" + sio.connect(namespace, auth)
    connect_shown = "4" + sio.redacted_connect(namespace, auth)
    deadline = time.monotonic() + ctx.timeout * 3  # the whole probe, on top of each request's own timeout
    async with open_client(ctx, url) as (client, tracker):
        session = PollingSession(client, tracker, ctx, url, path)
        hs = await session.handshake(where)
        probe.exchanges.append(hs.exchange)
        if not hs.ok:
            probe.error = f"no session to keep: {hs.error}"
            return probe
        try:
            post_next = True
            while probe.requests < requests:
                if time.monotonic() > deadline:
                    probe.error = (
                        f"gave up after {probe.requests} requests: the session took longer than "
                        f"{ctx.timeout * 3:.1f} s"
                    )
                    break
                if post_next:
                    ex = await session.post(connect_text, shown=connect_shown)
                else:
                    ex, packets, problem = await session.get()
                    if problem:
                        ex.error = problem
                    elif any(p.type == PacketType.PING for p in packets):
                        probe.exchanges.append(ex)
                        probe.requests += 1
                        ex = await session.post("3")  # answer the server's ping, as a client must
                probe.requests += 1
                probe.exchanges.append(ex)
                if ex.status is None:
                    probe.error = f"request {probe.requests} of the session got no answer: {ex.error}"
                    break
                if ex.status != 200:
                    probe.refused.append(ex)
                    post_next = True
                    continue
                if ex.error:
                    probe.error = f"request {probe.requests} of the session: {ex.error}"
                    break
                post_next = not post_next
        finally:
            await session.close_quietly()
    probe.ok = not probe.refused and probe.error is None and probe.requests >= requests
    if probe.refused and probe.error is None:
        first = probe.refused[0]
        n = probe.exchanges.index(first)
        probe.error = (
            f"{len(probe.refused)} of {probe.requests} requests of one session were refused; "
            + answer_problem(first, f"the first, request {n} ({first.method}),")
        )
    return probe
