"""What ``nginx -t`` rejects in the directives wsdoctor reasons about: argument counts, values, block or not.

The loader parses like crossplane with ``check_args=False`` (newer directives must not fail), so a missing ``;``
goes unnoticed there: ``proxy_pass http://up/chat/`` followed by ``proxy_http_version 1.1;`` on the next line
is ONE statement, ``proxy_pass`` with three arguments, which nginx refuses ("invalid number of arguments in
"proxy_pass" directive") — and every check reading that location would otherwise build on a directive nginx
never loads ("proxy_http_version is not set"). This table holds the directives the checks use, with nginx's own
argument masks (``NGX_CONF_TAKE1``, ``TAKE12``, ``1MORE``, ``FLAG``, …) and the messages nginx prints, read from
nginx's sources and held to nginx 1.22 by ``tests/checks/test_args.py`` (which runs the real ``nginx -t``).

Directives inside blocks whose children are data (``map``, ``types``, ``geo``, ``split_clients``) or in any
block this table does not know are not judged: a module wsdoctor does not know may give them any meaning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from wsdoctor.nginx.patch import Patch
from wsdoctor.nginx.routing import server_listens
from wsdoctor.nginx.version import at_least

if TYPE_CHECKING:
    from wsdoctor.nginx.model import Config, Directive

ANY = None  # no upper bound (NGX_CONF_1MORE / 2MORE)


@dataclass(frozen=True)
class Spec:
    low: int  # fewest arguments
    high: int | None  # most arguments (None: no limit)
    block: bool = False  # takes a { } block
    kind: str = ""  # "flag" (on|off), "msec" (a time nginx keeps in milliseconds), "" (not checked)
    single: bool = False  # a second one at the same level is '"X" directive is duplicate'


_FLAG = Spec(1, 1, kind="flag", single=True)
_MSEC = Spec(1, 1, kind="msec", single=True)
_T1 = Spec(1, 1)

# name -> Spec, for the levels where the name means the same thing everywhere.
SPECS: dict[str, Spec] = {
    # core structure
    "events": Spec(0, 0, block=True),
    "http": Spec(0, 0, block=True),
    "location": Spec(1, 2, block=True),
    "if": Spec(1, ANY, block=True),
    "limit_except": Spec(1, ANY, block=True),
    "upstream": Spec(1, 1, block=True),
    "map": Spec(2, 2, block=True),
    "types": Spec(0, 0, block=True),
    "include": _T1,
    "listen": Spec(1, ANY),
    "server_name": Spec(1, ANY),
    "root": Spec(1, 1, single=True),
    "alias": Spec(1, 1, single=True),
    "index": Spec(1, ANY),
    "try_files": Spec(2, ANY),
    "error_page": Spec(2, ANY),
    "return": Spec(1, 2),
    "rewrite": Spec(2, 3),
    "break": Spec(0, 0),
    "set": Spec(2, 2),
    "allow": _T1,
    "deny": _T1,
    "default_type": _T1,
    "access_log": Spec(1, ANY),
    "error_log": Spec(1, ANY),
    "log_format": Spec(2, ANY),
    "resolver": Spec(1, ANY),
    "client_max_body_size": _T1,
    "ssl_certificate": _T1,
    "ssl_certificate_key": _T1,
    "set_real_ip_from": _T1,
    "real_ip_header": _T1,
    "add_header": Spec(2, 3),
    "worker_connections": _T1,
    "sendfile": _FLAG,
    # proxy module
    "proxy_pass": Spec(1, 1, single=True),
    "proxy_http_version": Spec(1, 1, single=True),
    "proxy_set_header": Spec(2, 2),
    "proxy_hide_header": _T1,
    "proxy_pass_header": _T1,
    "proxy_connect_timeout": _MSEC,
    "proxy_read_timeout": _MSEC,
    "proxy_send_timeout": _MSEC,
    "proxy_next_upstream_timeout": _MSEC,
    "proxy_next_upstream": Spec(1, ANY),
    "proxy_next_upstream_tries": _T1,
    "proxy_buffering": _FLAG,
    "proxy_request_buffering": _FLAG,
    "proxy_intercept_errors": _FLAG,
    "proxy_cache": Spec(1, 1, single=True),
    "proxy_redirect": Spec(1, 2),
    "proxy_buffer_size": _T1,
    "proxy_buffers": Spec(2, 2),
}

# Names that mean something else inside `upstream { }`.
UPSTREAM_SPECS: dict[str, Spec] = {
    "server": Spec(1, ANY),
    "hash": Spec(1, 2),
    "ip_hash": Spec(0, 0),
    "least_conn": Spec(0, 0),
    "random": Spec(0, 2),
    "zone": Spec(1, 2),
    "keepalive": Spec(1, 1),  # `keepalive N local` from 1.29.7 (see _keepalive)
    "keepalive_timeout": _MSEC,
    "keepalive_requests": _T1,
}
SERVER_BLOCK = Spec(0, 0, block=True)  # `server { }` in http

# Blocks whose children this table can judge; anything else (map, types, geo, a module's block) is data.
_STRUCTURAL = {"events", "http", "server", "location", "if", "limit_except", "upstream"}

# nginx time units, largest first: each may appear once, in this order (ngx_parse_time).
_UNITS = (("y", 31536000), ("M", 2592000), ("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
_MSEC_MAX = 2147483647  # a msec value is kept in an int32 (ngx_parse_time refuses more: ~24.8 days)


def parse_msec(text: str) -> int | None:
    """nginx's ``ngx_parse_time(value, 0)``: milliseconds, or None where nginx says "invalid value".

    Stricter than a plain duration reader, as nginx is: units in decreasing order, each once (``30s1m`` and
    ``1h1h`` are refused), case-sensitive (``60S`` is refused), no variables, at most 2147483647 ms.
    """
    t = text
    if not t or "$" in t:
        return None
    total = 0
    step = -1  # index into _UNITS of the last unit used (ms is len(_UNITS))
    i = 0
    n = len(t)
    while i < n:
        if t[i] == " ":
            i += 1
            continue
        j = i
        while j < n and t[j].isdigit():
            j += 1
        if j == i:
            return None
        value = int(t[i:j])
        if j == n:  # a bare number at the end: seconds, unless seconds came already
            if step >= 6:
                return None
            total += value * 1000
            break
        if t.startswith("ms", j):
            if step >= len(_UNITS):
                return None
            step, total, i = len(_UNITS), total + value, j + 2
            continue
        unit = next((k for k, (u, _s) in enumerate(_UNITS) if t[j] == u), None)
        if unit is None or unit <= step:
            return None
        step, total, i = unit, total + value * _UNITS[unit][1] * 1000, j + 1
    return total if total <= _MSEC_MAX else None


def _spec(d: Directive) -> Spec | None:
    parent = d.parent
    pname = parent.name if parent is not None else ""
    if parent is not None and pname not in _STRUCTURAL:
        return None
    if pname == "upstream":
        return UPSTREAM_SPECS.get(d.name) or (SPECS.get(d.name) if d.name == "include" else None)
    if d.name == "server":
        return SERVER_BLOCK if pname in ("http", "") else None
    if d.name in UPSTREAM_SPECS and d.name not in SPECS:
        return None  # keepalive_timeout/… outside upstream mean other things (not judged here)
    return SPECS.get(d.name)


def _count_problem(d: Directive, spec: Spec, version: str | None) -> str | None:
    n = len(d.args)
    if d.name == "keepalive" and d.parent is not None and d.parent.name == "upstream":
        return _keepalive(d, version)
    if n < spec.low or (spec.high is not None and n > spec.high):
        return f'invalid number of arguments in "{d.name}" directive'
    return None


def _keepalive(d: Directive, version: str | None) -> str | None:
    n = len(d.args)
    if n == 1:
        return None
    local_ok = at_least(version, (1, 29, 7))
    if n == 2 and d.args[1] == "local":
        if local_ok is False:
            return (
                'invalid number of arguments in "keepalive" directive: the "local" parameter needs nginx 1.29.7, '
                f"this is {version}"
            )
        return None
    if n == 2 and local_ok is not False:
        return f'invalid parameter "{d.args[1]}"'
    return 'invalid number of arguments in "keepalive" directive'


def _value_problem(d: Directive, spec: Spec, version: str | None) -> str | None:
    if not d.args:
        return None
    v = d.args[0]
    if spec.kind == "flag" and v.lower() not in ("on", "off"):
        return f'invalid value "{v}" in "{d.name}" directive, it must be "on" or "off"'
    if spec.kind == "msec" and parse_msec(v) is None:
        return f'"{d.name}" directive invalid value'
    if d.name == "proxy_http_version":
        allowed = ["1.0", "1.1"]
        if at_least(version, (1, 29, 4)) is not False:
            allowed.append("2")
        if v not in allowed:
            return f'invalid value "{v}" in "proxy_http_version" directive, it must be {" or ".join(allowed)}'
    if d.name == "add_header" and len(d.args) == 3 and d.args[2] != "always":
        return f'invalid parameter "{d.args[2]}"'
    if d.name == "hash" and len(d.args) == 2 and d.args[1] != "consistent":
        return f'invalid parameter "{d.args[1]}"'
    if (
        d.name == "rewrite"
        and len(d.args) == 3
        and d.args[2] not in ("last", "break", "redirect", "permanent")
    ):
        return f'invalid parameter "{d.args[2]}"'
    return None


def _uri_problem(d: Directive) -> str | None:
    """proxy_pass with a URI part where nginx forbids one: a regex or named location, ``if``, ``limit_except``."""
    if d.name != "proxy_pass" or not d.args or "$" in d.args[0] or d.parent is None:
        return None
    _scheme, sep, rest = d.args[0].partition("://")
    if not sep or rest.startswith("unix:") or "/" not in rest:
        return None
    parent = d.parent
    if (
        parent.name == "location"
        and parent.args
        and (parent.args[0] in ("~", "~*") or parent.args[0][:1] == "@")
    ):
        kind = "a regular expression" if parent.args[0] in ("~", "~*") else "a named location"
        return f'"proxy_pass" cannot have URI part in location given by {kind} ({parent.where})'
    if parent.name in ("if", "limit_except"):
        return f'"proxy_pass" cannot have URI part inside "{parent.name}" ({parent.where})'
    return None


def _block_problem(d: Directive, spec: Spec) -> str | None:
    if spec.block and d.block is None:
        return f'directive "{d.name}" has no opening "{{"'
    if not spec.block and d.block is not None:
        return f'directive "{d.name}" is not terminated by ";"'
    return None


# Directive names that are not in SPECS but often follow a statement whose ';' is missing: a word starting a
# later line of a statement is taken for a swallowed directive only when it is a directive name. (Not `ssl`
# or `http2`: they are `listen` parameters far more often than swallowed directives.)
_OTHER_NAME_LIST = """
    large_client_header_buffers client_header_buffer_size client_body_buffer_size client_body_timeout
    client_header_timeout keepalive_timeout keepalive_requests send_timeout tcp_nopush tcp_nodelay gzip
    gzip_types charset expires etag server_tokens ssl_protocols ssl_ciphers ssl_prefer_server_ciphers
    ssl_session_cache ssl_session_timeout ssl_session_tickets ssl_dhparam ssl_stapling ssl_stapling_verify
    ssl_trusted_certificate ssl_reject_handshake quic_retry auth_basic auth_basic_user_file
    auth_request limit_req limit_conn real_ip_recursive error_page proxy_redirect proxy_cache_key
    proxy_cache_valid proxy_cache_bypass proxy_no_cache proxy_ignore_headers proxy_ssl_server_name
    proxy_ssl_verify proxy_max_temp_file_size proxy_temp_path resolver_timeout satisfy internal log_not_found
    access_log error_log index autoindex sub_filter
