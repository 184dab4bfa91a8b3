"""What nginx does with one request: which server, which location, which URI goes upstream.

This is a port of nginx's own algorithm (http/ngx_http_core_module.c ``ngx_http_core_find_location`` /
``ngx_http_core_find_static_location``, ``ngx_http_parse_complex_uri``, ``ngx_http_find_virtual_server``,
proxy ``ngx_http_proxy_create_request``), not a re-invention of it, because the runbook's users were misled
by folklore ("location order is VERY IMPORTANT"): only nginx's real behaviour may be reported. The
differential test (tests/nginx/test_differential.py) holds this module to what a real nginx does.

What is modelled: server selection (listen port/address, ``default_server``, exact / ``*.`` / ``.*`` /
regex ``server_name``), URI normalisation, location selection (``=``, ``^~``, longest prefix whatever the
order, nested locations, regex locations in file order, named locations never matched), the automatic 301 of a
slash-ended location holding ``proxy_pass``, the rewrite module (``rewrite``/``return``/``if``/``break``/``set``
at server and location level, ``last``/``break``/``redirect``/``permanent``), and the URI ``proxy_pass`` sends.
What cannot be known offline (file tests in ``if``, variables nobody can evaluate) is said in ``notes``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from wsdoctor.nginx.model import Config, Directive

# Content handlers that make nginx answer a slash-less request for a slash-ended location with a 301.
AUTO_REDIRECT_HANDLERS = frozenset(
    {"proxy_pass", "fastcgi_pass", "uwsgi_pass", "scgi_pass", "memcached_pass", "grpc_pass"}
)
REWRITE_DIRECTIVES = frozenset({"rewrite", "return", "if", "break", "set"})
MAX_REWRITE_CYCLES = 10  # nginx: "rewrite or internal redirection cycle" after 10 URI changes


@dataclass
class Route:
    """nginx's handling of one request, each step with the directive that decided it."""

    uri: str  # the raw request URI (path?query) the client sends
    normalized: str  # the normalized path nginx matches on ("" when nginx answers 400)
    server: Directive | None
    server_reason: str
    location: Directive | None
    location_reason: str
    location_label: str
    candidates: list[Directive] = field(default_factory=list)
    redirect: str | None = None  # Location of nginx's automatic 301 (slash-ended location with proxy_pass)
    return_status: int | None = None  # status of a `return` (or a redirecting `rewrite`, or 400)
    proxy_pass: Directive | None = None  # the proxy_pass in effect (None: nginx serves files)
    upstream_target: str = ""  # "http://api-aiwm-ws"
    upstream_name: str | None = None  # "api-aiwm-ws" or "127.0.0.1:3350"
    upstream: Directive | None = None  # the `upstream` block when upstream_name names one
    upstream_servers: list[str] = field(default_factory=list)
    upstream_uri: str | None = None  # the URI sent upstream, with ?args
    notes: list[str] = field(default_factory=list)
    # Extras beyond the agreed API.
    return_location: str | None = None  # Location header of a `return 30x URL` / redirecting rewrite
    return_text: str | None = None  # body of `return NNN "text"`
    return_directive: Directive | None = None  # the `return` / `rewrite` that answered
    final_uri: str = ""  # r->uri after rewrites (what locations were matched against last)
    args: str = ""  # the query string after rewrites
    rewrites: list[Directive] = field(default_factory=list)  # rewrites that changed the URI, in order
    if_block: Directive | None = None  # an `if` inside the location whose condition held (its config applies)
    shadowed_prefix: Directive | None = None  # the longest prefix a regex location took the request from
    ssl_mismatch: bool = False  # the client speaks TLS to a port nginx serves without `ssl` (or the reverse)
    request: _Request | None = field(
        default=None, repr=False
    )  # variables' context (effective.forwarded_headers)

    @property
    def answered_by_nginx(self) -> bool:
        """nginx itself answers (redirect, return, 400, static files) instead of proxying."""
        return self.redirect is not None or self.return_status is not None or self.proxy_pass is None

    @property
    def config_block(self) -> Directive | None:
        """The block whose configuration serves the request: the matched ``if`` inside the location, else it."""
        return self.if_block or self.location


# --- URI normalisation (ngx_http_parse_complex_uri) ----------------------------------------------------------


def _usual(ch: int) -> bool:
    """nginx's ``usual`` table: characters that need no special handling in a URI path."""
    if ch < 0x20 or ch == 0x7F:
        return False
    if ch >= 0x80:
        return True
    return ch not in b" #%+./?"


@dataclass
class ParsedUri:
    path: str  # r->uri: decoded, dots resolved, slashes merged
    args: str  # r->args: the raw query
    quoted: bool  # the path held a %XX (nginx re-escapes the URI it sends upstream then)
    unparsed: str  # r->unparsed_uri: the request target as sent
    plus: bool = False  # the path held a "+" (nginx escapes rewrite captures in arguments then)


