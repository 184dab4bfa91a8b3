"""Capture what each lab server really answers, byte for byte, as the Markdown of ``docs/servers.md``.

    .venv/bin/python -m wsdoctor.lab.capture > docs/servers.md

Starts labs (no sshd) for every server kind the lab runs (Node socket.io 4, Node socket.io 2, Node
``ws``, python-socketio, python ``websockets``), sends each one the requests a diagnosis meets (the
Engine.IO handshake in both protocol versions, a second CONNECT of a joined namespace, an unknown
sid, a websocket request without Upgrade, wrong paths, an unknown namespace, a refused CONNECT, each
engine.io error code, broken WebSocket handshakes), directly and through the lab's nginx, over raw
sockets, and prints status lines, the headers that matter and bodies exactly as received. Last, it
runs the real socket.io-client (``node/client.js``) against every scenario with both ``--backends``.
Everything stays on 127.0.0.1; every read is bounded in time.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from wsdoctor.lab import procs
from wsdoctor.lab.catalog import SCENARIOS
from wsdoctor.lab.lab import NODE_DIR, Lab, node_binary, server_description

READ_TIMEOUT = 3.0
#: Read off the captures below (re-check them when a pinned version changes).
KEY_FACTS = """\
## In short (read off the captures below)

- **Who answered.** Behind nginx every answer carries `Server: nginx/1.22.1`, proxied or not (nginx
  hides the upstream's `Server`). nginx wrote the body only when it is nginx's own HTML page
  (`<center>nginx/1.22.1</center>`, or `<center>nginx</center>` with `server_tokens off`). Directly, Node
  (socket.io, Express, `ws`) sends no `Server` header; uvicorn sends `server: uvicorn`; python
  `websockets` sends `Server: Python/3.11 websockets/17.4`.
- **Handshake.** Node socket.io 4: `0{"sid","upgrades","pingInterval","pingTimeout","maxPayload"}`
  (Content-Length); python-socketio: same fields, `pingTimeout` before `pingInterval`, chunked.
  `EIO=3` or no `EIO`: Node 4 400 `{"code":5,"message":"Unsupported protocol version"}`, python 400
  `"The client is using an unsupported version of the Socket.IO or Engine.IO protocols"`.
- **Socket.IO 2.5.1 answers every EIO value** (4, 3, 5, none) with an Engine.IO 3 payload
  `97:0{"sid","upgrades","pingInterval","pingTimeout"}` (no `maxPayload`). With an auth middleware the
  `2:40` of `/` is not in the handshake: it comes in the next poll once the middleware passed (token in
  the query), else `44"authentication failed"` (2.x sends `err.message`, or `err.data` instead of it).
- **A second CONNECT of a joined namespace over polling.** Node 4: the POST gets 200 `ok`, the next
  GET `6\u001e1` (noop, then CLOSE: the session is gone), every later request of that sid 400
  `{"code":1,"message":"Session ID unknown"}`. python-socketio: the next GET `44"Unable to connect"`,
  the session lives on (the following GET is held as a long-poll). Node 2: joins `/` again (a second
  `2:40` and `instance` event), the session lives on.
- **Engine.IO errors, polling (Node 4 and 2 alike):** 400 `application/json`
  `{"code":0,"message":"Transport unknown"}`, `{"code":1,"message":"Session ID unknown"}`,
  `{"code":2,"message":"Bad handshake method"}` (POST without sid), `{"code":3,"message":"Bad request"}`
  (transport=websocket without Upgrade, or a polling sid asked over transport=websocket), 403
  `{"code":4,"message":<allowRequest's message>}`, 400 `{"code":5,"message":"Unsupported protocol version"}`
  (Node 4 only: Node 2 handshakes any EIO). python-socketio: 400 `text/plain` JSON strings:
  `"Invalid transport"`, `"Invalid session <sid>"` (also `"Invalid session None"` for a POST without
  sid), `"Invalid websocket upgrade"`, the unsupported-version sentence above.
- **Engine.IO errors on an upgrade (Node):** `HTTP/1.1 400 Bad Request`, `Connection: close`,
  `Content-type: text/html`, the message as the body (`Session ID unknown`, the allowRequest message:
  an allowRequest refusal is 403 JSON for HTTP but 400 text for an upgrade). Node 4 refuses an upgrade
  without `Sec-WebSocket-Key` with `Missing or invalid Sec-WebSocket-Key header` (its `ws`), Node 2 with
  `Bad Request`, uvicorn with `Failed to open a WebSocket connection: missing Sec-WebSocket-Key header.`;
  python refuses an upgrade with an unknown sid with 403 and no body.
- **Wrong path.** HTTP: Express's 404 `text/html; charset=utf-8` `<pre>Cannot GET /path</pre>` with
  `Content-Security-Policy: default-src 'none'` and `X-Content-Type-Options: nosniff`; python 404
  `text/plain` `Not Found`. Upgrade: Node sends **no byte** and closes after 1.00 s (engine.io's
  `destroyUpgradeTimeout`); nginx logs `upstream prematurely closed connection while reading response
  header`, tries the next server, and answers its own 502 when all failed. python: 500
  `Internal Server Error`.
- **Namespaces and refusals** (websocket frames): unknown namespace: Node `44/admin,{"message":"Invalid
  namespace"}`, python `44/admin,"Unable to connect"`. Middleware `next(err)` with `err.data`: Node
  `44{"message":"authentication failed","data":{"reason":"invalid token"}}`; python
  `ConnectionRefusedError`: `44{"message":"authentication failed"}`.
- **Origin not allowed:** Node 4 (`cors`) answers 200 without `Access-Control-Allow-Origin`; python 400
  `"<origin> is not an accepted origin."`; Node 2 echoes any Origin.
- **Plain WebSocket servers.** `ws` 8: any plain HTTP request (GET, POST, any path) 426 `text/plain`
  `Upgrade Required`, no `Upgrade` header; an upgrade without key 400 `text/html` `Missing or invalid
  Sec-WebSocket-Key header`; `Sec-WebSocket-Version: 7` 400 `Missing or invalid Sec-WebSocket-Version
  header` with `Sec-WebSocket-Version: 13, 8`; a good upgrade at any path gets 101 and the server's own
  first frame. python `websockets` 17.4: 426 with `Upgrade: websocket` and a `Failed to open a WebSocket
  connection: … You need a WebSocket client.` text; a POST is closed without a byte.
- **`proxy_set_header Upgrade websocket;` (literal-upgrade):** every polling request reaches the
  backend as a key-less upgrade, and the **backend** answers 400 (Node: `text/html` `Missing or invalid
  Sec-WebSocket-Key header`; python: uvicorn's `text/plain` `Failed to open a WebSocket connection:
  missing Sec-WebSocket-Key header.`), relayed by nginx; websockets work.
- **No `proxy_http_version` (http10), nginx 1.22.1:** Node and uvicorn both accept the HTTP/1.0
  upgrade (101); polling works too.
- **A long-poll held past `proxy_read_timeout`** (short-timeout): nginx logs `upstream timed out (110:
  Connection timed out) while reading response header`, marks the server failed and, the GET being
  idempotent, retries it on the next server, which does not know the sid: the client gets the
  backend's 400 unknown-sid answer after ~3 s, not a 504.
"""
SHOWN_HEADERS = (
    "server",
    "content-type",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "sec-websocket-accept",
    "sec-websocket-version",
    "access-control-allow-origin",
    "access-control-allow-credentials",
    "x-powered-by",
    "content-security-policy",
    "x-content-type-options",
)


@dataclass
class Answer:
    """What came back on one connection: the response head and body, or how the connection ended."""

    status: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    frames: list[str] = field(default_factory=list)  # WebSocket frames after a 101 (text, or a note)
    ended: str = ""  # "closed after 1.00 s without a byte", "no answer within 3 s", …
    elapsed: float = 0.0

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None


def _show(data: bytes, limit: int = 600) -> str:
    text = data.decode("utf-8", "replace")
    shown = json.dumps(text[:limit], ensure_ascii=False)[1:-1]
    return shown + (f" … ({len(data)} bytes)" if len(text) > limit else "")


def _dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        line, _, rest = body.partition(b"\r\n")
        try:
            size = int(line.split(b";")[0], 16)
        except ValueError:
            return out + body
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2 :]
    return out


class Conn:
    """One raw TCP (or TLS) connection: write a request, read the answer, speak WebSocket frames."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.buf = b""

    @classmethod
    async def open(cls, port: int, tls: ssl.SSLContext | None) -> Conn:
        r, w = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=tls, server_hostname="127.0.0.1" if tls else None),
            READ_TIMEOUT,
        )
        return cls(r, w)

    async def _more(self, deadline: float) -> bool:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        chunk = await asyncio.wait_for(self.reader.read(65536), left)
        if not chunk:
            return False
        self.buf += chunk
        return True

    async def request(self, raw: bytes, *, frames: int = 0, timeout: float = READ_TIMEOUT) -> Answer:
        started = time.monotonic()
        deadline = started + timeout
        ans = Answer()
        self.writer.write(raw)
        await self.writer.drain()
        try:
            while b"\r\n\r\n" not in self.buf:
                if not await self._more(deadline):
                    ans.elapsed = time.monotonic() - started
                    got = f"after {len(self.buf)} bytes" if self.buf else "without a byte"
                    ans.ended = f"the server closed the connection after {ans.elapsed:.2f} s {got}"
                    ans.body = self.buf
                    return ans
        except TimeoutError:
            ans.ended = f"no answer within {timeout:g} s"
            ans.elapsed = timeout
            return ans
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        ans.status = lines[0]
        ans.headers = [(k.strip(), v.strip()) for k, _, v in (ln.partition(":") for ln in lines[1:])]
        if " 101 " in ans.status + " ":
            for _ in range(frames):
                try:
                    ans.frames.append(await self.recv_frame(time.monotonic() + 1.0))
                except TimeoutError:
                    ans.frames.append("(no frame within 1 s)")
                    break
                except EOFError:
                    ans.frames.append("(connection closed)")
                    break
            ans.elapsed = time.monotonic() - started
            return ans
        length = ans.header("content-length")
        try:
            if length is not None:
                while len(self.buf) < int(length):
                    if not await self._more(deadline):
                        break
                ans.body, self.buf = self.buf[: int(length)], self.buf[int(length) :]
            elif (ans.header("transfer-encoding") or "").lower() == "chunked":
                while not self.buf.endswith(b"0\r\n\r\n"):
                    if not await self._more(deadline):
                        break
                ans.body, self.buf = _dechunk(self.buf), b""
            else:
                while await self._more(deadline):
                    pass
                ans.body, self.buf = self.buf, b""
        except TimeoutError:
            ans.body, self.buf = self.buf, b""
            ans.ended = f"body still open after {timeout:g} s"
        ans.elapsed = time.monotonic() - started
        return ans

    def send_text(self, text: str) -> None:
        payload = text.encode()
        mask = os.urandom(4)
        head = bytes([0x81])
        n = len(payload)
        if n < 126:
            head += bytes([0x80 | n])
        else:
            head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(head + mask + masked)

    async def recv_frame(self, deadline: float) -> str:
        while len(self.buf) < 2:
            if not await self._more(deadline):
                raise EOFError
        op, n = self.buf[0] & 0x0F, self.buf[1] & 0x7F
        offset = 2
        if n == 126:
            while len(self.buf) < 4:
                if not await self._more(deadline):
                    raise EOFError
            n, offset = int.from_bytes(self.buf[2:4], "big"), 4
        while len(self.buf) < offset + n:
            if not await self._more(deadline):
                raise EOFError
        payload, self.buf = self.buf[offset : offset + n], self.buf[offset + n :]
        if op == 8:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
            return f"(close frame {code} {payload[2:].decode('utf-8', 'replace')!r})"
        if op == 2:
            return f"(binary frame {payload!r})"
        return payload.decode("utf-8", "replace")

    async def close(self) -> None:
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), 1)
        except (TimeoutError, OSError, ssl.SSLError):
            pass


def http_get(target: str, host: str, extra: str = "", method: str = "GET", body: str = "") -> bytes:
    """A plain request as a non-browser client sends it (keep-alive, so a session can reuse it)."""
    data = body.encode()
    length = (
        f"Content-Length: {len(data)}\r\nContent-Type: text/plain;charset=UTF-8\r\n"
        if method == "POST"
        else ""
    )
    return (
        f"{method} {target} HTTP/1.1\r\nHost: {host}\r\nAccept: */*\r\n{length}{extra}\r\n"
    ).encode() + data


def ws_get(target: str, host: str, extra: str = "", key: bool = True, version: str = "13") -> bytes:
    k = f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n" if key else ""
    return (
        f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        f"{k}Sec-WebSocket-Version: {version}\r\n{extra}\r\n"
    ).encode()


class Doc:
    def __init__(self) -> None:
        self.out: list[str] = []
        self.secrets: set[str] = set()  # the labs' tokens: printed as <token>

    def w(self, text: str = "") -> None:
        for secret in self.secrets:
            text = text.replace(secret, "<token>")
        self.out.append(text)

    def case(self, title: str, request: bytes, ans: Answer, note: str = "") -> None:
        first = request.split(b"\r\n", 1)[0].decode()
        heads = [
            ln
            for ln in request.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")[1:]
            if ln.split(":")[0].lower() in ("upgrade", "connection", "sec-websocket-version", "origin")
        ]
        self.w(f"**{title}**" + (f" — {note}" if note else ""))
        self.w("")
        self.w("```")
        self.w("> " + first + ("   [" + "; ".join(heads) + "]" if heads else ""))
        if ans.status:
            self.w("< " + ans.status)
            for k, v in ans.headers:
                if k.lower() in SHOWN_HEADERS:
                    self.w(f"< {k}: {v}")
            if ans.body:
                self.w("< body: " + _show(ans.body))
            for frame in ans.frames:
                self.w("< frame: " + json.dumps(frame, ensure_ascii=False)[1:-1])
        if ans.ended:
            self.w(f"< ({ans.ended})")
        self.w("```")
        self.w("")


async def one(
    port: int, tls: ssl.SSLContext | None, raw: bytes, *, frames: int = 0, timeout: float = READ_TIMEOUT
) -> Answer:
    conn = await Conn.open(port, tls)
    try:
        return await conn.request(raw, frames=frames, timeout=timeout)
    finally:
        await conn.close()


def sid_of(ans: Answer) -> str:
    body = ans.body.decode("utf-8", "replace")
    m = re.search(r'"sid":"([^"]+)"', body)
    assert m, f"no sid in {body!r}"
    return m.group(1)


async def socketio_kind(doc: Doc, title: str, port: int, path: str, token: str, kind: str) -> None:
    """The Socket.IO server on PORT (a backend, plain HTTP), request by request."""
    host = f"127.0.0.1:{port}"
    doc.w(f"### {title}")
    doc.w("")
    for eio in ("4", "3"):
        raw = http_get(f"{path}/?EIO={eio}&transport=polling", host)
        doc.case(f"Engine.IO handshake, EIO={eio}", raw, await one(port, None, raw))
    raw = ws_get(f"{path}/?EIO=4&transport=websocket", host)
    doc.case("Direct WebSocket, EIO=4 (no CONNECT sent)", raw, await one(port, None, raw, frames=2))

    # A polling session: CONNECT, then the same CONNECT again (what a sticky probe must not do).
    eio = "3" if kind == "socketio2" else "4"
    conn = await Conn.open(port, None)
    try:
        q = f"&token={token}" if kind == "socketio2" else ""
        raw = http_get(f"{path}/?EIO={eio}&transport=polling{q}", host)
        hs = await conn.request(raw)
        doc.case(f"Polling session: handshake (EIO={eio}{', token in the query' if q else ''})", raw, hs)
        sid = sid_of(hs)
        target = f"{path}/?EIO={eio}&transport=polling&sid={sid}"
        connect = "40" + json.dumps({"token": token}, separators=(",", ":"))
        steps = [
            ("POST CONNECT", "POST", connect),
            ("GET (the CONNECT answer)", "GET", ""),
            ("POST the same CONNECT again (namespace already joined)", "POST", connect),
            ("GET after the second CONNECT", "GET", ""),
            ("GET again", "GET", ""),
        ]
        if kind == "socketio2":
            # A 2.x client sends no CONNECT for "/": the server joins it by itself (token in the query).
            steps = [
                ("GET (the server's own CONNECT of /)", "GET", ""),
                ("POST a CONNECT of / anyway (namespace already joined)", "POST", "2:40"),
                ("GET after that CONNECT", "GET", ""),
                ("GET again", "GET", ""),
            ]
        for label, method, body in steps:
            raw = http_get(target, host, method=method, body=body)
            try:
                ans = await conn.request(raw)
            except (ConnectionError, OSError) as e:
                ans = Answer(ended=f"connection error: {e}")
            doc.case(label, raw, ans, note=f"body {body!r}" if body else "")
            if ans.ended and not ans.status:
                break
    finally:
        await conn.close()

    cases = [
        ("Unknown sid (code 1)", f"{path}/?EIO={eio}&transport=polling&sid=nope", "GET", ""),
        ("Unknown transport (code 0)", f"{path}/?EIO={eio}&transport=foo", "GET", ""),
        ("POST without sid (code 2)", f"{path}/?EIO={eio}&transport=polling", "POST", "40"),
        ("transport=websocket without Upgrade (code 3)", f"{path}/?EIO={eio}&transport=websocket", "GET", ""),
        ("Protocol version EIO=5 (code 5 where checked)", f"{path}/?EIO=5&transport=polling", "GET", ""),
        ("No EIO parameter", f"{path}/?transport=polling", "GET", ""),
        ("Wrong path, HTTP", "/wrong/socket.io/?EIO=4&transport=polling", "GET", ""),
    ]
    for label, target, method, body in cases:
        raw = http_get(target, host, method=method, body=body)
        doc.case(label, raw, await one(port, None, raw))
    # transport mismatch: a polling sid asked over transport=websocket without Upgrade
    raw = http_get(f"{path}/?EIO={eio}&transport=polling", host)
    sid = sid_of(await one(port, None, raw))
    raw = http_get(f"{path}/?EIO={eio}&transport=websocket&sid={sid}", host)
    doc.case(
        "A polling sid with transport=websocket, no Upgrade (code 3, TRANSPORT_MISMATCH)",
        raw,
        await one(port, None, raw),
    )
    raw = ws_get(f"{path}/?EIO={eio}&transport=websocket&sid=nope", host)
    doc.case("WebSocket upgrade with an unknown sid", raw, await one(port, None, raw, frames=1))
    raw = ws_get("/wrong/socket.io/?EIO=4&transport=websocket", host)
    doc.case("Wrong path, WebSocket upgrade", raw, await one(port, None, raw, frames=1))
    raw = ws_get(f"{path}/?EIO={eio}&transport=websocket", host, key=False)
    doc.case("WebSocket upgrade without Sec-WebSocket-Key", raw, await one(port, None, raw))
    raw = http_get(
        f"{path}/?EIO={eio}&transport=polling", host, extra="Origin: https://elsewhere.example\r\n"
    )
    doc.case("Handshake with an Origin that is not allowed", raw, await one(port, None, raw))

    if kind != "socketio2":
        for label, packet in (
            ("CONNECT to an unknown namespace /admin", "40/admin," + json.dumps({"token": token})),
            ("CONNECT with a bad token (refused by the auth check)", '40{"token":"not-a-jwt"}'),
            ("CONNECT without auth payload", "40"),
        ):
            conn = await Conn.open(port, None)
            try:
                raw = ws_get(f"{path}/?EIO=4&transport=websocket", host)
                ans = await conn.request(raw, frames=1)
                conn.send_text(packet)
                for _ in range(2):
                    try:
                        ans.frames.append(await conn.recv_frame(time.monotonic() + 1.0))
                    except (TimeoutError, EOFError):
                        break
                doc.case(label, raw, ans, note=f"then sends {packet!r}")
            finally:
                await conn.close()
    else:
        for label, q in (
            ("Handshake without a token (2.x auth is in the query)", ""),
            ("… with a bad token", "&token=x"),
        ):
            raw = http_get(f"{path}/?EIO=3&transport=polling{q}", host)
            doc.case(label, raw, await one(port, None, raw))
        conn = await Conn.open(port, None)
        try:
            raw = ws_get(f"{path}/?EIO=3&transport=websocket&token={token}", host)
            ans = await conn.request(raw, frames=2)
            conn.send_text("40/admin")
            try:
                ans.frames.append(await conn.recv_frame(time.monotonic() + 1.0))
            except (TimeoutError, EOFError):
                pass
            doc.case(
                "WebSocket EIO=3 with a token, then CONNECT to unknown namespace /admin",
                raw,
                ans,
                note="sends '40/admin'",
            )
        finally:
            await conn.close()
    raw = http_get("/whoami-http", host)
    doc.case("The app beside it: GET /whoami-http", raw, await one(port, None, raw))


async def plain_kind(doc: Doc, title: str, port: int, path: str) -> None:
    host = f"127.0.0.1:{port}"
    doc.w(f"### {title}")
    doc.w("")
    cases: list[tuple[str, bytes, int]] = [
        ("Plain HTTP GET (a polling handshake)", http_get(f"{path}/?EIO=4&transport=polling", host), 0),
        ("Plain HTTP GET /", http_get("/", host), 0),
        ("POST", http_get(f"{path}/?EIO=4&transport=polling&sid=x", host, method="POST", body="40"), 0),
        (
            "WebSocket upgrade (what socket.io-client sends)",
            ws_get(f"{path}/?EIO=4&transport=websocket", host),
            2,
        ),
        (
            "Upgrade without Sec-WebSocket-Key (bad handshake)",
            ws_get(f"{path}/?EIO=4&transport=websocket", host, key=False),
            0,
        ),
        ("Upgrade with Sec-WebSocket-Version: 7", ws_get(f"{path}/", host, version="7"), 0),
        (
            "Upgrade: websocket + Connection: upgrade on a plain GET, no key (what `proxy_set_header Upgrade websocket` makes of polling)",
            f"GET {path}/?EIO=4&transport=polling HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n".encode(),
            0,
        ),
    ]
    for label, raw, frames in cases:
        doc.case(label, raw, await one(port, None, raw, frames=frames))


async def through_nginx(doc: Doc, labs: dict[str, Lab]) -> None:
    doc.w("## Behind the lab's nginx (1.22.1)")
    doc.w("")
    doc.w(
        "Public side: `https://127.0.0.1:PORT/dev/aiwm/chat/socket.io/…`, rewritten to the backends' "
        "`/chat/socket.io/…`. nginx replaces the backend's `Server` header (proxy_hide_header's default) "
        "with its own `Server: nginx/1.22.1` on **every** answer, proxied or not: `Server: nginx` alone "
        "does not say that nginx wrote the body."
    )
    doc.w("")
    pub = "/dev/aiwm/chat/socket.io"
    for name, lab in labs.items():
        info = lab.info()
        tls = ssl.create_default_context(cafile=info["ca_file"])
        port = info["public_port"]
        host = f"127.0.0.1:{port}"
        doc.w(f"### {name} ({info['server_description']})")
        doc.w("")
        if info["server"] not in ("ws", "python-websockets") and info["scenario"] != "literal-upgrade":
            raw = http_get(f"{pub}/?EIO=4&transport=polling", host)
            doc.case("Handshake EIO=4", raw, await one(port, tls, raw))
        scenario = info["scenario"]
        if scenario == "healthy":
            raw = http_get(f"{pub}/?EIO=4&transport=polling&sid=nope", host)
            doc.case("Unknown sid", raw, await one(port, tls, raw))
            raw = ws_get(f"{pub}/?EIO=4&transport=websocket", host)
            doc.case("WebSocket", raw, await one(port, tls, raw, frames=1))
            raw = http_get("/socket.io/?EIO=4&transport=polling", host)
            doc.case("No location matches (/socket.io/): nginx's own 404", raw, await one(port, tls, raw))
            raw = http_get("/dev/aiwm/chat/nothing-here", host)
            doc.case("A path the backend app does not serve", raw, await one(port, tls, raw))
        elif scenario == "no-sticky":
            conn = await Conn.open(port, tls)
            try:
                raw = http_get(f"{pub}/?EIO=4&transport=polling", host)
                hs = await conn.request(raw)
                raw = http_get(f"{pub}/?EIO=4&transport=polling&sid={sid_of(hs)}", host)
                doc.case(
                    "Round robin: the session's second request reaches another backend",
                    raw,
                    await conn.request(raw),
                )
            finally:
                await conn.close()
        elif scenario == "no-rewrite":
            raw = ws_get(f"{pub}/?EIO=4&transport=websocket", host)
            doc.case(
                "WebSocket reaches the backend at the unrewritten path",
                raw,
                await one(port, tls, raw, frames=1, timeout=10),
                note="each backend drops the unknown upgrade after 1 s; nginx tries the next",
            )
        elif scenario == "no-upgrade":
            raw = ws_get(f"{pub}/?EIO=4&transport=websocket", host)
            doc.case(
                "WebSocket without Upgrade/Connection forwarded", raw, await one(port, tls, raw, frames=1)
            )
        elif scenario == "literal-upgrade":
            raw = http_get(f"{pub}/?EIO=4&transport=polling", host)
            doc.case(
                "Polling handshake, sent upstream with Upgrade: websocket", raw, await one(port, tls, raw)
            )
            raw = ws_get(f"{pub}/?EIO=4&transport=websocket", host)
            doc.case("WebSocket", raw, await one(port, tls, raw, frames=1))
        elif scenario == "http10":
            raw = ws_get(f"{pub}/?EIO=4&transport=websocket", host)
            doc.case("WebSocket, sent upstream as HTTP/1.0", raw, await one(port, tls, raw, frames=1))
        elif scenario == "version-mismatch":
            raw = ws_get(f"{pub}/?EIO=4&transport=websocket", host)
            doc.case("WebSocket EIO=4 (no token)", raw, await one(port, tls, raw, frames=2))
        elif scenario == "plain-websocket":
            raw = http_get(f"{pub}/?EIO=4&transport=polling", host)
            doc.case("Polling handshake", raw, await one(port, tls, raw))
            raw = http_get("/dev/aiwm/whoami-http", host)
            doc.case("The REST location (same backends)", raw, await one(port, tls, raw))
            raw = ws_get(f"{pub}/?EIO=4&transport=websocket", host)
            doc.case("WebSocket", raw, await one(port, tls, raw, frames=1))
        elif scenario == "backend-down-all":
            raw = http_get(f"{pub}/?EIO=4&transport=polling", host)
            doc.case("No backend up", raw, await one(port, tls, raw))
        elif scenario == "short-timeout":
            raw = http_get(f"{pub}/?EIO=4&transport=polling", host)
            hs = await one(port, tls, raw)
            raw = http_get(f"{pub}/?EIO=4&transport=polling&sid={sid_of(hs)}", host)
            doc.case(
                "A long-poll GET, held by the backend up to pingInterval (5 s), outlives proxy_read_timeout 3s",
                raw,
                await one(port, tls, raw, timeout=10),
            )
        errors = Path(info["error_log"]).read_text(errors="replace").splitlines()
        interesting = [ln for ln in errors if "[error]" in ln or "[warn]" in ln or "upstream" in ln]
        if interesting:
            doc.w("nginx error log:")
            doc.w("")
            doc.w("```")
            for ln in interesting[-4:]:
                doc.w(re.sub(r"^\S+ \S+ ", "", ln)[:400])
            doc.w("```")
            doc.w("")


def forbidden_server(doc_dir: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A throwaway Node socket.io 4 server whose allowRequest refuses everything (engine.io code 4)."""
    port = procs.free_ports(1)[0]
    script = (
        f"const {{Server}} = require({json.dumps(str(NODE_DIR / 'node_modules' / 'socket.io'))});"
        f"const io = new Server({{path: '/chat/socket.io', allowRequest: (req, cb) => cb('origin refused by allowRequest', false)}});"
        f"io.listen({port});"
    )
    proc = subprocess.Popen(
        [node_binary() or "node", "-e", script, str(doc_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not procs.listening(port) and time.monotonic() < deadline:
        time.sleep(0.02)
    return proc, port


def client_table(doc: Doc, labs: dict[tuple[str, str], Lab]) -> None:
    doc.w("## What the real socket.io-client 4.8.4 experiences, per scenario")
    doc.w("")
    doc.w(
        "`node wsdoctor/lab/node/client.js` (reconnection off, timeout 5 s, token in the CONNECT `auth`), "
        "once with `transports: ['polling', 'websocket']` and once with `['websocket']`. `seed` uses the "
        "runbook's client (`io(URL + '/dev/aiwm/chat')`, websocket only). The lab tests assert these."
    )
    doc.w("")
    doc.w("| scenario | --backends | polling → websocket | websocket only |")
    doc.w("|---|---|---|---|")
    node = node_binary() or "node"

    def run(lab: Lab, *extra: str) -> str:
        """One client.js run, summed up in a table cell."""
        info = lab.info()
        argv = [node, str(NODE_DIR / "client.js"), "--ca", info["ca_file"], "--token", info["token"], *extra]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60).stdout
        r = json.loads(out)
        if r["connected"]:
            s = (
                f"connected ({r['transport_at_open']}→{r['transport']}"
                + (", upgrade failed" if r["upgrade_error"] else "")
                + ")"
            )
            return s + f", {r['instance']}"
        e = r["error"]
        s = f"`{e['message'][:90]}`" if e["message"] else '`""` (empty message)'
        if e.get("description") not in (None, {}):
            s += f" ({e['description']})"
        if e.get("data") is not None:
            s += f" data `{json.dumps(e['data'])}`"
        return s

    for (scenario, kind), lab in labs.items():
        info = lab.info()
        if scenario == "seed":
            both = run(lab, "--url", info["url"] + "/dev/aiwm/chat")
            ws = run(lab, "--url", info["url"] + "/dev/aiwm/chat", "--transports", "websocket")
        else:
            base = ("--url", info["url"], "--path", info["path"])
            both = run(lab, *base)
            ws = run(lab, *base, "--transports", "websocket")
        doc.w(f"| {scenario} | {kind} | {both} | {ws} |")
        if scenario == "version-mismatch" and kind == "node":
            base = ("--url", info["url"], "--path", info["path"])
            for label, extra in (
                ("version-mismatch, v4 client with `query: {token}`", ("--token-in", "query")),
                ("version-mismatch, socket.io-client 2.5.0", ("--client", "2")),
            ):
                both = run(lab, *base, *extra)
                ws = run(lab, *base, *extra, "--transports", "websocket")
                doc.w(f"| {label} | node | {both} | {ws} |")
    doc.w("")


async def capture(base: Path) -> str:
    doc = Doc()
    started: list[Lab] = []

    def up(scenario: str, kind: str) -> Lab:
        lab = Lab.up(scenario, base / f"{scenario}-{kind}", ssh=False, backends=kind)
        started.append(lab)
        doc.secrets.update((lab.token, lab.info()["valid_token"]))
        return lab

    try:
        healthy_node = up("healthy", "node")
        healthy_py = up("healthy", "python")
        v2 = up("version-mismatch", "node")
        ws_node = up("plain-websocket", "node")
        ws_py = up("plain-websocket", "python")
        doc.w("# What the servers really answer")
        doc.w("")
        doc.w(
            "Captured from real processes on loopback by `python -m wsdoctor.lab.capture` (regenerate it "
            "with `.venv/bin/python -m wsdoctor.lab.capture > docs/servers.md`): raw requests over a socket, "
            "answers as received. `>` is the request line (with the headers that matter in brackets), `<` the "
            "status line, the headers that tell who answered and the body (JSON-escaped: `\\u001e` is "
            "Engine.IO 4's packet separator). Header order and case are the server's own. Only the headers "
            "listed in `SHOWN_HEADERS` are kept."
        )
        doc.w("")
        doc.w(
            f"Node {subprocess.run([node_binary() or 'node', '--version'], capture_output=True, text=True).stdout.strip()}; "
            f"{server_description('socketio4')}; {server_description('socketio2')}; {server_description('ws')}; "
            f"python-socketio 5.18.1 / python-engineio 4.15.1 under uvicorn 0.54.0; websockets 17.4; nginx 1.22.1."
        )
        doc.w("")
        doc.w(KEY_FACTS)
        doc.w("## Backends, directly (plain HTTP on the backend port)")
        doc.w("")
        path = "/chat/socket.io"
        await socketio_kind(
            doc,
            healthy_node.info()["server_description"],
            healthy_node.info()["backend_ports"][0],
            path,
            healthy_node.token,
            "socketio4",
        )
        proc, port = forbidden_server(base)
        try:
            doc.w("#### Node socket.io 4 with an `allowRequest` that refuses (engine.io code 4)")
            doc.w("")
            raw = http_get(f"{path}/?EIO=4&transport=polling", f"127.0.0.1:{port}")
            doc.case("Handshake refused by allowRequest", raw, await one(port, None, raw))
            raw = ws_get(f"{path}/?EIO=4&transport=websocket", f"127.0.0.1:{port}")
            doc.case("WebSocket refused by allowRequest", raw, await one(port, None, raw))
        finally:
            proc.terminate()
            proc.wait(timeout=5)
        await socketio_kind(
            doc, v2.info()["server_description"], v2.info()["backend_ports"][0], path, v2.token, "socketio2"
        )
        await socketio_kind(
            doc,
            healthy_py.info()["server_description"],
            healthy_py.info()["backend_ports"][0],
            path,
            healthy_py.token,
            "python",
        )
        await plain_kind(doc, ws_node.info()["server_description"], ws_node.info()["backend_ports"][0], path)
        await plain_kind(doc, ws_py.info()["server_description"], ws_py.info()["backend_ports"][0], path)

        nginx_labs: dict[str, Lab] = {
            "healthy, node": healthy_node,
            "healthy, python": healthy_py,
            "version-mismatch": v2,
            "plain-websocket, node": ws_node,
            "plain-websocket, python": ws_py,
        }
        for scenario in (
            "no-sticky",
            "no-rewrite",
            "no-upgrade",
            "literal-upgrade",
            "http10",
            "short-timeout",
            "backend-down-all",
        ):
            for kind in ("node", "python"):
                nginx_labs[f"{scenario}, {kind}"] = up(scenario, kind)
        await through_nginx(doc, nginx_labs)

        table_labs: dict[tuple[str, str], Lab] = {}
        for scenario in SCENARIOS:
            for kind in ("node", "python"):
                key = f"{scenario}, {kind}"
                if key in nginx_labs:
                    table_labs[(scenario, kind)] = nginx_labs[key]
                elif scenario == "healthy":
                    table_labs[(scenario, kind)] = healthy_node if kind == "node" else healthy_py
                elif scenario == "version-mismatch":
                    table_labs[(scenario, kind)] = v2 if kind == "node" else up(scenario, kind)
                else:
                    table_labs[(scenario, kind)] = up(scenario, kind)
        client_table(doc, table_labs)
    finally:
        for lab in started:
            lab.down()
    return "\n".join(doc.out).rstrip() + "\n"


def main() -> int:
    if node_binary() is None:
        print("Node.js is not installed: run `./run setup` first.", file=sys.stderr)
        return 2
    base = Path(tempfile.mkdtemp(prefix="wsdoctor-capture-"))
    try:
        text = asyncio.run(capture(base))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
