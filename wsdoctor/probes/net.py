"""One HTTP exchange, recorded exactly, bounded in time and memory, with the stage it stalled at.

httpx does the HTTP/1.1 work; a small httpcore network backend underneath tracks what is happening on
the wire (resolving, connecting, TLS, sending, waiting for the answer), keeps the first raw bytes the
server sent (so a non-HTTP answer can be shown) and the low-level error (so an expired certificate or a
refused connection is named as such, not as a generic ``ConnectError``). Every exchange runs under one
deadline (``ctx.timeout``, DNS to the last body byte: a server dripping a byte a second cannot stretch
it) and reads at most ``ctx.body_cap`` bytes of body (an endless body is cut, never buffered).
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpcore
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
    Exchange,
)
from wsdoctor.probes.context import HEAD_CAP, USER_AGENT, ProbeContext
from wsdoctor.wire.engineio import NODE_ERRORS, ProtocolError, decode_payload, parse_open, python_key_order

_PRE_ANSWER = ("dns", "connect", "tls", "request")


# --- stage tracking --------------------------------------------------------------------


@dataclass
class Tracker:
    """What one client is doing on the wire right now; reset at the start of every exchange."""

    stage: str = "request"
    waiting: str = "response"  # the stage name while waiting for the answer ("upgrade" for WebSockets)
    head: bytearray = field(default_factory=bytearray)  # first raw bytes received in this exchange
    exc: BaseException | None = None  # the low-level cause of a failure
    host: str = ""
    port: int = 0
    received: int = 0  # body bytes received (for "N bytes received" in a body timeout)

    def begin(self, waiting: str = "response") -> None:
        self.stage, self.waiting = "request", waiting
        self.head.clear()
        self.exc = None
        self.received = 0

    def record(self, data: bytes) -> None:
        room = HEAD_CAP - len(self.head)
        if room > 0:
            self.head += data[:room]


class _Stream(httpcore.AsyncNetworkStream):
    def __init__(self, inner: httpcore.AsyncNetworkStream, tracker: Tracker) -> None:
        self._inner = inner
        self._t = tracker

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        t = self._t
        if t.stage in _PRE_ANSWER:
            t.stage = t.waiting
        try:
            data = await self._inner.read(max_bytes, timeout)
        except Exception as e:
            t.exc = t.exc or e.__cause__ or e
            raise
        t.record(data)
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if self._t.stage in ("dns", "connect", "tls"):
            self._t.stage = "request"
        try:
            await self._inner.write(buffer, timeout)
        except Exception as e:
            self._t.exc = self._t.exc or e.__cause__ or e
            raise

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        self._t.stage = "tls"
        try:
            inner = await self._inner.start_tls(ssl_context, server_hostname, timeout)
        except Exception as e:
            self._t.exc = self._t.exc or e.__cause__ or e
            raise
        self._t.stage = "request"
        return _Stream(inner, self._t)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.AsyncNetworkBackend):
    """Resolve and connect ourselves (so DNS and TCP are separate stages); optionally dial elsewhere."""

    def __init__(self, tracker: Tracker, connect_to: tuple[str, int] | None) -> None:
        self._t = tracker
        self._connect_to = connect_to
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        t = self._t
        dial_host, dial_port = self._connect_to or (host, port)
        t.host, t.port = dial_host, dial_port
        t.stage = "dns"
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                dial_host, dial_port, type=socket.SOCK_STREAM
            )
        except OSError as e:
            t.exc = e
            raise httpcore.ConnectError(str(e)) from e
        t.stage = "connect"
        last: BaseException | None = None
        for _family, _type, _proto, _name, sockaddr in infos:
            try:
                inner = await self._inner.connect_tcp(
                    str(sockaddr[0]), dial_port, timeout=timeout, socket_options=socket_options
                )
                return _Stream(inner, t)
            except httpcore.ConnectTimeout:
                raise
            except Exception as e:  # try the next address, like a browser would
                last = e.__cause__ or e
        t.exc = last
        raise httpcore.ConnectError(str(last)) from last

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.AsyncNetworkStream:  # pragma: no cover - never used by probes
        raise httpcore.ConnectError("unix sockets are not probed")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class _Transport(httpx.AsyncHTTPTransport):
    def __init__(self, ctx: ProbeContext, tracker: Tracker, secure: bool) -> None:
        # Loading a trust store is slow disk I/O: only https/wss probes need (and share) the real one.
        ssl_ctx = ctx.ssl_context if secure else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        super().__init__(verify=ssl_ctx, trust_env=False, retries=0)
        # httpx builds its pool without a way to pass a network backend: build the same pool with ours.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_ctx,
            max_connections=4,
            max_keepalive_connections=2,
            keepalive_expiry=5.0,
            http1=True,
            http2=False,
            retries=0,
            network_backend=_Backend(tracker, ctx.connect_to),
        )


@asynccontextmanager
async def open_client(ctx: ProbeContext, url: str) -> AsyncIterator[tuple[httpx.AsyncClient, Tracker]]:
    """An httpx client of its own for URL's origin (its own connections and tracker): never shared."""
    tracker = Tracker()
    secure = urlsplit(url).scheme.lower() in ("https", "wss")
    client = httpx.AsyncClient(
        transport=_Transport(ctx, tracker, secure),
        timeout=httpx.Timeout(ctx.timeout),
        follow_redirects=False,
        trust_env=False,
    )
    try:
        yield client, tracker
    finally:
        try:
            await asyncio.wait_for(client.aclose(), 1.0)
        except Exception:  # noqa: BLE001 - closing must not mask the result
            pass


