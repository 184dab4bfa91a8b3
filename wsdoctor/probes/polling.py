"""Engine.IO long-polling probes: the handshake, CORS, and one session kept over several requests (sticky).

A polling session is what socket.io-client does first: ``GET ?EIO=4&transport=polling`` opens it (the
answer is the open packet with the session id), then every ``POST``/``GET`` carries ``&sid=``. Behind a
proxy each of those requests is routed again, so with several backends and no session affinity most
land on a backend that never heard of the session: 400 ``Session ID unknown`` (Node) or
``"Invalid session …"`` (python). That is the sticky probe.

Every probe speaks the protocol the server answers in. It asks as the client would (``EIO=4``, or ``EIO=3``
for socket.io-client 2.x); a Socket.IO 2 server answers even ``EIO=4`` with an Engine.IO 3 payload
(``97:0{…}``), and from then on the session is spoken in Engine.IO 3 (length-prefixed payloads, the client
pings). A server that refuses the version asked (Node's code 5, python's "unsupported version") is asked
once more with the other one, so that what it does speak is known.

The sticky probe sends only what socket.io-client sends, and only requests every server answers at once:
Engine.IO 4: the CONNECT (once), the GET that carries its answer, then the long-poll GET a client always
keeps open while it POSTs its messages (here an event no handler listens to), server pings answered with
pongs; a refused CONNECT is retried, as a client does after ``connect_error``; never a second CONNECT of a
joined namespace (Node closes the whole session on that). Engine.IO 3: the server joins ``/`` by itself,
the client pings and the server's pong answers the next GET at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import httpx

from wsdoctor.facts import (
    ENGINEIO_NODE,
    ENGINEIO_PY,
    EXPRESS,
    NGINX,
    NOBODY,
    NODE_WS,
    OTHER,
    PY_WEBSOCKETS,
    CorsProbe,
    Exchange,
    Handshake,
    StickyProbe,
)
from wsdoctor.probes.context import ProbeContext
from wsdoctor.probes.net import Tracker, engine_url, fetch, open_client
from wsdoctor.wire import socketio as sio
from wsdoctor.wire.engineio import (
    OpenPacket,
    Packet,
    PacketType,
    ProtocolError,
    decode_payload,
    parse_open,
    payload_version,
    version_refusal,
)
from wsdoctor.wire.socketio import SioType

WHO = {
    NGINX: "nginx itself",
    ENGINEIO_PY: "python-engineio",
    ENGINEIO_NODE: "Node engine.io",
    NODE_WS: "Node ws",
    PY_WEBSOCKETS: "python websockets",
    EXPRESS: "the Node app (Express)",
    OTHER: "the server",
    NOBODY: "nobody",
}

#: The event the sticky probe emits while its long-poll is open: no application listens to it, so no server
#: answers it (Node and python ignore an event without a handler).
PROBE_EVENT = "wsdoctor:probe"


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


def other_eio(eio: int) -> int:
    return 3 if eio == 4 else 4


class PollingSession:
    """One Engine.IO polling session through one httpx client (requests strictly one after another).

    QUERY is added to every request (a socket.io-client 2.x client's ``query: {token}``); ``eio`` is the
    version spoken, which becomes the server's once its handshake has answered.
    """

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
        query: list[tuple[str, str]] | None = None,
    ) -> None:
        self.client, self.tracker, self.ctx = client, tracker, ctx
        self.url, self.path, self.eio = url, path, eio
        self.headers = list(headers or [])
        self.query = list(query or [])
        self.sid: str | None = None
        self.closed = False
        self.open_packet: OpenPacket | None = None
        self.first_packets: list[Packet] = []  # what came with the open packet

    def _url(self) -> str:
        return engine_url(
            self.url,
            self.path,
            transport="polling",
            eio=self.eio,
            sid=self.sid,
            timestamp=True,
            extra=self.query,
        )

    async def handshake(self, where: str, *, retry: bool = True) -> Handshake:
        """The handshake in the version asked; after a version refusal (and RETRY) once more in the other."""
        hs = await self._handshake_once(where)
        if retry and not hs.ok and version_refusal(hs.exchange.status, hs.exchange.body):
            asked = self.eio
            self.eio = other_eio(asked)
            hs.retry = await self._handshake_once(where)
            if not hs.retry.ok:
                self.eio = asked
        return hs

    async def _handshake_once(self, where: str) -> Handshake:
        asked = self.eio
        ex = await fetch(self.client, self.tracker, self.ctx, "GET", self._url(), headers=self.headers)
        hs = Handshake(where=where, exchange=ex, eio=asked)
        if ex.status != 200 or ex.error:
            hs.error = answer_problem(ex, "the handshake") if ex.status != 200 else ex.error
            return hs
        version = payload_version(ex.body)
        try:
            packets = decode_payload(ex.body, version=version)
            if not packets or packets[0].type != PacketType.OPEN:
                raise ProtocolError("the first packet is not an open packet (0)")
            op = parse_open(packets[0])
        except ProtocolError as e:
            hs.error = f"the handshake got 200 but no Engine.IO open packet ({e}): {snippet(ex.body)}"
            return hs
        self.sid, self.open_packet, self.first_packets = op.sid, op, packets[1:]
        self.eio = version  # speak what the server answered in (Socket.IO 2 answers EIO=4 in Engine.IO 3)
        hs.ok, hs.sid, hs.server_eio = True, op.sid, version
        hs.ping_interval, hs.ping_timeout, hs.max_payload = op.ping_interval, op.ping_timeout, op.max_payload
        hs.upgrades = list(op.upgrades)
        return hs

    def encode(self, packets: list[str]) -> str:
        """Engine.IO packets (type digit + data) as one polling body in the version spoken."""
        if self.eio == 3:
            return "".join(f"{len(p.encode('utf-16-le', 'surrogatepass')) // 2}:{p}" for p in packets)
        return "\x1e".join(packets)

    async def post(self, text: str, *, shown: str | None = None) -> Exchange:
        """POST one Engine.IO packet (its text, e.g. ``40{…}``) in the version spoken; SHOWN is what the
        evidence records instead (a masked token)."""
        ex = await fetch(
            self.client,
            self.tracker,
            self.ctx,
            "POST",
            self._url(),
            headers=self.headers,
            content=self.encode([text]).encode(),
        )
        ex.request_body = self.encode([shown if shown is not None else text]).encode()
        return ex

    async def get(
        self, client: httpx.AsyncClient | None = None, tracker: Tracker | None = None
    ) -> tuple[Exchange, list[Packet], str | None]:
        """One GET poll (on CLIENT's own connection when given): the exchange, its packets, a decoding problem."""
        ex = await fetch(
            client or self.client, tracker or self.tracker, self.ctx, "GET", self._url(), headers=self.headers
        )
        if ex.status != 200 or ex.error:
            return ex, [], None
        try:
            return ex, decode_payload(ex.body, version=self.eio), None
        except ProtocolError as e:
            return ex, [], f"the poll answer is not an Engine.IO payload ({e}): {snippet(ex.body)}"

    async def close_quietly(self) -> None:
        """Tell the server we are gone (``1``), so probes leave no session behind; never waits long."""
        if not self.sid or self.closed:
            return
        self.closed = True
        try:
            async with asyncio.timeout(min(self.ctx.timeout, 1.0)):
                # as the session's other requests (its User-Agent, Host, --auth-header), as a client's close is
                await fetch(
                    self.client, self.tracker, self.ctx, "POST", self._url(), headers=self.headers,
                    content=self.encode(["1"]).encode(),
                )  # fmt: skip
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
    eio: int | None = None,
    headers: list[tuple[str, str]] | None = None,
) -> Handshake:
    """``GET {path}?EIO=4&transport=polling`` at URL: the open packet, or what answered instead.

    URL is a base (``http://127.0.0.1:3350``) with PATH (``/chat/socket.io/``: the URI nginx would send),
    or, with PATH None, the full request URL (the public URL of the client's request). EIO defaults to the
    client's (``ctx.eio``); a version refusal is followed by the same handshake in the other version
    (``Handshake.retry``).
    """
    ctx = _ctx(ctx)
    asked = eio or ctx.eio
    try:
        engine_url(url, path, transport="polling")
    except ValueError as e:
        return Handshake(
            where=where, exchange=Exchange("GET", url, error=str(e), stage="request"), error=str(e), eio=asked
        )
    async with open_client(ctx, url) as (client, tracker):
        session = PollingSession(client, tracker, ctx, url, path, eio=asked, headers=headers)
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
    spoken = hs.spoken or hs
    ex = spoken.exchange
    probe = CorsProbe(where=where, origin=origin, exchange=ex)
    probe.allow_origin = ex.header_values("Access-Control-Allow-Origin")
    probe.allow_credentials = ex.header_values("Access-Control-Allow-Credentials")
    if ex.status is None:
        probe.error = ex.error
    elif not spoken.ok:
        probe.error = spoken.error
    return probe


class _Sticky:
    """The bookkeeping of one sticky probe: every request counted, refusals kept, one deadline."""

    def __init__(self, probe: StickyProbe, ctx: ProbeContext, wanted: int) -> None:
        self.probe, self.ctx, self.wanted = probe, ctx, wanted
        self.deadline = time.monotonic() + ctx.timeout * 3  # the whole probe, on top of each request's own

    @property
    def enough(self) -> bool:
        return self.probe.requests >= self.wanted

    def out_of_time(self) -> bool:
        if time.monotonic() <= self.deadline:
            return False
        p = self.probe
        p.error = p.error or (
            f"gave up after {p.requests} requests: the session took longer than {self.ctx.timeout * 3:.1f} s"
        )
        return True

    def take(self, ex: Exchange, problem: str | None = None) -> bool:
        """Count EX; True when it was accepted (200), False when refused or failed (then recorded)."""
        p = self.probe
        p.requests += 1
        p.exchanges.append(ex)
        if ex.status is None:
            p.error = f"request {p.requests} of the session got no answer: {ex.error}"
            return False
        if ex.status != 200:
            p.refused.append(ex)
            return False
        if ex.error or problem:
            p.error = f"request {p.requests} of the session: {problem or ex.error}"
            return False
        return True

    @property
    def failed(self) -> bool:
        return self.probe.error is not None

    def going(self) -> bool:
        """More requests are wanted, none failed, and there is time left."""
        return not self.enough and not self.failed and not self.out_of_time()

    def closed_by_server(self, packets: list[Packet]) -> bool:
        """PACKETS hold the server's close: recorded as the probe's error."""
        if not _closed(packets):
            return False
        self.probe.error = f"the server closed the session after request {self.probe.requests}"
        return True


def _closed(packets: list[Packet]) -> bool:
    return any(p.type == PacketType.CLOSE for p in packets)


def _connect_answer(packets: list[Packet], namespace: str, version: int) -> str | None:
    """ "joined" or "refused" when PACKETS hold the server's answer to a CONNECT of NAMESPACE, else None."""
    for p in packets:
        if p.type != PacketType.MESSAGE or p.binary:
            continue
        try:
            packet = sio.decode(p.text, version=version)
        except ProtocolError:
            continue
        if packet.namespace != namespace:
            continue
        if packet.type == SioType.CONNECT:
            return "joined"
        if packet.type == SioType.CONNECT_ERROR:
            return "refused"
    return None


async def sticky(
    url: str,
    path: str | None = None,
    *,
    ctx: ProbeContext | None = None,
    where: str = "proxy",
    requests: int = 6,
    namespace: str = "/",
) -> StickyProbe:
    """One polling session over REQUESTS (at least 6) requests after the handshake, as socket.io-client
    polls it; refused ones recorded. The session is closed at the end."""
    ctx = _ctx(ctx)
    probe = StickyProbe(where=where)
    try:
        engine_url(url, path, transport="polling")
    except ValueError as e:
        probe.error = str(e)
        return probe
    run = _Sticky(probe, ctx, max(requests, 6))
    async with open_client(ctx, url) as (client, tracker):
        session = PollingSession(client, tracker, ctx, url, path, eio=ctx.eio)
        hs = await session.handshake(where)
        probe.exchanges.append(hs.exchange)
        if hs.retry is not None:
            probe.exchanges.append(hs.retry.exchange)
        spoken = hs.spoken
        if spoken is None:
            probe.error = f"no session to keep: {hs.error}"
            return probe
        probe.eio = session.eio
        try:
            if session.eio == 3:
                await _sticky_v3(session, run)
            else:
                await _sticky_v4(session, run, url, namespace)
        finally:
            await session.close_quietly()
    probe.ok = not probe.refused and probe.error is None and run.enough
    if probe.refused and probe.error is None:
        first = probe.refused[0]
        n = probe.exchanges.index(first)
        probe.error = (
            f"{len(probe.refused)} of {probe.requests} requests of one session were refused; "
            + answer_problem(first, f"the first, request {n} ({first.method}),")
        )
    return probe


async def _sticky_v4(session: PollingSession, run: _Sticky, url: str, namespace: str) -> None:
    """CONNECT once, GET its answer, then POST events while the long-poll GET is open; pings answered."""
    ns = namespace if namespace.startswith("/") else "/" + namespace
    auth = {"token": session.ctx.token} if session.ctx.token else None
    connect_text = "4" + sio.connect(ns, auth)
    connect_shown = "4" + sio.redacted_connect(ns, auth)
    answer: str | None = None
    while run.going():
        # The CONNECT until the session's own backend takes it (a refusal means it never reached it).
        if not run.take(await session.post(connect_text, shown=connect_shown)):
            continue
        # Its answer: one GET, answered at once (the answer is queued); pings answered on the way.
        answer = None
        while answer is None and not run.failed and not run.out_of_time():
            ex, packets, problem = await session.get()
            if not run.take(ex, problem):
                if run.failed:
                    return
                continue
            if run.closed_by_server(packets):
                return
            answer = _connect_answer(packets, ns, 5)
            if any(p.type == PacketType.PING for p in packets):
                run.take(await session.post("3"))
        if answer == "joined":
            break
        # Refused (44): a client retries with other credentials (socket.connect() after connect_error): that
        # CONNECT is answered at once too, and the namespace is not joined, so it is no second CONNECT.
    if answer != "joined" or run.enough or run.failed:
        return
    await _events_while_polling(session, run, url, ns)


async def _events_while_polling(session: PollingSession, run: _Sticky, url: str, ns: str) -> None:
    """The long-poll GET open on a connection of its own (as a browser keeps it) while events are POSTed."""
    event = "4" + sio.event(PROBE_EVENT, namespace=ns)
    async with open_client(session.ctx, url) as (poll_client, poll_tracker):
        pending: asyncio.Task | None = None
        try:
            while run.going():
                if pending is None:
                    pending = asyncio.create_task(session.get(poll_client, poll_tracker))
                run.take(await session.post(event))
                if pending.done():
                    ex, packets, problem = pending.result()
                    pending = None
                    if not run.take(ex, problem):
                        continue
                    if run.closed_by_server(packets):
                        return
                    if any(p.type == PacketType.PING for p in packets):
                        run.take(await session.post("3"))
        finally:
            if pending is not None:
                await session.close_quietly()  # the server answers the open GET with the close
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(1.0):
                        await asyncio.shield(pending)
                pending.cancel()
                with contextlib.suppress(BaseException):
                    await pending


async def _sticky_v3(session: PollingSession, run: _Sticky) -> None:
    """Engine.IO 3: the server joins ``/`` by itself (in the handshake's payload or the first GET); then
    ping / pong rounds, each GET answered at once by the queued pong."""
    joined = _connect_answer(session.first_packets, "/", 4) is not None
    while not joined and run.going():
        ex, packets, problem = await session.get()
        if not run.take(ex, problem):
            continue
        if run.closed_by_server(packets):
            return
        joined = True
    while run.going():
        if not run.take(await session.post("2")):
            continue
        while run.going():
            ex, packets, problem = await session.get()
            if not run.take(ex, problem):
                continue
            if run.closed_by_server(packets):
                return
            if any(p.type == PacketType.PONG for p in packets):
                break
