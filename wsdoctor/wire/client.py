"""socket.io-client's URL semantics: what request ``io(url, {path})`` really sends, and which namespace it joins.

The runbook's trap lives here: ``io('wss://api.x-or.cloud/dev/aiwm/chat')`` does *not* request
``/dev/aiwm/chat/socket.io/``. socket.io-client takes the URL's path as the Socket.IO **namespace** and sends
its Engine.IO requests to the ``path`` option (default ``/socket.io/``), so the proxy sees
``GET /socket.io/?EIO=4&transport=polling`` and the server is asked for namespace ``/dev/aiwm/chat``
(socket.io-client ``url.ts``/``manager.ts``, engine.io-client ``socket.ts``/``transport.ts``).

A *raw* URL (``wscat -c 'wss://h/chat/socket.io/?EIO=4&transport=websocket'``, or ``--raw``) is no socket.io-client
URL: it is taken as the Engine.IO request itself.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit

DEFAULT_PATH = "/socket.io/"
DEFAULT_TRANSPORTS: tuple[str, ...] = ("polling", "websocket")
KNOWN_TRANSPORTS = ("polling", "websocket", "webtransport")
EIO_VERSION = "4"

_SECURE = {"https": True, "wss": True, "http": False, "ws": False}


@dataclass
class ClientRequest:
    """The request a socket.io-client (or a raw Engine.IO client) sends, derived from its URL and options."""

    url: str  # the URL as given to io() (or the raw request URL)
    scheme: str  # "https" for wss/https, "http" for ws/http
    host: str  # hostname, IPv6 without brackets
    port: int  # explicit port, else 443/80
    namespace: str  # the URL's path ("/" when empty): the Socket.IO namespace the client joins
    path: str  # the Engine.IO path, always ending in "/" ("/socket.io/"); for raw URLs the request path
    transports: tuple[str, ...]
    raw: bool  # the URL was a raw Engine.IO request
    raw_query: str = ""  # for raw URLs: the query given (without "?"); for io() URLs: the URL's query, if any

    @property
    def secure(self) -> bool:
        return self.scheme == "https"

    @property
    def default_port(self) -> bool:
        return self.port == (443 if self.secure else 80)

    @property
    def netloc(self) -> str:
        """host[:port] as it appears in a URL and the Host header (brackets for IPv6, default port omitted)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.default_port else f"{host}:{self.port}"

    @property
    def host_header(self) -> str:
        return self.netloc

    @property
    def first_transport(self) -> str:
        return self.transports[0] if self.transports else "polling"

    def query_for(self, transport: str | None = None) -> str:
        """The query string of the Engine.IO request for TRANSPORT (first transport by default).

        A raw request keeps its query exactly as given unless another transport is asked for explicitly
        (then only its ``transport`` parameter changes, and only when it is an Engine.IO request at all).
        """
        if self.raw:
            pairs = parse_qsl(self.raw_query, keep_blank_values=True)
            if transport is None or not any(k == "EIO" for k, _ in pairs):
                return self.raw_query  # a raw request that is not Engine.IO: sent exactly as given
            if any(k == "transport" for k, _ in pairs):
                pairs = [(k, transport if k == "transport" else v) for k, v in pairs]
            else:
                pairs.append(("transport", transport))
            return urlencode(pairs, safe="/,:")
        transport = transport or self.first_transport
        # engine.io-client: the user's query first, then EIO and transport (the polling timestamp `t` is omitted:
        # it is random and changes nothing for routing).
        pairs = [
            (k, v)
            for k, v in parse_qsl(self.raw_query, keep_blank_values=True)
            if k not in ("EIO", "transport")
        ]
        pairs += [("EIO", EIO_VERSION), ("transport", transport)]
        return urlencode(pairs, safe="/,:")

    @property
    def query(self) -> str:
        """The query of the client's first request ("EIO=4&transport=polling")."""
        return self.query_for()

    @property
    def request_path(self) -> str:
        """The path of every Engine.IO request ("/socket.io/")."""
        return self.path

    def request_uri(self, transport: str | None = None) -> str:
        """The request target as nginx receives it: "/socket.io/?EIO=4&transport=polling"."""
        q = self.query_for(transport)
        return f"{self.path}?{q}" if q else self.path

    def url_for(self, transport: str | None = None) -> str:
        """The full http(s) URL of the Engine.IO request for TRANSPORT (probes use it; ws(s) for the tunnel)."""
        return f"{self.scheme}://{self.netloc}{self.request_uri(transport)}"

    def ws_url_for(self, transport: str = "websocket") -> str:
        """The ws(s):// URL of the WebSocket request."""
        scheme = "wss" if self.secure else "ws"
        return f"{scheme}://{self.netloc}{self.request_uri(transport)}"

    def request_line(self, transport: str | None = None) -> str:
        return f"GET {self.request_uri(transport)}"

    def origin(self) -> str:
        """scheme://host[:port] of the service: what goes before the path in io()."""
        return f"{'wss' if self.secure else 'ws'}://{self.netloc}"

    def describe(self) -> str:
        """One line for an on-call engineer: the request made and the namespace joined."""
        if self.raw:
            return f"raw Engine.IO request {self.request_line()} to {self.netloc}"
        return (
            f"requests {self.request_line()} on {self.netloc} and joins namespace {self.namespace}"
            f" (transports: {', '.join(self.transports)})"
        )


