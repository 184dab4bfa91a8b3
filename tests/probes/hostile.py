"""Hostile and broken servers on loopback: each an asyncio server of a few lines, closed by its context."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def serve(handler: Handler, ssl_ctx: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    """Run HANDLER for each connection on a free loopback port; yield the port; cancel everything after."""
    tasks: set[asyncio.Task] = set()

    async def wrapped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await handler(reader, writer)
        except (
            OSError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ssl.SSLError,
            asyncio.CancelledError,
        ):
            pass  # cancelled at shutdown: end quietly
        finally:
            tasks.discard(task)
            writer.close()

    server = await asyncio.start_server(wrapped, "127.0.0.1", 0, ssl=ssl_ctx)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for t in list(tasks):
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def read_head(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(65536)
    await asyncio.sleep(3600)


async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_head(reader)
    writer.write(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\nProtocol mismatch.\r\n")
    await writer.drain()  # then close, as sshd does when an HTTP client knocks


async def http_on_anything(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A plain HTTP server that answers whatever arrives (a TLS hello included) with 400, then closes."""
    await reader.read(1)
    writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    await writer.drain()


async def garbage_then_silence(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_head(reader)
    writer.write(b"220 mail.example ESMTP ready\r\n")
    await writer.drain()
    await asyncio.sleep(3600)


async def endless_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_head(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n")
    chunk = b"x" * 65536
    while True:
        writer.write(chunk)
        await writer.drain()


async def endless_chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_head(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"8000\r\n" + b"y" * 0x8000 + b"\r\n"
    while True:
        writer.write(chunk)
        await writer.drain()


async def endless_headers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_head(reader)
    writer.write(b"HTTP/1.1 200 OK\r\n")
    while True:
        writer.write(b"X-Filler: " + b"z" * 1000 + b"\r\n")
        await writer.drain()


def drip(head_first: bool, every: float = 0.25) -> Handler:
    """A byte at a time: of the body after a normal head, or of the status line itself."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        payload = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
        if head_first:
            writer.write(payload)
            payload = b"0" * 1000
        for b in payload:
            writer.write(bytes([b]))
            await writer.drain()
            await asyncio.sleep(every)

    return handler


def fixed(status_line: str, headers: list[tuple[str, str]], body: bytes) -> Handler:
    """Answer every request with this response (keep-alive)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await read_head(reader)
            length = 0
            for line in head.decode("latin-1").split("\r\n"):
                if line.lower().startswith("content-length:"):
                    length = int(line.split(":", 1)[1])
            if length:
                await reader.readexactly(length)
            lines = [status_line, *[f"{k}: {v}" for k, v in headers], f"Content-Length: {len(body)}", "", ""]
            writer.write("\r\n".join(lines).encode("latin-1") + body)
            await writer.drain()

    return handler


NGINX_404 = fixed(
    "HTTP/1.1 404 Not Found",
    [("Server", "nginx/1.22.1"), ("Content-Type", "text/html")],
    b"<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n<center><h1>404 Not Found</h1></center>\r\n"
    b"<hr><center>nginx/1.22.1</center>\r\n</body>\r\n</html>\r\n",
)
NODE_SESSION_UNKNOWN = fixed(
    "HTTP/1.1 400 Bad Request",
    [("Content-Type", "application/json")],
    b'{"code":1,"message":"Session ID unknown"}',
)
NODE_OPEN = fixed(
    "HTTP/1.1 200 OK",
    [("Content-Type", "text/plain; charset=UTF-8")],
    b'0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,'
    b'"maxPayload":1000000}',
)


def _accept(key: str) -> str:
    return base64.b64encode(
        hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
    ).decode()


def text_frame(text: str) -> bytes:
    data = text.encode()
    assert len(data) < 126
    return bytes([0x81, len(data)]) + data


def close_frame(code: int, reason: str = "") -> bytes:
    data = code.to_bytes(2, "big") + reason.encode()
    return bytes([0x88, len(data)]) + data


def websocket(then: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]) -> Handler:
    """A server that accepts the upgrade properly (101), then runs THEN."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await read_head(reader)).decode("latin-1")
        key = next(
            (
                line.split(":", 1)[1].strip()
                for line in head.split("\r\n")
                if line.lower().startswith("sec-websocket-key")
            ),
            None,
        )
        if key is None:  # a plain request (a probe asking again after a drop): refused, like ws does
            writer.write(b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 16\r\n\r\nUpgrade Required")
            await writer.drain()
            return
        writer.write(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {_accept(key)}\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        await then(reader, writer)

    return handler


OPEN = '0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}'


async def ws_silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(3600)


async def ws_garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"\x81\x05hello" + bytes(range(256)))
    await writer.drain()
    await asyncio.sleep(3600)


async def ws_not_engineio(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(text_frame('{"hello":"world"}'))
    await writer.drain()
    await asyncio.sleep(3600)


def ws_open_then(delay: float, close: bytes | None) -> Handler:
    """Open packet, then after DELAY a close frame (CLOSE) or just the TCP close (None)."""

    async def then(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(text_frame(OPEN))
        await writer.drain()
        await asyncio.sleep(delay)
        if close is not None:
            writer.write(close)
            await writer.drain()
            await asyncio.sleep(0.2)

    return websocket(then)