def parse_uri(uri: str, merge_slashes: bool = True) -> ParsedUri | None:
    """Split and normalise a request target as nginx does; None when nginx answers 400 Bad Request."""
    raw = uri.encode("utf-8", "surrogateescape")
    if not raw.startswith(b"/"):
        if raw.startswith(b"?") or raw == b"":
            raw = b"/" + raw
        else:
            return None
    out = bytearray()
    sw_usual, sw_slash, sw_dot, sw_dot_dot, sw_quoted, sw_quoted_second = range(6)
    state = sw_usual
    quoted_state = sw_usual
    decoded = 0
    quoted = False
    args = b""
    n = len(raw)
    i = 0
    ch = raw[0]
    i = 1
    end_state_checks = True

    def dot_dot() -> bool:
        # u -= 4 then back to the previous slash; False when that climbs above the root
        pos = len(out) - 4
        while True:
            if pos < 0:
                return False
            if out[pos] == 0x2F:
                del out[pos + 1 :]
                return True
            pos -= 1

    while i <= n:
        nxt = raw[i] if i < n else 0x0A
        if state == sw_usual:
            if _usual(ch):
                out.append(ch)
                ch = nxt
                i += 1
                continue
            if ch == 0x2F:
                state = sw_slash
                out.append(ch)
            elif ch == 0x25:
                quoted_state = state
                state = sw_quoted
            elif ch == 0x3F:
                args = raw[i:]
                end_state_checks = False
                break
            elif ch == 0x23:
                end_state_checks = False
                break
            else:
                out.append(ch)
            ch = nxt
            i += 1
        elif state == sw_slash:
            if _usual(ch):
                state = sw_usual
                out.append(ch)
                ch = nxt
                i += 1
                continue
            if ch == 0x2F:
                if not merge_slashes:
                    out.append(ch)
            elif ch == 0x2E:
                state = sw_dot
                out.append(ch)
            elif ch == 0x25:
                quoted_state = state
                state = sw_quoted
            elif ch == 0x3F:
                args = raw[i:]
                end_state_checks = False
                break
            elif ch == 0x23:
                end_state_checks = False
                break
            else:
                state = sw_usual
                out.append(ch)
            ch = nxt
            i += 1
        elif state == sw_dot:
            if _usual(ch):
                state = sw_usual
                out.append(ch)
                ch = nxt
                i += 1
                continue
            if ch == 0x2F:
                state = sw_slash
                out.pop()
            elif ch == 0x2E:
                state = sw_dot_dot
                out.append(ch)
            elif ch == 0x25:
                quoted_state = state
                state = sw_quoted
            elif ch == 0x3F:
                out.pop()
                args = raw[i:]
                end_state_checks = False
                break
            elif ch == 0x23:
                out.pop()
                end_state_checks = False
                break
            else:
                state = sw_usual
                out.append(ch)
            ch = nxt
            i += 1
        elif state == sw_dot_dot:
            if _usual(ch):
                state = sw_usual
                out.append(ch)
                ch = nxt
                i += 1
                continue
            if ch in (0x2F, 0x3F, 0x23):
                if not dot_dot():
                    return None
                if ch == 0x3F:
                    args = raw[i:]
                    end_state_checks = False
                    break
                if ch == 0x23:
                    end_state_checks = False
                    break
                state = sw_slash
            elif ch == 0x25:
                quoted_state = state
                state = sw_quoted
            else:
                state = sw_usual
                out.append(ch)
            ch = nxt
            i += 1
        elif state == sw_quoted:
            quoted = True
            c = ch | 0x20
            if 0x30 <= ch <= 0x39:
                decoded = ch - 0x30
            elif 0x61 <= c <= 0x66:
                decoded = c - 0x61 + 10
            else:
                return None
            state = sw_quoted_second
            ch = nxt
            i += 1
        else:  # sw_quoted_second
            c = ch | 0x20
            if 0x30 <= ch <= 0x39:
                ch = (decoded << 4) + ch - 0x30
                if ch in (0x25, 0x23):
                    state = sw_usual
                    out.append(ch)
                    ch = nxt
                    i += 1
                    continue
                if ch == 0:
                    return None
                state = quoted_state
                continue  # the decoded character goes through the state machine again
            if 0x61 <= c <= 0x66:
                ch = (decoded << 4) + c - 0x61 + 10
                if ch == 0x3F:
                    state = sw_usual
                    out.append(ch)
                    ch = nxt
                    i += 1
                    continue
                state = quoted_state
                continue
            return None

    if end_state_checks:
        if state in (sw_quoted, sw_quoted_second):
            return None
        if state == sw_dot:
            out.pop()
        elif state == sw_dot_dot and not dot_dot():
            return None
    if b"#" in args:
        args = args[: args.index(b"#")]
    return ParsedUri(
        path=out.decode("utf-8", "surrogateescape"),
        args=args.decode("utf-8", "surrogateescape"),
        quoted=quoted,
        unparsed=uri,
        plus=b"+" in raw.split(b"?", 1)[0],
    )


def normalize_uri(path: str) -> str | None:
    """The normalized path nginx matches locations on (``%XX`` decoded, ``.``/``..`` resolved, ``//`` merged).

    None when nginx would answer 400 (``..`` above the root, a bad ``%`` escape, ``%00``).
    """
    p = parse_uri(path)
    return None if p is None else p.path


# ngx_escape_uri(NGX_ESCAPE_URI): " ", "#", "%", "?", controls and bytes >= 0x7f; uppercase hex.
def escape_uri(text: str) -> str:
    out = []
    for b in text.encode("utf-8", "surrogateescape"):
        if b <= 0x20 or b >= 0x7F or b in (0x23, 0x25, 0x3F):
            out.append(f"%{b:02X}")
        else:
            out.append(chr(b))
    return "".join(out)


def escape_args(text: str) -> str:
    """ngx_escape_uri(NGX_ESCAPE_ARGS): also " ", "#", "%", "&", "+", ";", "?" (uppercase hex)."""
    out = []
    for b in text.encode("utf-8", "surrogateescape"):
        if b <= 0x20 or b >= 0x7F or b in b"#%&+;?":
            out.append(f"%{b:02X}")
        else:
            out.append(chr(b))
    return "".join(out)


# --- listen / server selection ----------------------------------------------------------------------------


@dataclass
class Listen:
    directive: Directive | None  # None: the implicit `listen *:80` of a server without listen
    addr: str  # "*" (IPv4 wildcard), "[::]", "127.0.0.1", "[::1]", "unix:/path", a host name
    port: int | None
    ssl: bool
    default: bool
    http2: bool = False
    proxy_protocol: bool = False

    @property
    def wildcard(self) -> bool:
        return self.addr in ("*", "0.0.0.0", "[::]")

    @property
    def ipv6(self) -> bool:
        return self.addr.startswith("[")

    def describe(self) -> str:
        a = "" if self.addr == "*" else f"{self.addr}:"
        flags = " ssl" if self.ssl else ""
        return f"{a}{self.port}{flags}"


def parse_listen(d: Directive) -> Listen:
    """One ``listen`` directive: address, port and the flags routing cares about."""
    spec = d.args[0] if d.args else "80"
    flags = set(d.args[1:])
    ssl = "ssl" in flags
    default = "default_server" in flags or "default" in flags
    addr, port = "*", None
    if spec.startswith("unix:"):
        addr = spec
    elif spec.startswith("["):
        close = spec.find("]")
        addr = spec[: close + 1] if close > 0 else spec
        rest = spec[close + 1 :] if close > 0 else ""
        port = int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else 80
    elif spec.isdigit():
        port = int(spec)
    elif ":" in spec:
        host, _, p = spec.rpartition(":")
        addr = host or "*"
        port = int(p) if p.isdigit() else 80
    else:
        addr, port = spec, 80
    if addr == "0.0.0.0":
        addr = "*"
    return Listen(
        d, addr, port, ssl, default, http2="http2" in flags, proxy_protocol="proxy_protocol" in flags
    )


