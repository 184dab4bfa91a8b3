"""A TCP relay that adds latency, in its own process: models a real network between wsdoctor and a server.

Loopback has no latency, so probes there are CPU-bound and run one after the other on a single event
loop; across a real network they wait on round trips, which is what running them concurrently saves.

``python relay.py LISTEN_PORT TARGET_PORT ONE_WAY_MS`` prints "ready" once it listens (LISTEN_PORT 0: a
free port is picked and printed, "ready PORT").  Each chunk is delivered ONE_WAY_MS later without holding
up the next read (latency, not bandwidth), the TCP handshake costs one round trip before the first byte,
and a half-close is passed on as a half-close (after the same delay), so the two ends see each other's
FIN in order and close as they would over a real link (no reset made up by the relay).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    loop = asyncio.get_running_loop()

    def write(data: bytes) -> None:
        if not writer.is_closing():
            writer.write(data)

    def write_eof() -> None:
        with contextlib.suppress(OSError, RuntimeError):
            if not writer.is_closing() and writer.can_write_eof():
                writer.write_eof()

    try:
        while data := await reader.read(65536):
            loop.call_later(delay, write, data)
        loop.call_later(delay, write_eof)  # the FIN travels like data
        await asyncio.sleep(delay)
    except (ConnectionError, asyncio.CancelledError):
        pass


async def main(listen: int, target: int, one_way_ms: float) -> None:
    delay = one_way_ms / 1000

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            w.close()
            return
        await asyncio.sleep(delay * 2)  # the TCP handshake's round trip
        try:
            await asyncio.gather(pipe(r, uw, delay), pipe(ur, w, delay))
            await asyncio.sleep(delay)  # the last FIN is delivered before the sockets go
        finally:
            for writer in (uw, w):
                writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", listen)
    port = server.sockets[0].getsockname()[1]
    print("ready" if listen else f"ready {port}", flush=True)
    async with server:
        await server.serve_forever()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])))
