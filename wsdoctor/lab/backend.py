"""One lab backend: a python-socketio ASGI app under uvicorn, run as its own process.

Started by the lab as ``python -m wsdoctor.lab.backend --lab-dir DIR --port N --instance ID …`` so that
each backend can be stopped, restarted or crash on its own, exactly like the runbook's three processes
on ports 3350-3352. What it does is what wsdoctor's probes look for:

- Socket.IO at ``--path`` (default ``/chat/socket.io``), CONNECT refused with
  ``ConnectionRefusedError("authentication failed")`` unless ``auth`` carries ``{"token": JWT}`` (HS256,
  the lab's secret; an ``Authorization: Bearer`` header is accepted too, to demo header-only auth);
- on connect it emits ``instance`` with its id (python-socketio sends it *before* the CONNECT ack), and it
  answers the ``whoami`` ack with the id and the ``headers`` ack with the request headers it received;
- ``GET …/whoami-http`` answers JSON with the id, the path and the headers it received (what nginx sent);
  every other path gets python-engineio's own 404;
- auth decisions go to a shared backend log (``--log``), the file wsdoctor's ``--backend-log`` reads.

The secret is read from a file, never from the command line (``ps`` shows command lines).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class BackendLog:
    """Appends one line per auth decision to the lab's shared backend log (pm2-like lines)."""

    def __init__(self, path: str | None, instance: str) -> None:
        self.instance = instance
        # Line-buffered append: three processes share the file; short O_APPEND writes do not interleave.
        self._file = open(path, "a", buffering=1, encoding="utf-8") if path else None  # noqa: SIM115

    def write(self, level: str, message: str) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime())
        line = f"{stamp} {level} [{self.instance}] {message}"
        if self._file is not None:
            self._file.write(line + "\n")
        else:
            print(line, flush=True)


def _headers_from_environ(environ: dict[str, Any]) -> dict[str, str]:
    """The HTTP request headers of the Engine.IO handshake, lower-case names (Authorization masked)."""
    out: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            name = key[5:].replace("_", "-").lower()
            out[name] = "***" if name in ("authorization", "cookie") else str(value)
    return out


def _headers_from_scope(scope: Scope) -> dict[str, str]:
    out: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", []):
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        out[name] = "***" if name in ("authorization", "cookie") else value
    return out


def token_from(auth: Any, environ: dict[str, Any]) -> tuple[str | None, str]:
    """The client's token and where it came from ("auth", "header" or "none")."""
    if isinstance(auth, dict) and isinstance(auth.get("token"), str) and auth["token"]:
        return auth["token"], "auth"
    header = str(environ.get("HTTP_AUTHORIZATION", ""))
    if header.lower().startswith("bearer "):
        return header[7:].strip(), "header"
    return None, "none"


def build_app(
    *,
    instance: str,
    path: str,
    secret: str,
    ping_interval: float,
    ping_timeout: float,
    cors_origins: list[str] | str | None,
    log: BackendLog,
) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """The backend's ASGI app: Socket.IO at PATH, /whoami-http beside it, engineio's 404 elsewhere."""
    import jwt
    import socketio

    sio = socketio.AsyncServer(
        async_mode="asgi",
        cors_allowed_origins=cors_origins,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        logger=False,
        engineio_logger=False,
    )
    seen_headers: dict[str, dict[str, str]] = {}

    @sio.event
    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        token, source = token_from(auth, environ)
        peer = environ.get("HTTP_X_FORWARDED_FOR") or environ.get("REMOTE_ADDR", "?")
        if token is None:
            log.write(
                "WARN", f"authentication failed for sid={sid} from {peer}: no token in the CONNECT auth"
            )
            raise socketio.exceptions.ConnectionRefusedError("authentication failed")
        try:
            claims = jwt.decode(token, secret, algorithms=["HS256"])
        except jwt.PyJWTError as e:
            log.write("WARN", f"authentication failed for sid={sid} from {peer}: jwt {type(e).__name__}: {e}")
            raise socketio.exceptions.ConnectionRefusedError("authentication failed") from None
        seen_headers[sid] = _headers_from_environ(environ)
        log.write("INFO", f"connected sid={sid} from {peer} sub={claims.get('sub')} token via {source}")
        # python-socketio sends this before the CONNECT ack: the probes must buffer it.
        await sio.emit("instance", instance, to=sid)

    @sio.event
    async def disconnect(sid: str, reason: Any = None) -> None:
        seen_headers.pop(sid, None)
        log.write("INFO", f"disconnected sid={sid} ({reason})")

    @sio.on("whoami")
    async def whoami(sid: str, *args: Any) -> str:
        return instance

    @sio.on("headers")
    async def headers(sid: str, *args: Any) -> dict[str, str]:
        return seen_headers.get(sid, {})

    socketio_app = socketio.ASGIApp(sio, socketio_path=path.strip("/"))

    async def whoami_http(scope: Scope, receive: Receive, send: Send) -> None:
        body = json.dumps(
            {
                "instance": instance,
                "path": scope.get("path"),
                "query": scope.get("query_string", b"").decode("latin-1"),
                "headers": _headers_from_scope(scope),
            },
            indent=1,
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"x-lab-instance", instance.encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path", "").rstrip("/").endswith("/whoami-http"):
            await whoami_http(scope, receive, send)
        else:
            await socketio_app(scope, receive, send)

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m wsdoctor.lab.backend", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--lab-dir", required=True, help="the lab directory (also marks the process as the lab's)"
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--instance", required=True)
    parser.add_argument("--path", default="/chat/socket.io")
    parser.add_argument("--secret-file", required=True)
    parser.add_argument("--ping-interval", type=float, default=25.0)
    parser.add_argument("--ping-timeout", type=float, default=20.0)
    parser.add_argument(
        "--cors-origin", action="append", default=[], help="allowed Origin (repeatable, or '*')"
    )
    parser.add_argument("--log", default=None, help="shared backend log file")
    args = parser.parse_args(argv)

    try:
        secret = Path(args.secret_file).read_text().strip()
    except OSError as e:
        print(f"cannot read the JWT secret from {args.secret_file}: {e.strerror}; re-run `wsdoctor lab up`.")
        return 2
    cors: list[str] | str | None = args.cors_origin or None
    if cors == ["*"]:
        cors = "*"
    log = BackendLog(args.log, args.instance)
    app = build_app(
        instance=args.instance,
        path=args.path,
        secret=secret,
        ping_interval=args.ping_interval,
        ping_timeout=args.ping_timeout,
        cors_origins=cors,
        log=log,
    )
    import uvicorn

    log.write("INFO", f"listening on {args.host}:{args.port}, Socket.IO path {args.path}, pid {os.getpid()}")
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="info",
        access_log=True,
        lifespan="off",
        timeout_graceful_shutdown=1,
        ws="websockets-sansio",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