def server_listens(server: Directive) -> list[Listen]:
    """The server's TCP listen sockets; a server without ``listen`` listens on ``*:80`` (nginx as root).

    ``listen … quic`` (UDP, HTTP/3) is left out: WebSocket clients reach nginx over TCP. The old
    ``ssl on;`` (removed in nginx 1.25.1) makes every listen of the server a TLS one.
    """
    ls = [parse_listen(d) for d in server.children("listen") if "quic" not in d.args[1:]]
    ssl_on = server.child("ssl")
    if ssl_on is not None and ssl_on.args and ssl_on.args[0].lower() == "on":
        for x in ls:
            x.ssl = True
    return ls or [Listen(None, "*", 80, False, False)]


def _norm_host(host: str) -> str:
    h = host.strip().lower()
    if h.startswith("["):
        close = h.find("]")
        return h[: close + 1] if close > 0 else h
    if h.count(":") == 1:
        h = h.split(":", 1)[0]
    return h.rstrip(".")


def _server_names(server: Directive) -> list[str]:
    names: list[str] = []
    for d in server.children("server_name"):
        names.extend(d.args)
    return names or [""]


def _pcre_to_python(pattern: str) -> str:
    """PCRE syntax Python's ``re`` spells differently: named groups ``(?<n>…)`` / ``(?'n'…)``."""
    pattern = re.sub(r"\(\?<([A-Za-z_][A-Za-z0-9_]*)>", r"(?P<\1>", pattern)
    return re.sub(r"\(\?'([A-Za-z_][A-Za-z0-9_]*)'", r"(?P<\1>", pattern)


_RE_CACHE: dict[tuple[str, bool], re.Pattern[str] | None] = {}


def compile_regex(pattern: str, caseless: bool = False) -> re.Pattern[str] | None:
    """A PCRE pattern from the config compiled for Python (ASCII classes like PCRE); None if it cannot be."""
    key = (pattern, caseless)
    if key in _RE_CACHE:
        return _RE_CACHE[key]
    flags = re.ASCII | (re.IGNORECASE if caseless else 0)
    try:
        rx: re.Pattern[str] | None = re.compile(_pcre_to_python(pattern), flags)
    except re.error:
        rx = None
    if len(_RE_CACHE) > 4096:
        _RE_CACHE.clear()
    _RE_CACHE[key] = rx
    return rx


def _match_server_name(servers: list[Directive], host: str) -> tuple[Directive | None, str]:
    """nginx's order: exact name, longest ``*.`` wildcard, longest ``.*`` wildcard, first regex (config order).

    Names are registered as ``ngx_hash_add_key`` does, in config order, the first of conflicting names
    winning: ``.x`` claims the exact name ``x`` too (so a later ``server_name x`` is ignored, and a ``.x``
    after an exact ``x`` is ignored entirely), ``*.x`` and ``.x`` claim the wildcard ``x``.
    """
    exact: dict[str, tuple[Directive, str]] = {}
    head: dict[str, tuple[Directive, str]] = {}  # "example.com" -> server, for *.example.com / .example.com
    tail: dict[str, tuple[Directive, str]] = {}  # "www.example." -> server, for www.example.*
    for s in servers:
        for name in _server_names(s):
            if name.startswith("~"):
                continue
            n = name.lower()
            if n.startswith("*."):
                head.setdefault(n[2:], (s, name))
            elif n.startswith("."):
                if n[1:] in exact:
                    continue  # "conflicting server name": ignored as a whole
                exact[n[1:]] = (s, name)
                head.setdefault(n[1:], (s, name))
            elif n.endswith(".*"):
                tail.setdefault(n[:-1], (s, name))
            else:
                exact.setdefault(n, (s, name))
    if host in exact:
        srv, name = exact[host]
        how = (
            "matches exactly"
            if not name.startswith(".")
            else "matches it (a leading-dot name covers the bare name)"
        )
        return srv, f'server_name "{name}" {how}'
    best: tuple[Directive, str] | None = None
    best_len = -1
    for base, entry in head.items():
        if host.endswith("." + base) and len(base) > best_len:
            best, best_len = entry, len(base)
    if best is not None:
        return best[0], f'server_name "{best[1]}" is the longest wildcard matching "{host}"'
    for prefix, entry in tail.items():
        if host.startswith(prefix) and len(host) > len(prefix) and len(prefix) > best_len:
            best, best_len = entry, len(prefix)
    if best is not None:
        return best[0], f'server_name "{best[1]}" is the longest trailing wildcard matching "{host}"'
    for s in servers:
        for name in _server_names(s):
            if not name.startswith("~"):
                continue
            pat = name[1:]
            rx = compile_regex(pat, caseless=any("A" <= c <= "Z" for c in pat))
            if rx is not None and rx.search(host):
                return s, f'server_name "{name}" is the first regular expression matching "{host}"'
    return None, ""


