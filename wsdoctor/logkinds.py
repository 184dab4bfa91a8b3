"""Every kind of log line wsdoctor classifies: the check it speaks for, what it means, how bad it is.

One table for the three readers: the classifiers (``remote/logs.py`` for nginx's error and access logs, the
backend log readers) name a line's kind and take its check from here; the checks pick the lines that explain
a verdict by themselves; the TUI's log view gives each line the symbol of its severity. A new kind is one row
here. Nothing here imports anything of wsdoctor: every layer may read it.
"""

from __future__ import annotations

from dataclasses import dataclass

FAIL = "fail"  # the request fails (502/504, 404, a session refused)
WARN = "warn"  # worth a look, not a broken route (a tunnel closed, a refusal that may be deserved)


@dataclass(frozen=True)
class LogKind:
    check: str  # the check id the line speaks for
    meaning: str  # what the line says, in a few words
    severity: str  # FAIL or WARN
    explains: bool = False  # an error-log line of this kind explains a verdict by itself: shown first


KINDS: dict[str, LogKind] = {
    # nginx cannot reach or hear the backend (error log)
    "connect-refused": LogKind(
        "upstream", "the backend refused the connection: nothing listens on that port (502)", FAIL, True
    ),
    "connect-failed": LogKind("upstream", "nginx could not connect to the backend (502)", FAIL),
    "no-live-upstreams": LogKind(
        "upstream", "every server of the upstream is marked failed (502)", FAIL, True
    ),
    "no-resolver": LogKind(
        "upstream", "proxy_pass uses a variable host name and no resolver is configured (502)", FAIL
    ),
    "connect-timeout": LogKind(
        "upstream", "the backend did not accept the connection within proxy_connect_timeout (504)", FAIL
    ),
    "read-timeout": LogKind("timeout", "the backend did not answer within proxy_read_timeout (504)", FAIL),
    "upstream-timeout": LogKind("upstream", "an upstream operation timed out (504)", FAIL),
    "premature-close": LogKind("upstream", "the backend closed the connection before answering (502)", FAIL),
    # the same failures as the access log sees them
    "502": LogKind("upstream", "nginx answered 502: it got no answer from a backend", FAIL),
    "504": LogKind("upstream", "nginx answered 504: a backend did not answer in time", FAIL),
    # the Socket.IO request never reaches the backend (error or access log); `client` when it asked for the
    # default /socket.io/ path (the client's `path` is wrong or missing), `route` for a prefixed path
    "socketio-404": LogKind(
        "route", "nginx served the Socket.IO path from files: no location proxies it (404)", FAIL, True
    ),
    # a polling session lost between servers (access log: 400 on a request that carries a sid)
    "400-polling-sid": LogKind(
        "sticky",
        "a polling request of a session was refused: it reached a backend that did not create it",
        FAIL,
    ),
    # the same, for a request that is not a poll (a websocket upgrade with sid=): python's server answers 403
    "sid-refused": LogKind(
        "sticky",
        "a request of an existing session (sid=) was refused: it reached a backend that did not create it",
        FAIL,
    ),
    # an established tunnel was closed (idle timeout, reset): worth a look, not a broken route
    "upgraded-timeout": LogKind(
        "timeout",
        "an idle WebSocket tunnel was closed by proxy_read_timeout / proxy_send_timeout",
        WARN,
        True,
    ),
    "upgraded-closed": LogKind("timeout", "a WebSocket tunnel broke (reset or write error)", WARN),
    "101-idle-timeout": LogKind(
        "timeout", "a WebSocket tunnel lasted about proxy_read_timeout: nginx closed it idle", WARN
    ),
    # a refusal may be the right answer to a bad token
    "401": LogKind("auth", "the request was refused as unauthenticated (401)", WARN),
    "403": LogKind("auth", "the request was refused as forbidden (403)", WARN),
    "backend-auth": LogKind("auth", "the backend logged an authentication failure", WARN),
}


def check_of(kind: str) -> str:
    """The check a line of KIND speaks for."""
    return KINDS[kind].check
