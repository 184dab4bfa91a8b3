"""The directives in effect at a location: inheritance as nginx merges it, and the defaults, version-aware.

Two inheritance rules decide WebSocket proxying and are routinely misread:

- single-valued directives (timeouts, ``proxy_http_version``, ``proxy_buffering``) are inherited level by
  level: the nearest of location → enclosing locations → server → http wins;
- ``proxy_set_header`` and ``add_header`` are inherited **all or nothing**: a level that defines any of them
  drops every one of the outer level's (a location that sets only Upgrade/Connection loses the server's Host
  and X-Forwarded-*).

Some defaults changed in nginx 1.29.7 (``proxy_http_version`` 1.0 → 1.1, no more ``Connection: close``
upstream); when the version is unknown a Setting says so (``depends_on_version``) with both outcomes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from wsdoctor.nginx.model import Config, Directive
from wsdoctor.nginx.routing import Route, expand, map_lookup, proxy_host
from wsdoctor.nginx.version import at_least

NEW_DEFAULTS = (1, 29, 7)  # proxy_http_version 1.1, no Connection: close, keepalive in upstream{}


@dataclass
class Setting:
    """One directive's value in effect, and where it comes from."""

    value: list[str] | None  # args as in the config, or the default
    directive: Directive | None  # where it is set (None: default)
    default: bool  # nothing in the config sets it
    depends_on_version: bool = False  # the default differs by nginx version and the version is unknown
    note: str = ""

    @property
    def text(self) -> str:
        """The value as one string ("60s", "1.1"), "" when there is none."""
        return " ".join(self.value) if self.value else ""


# Defaults as nginx documents them; a tuple (before, from-1.29.7) where the version matters.
DEFAULTS: dict[str, str | tuple[str, str]] = {
    "proxy_http_version": ("1.0", "1.1"),
    "proxy_read_timeout": "60s",
    "proxy_send_timeout": "60s",
    "proxy_connect_timeout": "60s",
    "proxy_buffering": "on",
    "proxy_request_buffering": "on",
    "proxy_cache": "off",
    "proxy_redirect": "default",
    "proxy_pass_request_headers": "on",
    "proxy_next_upstream": "error timeout",
    "proxy_next_upstream_tries": "0",
    "proxy_next_upstream_timeout": "0",
    "proxy_socket_keepalive": "off",
    "proxy_ignore_client_abort": "off",
    "proxy_buffer_size": "4k|8k",
    "proxy_max_temp_file_size": "1024m",
    "keepalive_timeout": "75s",
    "send_timeout": "60s",
    "client_body_timeout": "60s",
    "client_header_timeout": "60s",
    "client_max_body_size": "1m",
    "chunked_transfer_encoding": "on",
    "tcp_nodelay": "on",
    "merge_slashes": "on",
    "absolute_redirect": "on",
    "port_in_redirect": "on",
    "server_name_in_redirect": "off",
    "gzip": "off",
    "access_log": "logs/access.log combined",
    "error_log": "logs/error.log error",
}


def _levels(block: Directive) -> list[Directive]:
    """BLOCK and its enclosing blocks, innermost first, up to (and including) ``http``."""
    out = [block]
    out.extend(block.ancestors())
    return out


def scalar(location: Directive, name: str, version: str | None = None) -> Setting:
    """The value of single-valued directive NAME at LOCATION (or a server / ``if`` block): nearest level wins."""
    for level in _levels(location):
        d = level.child(name)
        if d is not None:
            return Setting(list(d.args), d, False)
    return default_setting(name, version)


def default_setting(name: str, version: str | None = None) -> Setting:
    """NAME's default for VERSION (both outcomes in ``note`` when it matters and the version is unknown)."""
    dflt = DEFAULTS.get(name)
    if dflt is None:
        return Setting(None, None, True)
    if isinstance(dflt, str):
        return Setting(dflt.split(), None, True)
    old, new = dflt
    newer = at_least(version, NEW_DEFAULTS)
    if newer is None:
        return Setting(
            [old],
            None,
            True,
            depends_on_version=True,
            note=f"{old} before nginx 1.29.7, {new} from 1.29.7 on (version unknown)",
        )
    return Setting([new if newer else old], None, True, note=f"default of nginx {version}")


def _all_or_nothing(location: Directive, name: str) -> list[Directive]:
    for level in _levels(location):
        found = level.children(name)
        if found:
            return found
    return []