def select_server(
    config: Config, host: str, port: int, ssl: bool | None = None, addr: str | None = None
) -> tuple[Directive | None, str]:
    """The ``server`` nginx picks for a request to HOST on PORT, and one sentence saying why.

    ADDR (the local address the client connects to) is usually unknown offline; then every listen on PORT
    is taken as one group, which is exact unless servers listen on different addresses of that port.
    """
    groups: list[tuple[Directive, Listen]] = []
    listening: set[str] = set()
    for s in config.servers():
        for ls in server_listens(s):
            if ls.port is not None:
                listening.add(str(ls.port))
            if ls.port == port:
                groups.append((s, ls))
    if not groups:
        ports = ", ".join(sorted(listening, key=int)) or "none"
        return None, f"no server listens on port {port} (ports with a server: {ports})"
    if addr is not None:
        a = addr if not (":" in addr and not addr.startswith("[")) else f"[{addr}]"
        specific = [(s, ls) for s, ls in groups if ls.addr == a]
        if specific:
            groups = specific
        else:
            fam6 = a.startswith("[")
            groups = [(s, ls) for s, ls in groups if ls.wildcard and ls.ipv6 == fam6] or groups
    servers: list[Directive] = []
    seen: set[int] = set()
    for s, _ in groups:
        if id(s) not in seen:
            seen.add(id(s))
            servers.append(s)
    default_pair = next(((s, ls) for s, ls in groups if ls.default), None)
    default = default_pair[0] if default_pair else servers[0]
    chosen_listen = {id(s): ls for s, ls in reversed(groups)}  # first listen of each server on this port
    h = _norm_host(host)
    s, why = _match_server_name(servers, h)
    if s is None:
        s = default
        if default_pair:
            why = f'no server_name matches "{h}"; the default_server of port {port} answers ({default.where})'
        else:
            why = (
                f'no server_name matches "{h}"; the first server listening on port {port} is the default '
                f"({default.where})"
            )
    addrs = {ls.addr for _, ls in groups}
    if addr is None and len(addrs) > 1:
        why += (
            f" (servers listen on several addresses of port {port}: {', '.join(sorted(addrs))}; assumed one)"
        )
    if ssl is not None:
        ls = chosen_listen[id(s)]
        if ssl and not ls.ssl:
            why += f"; note: port {port} of this server is not a `listen … ssl` port, TLS clients will fail"
        elif ssl is False and ls.ssl:
            why += f"; note: port {port} of this server expects TLS (`ssl`), plain HTTP clients get 400"
    return s, why


# --- locations ------------------------------------------------------------------------------------------------


@dataclass
class LocSpec:
    kind: str  # "=", "^~", "" (prefix), "~", "~*", "@"
    name: str

    @property
    def regex(self) -> bool:
        return self.kind in ("~", "~*")

    @property
    def static(self) -> bool:
        return self.kind in ("=", "^~", "")


def location_spec(d: Directive) -> LocSpec | None:
    """``location [=|^~|~|~*] name`` / ``location @name`` / ``location =name`` as nginx reads it."""
    a = d.args
    if len(a) >= 2:
        if a[0] in ("=", "^~", "~", "~*"):
            return LocSpec(a[0], a[1])
        return None
    if not a:
        return None
    name = a[0]
    if name.startswith("="):
        return LocSpec("=", name[1:])
    if name.startswith("^~"):
        return LocSpec("^~", name[2:])
    if name.startswith("~*"):
        return LocSpec("~*", name[2:])
    if name.startswith("~"):
        return LocSpec("~", name[1:])
    if name.startswith("@"):
        return LocSpec("@", name)
    return LocSpec("", name)


def location_label(d: Directive | None) -> str:
    if d is None:
        return ""
    return f"location {' '.join(d.args)} ({d.where})"


def has_auto_redirect(loc: Directive) -> bool:
    """nginx sets ``auto_redirect`` on a location whose name ends in "/" when a *_pass is in it."""
    spec = location_spec(loc)
    if spec is None or not spec.name.endswith("/"):
        return False
    return any(d.name in AUTO_REDIRECT_HANDLERS for d in loc.block or ())


_OK, _DONE, _AGAIN, _DECLINED = "ok", "done", "again", "declined"


@dataclass
class _Search:
    uri: str
    loc: Directive | None = None  # r->loc_conf as the search sets it
    candidates: list[Directive] = field(default_factory=list)
    regex_loc: Directive | None = None
    prefix_loc: Directive | None = None
    noregex_stop: Directive | None = None
    captures: re.Match[str] | None = None
    bad_regex: list[Directive] = field(default_factory=list)


def _levels(
    block: list[Directive] | None,
) -> tuple[list[tuple[LocSpec, Directive]], list[tuple[LocSpec, Directive]]]:
    statics: list[tuple[LocSpec, Directive]] = []
    regexes: list[tuple[LocSpec, Directive]] = []
    for d in block or ():
        if d.name != "location" or d.block is None:
            continue
        spec = location_spec(d)
        if spec is None:
            continue
        if spec.static:
            statics.append((spec, d))
        elif spec.regex:
            regexes.append((spec, d))
    return statics, regexes


def _find_static(
    statics: list[tuple[LocSpec, Directive]], uri: str, st: _Search
) -> tuple[str, Directive | None]:
    """ngx_http_core_find_static_location, as its tree walk behaves.

    nginx joins an exact and a prefix location of the same name into one tree node whose ``auto_redirect``
    is either one's and whose configuration is the exact one's when it exists.
    """
    exact: Directive | None = None
    same_name: Directive | None = None
    slashed_exact: Directive | None = None
    slashed_prefix: Directive | None = None
    best: Directive | None = None
    best_len = -1
    slashed = uri + "/"
    for spec, d in statics:
        name = spec.name
        if spec.kind == "=":
            if name == uri and exact is None:
                exact = d
                st.candidates.append(d)
            elif name == slashed and slashed_exact is None:
                slashed_exact = d
            continue
        if uri.startswith(name):
            st.candidates.append(d)
            if len(name) > best_len:
                best, best_len = d, len(name)
            if name == uri and same_name is None:
                same_name = d
        elif name == slashed and slashed_prefix is None:
            slashed_prefix = d
    if exact is not None:
        return _OK, exact
    if same_name is not None:
        return _AGAIN, same_name
    if any(d is not None and has_auto_redirect(d) for d in (slashed_exact, slashed_prefix)):
        return _DONE, slashed_exact or slashed_prefix
    if best is not None:
        return _AGAIN, best
    return _DECLINED, None


def _find_location(block: list[Directive] | None, st: _Search) -> str:
    """ngx_http_core_find_location: static tree, nested locations, then regexes (unless ``^~``)."""
    statics, regexes = _levels(block)
    rc, loc = _find_static(statics, st.uri, st)
    noregex = False
    if loc is not None:
        st.loc = loc
    if rc == _AGAIN:
        assert loc is not None
        st.prefix_loc = loc
        spec = location_spec(loc)
        noregex = spec is not None and spec.kind == "^~"
        if noregex:
            st.noregex_stop = loc
        rc = _find_location(loc.block, st)
    if rc in (_OK, _DONE):
        return rc
    for spec, d in regexes:
        rx = compile_regex(spec.name, caseless=spec.kind == "~*")
        if rx is None:
            st.bad_regex.append(d)
            continue
        m = rx.search(st.uri)
        if m is None:
            continue
        if noregex:
            st.candidates.append(d)  # matches, but the ^~ prefix keeps nginx from trying it
            continue
        st.candidates.append(d)
        st.loc = d
        st.regex_loc = d
        st.captures = m
        _find_location(d.block, st)
        return _OK
    return rc


