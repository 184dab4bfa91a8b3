"""Who is still there right after a held tunnel dropped: the TCP connection the hold probe makes to the proxy."""

from __future__ import annotations

import asyncio
import socket

from wsdoctor.probes.context import ProbeContext
from wsdoctor.probes.tunnel import _gone


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_a_refused_connection_says_nothing_listens() -> None:
    port = _free_port()
    ex = await _gone(f"http://127.0.0.1:{port}/", ProbeContext(timeout=2))
    assert ex is not None and "refused: nothing listens there" in (ex.error or "")


async def test_a_listener_that_keeps_the_connection_is_alive() -> None:
    async def keep(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # silent, like a TLS server waiting for the ClientHello
        writer.close()

    server = await asyncio.start_server(keep, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        assert await _gone(f"http://127.0.0.1:{port}/", ProbeContext(timeout=2)) is None


async def test_a_listener_on_its_way_out_is_asked_again_until_it_refuses() -> None:
    """A dying nginx still completes TCP handshakes into its backlog, then resets them when its last process
    closes the socket: the first connection is cut at once, the next one is refused."""
    cut: list[int] = []
    closed = asyncio.Event()

    async def dying(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        cut.append(1)
        server.close()  # the listening socket goes with its process
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST
        writer.close()
        closed.set()

    server = await asyncio.start_server(dying, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    ex = await _gone(f"http://127.0.0.1:{port}/", ProbeContext(timeout=2))
    assert cut == [1] and closed.is_set()
    assert ex is not None and "refused: nothing listens there" in (ex.error or ""), ex


async def test_a_listener_that_cuts_every_connection_is_not_called_gone() -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(cut, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        ex = await _gone(f"http://127.0.0.1:{port}/", ProbeContext(timeout=2))
    assert ex is not None and "closed each at once" in (ex.error or "") and "refused" not in (ex.error or "")