"""
_OTHER_NAMES = frozenset(_OTHER_NAME_LIST.split())
_KNOWN_NAMES = frozenset(SPECS) | frozenset(UPSTREAM_SPECS) | {"server"} | _OTHER_NAMES


def _swallowed(config: Config, d: Directive) -> tuple[str, int] | None:
    """(name, line) of a directive that a missing ``;`` glued into D's arguments: a known directive name that
    starts a later line of D's own statement."""
    known = _KNOWN_NAMES
    if known.isdisjoint(d.args):
        return None
    lines = config.lines(d.file)
    own = lines[d.line - 1] if 0 < d.line <= len(lines) else ""
    at = own.find(d.args[-1], own.find(d.name) + len(d.name)) if d.args else -1
    if at >= 0 and ";" in own[at:]:
        return None  # the statement ends on its own line: nothing glued (and no statement span to compute)
    span = statement_lines(config, d)
    if span is None:
        return None
    first, last = span
    for ln in range(first + 1, min(last, len(lines)) + 1):
        head = lines[ln - 1].split(None, 1)
        word = head[0].rstrip(";{") if head else ""
        if word in known and word in d.args:
            return word, ln
    return None


def statement_lines(config: Config, d: Directive) -> tuple[int, int] | None:
    """The first and last line of D's statement in its file (a glued statement spans several), or None when
    its text is not where the parser saw it."""
    try:
        first, _col, last, _end = Patch(config).statement_span(d)
    except (ValueError, KeyError, IndexError):
        return None
    return first, last