def select_location(server: Directive, path: str) -> tuple[Directive | None, list[Directive], str]:
    """The location nginx picks for the normalized PATH in SERVER, the matching candidates, and why."""
    loc, candidates, reason, _rc, _st = _select(server, path)
    return loc, candidates, reason


def _select(server: Directive, path: str) -> tuple[Directive | None, list[Directive], str, str, _Search]:
    st = _Search(path)
    rc = _find_location(server.block, st)
    loc = st.loc
    if loc is None:
        reason = (
            f"no location matches {path}: no prefix location is a prefix of it and no regex location matches, "
            "so nginx serves it as a file from the server's root (404 when there is none)"
        )
    elif rc == _DONE:
        name = location_spec(loc).name  # type: ignore[union-attr]
        reason = (
            f"{path} has no location of its own and location {name} holds proxy_pass, so nginx answers "
            f"301 to {name} (a WebSocket handshake fails on it)"
        )
    else:
        spec = location_spec(loc)
        assert spec is not None
        if spec.kind == "=":
            reason = f"exact location = {spec.name} matches"
        elif spec.regex:
            prefix = ""
            shadowed = location_spec(st.prefix_loc) if st.prefix_loc is not None else None
            if shadowed is not None and st.prefix_loc is not loc:
                prefix = f"; it takes precedence over the prefix location {shadowed.name}"
                if shadowed.kind == "^~":
                    prefix += " (a nested ^~ stops only the regexes nested with it, not the outer ones)"
            reason = f"regex location {spec.kind} {spec.name} is the first regex, in file order, that matches{prefix}"
        elif spec.kind == "^~":
            reason = f"longest matching prefix ^~ {spec.name}; ^~ stops the regex search"
        else:
            reason = f"longest matching prefix {spec.name} (the order of prefix locations does not matter)"
            if st.noregex_stop is not None and st.noregex_stop is not loc:
                reason += f"; ^~ {location_spec(st.noregex_stop).name} stops the regex search"  # type: ignore[union-attr]
            else:
                reason += "; no regex location matches"
    if st.bad_regex:
        reason += "; could not evaluate " + ", ".join(location_label(d) for d in st.bad_regex)
    return loc, st.candidates, reason, rc, st


# --- variables and the rewrite module ------------------------------------------------------------------------


@dataclass
class _Request:
    method: str
    scheme: str
    host: str  # $host: the Host header's name, lowercased, no port (or the server_name)
    host_header: str  # the Host header as sent
    port: int
    headers: dict[str, str]  # lowercased names
    unparsed: str
    uri: str
    args: str
    quoted: bool
    plus: bool = False
    server: Directive | None = None
    valid_unparsed: bool = True
    valid_location: bool = True
    internal: bool = False
    captures: re.Match[str] | None = None
    vars: dict[str, str] = field(default_factory=dict)  # `set` variables
    unknown: set[str] = field(default_factory=set)


_VAR = re.compile(r"\$(?:\{([A-Za-z0-9_]+)\}|([A-Za-z_][A-Za-z0-9_]*|[0-9]))")


def _variable(req: _Request, name: str, config: Config | None) -> str | None:
    """The value of $NAME for this request, None when it cannot be known offline."""
    if name.isdigit():
        m = req.captures
        if m is None:
            return ""
        i = int(name)
        try:
            return m.group(i) or ""
        except IndexError:
            return ""
    if name in req.vars:
        return req.vars[name]
    if req.captures is not None and name in req.captures.re.groupindex:
        return req.captures.group(name) or ""
    if name in ("uri", "document_uri"):
        return req.uri
    if name == "request_uri":
        return req.unparsed
    if name in ("args", "query_string"):
        return req.args
    if name == "is_args":
        return "?" if req.args else ""
    if name == "host":
        return req.host
    if name == "scheme":
        return req.scheme
    if name == "https":
        return "on" if req.scheme == "https" else ""
    if name == "server_port":
        return str(req.port)
    if name == "request_method":
        return req.method
    if name == "server_protocol":
        return "HTTP/1.1"
    if name == "server_name":
        return _server_names(req.server)[0] if req.server is not None else ""
    if name.startswith("http_"):
        return req.headers.get(name[5:].replace("_", "-"), "")
    if name.startswith("arg_"):
        want = name[4:].lower()
        for part in req.args.split("&"):
            k, _, v = part.partition("=")
            if k.lower() == want:
                return v
        return ""
    if name.startswith("cookie_"):
        cookie = req.headers.get("cookie", "")
        for part in cookie.split(";"):
            k, _, v = part.strip().partition("=")
            if k == name[7:]:
                return v
        return ""
    if config is not None:
        mp = config.maps().get("$" + name)
        if mp is not None and len(mp.args) >= 2:
            src = expand(mp.args[0], req, config)
            if src is not None:
                return map_lookup(mp, src)
    return None


def expand(
    text: str, req: _Request, config: Config | None = None, escape_captures: bool = False
) -> str | None:
    """TEXT with its variables substituted; None (and the variable recorded) when one is unknowable.

    ESCAPE_CAPTURES: regex captures go in escaped for arguments (``ngx_http_script_copy_capture_code``).
    """
    missing = False

    def sub(m: re.Match[str]) -> str:
        nonlocal missing
        name = m.group(1) or m.group(2)
        v = _variable(req, name, config)
        if v is None:
            missing = True
            req.unknown.add("$" + name)
            return ""
        if escape_captures and (
            name.isdigit() or (req.captures is not None and name in req.captures.re.groupindex)
        ):
            return escape_args(v)
        return v

    out = _VAR.sub(sub, text)
    return None if missing else out


