"""A WebSocket client over the connection httpx upgraded: the opening request recorded like any exchange.

The upgrade is an ordinary HTTP/1.1 request sent through :mod:`wsdoctor.probes.net` (same stages, same
evidence, same capped body when it is refused); after ``101`` the raw stream is handed to websockets'
sans-I/O :class:`~websockets.protocol.Protocol`, which does framing, masking, WebSocket pings and the close
handshake. Every read is bounded by the caller's deadline; one message is at most 1 MB (Engine.IO's
default maxPayload) and only its first 300 characters are kept in the transcript.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpcore
import httpx
from websockets.frames import Opcode
from websockets.protocol import Protocol, Side, State

from wsdoctor.facts import Exchange
from wsdoctor.probes.context import ProbeContext
from wsdoctor.probes.net import (
    Tracker,
    _ext,
    base_headers,
    classify,
    describe,
    fill_response,
    mask_secrets,
    open_client,
    read_capped,
    redact_headers,
    timeout_message,
)

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_READ = 65536
MESSAGE_CAP = 1_000_000  # one message at most (Engine.IO's default maxPayload); messages are not kept
_LOG_CAP = 200  # frames kept for the transcript (a chatty server must not grow memory)


class WsClosed(Exception):
    """The tunnel is closed; ``code`` None means no close frame arrived (the TCP connection just ended)."""

    def __init__(self, code: int | None, reason: str, detail: str = "") -> None:
        super().__init__(detail or f"closed ({code})")
        self.code = code
        self.reason = reason
        self.detail = detail


class WsConn:
    """Messages in and out of an open tunnel; text messages are ``str``, binary ones ``bytes``."""

    def __init__(self, stream: httpcore.AsyncNetworkStream, cap: int, log: list[str]) -> None:
        self._stream = stream
        self._proto = Protocol(Side.CLIENT, state=State.OPEN, max_size=cap)
        self._messages: deque[str | bytes] = deque()
        self._parts: list[bytes] = []
        self._part_text = False
        self._log = log
        self.closed: WsClosed | None = None
        self.stalled = False  # the server stopped answering: close without waiting for its close frame
        self.opened_at = time.monotonic()
        self.last_received: float | None = None  # monotonic time of the last frame
        self.head = bytearray()  # the first bytes after the 101 (what a server sent that is not WebSocket)

    async def send(self, text: str, *, shown: str | None = None) -> None:
        """Send a text message; SHOWN is what the transcript records instead (a masked token)."""
        if self.closed is not None:
            raise self.closed
        self._proto.send_text(text.encode("utf-8"))
        self._note("> " + (shown if shown is not None else text)[:300])
        await self._flush()

    async def recv(self) -> str | bytes:
        """The next message; raises :class:`WsClosed` once the tunnel is closed."""
        while not self._messages:
            if self.closed is not None:
                raise self.closed
            await self._pump()
        msg = self._messages.popleft()
        shown = msg if isinstance(msg, str) else f"<binary {len(msg)} bytes>"
        self._note("< " + shown[:300])
        return msg

    def _note(self, line: str) -> None:
        if len(self._log) < _LOG_CAP:
            self._log.append(line)

    async def _pump(self) -> None:
        try:
            data = await self._stream.read(_READ)
        except (httpcore.ReadError, OSError) as e:
            self._proto.receive_eof()
            self._set_closed(f"the connection broke ({e.__cause__ or e or 'reset'})")
            return
        if not data:
            self._proto.receive_eof()
            self._set_closed("the connection was closed without a WebSocket close frame")
            return
        self.last_received = time.monotonic()
        if len(self.head) < 512:
            self.head += data[: 512 - len(self.head)]
        self._proto.receive_data(data)
        for frame in self._proto.events_received():
            if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
                self._parts, self._part_text = [frame.data], frame.opcode is Opcode.TEXT
            elif frame.opcode is Opcode.CONT:
                self._parts.append(frame.data)
            else:
                continue
            if frame.fin:
                raw = b"".join(self._parts)
                self._parts = []
                self._messages.append(raw.decode("utf-8", "replace") if self._part_text else raw)
        await self._flush()
        if self._proto.close_rcvd is not None or self._proto.state is State.CLOSED:
            rcvd = self._proto.close_rcvd
            if self._proto.parser_exc is not None and rcvd is None:
                self._set_closed(f"the server broke the WebSocket protocol ({self._proto.parser_exc})")
            else:
                code = rcvd.code if rcvd is not None else None
                reason = rcvd.reason if rcvd is not None else ""
                self.closed = WsClosed(
                    code, reason, f"the server closed the WebSocket ({code} {reason})".strip()
                )

    def _set_closed(self, detail: str) -> None:
        if self.closed is None:
            rcvd = self._proto.close_rcvd
            if rcvd is not None:
                self.closed = WsClosed(
                    rcvd.code, rcvd.reason, f"the server closed the WebSocket ({rcvd.code})"
                )
            else:
                self.closed = WsClosed(None, "", detail)

    async def _flush(self) -> None:
        for chunk in self._proto.data_to_send():
            if chunk:
                try:
                    await self._stream.write(chunk)
                except (httpcore.WriteError, OSError):
                    self._set_closed("the connection broke while sending")
                    return

    async def aclose(self, code: int = 1000) -> None:
        """Close politely (close frame, brief wait for the answer), never for long."""
        try:
            if self.closed is None and self._proto.state is State.OPEN and not self.stalled:
                self._proto.send_close(code)
                await self._flush()
                async with asyncio.timeout(0.5):
                    while self.closed is None:
                        await self._pump()
        except Exception:  # noqa: BLE001 - best effort
            pass
        try:
            await asyncio.wait_for(self._stream.aclose(), 0.5)
        except Exception:  # noqa: BLE001 - best effort
            pass


def _accept(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + _GUID).encode("ascii")).digest()).decode("ascii")


def ws_display_url(url: str) -> str:
    """The ws(s):// form of an http(s) URL: what the evidence shows for a WebSocket request."""
    if url.startswith("https://"):
        return "wss://" + url[len("https://") :]
    if url.startswith("http://"):
        return "ws://" + url[len("http://") :]
    return url


