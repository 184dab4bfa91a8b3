"""One lab backend that is a plain WebSocket server (the ``websockets`` library), no Socket.IO at all.

The python counterpart of the Node ``ws`` server of the ``plain-websocket`` scenario, run as
``python -m wsdoctor.lab.plainws --lab-dir DIR --port N --instance ID [--log FILE]``. It accepts a
WebSocket on any path, greets it with ``{"type":"hello","instance":ID}``, answers the text ``whoami``
with its id and echoes anything else. A plain HTTP request gets the library's own refusal
(426 Upgrade Required). Connections go to the shared backend log in the other backends' line format.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import sys

from websockets.asyncio.server import ServerConnection, serve

from wsdoctor.lab.backend import BackendLog


async def run(host: str, port: int, instance: str, log: BackendLog) -> None:
    counter = itertools.count(1)

    async def handler(ws: ServerConnection) -> None:
        name = f"ws-{next(counter)}"
        request = ws.request
        headers = request.headers if request is not None else {}
        peer = headers.get("X-Forwarded-For") or (ws.remote_address or ("?",))[0]
        log.write("INFO", f"connected {name} from {peer} path={request.path if request else '?'}")
        try:
            await ws.send(json.dumps({"type": "hello", "instance": instance}, separators=(",", ":")))
            async for message in ws:
                await ws.send(instance if message == "whoami" else message)
        finally:
            log.write("INFO", f"disconnected {name} (close {ws.close_code})")

    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    async with serve(handler, host, port, ping_interval=None):
        log.write("INFO", f"listening on {host}:{port}, plain WebSocket (websockets), pid {os.getpid()}")
        await stop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m wsdoctor.lab.plainws", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--lab-dir", required=True, help="the lab directory (marks the process as the lab's)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--instance", required=True)
    parser.add_argument("--log", default=None, help="shared backend log file")
    args = parser.parse_args(argv)
    try:
        asyncio.run(run(args.host, args.port, args.instance, BackendLog(args.log, args.instance)))
    except OSError as e:
        print(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