def statement_errors(config: Config, version: str | None = None) -> list[tuple[Directive, str, str]]:
    """Every directive of CONFIG that ``nginx -t`` rejects, as (directive, message, severity).

    Severity is "fail" for what nginx refuses and "warn" for what it accepts but almost certainly is a missing
    ``;`` (``server_name a.example.com`` glued to ``listen 443 ssl;`` gives three server names, one of them
    ``listen``). Kept on the config per version: every check asks.
    """
    return config.memo(("statement_errors", version), lambda: _statement_errors(config, version))


def _statement_errors(config: Config, version: str | None) -> list[tuple[Directive, str, str]]:
    out: list[tuple[Directive, str, str]] = []
    seen_single: dict[tuple[int, str], Directive] = {}
    for d in config.walk():
        if d.name == "#":
            continue
        spec = _spec(d)
        if spec is None:
            continue
        problem = _block_problem(d, spec) or _count_problem(d, spec, version)
        if problem is None and not spec.block:
            problem = _value_problem(d, spec, version) or _uri_problem(d)
        swallowed = _swallowed(config, d)
        if problem is not None and swallowed is not None and "number of arguments" in problem:
            name, ln = swallowed
            problem += f'; a missing ";" at the end of line {d.line} joins it with "{name}" on line {ln}'
        if problem is not None:
            out.append((d, problem, "fail"))
            continue
        if swallowed is not None:
            name, ln = swallowed
            out.append(
                (
                    d,
                    f'"{d.name}" takes "{name}" from line {ln} as an argument: a missing ";" at the end of '
                    f"line {d.line} joins the two statements",
                    "warn",
                )
            )
            continue
        if spec.single or d.name in ("root", "alias"):
            parent_key = id(d.parent) if d.parent is not None else 0
            group = "root/alias" if d.name in ("root", "alias") else d.name
            first = seen_single.get((parent_key, group))
            if first is None:
                seen_single[(parent_key, group)] = d
            elif first.name != d.name:
                out.append(
                    (
                        d,
                        f'"{d.name}" directive is duplicate, "{first.name}" directive was specified earlier',
                        "fail",
                    )
                )
            else:
                out.append((d, f'"{d.name}" directive is duplicate', "fail"))
    return out