def map_lookup(mp: Directive, value: str) -> str | None:
    """ngx_http_map: exact (case-insensitive unless ``hostnames``), wildcards (``hostnames``), regexes, default."""
    exact: dict[str, str] = {}
    regexes: list[tuple[re.Pattern[str] | None, str]] = []
    default: str | None = ""
    hostnames = False
    for d in mp.block or ():
        if d.name == "#" or not d.args and d.name not in ("hostnames",):
            continue
        key = d.name
        if key == "hostnames" and not d.args:
            hostnames = True
            continue
        if key in ("include", "volatile"):
            continue
        val = d.args[0] if d.args else ""
        if key == "default":
            default = val
        elif key.startswith("~"):
            caseless = key.startswith("~*")
            regexes.append((compile_regex(key[2:] if caseless else key[1:], caseless), val))
        else:
            k = key[1:] if key.startswith("\\") else key
            exact.setdefault(k.lower(), val)
    lookup = value.lower()
    if lookup in exact:
        return exact[lookup]
    if hostnames:
        pass  # wildcard host keys are rare in WebSocket maps; fall through to regexes/default
    for rx, val in regexes:
        if rx is not None and rx.search(value):
            return val
    return default


def _eval_if(d: Directive, req: _Request, config: Config | None, notes: list[str]) -> bool | None:
    a = d.args
    if not a:
        return None
    if a[0] in ("-f", "!-f", "-d", "!-d", "-e", "!-e", "-x", "!-x"):
        notes.append(f"`if ({' '.join(a)})` at {d.where} tests the server's files: not evaluated offline")
        return None
    left = expand(a[0], req, config)
    if left is None:
        notes.append(f"`if ({' '.join(a)})` at {d.where} uses a variable unknown offline: taken as false")
        return None
    if len(a) == 1:
        return left not in ("", "0")
    op = a[1]
    right_raw = a[2] if len(a) > 2 else ""
    if op in ("=", "!="):
        right = expand(right_raw, req, config)
        if right is None:
            return None
        return (left == right) == (op == "=")
    if op in ("~", "~*", "!~", "!~*"):
        rx = compile_regex(right_raw, caseless=op.endswith("*"))
        if rx is None:
            notes.append(f"could not evaluate the regex of `if` at {d.where}")
            return None
        m = rx.search(left)
        if m is not None and not op.startswith("!"):
            req.captures = m
        return (m is not None) != op.startswith("!")
    return None


@dataclass
class _Outcome:
    kind: str  # "continue" (phase done), "last" (search again), "break", "return"
    status: int | None = None
    location: str | None = None
    text: str | None = None
    directive: Directive | None = None
    uri_changed: bool = False  # a flagless rewrite changed the URI: locations are searched again afterwards


_REDIRECT_CODES = (301, 302, 303, 307, 308)


def _run_rewrites(
    block: list[Directive] | None,
    req: _Request,
    config: Config | None,
    route: Route,
    in_location: bool,
) -> _Outcome:
    """Run the rewrite-module directives of one level in order (ngx_http_rewrite_handler)."""
    uri_changed = False
    for d in block or ():
        name = d.name
        if name not in REWRITE_DIRECTIVES:
            continue
        if name == "break":
            return _Outcome("break")
        if name == "set":
            if len(d.args) >= 2:
                v = expand(d.args[1], req, config)
                req.vars[d.args[0].lstrip("$")] = v if v is not None else ""
            continue
        if name == "return":
            return _return_outcome(d, req, config)
        if name == "if":
            cond = _eval_if(d, req, config, route.notes)
            if cond:
                if in_location:
                    route.if_block = d
                out = _run_rewrites(d.block, req, config, route, in_location)
                if out.kind != "continue":
                    return out
                uri_changed = uri_changed or out.uri_changed
            continue
        # rewrite REGEX REPLACEMENT [flag]
        if len(d.args) < 2:
            continue
        pattern, replacement = d.args[0], d.args[1]
        flag = d.args[2] if len(d.args) > 2 else ""
        rx = compile_regex(pattern)
        if rx is None:
            route.notes.append(f"could not evaluate the regex of `rewrite` at {d.where}")
            continue
        m = rx.search(req.uri)
        if m is None:
            continue
        req.captures = m
        redirect = replacement.startswith(("http://", "https://", "$scheme"))
        add_args = True
        if replacement.endswith("?"):  # a final "?" drops the original arguments
            replacement = replacement[:-1]
            add_args = False
        # captures are escaped in the arguments part (and in redirects) when the request had %XX or "+"
        escape = req.quoted or req.plus
        head, qmark, tail = replacement.partition("?")
        redirecting = redirect or flag in ("redirect", "permanent")
        new_head = expand(head, req, config, escape_captures=escape and redirecting)
        new_tail = expand(tail, req, config, escape_captures=escape) if qmark else ""
        if new_head is None or new_tail is None:
            route.notes.append(f"`rewrite` at {d.where} uses a variable unknown offline")
            new = replacement
        else:
            new = new_head + qmark + new_tail
        if redirecting:
            if add_args and req.args:
                new += ("&" if "?" in new else "?") + req.args
            status = 301 if flag == "permanent" else 302
            return _Outcome("return", status, _absolute(new, req, route), None, d)
        path, q, newargs = new.partition("?")
        req.uri = path
        if q:
            req.args = newargs + ("&" + req.args if add_args and req.args else "")
        elif not add_args:
            req.args = ""  # "rewrite … /x?" drops the arguments
        req.valid_unparsed = False
        req.internal = True
        route.rewrites.append(d)
        if flag == "break":
            req.valid_location = False
            return _Outcome("break")
        if flag == "last":
            return _Outcome("last")
        uri_changed = True
    return _Outcome("continue", uri_changed=uri_changed)


def _return_outcome(d: Directive, req: _Request, config: Config | None) -> _Outcome:
    a = d.args
    if not a:
        return _Outcome("return", 500, None, None, d)
    if a[0].isdigit():
        status = int(a[0])
        arg = expand(a[1], req, config) if len(a) > 1 else None
        if status in _REDIRECT_CODES and arg is not None:
            return _Outcome("return", status, arg, None, d)
        return _Outcome("return", status, None, arg, d)
    url = expand(a[0], req, config)
    return _Outcome("return", 302, url, None, d)


def _inherited(d: Directive | None, name: str) -> Directive | None:
    """The nearest ``name`` directive from D outwards (location → parents → server → http)."""
    while d is not None:
        c = d.child(name)
        if c is not None:
            return c
        d = d.parent
    return None


def _flag(d: Directive | None, name: str, default: bool) -> bool:
    c = _inherited(d, name)
    if c is None or not c.args:
        return default
    return c.args[0].lower() == "on"


