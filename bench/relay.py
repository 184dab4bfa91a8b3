"""A TCP relay that adds latency, in its own process: models a real network between wsdoctor and nginx.

Loopback has no latency, so probes there are CPU-bound and run one after the other on a
single event loop; across a real network they wait on round trips, which is what running
them concurrently saves. `python relay.py LISTEN_PORT TARGET_PORT ONE_WAY_MS` prints "ready".
"""

from __future__ import annotations

import asyncio
import sys


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    loop = asyncio.get_running_loop()
    try:
        while data := await reader.read(65536):
            # Deliver each chunk DELAY later without holding up the next read (latency, not bandwidth).
            loop.call_later(delay, writer.write, data)
        await asyncio.sleep(delay)
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def main(listen: int, target: int, one_way_ms: float) -> None:
    delay = one_way_ms / 1000

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            w.close()
            return
        await asyncio.sleep(delay * 2)  # the TCP handshake's round trip
        await asyncio.gather(pipe(r, uw, delay), pipe(ur, w, delay))

    server = await asyncio.start_server(handle, "127.0.0.1", listen)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])))