# --- what nginx refuses or warns about for the whole deployment, by version ------------------------------------

# nginx's CHANGES (docs/nginx.md, "Version-dependent defaults"): the versions at which a directive a Socket.IO
# config meets was deprecated, removed or added.
SSL_DEPRECATED = (1, 15, 0)  # `ssl on;` deprecated ...
SSL_REMOVED = (1, 25, 1)  # ... and removed; `listen … http2` deprecated, `http2 on;` added
HTTP2_DIRECTIVE = (1, 25, 1)
RESOLVE_OPEN_SOURCE = (1, 27, 3)  # `server … resolve` in an upstream outside NGINX Plus


def deployment_errors(config: Config, version: str | None = None) -> list[tuple[Directive, str, str]]:
    """What ``nginx -t`` of VERSION refuses ("fail") or warns about ("warn") in statements that do not change
    where a request goes: ``ssl on;`` (removed in 1.25.1), ``http2 on;`` (new in 1.25.1), ``listen … http2``
    (deprecated in 1.25.1), ``server … resolve`` (open source from 1.27.3, and only in an upstream with a
    ``zone``), and a ``listen … ssl`` whose default server has no certificate. An unknown version gives a
    warning that says both outcomes.

    Unlike ``statement_errors``, these never make another check wait: they change whether nginx loads the
    config, not what the Socket.IO location does once it does.
    """
    return config.memo(("deployment_errors", version), lambda: _deployment_errors(config, version))