def _absolute(location: str, req: _Request, route: Route) -> str:
    """What the header filter makes of a relative Location (absolute_redirect, server_name_in_redirect…)."""
    if not location.startswith("/"):
        return location
    at = route.location or route.server
    if not _flag(at, "absolute_redirect", True):
        return location
    if _flag(at, "server_name_in_redirect", False) and req.server is not None:
        host = _server_names(req.server)[0]
    else:
        host = req.host
    port = ""
    if _flag(at, "port_in_redirect", True):
        default = 443 if req.scheme == "https" else 80
        if req.port != default:
            port = f":{req.port}"
    return f"{req.scheme}://{host}{port}{location}"


# --- proxy_pass ---------------------------------------------------------------------------------------------


@dataclass
class ProxyUrl:
    scheme: str  # "http" / "https"
    host: str  # "api-aiwm-ws", "127.0.0.1:3350", "unix:/tmp/s.sock"
    uri: str | None  # the URI part ("/chat/"), None when there is none
    variables: bool


def parse_proxy_pass(url: str) -> ProxyUrl:
    """Split a proxy_pass URL into scheme, host[:port] and the URI part (nginx: anything after host:port)."""
    variables = "$" in url
    scheme, sep, rest = url.partition("://")
    if not sep:
        return ProxyUrl("http", url, None, variables)
    if rest.startswith("unix:"):
        # unix:/path/to.sock[:/uri]
        sock, colon, uri = rest[5:].partition(":")
        return ProxyUrl(scheme.lower(), "unix:" + sock, uri if colon else None, variables)
    i = 0
    if rest.startswith("["):
        i = rest.find("]") + 1
    cut = len(rest)
    for j in range(i, len(rest)):
        if rest[j] in "/?":
            cut = j
            break
    host, uri = rest[:cut], rest[cut:]
    return ProxyUrl(scheme.lower(), host, uri if uri else None, variables)


def _split_port(host: str, scheme: str) -> tuple[str, int | None]:
    if host.startswith("unix:"):
        return host, None
    if host.startswith("["):
        close = host.find("]")
        rest = host[close + 1 :]
        return host[: close + 1], int(rest[1:]) if rest[1:].isdigit() else None
    name, colon, p = host.rpartition(":")
    if colon and p.isdigit():
        return name, int(p)
    return host, None


def _upstream_servers(up: Directive) -> list[str]:
    out = []
    for d in up.children("server"):
        if not d.args:
            continue
        addr = d.args[0]
        if not addr.startswith("unix:") and _split_port(addr, "http")[1] is None:
            addr += ":80"
        out.append(addr)
    return out


def proxy_host(route: Route) -> str | None:
    """``$proxy_host``: the upstream name, with the port when it is not the scheme's default."""
    if route.proxy_pass is None or not route.upstream_name or "$" in route.upstream_name:
        return None
    scheme = route.upstream_target.partition("://")[0] or "http"
    name, port = _split_port(route.upstream_name, scheme)
    default = 443 if scheme == "https" else 80
    if port is None or port == default:
        return name
    return f"{name}:{port}"


def _fill_upstream(route: Route, config: Config, d: Directive, req: _Request, spec: LocSpec | None) -> None:
    url = d.args[0] if d.args else ""
    pu = parse_proxy_pass(url)
    if pu.variables:
        expanded = expand(url, req, config)
        if expanded is not None:
            pu2 = parse_proxy_pass(expanded)
            host, uri_part = pu2.host, pu2.uri
            route.notes.append(
                f"proxy_pass at {d.where} holds variables: nginx resolves {pu2.host} at request time "
                "(a `resolver` is needed unless it names an upstream block)"
            )
        else:
            host, uri_part = pu.host, None
            route.notes.append(
                f"proxy_pass at {d.where} holds variables unknown offline ({', '.join(sorted(req.unknown))})"
            )
    else:
        host, uri_part = pu.host, pu.uri
    route.upstream_target = f"{pu.scheme}://{host}"
    name, port = _split_port(host, pu.scheme)
    route.upstream_name = host
    up = config.upstreams().get(name) if port is None else None
    if up is None and port is None:
        for k, v in config.upstreams().items():
            if k.lower() == name.lower():
                up = v
                break
    if port is not None and any(k.lower() == name.lower() for k in config.upstreams()):
        route.notes.append(
            f'proxy_pass at {d.where}: upstream "{name}" may not have a port (nginx refuses it)'
        )
    route.upstream = up
    if up is not None:
        route.upstream_servers = _upstream_servers(up)
    elif not host.startswith("unix:") and "$" not in host:
        route.upstream_servers = [
            host if port is not None else f"{host}:{443 if pu.scheme == 'https' else 80}"
        ]
    else:
        route.upstream_servers = [host] if "$" not in host else []

    # The URI nginx sends (ngx_http_proxy_create_request).
    if pu.variables and uri_part is not None:
        if uri_part.startswith("?"):
            uri_part = "/" + uri_part
        route.upstream_uri = uri_part
        return
    if pu.variables and expand(url, req, config) is None:
        route.upstream_uri = None
        return
    if uri_part is None:
        if req.valid_unparsed:
            route.upstream_uri = req.unparsed
            return
        loc_len = 0
        vars_uri = ""
    else:
        if (spec is None or spec.regex or spec.kind == "@") and not pu.variables:
            route.notes.append(
                f"proxy_pass at {d.where} has a URI part inside a regex location or `if`: nginx refuses this "
                'config ("proxy_pass" cannot have URI part …)'
            )
        vars_uri = uri_part
        loc_len = len(spec.name) if (req.valid_location and spec is not None and spec.static) else 0
    rest = req.uri[loc_len:] if loc_len <= len(req.uri) else ""
    if req.quoted or req.internal:
        rest = escape_uri(rest)
    uri = (vars_uri if req.valid_location else "") + rest
    if req.args:
        uri += "?" + req.args
    if uri_part is not None and not req.valid_location:
        route.notes.append(
            f"`rewrite … break` changed the URI, so the URI part of proxy_pass at {d.where} is ignored: "
            "nginx sends the rewritten URI"
        )
    route.upstream_uri = uri


# --- the whole request --------------------------------------------------------------------------------------