# --- URLs and headers -------------------------------------------------------------------


def engine_url(
    url: str,
    path: str | None = None,
    *,
    transport: str,
    eio: int = 4,
    sid: str | None = None,
    timestamp: bool = False,
    extra: list[tuple[str, str]] | None = None,
) -> str:
    """The Engine.IO request URL: URL is a base (scheme://host:port) with PATH, or a full request URL.

    The query keeps any parameters the caller gave, adds EXTRA (a 2.x client's ``query: {token}``) and sets
    EIO, transport and (for an open session) sid;
    ws/wss schemes become http/https (the upgrade is an HTTP request).
    """
    u = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(u.scheme.lower(), u.scheme.lower())
    if scheme not in ("http", "https") or not u.hostname:
        raise ValueError(f"cannot probe {url!r}: give an http(s):// or ws(s):// URL with a host")
    if path is not None:
        p = urlsplit(path)
        req_path, query = p.path or "/", p.query
    else:
        req_path, query = u.path or "/", u.query
    pairs = [
        (k, v)
        for k, v in parse_qsl(query, keep_blank_values=True)
        if k not in ("EIO", "transport", "sid", "t")
    ]
    pairs += list(extra or [])  # the client's own `query` option goes before EIO, as engine.io-client puts it
    pairs += [("EIO", str(eio)), ("transport", transport)]
    if sid:
        pairs.append(("sid", sid))
    if timestamp:  # engine.io-client's cache buster: a cached handshake would be a lie
        pairs.append(("t", _timestamp()))
    return urlunsplit((scheme, u.netloc, req_path, urlencode(pairs, safe="/,:"), ""))


def _timestamp() -> str:
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_"
    n = int(time.time() * 1000)
    out = ""
    while n:
        n, r = divmod(n, 64)
        out = alphabet[r] + out
    return out or "0"