def normalize_path_option(path: str) -> str:
    """socket.io-client's `path` option as engine.io-client uses it: one trailing slash added.

    engine.io-client does ``path.replace(/\\/$/, "") + "/"``; a missing leading slash would glue the path to the
    port (``https://host:443dev/...``), which is surely a typo, so one is added.
    """
    p = path.strip()
    if not p:
        return DEFAULT_PATH
    if not p.startswith("/"):
        p = "/" + p
    if not p.endswith("/"):
        p += "/"
    return p


def looks_raw(path: str, query: str) -> bool:
    """A URL that already is an Engine.IO request: it holds `/socket.io/?…` or an `EIO=` parameter."""
    if "EIO=" in query:
        return True
    return path.endswith("/socket.io/") or (path.endswith("/socket.io") and bool(query))


# "javascript:alert(1)", "mailto:x": a scheme without "//" (a host:port without a scheme has digits after ":").
_OTHER_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):(?!\d+(?:[/?#]|$))")


def _parse(url: str) -> tuple[str, str, int, str, str]:
    text = url.strip()
    if not text:
        raise ValueError(
            "the client URL is empty; pass the URL given to io(), e.g. --url wss://api.example.com"
        )
    if text.startswith("//"):
        text = "https:" + text
    elif (m := _OTHER_SCHEME.match(text)) and "://" not in text:
        raise ValueError(
            f"the client URL {url!r} has scheme {m.group(1)!r}; socket.io-client takes ws://, wss://, http:// or https://"
        )
    elif "://" not in text:
        # socket.io-client outside a browser prefixes "https://" to a URL without a scheme.
        text = "https://" + text
    try:
        u = urlsplit(text)
        port = u.port
    except ValueError as e:
        raise ValueError(
            f"cannot parse the client URL {url!r} ({e}); use e.g. wss://api.example.com/namespace"
        ) from e
    scheme = u.scheme.lower()
    if scheme not in _SECURE:
        raise ValueError(
            f"the client URL {url!r} has scheme {u.scheme!r}; socket.io-client takes ws://, wss://, http:// or https://"
        )
    host = u.hostname or ""
    if not host:
        raise ValueError(f"the client URL {url!r} has no host; use e.g. wss://api.example.com/namespace")
    if any(c.isspace() for c in host):
        raise ValueError(f"the client URL {url!r} has spaces in its host; check the quoting of --url")
    if ":" in host:
        try:
            ipaddress.IPv6Address(host.split("%")[0])
        except ValueError as e:
            raise ValueError(f"the client URL {url!r} has an invalid IPv6 address {host!r}") from e
    if port == 0:
        raise ValueError(f"the client URL {url!r} has port 0, which no server listens on; give the real port")
    secure = _SECURE[scheme]
    return ("https" if secure else "http"), host, port or (443 if secure else 80), u.path, u.query


def client_request(
    url: str,
    path: str | None = None,
    transports: tuple[str, ...] | list[str] | str = DEFAULT_TRANSPORTS,
    raw: bool = False,
) -> ClientRequest:
    """What ``io(url, {path, transports})`` sends; raw Engine.IO URLs (or ``raw=True``) are the request itself.

    Raises ValueError with one sentence on a URL or option that no client could use.
    """
    if isinstance(transports, str):
        transports = tuple(t.strip() for t in transports.split(",") if t.strip())
    transports = tuple(transports) or DEFAULT_TRANSPORTS
    unknown = [t for t in transports if t not in KNOWN_TRANSPORTS]
    if unknown:
        raise ValueError(
            f"unknown transport {unknown[0]!r}; socket.io-client knows polling, websocket and webtransport"
        )
    scheme, host, port, url_path, query = _parse(url)
    if raw or looks_raw(url_path, query):
        named = [v for k, v in parse_qsl(query, keep_blank_values=True) if k == "transport"]
        if named and named[0] in KNOWN_TRANSPORTS:
            transports = (named[0],)  # a raw request is one request over one transport
        return ClientRequest(
            url=url.strip(),
            scheme=scheme,
            host=host,
            port=port,
            namespace="/",
            path=url_path or "/",
            transports=transports,
            raw=True,
            raw_query=query,
        )
    return ClientRequest(
        url=url.strip(),
        scheme=scheme,
        host=host,
        port=port,
        namespace=url_path or "/",
        path=normalize_path_option(path) if path is not None else DEFAULT_PATH,
        transports=transports,
        raw=False,
        raw_query=query,
    )


def js_string(s: str) -> str:
    """A JavaScript single-quoted string literal."""
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def client_code(
    origin: str,
    path: str | None,
    namespace: str = "/",
    transports: tuple[str, ...] = DEFAULT_TRANSPORTS,
    auth: bool = True,
) -> str:
    """socket.io-client code that makes exactly the given request: ``io('wss://h/ns', {path, transports})``.

    ``path`` is written without the trailing slash (as users write it; engine.io-client adds it back).
    """
    url = origin.rstrip("/") + ("" if namespace in ("", "/") else namespace)
    opts: list[str] = []
    if path and normalize_path_option(path) != DEFAULT_PATH:
        opts.append(f"path: {js_string(normalize_path_option(path).rstrip('/'))}")
    if auth:
        opts.append("auth: { token }")
    if tuple(transports) != DEFAULT_TRANSPORTS:
        opts.append("transports: [" + ", ".join(js_string(t) for t in transports) + "]")
    if not opts:
        return f"const socket = io({js_string(url)});"
    body = ",\n".join(f"  {o}" for o in opts)
    return f"const socket = io({js_string(url)}, {{\n{body},\n}});"