def route(
    config: Config,
    host: str,
    port: int,
    uri: str,
    scheme: str = "https",
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    addr: str | None = None,
) -> Route:
    """Follow one request through nginx: server, rewrites, location, 301/return, and the upstream URI.

    HEADERS (any case) are the request headers that variables may read (``$http_upgrade``); the Host header
    defaults to HOST[:PORT].
    """
    hdrs = {k.lower(): v for k, v in (headers or {}).items()}
    default_port = 443 if scheme == "https" else 80
    host_header = hdrs.get("host") or (host if port == default_port else f"{host}:{port}")
    hdrs.setdefault("host", host_header)
    server, server_reason = select_server(config, host, port, ssl=scheme == "https", addr=addr)
    r = Route(
        uri=uri,
        normalized="",
        server=server,
        server_reason=server_reason,
        location=None,
        location_reason="",
        location_label="",
    )
    r.ssl_mismatch = "TLS clients will fail" in server_reason or "plain HTTP clients get 400" in server_reason
    if server is None:
        r.location_reason = "no server handles the request, so no location is chosen"
        return r
    merge = _flag(server, "merge_slashes", True)
    parsed = parse_uri(uri, merge_slashes=merge)
    if parsed is None:
        r.return_status = 400
        r.location_reason = f"nginx answers 400 Bad Request to {uri} (bad %-escape or .. above the root)"
        return r
    r.normalized = parsed.path
    req = _Request(
        method=method.upper(),
        scheme=scheme,
        host=_norm_host(host_header) or _server_names(server)[0],
        host_header=host_header,
        port=port,
        headers=hdrs,
        unparsed=uri if uri.startswith("/") else "/" + uri,
        uri=parsed.path,
        args=parsed.args,
        quoted=parsed.quoted,
        plus=parsed.plus,
        server=server,
    )
    r.request = req

    # Server rewrite phase.
    out = _run_rewrites(server.block, req, config, r, in_location=False)
    if out.kind == "return":
        _apply_return(r, out, req)
        what = out.directive.name if out.directive else "return"
        r.location_reason = f"the server-level {what} answers before any location is chosen"
        r.final_uri, r.args = req.uri, req.args
        return r

    for _cycle in range(MAX_REWRITE_CYCLES + 1):
        loc, candidates, reason, rc, st = _select(server, req.uri)
        r.location, r.candidates, r.location_reason = loc, candidates, reason
        r.location_label = location_label(loc)
        r.shadowed_prefix = st.prefix_loc if st.regex_loc is not None and st.regex_loc is loc else None
        req.captures = st.captures
        r.if_block = None
        if rc == _DONE and loc is not None:
            name = location_spec(loc).name  # type: ignore[union-attr]
            target = escape_uri(name) + (f"?{req.args}" if req.args else "")
            r.redirect = _absolute(target, req, r)
            r.final_uri, r.args = req.uri, req.args
            return r
        if loc is None:
            r.final_uri, r.args = req.uri, req.args
            return r
        out = _run_rewrites(loc.block, req, config, r, in_location=True)
        if out.kind == "return":
            _apply_return(r, out, req)
            r.final_uri, r.args = req.uri, req.args
            return r
        if out.kind == "last" or (out.kind == "continue" and out.uri_changed):
            r.notes.append(
                f"rewrite at {r.rewrites[-1].where} changed the URI to {req.uri}: locations searched again"
            )
            continue
        fallback = _try_files(r, req, server, config)
        if fallback == "return":
            r.final_uri, r.args = req.uri, req.args
            return r
        if fallback == "redirect":
            continue
        break
    else:
        r.return_status = 500
        r.notes.append("rewrite or internal redirection cycle: nginx answers 500")
        return r

    r.final_uri, r.args = req.uri, req.args
    assert r.location is not None
    spec = location_spec(r.location)
    pp = r.if_block.child("proxy_pass") if r.if_block is not None else None
    if pp is not None:
        spec = None  # inside `if`: nginx allows no URI part and replaces no prefix
    else:
        pp = r.location.child("proxy_pass")
    r.proxy_pass = pp
    if pp is None:
        other = next((d for d in r.location.block or () if d.name in AUTO_REDIRECT_HANDLERS), None)
        if other is not None:
            r.notes.append(f"{other.name} at {other.where}: not an HTTP proxy, wsdoctor does not follow it")
        return r
    _fill_upstream(r, config, pp, req, spec)
    return r


def _try_files(r: Route, req: _Request, server: Directive, config: Config) -> str:
    """``try_files`` of the chosen location, assuming no file it names exists (a Socket.IO request names none).

    Returns "none" (no try_files, or its fallback is a named location now in ``r.location``), "return"
    (``=code``) or "redirect" (an internal redirect to a URI: locations are searched again).
    """
    loc = r.location
    tf = loc.child("try_files") if loc is not None else None
    if tf is None or len(tf.args) < 2:
        return "none"
    last = tf.args[-1]
    r.notes.append(
        f"try_files at {tf.where}: wsdoctor assumes none of its files exists and follows its last parameter {last}"
    )
    if last.startswith("=") and last[1:].isdigit():
        r.return_status = int(last[1:])
        r.return_directive = tf
        return "return"
    if last.startswith("@"):
        named = next(
            (
                d
                for d in server.block or ()
                if d.name == "location" and d.args == [last] and d.block is not None
            ),
            None,
        )
        if named is None:
            r.notes.append(f"try_files at {tf.where} names {last}, which no `location {last}` defines")
            r.return_status = 500
            return "return"
        r.location, r.location_label = named, location_label(named)
        r.location_reason += f"; then try_files passes it to the named location {last}"
        r.if_block = None
        out = _run_rewrites(named.block, req, config, r, in_location=True)
        if out.kind == "return":
            _apply_return(r, out, req)
            return "return"
        return "none"
    target = expand(last, req, config)
    if target is None:
        r.notes.append(f"try_files at {tf.where} redirects to {last}, which wsdoctor cannot evaluate")
        return "none"
    path, _, args = target.partition("?")
    req.uri, req.args = path, args  # no "?" in the fallback: the arguments are dropped
    req.valid_unparsed, req.internal = False, True
    return "redirect"


def _apply_return(r: Route, out: _Outcome, req: _Request) -> None:
    r.return_status = out.status
    r.return_directive = out.directive
    r.return_text = out.text
    if out.location is not None:
        r.return_location = _absolute(out.location, req, r)