def base_headers(ctx: ProbeContext, extra: list[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
    """The headers every probe request carries (Authorization only with --auth-header)."""
    h: list[tuple[str, str]] = [
        ("User-Agent", USER_AGENT),
        ("Accept", "*/*"),
        ("Accept-Encoding", "identity"),
    ]
    if ctx.host_header:
        h.append(("Host", ctx.host_header))
    if ctx.auth_header and ctx.token:
        h.append(("Authorization", f"Bearer {ctx.token}"))
    h += list(ctx.headers)
    h += list(extra or [])
    return h


_SECRET_HEADERS = ("authorization", "cookie", "proxy-authorization")


def mask_secrets(text: str, secrets: list[str]) -> str:
    """TEXT with every secret (a token in a 2.x client's query) replaced by ***, as evidence shows it."""
    for s in secrets:
        if s and len(s) >= 4:
            text = text.replace(s, "***")
    return text


def redact_headers(headers: list[tuple[str, str]], secrets: list[str]) -> list[tuple[str, str]]:
    """Headers as evidence: Authorization/Cookie values and any secret value replaced by ***."""
    out = []
    for k, v in headers:
        if k.lower() in _SECRET_HEADERS:
            scheme = v.split(" ", 1)[0] if k.lower() != "cookie" and " " in v else ""
            v = f"{scheme} ***".strip()
        for s in secrets:
            if s and len(s) >= 4:
                v = v.replace(s, "***")
        out.append((k, v))
    return out


# --- who answered -------------------------------------------------------------------------

_PY_SERVERS = (
    "uvicorn",
    "hypercorn",
    "gunicorn",
    "daphne",
    "werkzeug",
    "eventlet",
    "gevent",
    "aiohttp",
    "tornado",
)
# nginx's own pages end in `<hr><center>nginx/1.22.1</center>` (`nginx` alone with server_tokens off).
_NGINX_PAGE = re.compile(r"<center>\s*(?:nginx|openresty)\b", re.I)
# Node's `ws` refusing a bad WebSocket handshake (ws 8 names the header; ws 7, under Socket.IO 2, says only
# "Bad Request"), and a plain `ws` server's answer to any plain HTTP request.
_NODE_WS_REFUSALS = (
    "Missing or invalid Sec-WebSocket-Key header",
    "Missing or invalid Sec-WebSocket-Version header",
    "Invalid Upgrade header",
    "Invalid Sec-WebSocket-Protocol header",
    "Invalid Sec-WebSocket-Extensions header",
    "Invalid or unacceptable Sec-WebSocket-Extensions header",
)
_EXPRESS_404 = re.compile(r"<pre>Cannot [A-Z]+ [^<]*</pre>")


def classify(status: int | None, headers: list[tuple[str, str]], body: bytes) -> str:
    """Who wrote this answer: nginx itself, a backend (named when its words are known), or nobody.

    nginx replaces a proxied answer's Server header with its own, so ``Server: nginx`` proves nothing: the
    body decides (docs/servers.md has every server's words). nginx writes its own HTML page ending in
    ``<center>nginx…</center>``; anything else came through it: Engine.IO's errors (Node's
    ``{"code":…,"message":…}`` JSON or its bare message on a refused upgrade, python's JSON strings), the
    POST answers ``ok`` (Node) and ``OK`` (python), the open packet (its key order tells the two apart),
    Node ``ws``'s handshake refusals and 426, python ``websockets``' "Failed to open a WebSocket connection",
    Express's ``Cannot GET`` page.
    """
    if status is None:
        return NOBODY
    server = " ".join(v for k, v in headers if k.lower() == "server").lower()
    ctype = " ".join(v for k, v in headers if k.lower() == "content-type").lower()
    text = body[:4096].decode("utf-8", "replace").strip()
    if _NGINX_PAGE.search(text):
        return NGINX
    who = _engineio_kind(text)
    if who:
        return who
    if any(text.startswith(m) for m in _NODE_WS_REFUSALS) or (status == 426 and text == "Upgrade Required"):
        return NODE_WS
    if status == 400 and text == "Bad Request" and not ctype.startswith("application/json"):
        return NODE_WS  # ws 7 (Socket.IO 2's) refusing a handshake without a key
    if text.startswith("Failed to open a WebSocket connection"):
        return PY_WEBSOCKETS
    if _EXPRESS_404.search(text):
        return EXPRESS
    if status == 404 and text == "Not Found" and ctype.startswith("text/plain") and "charset" not in ctype:
        return ENGINEIO_PY  # python-engineio's ASGIApp/WSGIApp not_found(), byte for byte
    if any(s in server for s in _PY_SERVERS):
        return ENGINEIO_PY
    return OTHER  # an answer nginx did not write (its own pages name it), from a server we cannot name


def _engineio_kind(text: str) -> str | None:
    if text == "OK":
        return ENGINEIO_PY
    if text == "ok":
        return ENGINEIO_NODE
    if text in NODE_ERRORS.values() and text != NODE_ERRORS[4]:
        return ENGINEIO_NODE  # engine.io refusing an upgrade: the bare message, no JSON ("Forbidden" is anyone's)
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError):
            obj = None
        if isinstance(obj, dict) and isinstance(obj.get("code"), int) and "message" in obj:
            return ENGINEIO_NODE
    if text.startswith('"') and text.endswith('"'):
        try:
            if isinstance(json.loads(text), str):
                return ENGINEIO_PY
        except (ValueError, RecursionError):
            pass
    if text.startswith("0{") or (text[:1].isdigit() and ":0{" in text[:12]):
        try:
            for version in (4, 3):
                try:
                    packets = decode_payload(text, version=version)
                except ProtocolError:
                    continue
                if packets and packets[0].type == 0:
                    order = python_key_order(parse_open(packets[0]))
                    return ENGINEIO_PY if order else ENGINEIO_NODE if order is False else OTHER
        except ProtocolError:
            return None
    return None


# --- errors as sentences -----------------------------------------------------------------

_WAITING = {
    "dns": "resolving {host}",
    "connect": "connecting to {host}:{port}",
    "tls": "in the TLS handshake with {host}",
    "request": "sending the request",
    "response": "waiting for the HTTP response",
    "upgrade": "waiting for the answer to the WebSocket upgrade",
    "first-frame": "waiting for the first WebSocket frame (the Engine.IO open packet)",
    "body": "reading the response body ({received} bytes received)",
}


def timeout_message(seconds: float, stage: str, tracker: Tracker | None = None) -> str:
    what = _WAITING.get(stage, "waiting")
    t = tracker or Tracker()
    msg = f"timed out after {seconds:.1f} s " + what.format(host=t.host, port=t.port, received=t.received)
    if stage in ("response", "upgrade") and t.head:
        msg += f"; all it sent was {_show(bytes(t.head))}, which is not a complete HTTP answer"
    return msg


_SPECIFIC = (socket.gaierror, ssl.SSLError, ConnectionRefusedError, ConnectionResetError, BrokenPipeError)


def root_cause(exc: BaseException) -> BaseException:
    """The most telling exception in a chain (anyio wraps a refused connection in a generic OSError)."""
    seen: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and e not in seen and len(seen) < 10:
        seen.append(e)
        e = e.__cause__ or e.__context__
    for cand in seen:
        if isinstance(cand, _SPECIFIC):
            return cand
    return seen[-1] if isinstance(seen[-1], OSError) else exc


def describe(exc: BaseException, stage: str, tracker: Tracker, seconds: float = 0.0) -> tuple[str, str]:
    """(stage, one sentence) for a failed exchange, from the low-level cause when there is one."""
    cause = root_cause(tracker.exc or exc)
    where = f"{tracker.host}:{tracker.port}" if tracker.host else "the server"
    if isinstance(cause, socket.gaierror):
        return "dns", f"cannot resolve {tracker.host}: {cause.strerror or cause}"
    if isinstance(cause, ssl.SSLCertVerificationError):
        msg = cause.verify_message or cause.reason or str(cause)
        return "tls", f"the TLS certificate of {where} was rejected: {msg}"
    if isinstance(cause, ssl.SSLError):
        return "tls", f"the TLS handshake with {where} failed: {cause.reason or cause}"
    if isinstance(cause, ConnectionRefusedError):
        return "connect", f"connection to {where} refused: nothing listens there"
    if isinstance(cause, ConnectionResetError | BrokenPipeError):
        return stage, f"{where} reset the connection while {_WAITING.get(stage, 'talking').split(' (')[0]}"
    if isinstance(cause, OSError) and stage in ("dns", "connect"):
        return "connect", f"cannot connect to {where}: {cause.strerror or cause}"
    if isinstance(exc, httpx.RemoteProtocolError):
        head = bytes(tracker.head)
        if not head:
            return stage, f"{where} closed the connection without answering"
        if stage == "body":
            return "body", f"{where} broke off the response body ({exc})"
        return stage, f"{where} answered something that is not HTTP: {_show(head)}"
    if isinstance(exc, httpx.TimeoutException):
        return stage, timeout_message(seconds, stage, tracker)
    if isinstance(exc, httpx.HTTPError):
        return stage, f"{where}: {exc or type(exc).__name__}"
    return stage, f"{type(cause).__name__}: {cause}"


def _show(data: bytes, n: int = 80) -> str:
    text = data[:n].decode("utf-8", "replace")
    return repr(text) + ("…" if len(data) > n else "")


# --- one exchange ---------------------------------------------------------------------------


async def fetch(
    client: httpx.AsyncClient,
    tracker: Tracker,
    ctx: ProbeContext,
    method: str,
    url: str,
    *,
    headers: list[tuple[str, str]] | None = None,
    content: bytes | None = None,
) -> Exchange:
    """Send one request and record it; never raises for network trouble (it is in ``error``/``stage``)."""
    hdrs = base_headers(ctx, headers)
    if content is not None:
        hdrs.append(("Content-Type", "text/plain;charset=UTF-8"))
    ex = Exchange(method=method, url=mask_secrets(url, ctx.secrets()))
    start = time.monotonic()
    tracker.begin()
    try:
        request = client.build_request(method, url, headers=hdrs, content=content, extensions=_ext(ctx))
        ex.request_headers = redact_headers(
            [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw], ctx.secrets()
        )
        async with asyncio.timeout(ctx.timeout):
            response = await client.send(request, stream=True)
            try:
                fill_response(ex, response)
                tracker.stage = "body"
                ex.body = await read_capped(response, ctx.body_cap, tracker, ex)
            finally:
                await response.aclose()
    except TimeoutError:
        ex.stage = tracker.stage
        ex.error = timeout_message(ctx.timeout, tracker.stage, tracker)
    except (httpx.HTTPError, OSError, ssl.SSLError) as e:
        ex.stage, ex.error = describe(e, tracker.stage, tracker, ctx.timeout)
    except (ValueError, httpx.InvalidURL) as e:  # httpx.InvalidURL and friends: a bad URL given to the probe
        ex.stage, ex.error = "request", f"cannot send this request: {e}"
    except Exception as e:  # noqa: BLE001 - a probe returns a fact, never a traceback
        ex.stage = ex.stage or tracker.stage
        ex.error = f"the probe failed unexpectedly ({type(e).__name__}: {e}); please report this"
    ex.elapsed = time.monotonic() - start
    ex.answered_by = classify(ex.status, ex.headers, ex.body)
    return ex


def _ext(ctx: ProbeContext) -> dict[str, Any]:
    return {"sni_hostname": ctx.server_hostname} if ctx.server_hostname else {}


def fill_response(ex: Exchange, response: httpx.Response) -> None:
    ex.status = response.status_code
    ex.reason = response.reason_phrase
    ex.headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.headers.raw]


async def read_capped(response: httpx.Response, cap: int, tracker: Tracker, ex: Exchange) -> bytes:
    """At most CAP bytes of body; the partial body stays in EX if the deadline strikes mid-way."""
    buf = bytearray()
    async for chunk in response.aiter_raw():
        buf += chunk[: cap - len(buf)]
        tracker.received = len(buf)
        ex.body = bytes(buf)
        if len(buf) >= cap:
            break
    return bytes(buf)