def proxy_headers(location: Directive, version: str | None = None) -> list[tuple[str, str, Directive | None]]:
    """The request headers nginx sets upstream at LOCATION: (name, value, directive or None for implicit).

    The nearest level that has any ``proxy_set_header`` gives all of them; then nginx's implicit ones unless
    overridden: ``Host $proxy_host`` and, before 1.29.7 (or when the version is unknown, the common case of
    today's distributions), ``Connection close``. Use :func:`connection_default` for the version nuance.
    """
    out: list[tuple[str, str, Directive | None]] = []
    names: set[str] = set()
    for d in _all_or_nothing(location, "proxy_set_header"):
        if len(d.args) >= 2:
            out.append((d.args[0], d.args[1], d))
            names.add(d.args[0].lower())
        elif len(d.args) == 1:
            out.append((d.args[0], "", d))
            names.add(d.args[0].lower())
    if "host" not in names:
        out.append(("Host", "$proxy_host", None))
    if "connection" not in names and at_least(version, NEW_DEFAULTS) is not True:
        out.append(("Connection", "close", None))
    return out


def connection_default(version: str | None) -> Setting:
    """What nginx sends as ``Connection`` upstream when nothing sets it."""
    newer = at_least(version, NEW_DEFAULTS)
    if newer is None:
        return Setting(
            ["close"],
            None,
            True,
            depends_on_version=True,
            note="close before nginx 1.29.7, none from 1.29.7 on (version unknown)",
        )
    return Setting(None if newer else ["close"], None, True)


def add_headers(location: Directive) -> list[tuple[str, str, Directive]]:
    """The ``add_header`` list in effect at LOCATION (same all-or-nothing inheritance)."""
    out: list[tuple[str, str, Directive]] = []
    for d in _all_or_nothing(location, "add_header"):
        if len(d.args) >= 2:
            out.append((d.args[0], d.args[1], d))
    return out


_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|M|y)?")
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "M": 2592000, "y": 31536000}


def parse_duration(text: str) -> float | None:
    """nginx time syntax to seconds: ``60s``, ``1m30s``, ``7d``, ``500ms``, ``75`` (seconds); None if invalid."""
    t = text.strip()
    if not t:
        return None
    pos, total = 0, 0.0
    while pos < len(t):
        m = _DURATION.match(t, pos)
        if m is None or m.end() == pos:
            return None
        total += int(m.group(1)) * _UNIT[m.group(2) or "s"]
        pos = m.end()
        while pos < len(t) and t[pos] == " ":
            pos += 1
    return total


def map_value(config: Config, variable: str, input_value: str) -> str | None:
    """The value ``map … $VARIABLE`` gives for INPUT_VALUE (``$connection_upgrade`` for ``$http_upgrade``).

    None when no ``map`` defines the variable.
    """
    name = variable if variable.startswith("$") else "$" + variable
    mp = config.maps().get(name)
    if mp is None:
        return None
    return map_lookup(mp, input_value)


def upstream_keepalive(upstream: Directive, version: str | None = None) -> Setting:
    """``keepalive`` of an ``upstream{}``: off unless set before 1.29.7, on by default from 1.29.7."""
    d = upstream.child("keepalive")
    if d is not None:
        return Setting(list(d.args), d, False)
    newer = at_least(version, NEW_DEFAULTS)
    if newer is None:
        return Setting(
            None,
            None,
            True,
            depends_on_version=True,
            note="off before nginx 1.29.7, on from 1.29.7 on (version unknown)",
        )
    return Setting(["on"] if newer else None, None, True)


def forwarded_headers(
    route: Route,
    config: Config,
    version: str | None = None,
    names: tuple[str, ...] = ("host", "upgrade", "connection"),
) -> dict[str, str | None]:
    """What the backend receives for each header in NAMES (lowercase) after nginx's proxy rules.

    A value is the header as sent, ``None`` when nginx sends no such header; a header whose value depends on
    something unknowable offline (``$remote_addr``) is left out of the result.
    """
    req = route.request
    block = route.config_block
    if req is None or block is None or route.proxy_pass is None:
        return {}
    set_list: dict[str, str] = {}
    for name, value, _d in proxy_headers(block, version):
        set_list.setdefault(name.lower(), value)
    # Headers nginx always overrides (ngx_http_proxy_headers) even when nothing sets them.
    for hop in ("keep-alive", "te", "expect", "upgrade"):
        set_list.setdefault(hop, "")
    if "connection" not in set_list:
        set_list["connection"] = ""
    saved_vars = dict(req.vars)
    req.vars["proxy_host"] = proxy_host(route) or ""
    try:
        out: dict[str, str | None] = {}
        for n in names:
            if n in set_list:
                v = expand(set_list[n], req, config)
                if v is None:
                    continue
                out[n] = v if v != "" else None
            else:
                pass_through = scalar(block, "proxy_pass_request_headers").text != "off"
                out[n] = req.headers.get(n) if pass_through else None
        return out
    finally:
        req.vars = saved_vars