@asynccontextmanager
async def open_ws(
    ctx: ProbeContext, url: str, *, headers: list[tuple[str, str]] | None = None
) -> AsyncIterator[tuple[Exchange, WsConn | None, Tracker]]:
    """Send the upgrade request for URL (http/https form); yield the exchange and, after a 101, the tunnel.

    The exchange's ``error``/``stage`` say why there is no tunnel (refused, timed out, not WebSocket).
    """
    async with open_client(ctx, url) as (client, tracker):
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        extra = [
            ("Connection", "Upgrade"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", key),
        ] + list(headers or [])
        ex = Exchange(method="GET", url=mask_secrets(ws_display_url(url), ctx.secrets()))
        conn: WsConn | None = None
        response: httpx.Response | None = None
        start = time.monotonic()
        tracker.begin(waiting="upgrade")
        try:
            request = client.build_request("GET", url, headers=base_headers(ctx, extra), extensions=_ext(ctx))
            ex.request_headers = redact_headers(
                [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw], ctx.secrets()
            )
            async with asyncio.timeout(ctx.timeout):
                response = await client.send(request, stream=True)
                fill_response(ex, response)
                if response.status_code != 101:
                    tracker.stage = "body"
                    ex.body = await read_capped(response, ctx.body_cap, tracker, ex)
        except TimeoutError:
            ex.stage = tracker.stage
            ex.error = timeout_message(ctx.timeout, tracker.stage, tracker)
        except (httpx.HTTPError, OSError) as e:
            ex.stage, ex.error = describe(e, tracker.stage, tracker, ctx.timeout)
        except (ValueError, httpx.InvalidURL) as e:
            ex.stage, ex.error = "request", f"cannot send this request: {e}"
        except Exception as e:  # noqa: BLE001 - a probe returns a fact, never a traceback
            ex.stage = ex.stage or tracker.stage
            ex.error = f"the probe failed unexpectedly ({type(e).__name__}: {e}); please report this"
        ex.elapsed = time.monotonic() - start
        ex.answered_by = classify(ex.status, ex.headers, ex.body)
        if response is not None and ex.status == 101 and ex.error is None:
            got = response.headers.get("sec-websocket-accept", "")
            if got != _accept(key):
                ex.stage = "upgrade"
                ex.error = "the 101 answer carries a wrong Sec-WebSocket-Accept: something between rewrote it"
            else:
                stream = response.extensions.get("network_stream")
                if stream is None:  # pragma: no cover - httpcore always hands over the stream on 101
                    ex.stage, ex.error = "upgrade", "the upgraded connection could not be taken over"
                else:
                    conn = WsConn(stream, max(ctx.body_cap, MESSAGE_CAP), ex.frames)
        try:
            yield ex, conn, tracker
        finally:
            if conn is not None:
                await conn.aclose()
            if response is not None:
                try:
                    await asyncio.wait_for(response.aclose(), 0.5)
                except Exception:  # noqa: BLE001 - best effort
                    pass


async def recv_within(conn: WsConn, deadline: float, *, stall: bool = True) -> str | bytes:
    """The next message before DEADLINE (loop time); raises TimeoutError or WsClosed.

    With STALL a timeout marks the server as unresponsive (no polite close afterwards); a hold that
    simply reached its end passes ``stall=False``.
    """
    remaining = deadline - asyncio.get_running_loop().time()
    try:
        if remaining <= 0:
            raise TimeoutError
        async with asyncio.timeout(remaining):
            return await conn.recv()
    except TimeoutError:
        conn.stalled = conn.stalled or stall
        raise