def _deployment_errors(config: Config, version: str | None) -> list[tuple[Directive, str, str]]:
    out: list[tuple[Directive, str, str]] = []
    shown = f"nginx {version}" if version else "this nginx (version unknown)"
    for d in config.walk():
        if d.name == "ssl" and d.parent is not None and d.parent.name in ("http", "server"):
            removed = at_least(version, SSL_REMOVED)
            if removed:
                out.append((d, f'unknown directive "ssl" ({shown}: `ssl on;` was removed in 1.25.1, use '
                               '"listen ... ssl")', "fail"))  # fmt: skip
            elif removed is None:
                out.append((d, 'the "ssl" directive is deprecated (since 1.15.0) and removed in nginx 1.25.1, '
                               'where `nginx -t` refuses it; use "listen ... ssl" (version unknown)', "warn"))  # fmt: skip
            elif at_least(version, SSL_DEPRECATED):
                out.append((d, 'the "ssl" directive is deprecated, use the "listen ... ssl" directive instead '
                               "(removed in nginx 1.25.1)", "warn"))  # fmt: skip
        elif d.name == "http2" and d.parent is not None and d.parent.name in ("http", "server"):
            new = at_least(version, HTTP2_DIRECTIVE)
            if new is False:
                out.append((d, f'unknown directive "http2" ({shown}: `http2 on;` is new in 1.25.1, use '
                               '"listen ... http2" before)', "fail"))  # fmt: skip
            elif new is None:
                out.append((d, '"http2 on;" needs nginx 1.25.1 or later (older versions: unknown directive; '
                               "version unknown)", "warn"))  # fmt: skip
        elif d.name == "listen" and "http2" in d.args[1:] and at_least(version, HTTP2_DIRECTIVE):
            out.append((d, 'the "listen ... http2" directive is deprecated, use the "http2" directive instead '
                           f"({shown}: deprecated since 1.25.1)", "warn"))  # fmt: skip
        elif (
            d.name == "server"
            and d.parent is not None
            and d.parent.name == "upstream"
            and "resolve" in d.args[1:]
        ):
            out += _resolve_problem(d, version, shown)
    out += _ssl_without_certificate(config)
    return out


def _resolve_problem(d: Directive, version: str | None, shown: str) -> list[tuple[Directive, str, str]]:
    ok = at_least(version, RESOLVE_OPEN_SOURCE)
    if ok is False:
        return [(d, f'invalid parameter "resolve" ({shown}: open-source nginx resolves upstream names at run '
                    "time only from 1.27.3; NGINX Plus has it)", "fail")]  # fmt: skip
    up = d.parent
    assert up is not None
    if up.child("zone") is None:
        return [(d, f'resolving names at run time requires upstream "{" ".join(up.args)}" in {up.where} to be in '
                    'shared memory (add a "zone")', "fail")]  # fmt: skip
    if ok is None:
        return [(d, '"server … resolve" needs nginx 1.27.3 or later in open source (older: invalid parameter '
                    '"resolve"; version unknown)', "warn")]  # fmt: skip
    return []


def _ssl_without_certificate(config: Config) -> list[tuple[Directive, str, str]]:
    """``listen … ssl`` whose address' default server has no certificate (nginx -t: no "ssl_certificate" is
    defined …). nginx asks it of the default server of each TLS address:port (the ``default_server``, else the
    first server listening there); ``ssl_reject_handshake on`` needs none."""
    tls: set[tuple[str, int | None]] = set()
    default: dict[tuple[str, int | None], tuple[Directive, Directive | None]] = {}
    for server in config.servers():
        for ls in server_listens(server):
            key = (ls.addr, ls.port)
            if ls.ssl:
                tls.add(key)
            if key not in default or (ls.default and not _is_default(default[key][1])):
                default[key] = (server, ls.directive)
    out: list[tuple[Directive, str, str]] = []
    seen: set[int] = set()
    for key in sorted(tls, key=str):
        server, listen = default[key]
        if id(server) in seen or _has_certificate(server):
            continue
        seen.add(id(server))
        out.append(
            (listen or server, f'no "ssl_certificate" is defined for the "listen ... ssl" directive in '
                               f"{server.where}: nginx refuses to start without one", "fail")
        )  # fmt: skip
    return out


def _is_default(listen: Directive | None) -> bool:
    return listen is not None and bool({"default_server", "default"} & set(listen.args[1:]))


def _has_certificate(server: Directive) -> bool:
    for level in (server, *server.ancestors()):
        if level.child("ssl_certificate") is not None:
            return True
        reject = level.child("ssl_reject_handshake")
        if reject is not None and reject.args and reject.args[0].lower() == "on":
            return True
    return False
