"""The lab's scenarios: what each one breaks, what a client sees, and how its backends run.

A scenario is an nginx config template (``scenarios/NAME.conf``, shipped in the package) plus the few
backend settings that the failure needs (a ping interval longer than the proxy timeout, stopped
backends, a token the backends refuse). The templates say at their top what is broken; this table
holds the same facts in a form the lab, the CLI and the tests can read.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Where nginx publishes the Socket.IO service (the runbook's prefix) and where the backends serve it.
PUBLIC_PREFIX = "/dev/aiwm/chat"
BACKEND_PATH = "/chat/socket.io"
PUBLIC_PATH = f"{PUBLIC_PREFIX}/socket.io"

#: ``--backends``: which family of processes serves the scenario (python-socketio or Node).
BACKEND_KINDS = ("node", "python")

#: The server implementations a backend process can run: id -> (backend kind, what it is).
SERVERS: dict[str, tuple[str, str]] = {
    "python-socketio": ("python", "python-socketio (Engine.IO 4) under uvicorn"),
    "python-websockets": ("python", "a plain WebSocket server (python websockets), no Socket.IO"),
    "socketio4": ("node", "Node socket.io (Engine.IO 4) on Express"),
    "socketio2": ("node", "Node socket.io 2.x (Engine.IO 3) on Express"),
    "ws": ("node", "a plain WebSocket server (Node ws), no Socket.IO"),
}


@dataclass(frozen=True)
class Scenario:
    """One reproducible failure (or none, for ``healthy``)."""

    name: str
    broken: str  # what is wrong, one sentence
    symptom: str  # what a client observes, one sentence
    ping_interval: float = 25.0  # the backends' pingInterval, seconds (python-socketio's default)
    ping_timeout: float = 20.0
    stopped: tuple[int, ...] = ()  # backends the scenario leaves stopped (indexes)
    token: str = "valid"  # "valid" or "expired": what the lab hands the client
    transports: tuple[str, ...] = ("polling", "websocket")  # what the scenario's client uses
    # The broken client, when the client itself is what is wrong (seed): URL and `path` it passes to io().
    client_url_path: str | None = None  # appended to https://127.0.0.1:PORT, e.g. "/dev/aiwm/chat"
    client_path: str | None = None  # e.g. "/socket.io"
    # What the backends run for each --backends kind (a scenario about the server itself fixes it).
    node_server: str = "socketio4"
    python_server: str = "python-socketio"

    @property
    def template(self) -> str:
        return f"{self.name}.conf"

    def server(self, backends: str) -> str:
        """The server implementation (a key of SERVERS) the backends run under ``--backends BACKENDS``."""
        return self.node_server if backends == "node" else self.python_server


_ALL = (
    Scenario(
        "healthy",
        broken="nothing: TLS, rewrite to /chat/, Upgrade/Connection via map, ip_hash, timeouts above pingInterval",
        symptom="none: polling upgrades to websocket, the session stays on one backend and stays connected",
    ),
    Scenario(
        "seed",
        broken="the runbook's config as written and the runbook's client io('wss://HOST/dev/aiwm/chat'), "
        "which requests /socket.io/ and joins namespace /dev/aiwm/chat",
        symptom="the runbook's client gets 404 from nginx for GET /socket.io/?EIO=4&transport=websocket",
        transports=("websocket",),
        client_url_path=PUBLIC_PREFIX,
        client_path="/socket.io",
    ),
    Scenario(
        "no-rewrite",
        broken="proxy_pass has no URI part, so the backend receives /dev/aiwm/chat/socket.io/ instead of "
        "/chat/socket.io/",
        symptom="404 Not Found from the backend through nginx (Node: Express's 'Cannot GET "
        "/dev/aiwm/chat/socket.io/'; python: python-engineio's text/plain 'Not Found')",
    ),
    Scenario(
        "backend-down",
        broken="backend 2 (the one ip_hash picks for 127.0.0.1) is stopped",
        symptom="its port refuses connections; nginx logs connect() failed (111) and fails over to another "
        "backend, so clients still connect",
        stopped=(2,),
    ),
    Scenario(
        "backend-down-all",
        broken="all three backends are stopped",
        symptom="502 Bad Gateway from nginx; error log: connect() failed (111) then no live upstreams",
        stopped=(0, 1, 2),
    ),
    Scenario(
        "short-timeout",
        broken="proxy_read_timeout 3s is shorter than the backends' pingInterval (5 s)",
        symptom="an idle websocket tunnel is closed by nginx about 3 s after the last frame; a held polling "
        "GET times out too and nginx retries it on another backend (400 unknown session); error log: "
        "upstream timed out while proxying upgraded connection",
        ping_interval=5.0,
        ping_timeout=5.0,
    ),
    Scenario(
        "no-sticky",
        broken="the upstream is round robin over three backends while clients use HTTP long-polling",
        symptom="the second polling request of a session reaches another backend: 400 unknown session (Node "
        '{"code":1,"message":"Session ID unknown"}, python "Invalid session <sid>")',
    ),
    Scenario(
        "bad-auth",
        broken="the token the lab hands the client expired an hour ago (signed with the right secret)",
        symptom='the Socket.IO CONNECT is refused: 44{"message":"authentication failed"} (Node adds '
        '"data":{"reason":"token expired"}); the backend log says Signature has expired',
        token="expired",
    ),
    Scenario(
        "no-upgrade",
        broken="the Socket.IO location does not forward Upgrade/Connection",
        symptom="the websocket request reaches the backend as plain HTTP: 400 (Node "
        '{"code":3,"message":"Bad request"}, python "Invalid websocket upgrade") '
        "instead of 101; polling still works but never upgrades",
    ),
    Scenario(
        "header-inheritance",
        broken="the Socket.IO location sets only Upgrade/Connection, so the server-level Host and "
        "X-Forwarded-* proxy_set_header lines are not inherited",
        symptom="the backend sees Host: chat_ws (the upstream's name) and no X-Forwarded-For/-Proto",
    ),
    Scenario(
        "cors-duplicate",
        broken="the Socket.IO location includes the REST CORS snippet (add_header Access-Control-Allow-Origin) "
        "while the backend sends its own",
        symptom="a handshake with an Origin gets two Access-Control-Allow-Origin headers (browsers refuse it)",
    ),
    Scenario(
        "version-mismatch",
        broken="the backends run Socket.IO 2.x (Engine.IO 3) while the clients are socket.io-client 3/4",
        symptom='a v4 client fails: polling with "server error" (the backend answers even ?EIO=4 with an '
        'Engine.IO 3 payload), websocket only with "It seems you are trying to reach a Socket.IO server in '
        'v2.x with a v3.x client" (token in the query; with the token only in the CONNECT auth the 2.x '
        "auth check refuses first and the v4 client reports an empty message); a 2.x client connects",
        node_server="socketio2",
        python_server="socketio2",  # no python Socket.IO 2 server here: Node's under both --backends
    ),
    Scenario(
        "plain-websocket",
        broken="the backends behind the Socket.IO location are plain WebSocket servers, not Socket.IO",
        symptom="plain HTTP (polling, REST) gets the WebSocket server's own 426 Upgrade Required; a "
        'websocket gets 101 and a {"type":"hello"} frame instead of an Engine.IO open packet: '
        'socket.io-client fails with "xhr poll error" (426) or "server error"',
        node_server="ws",
        python_server="python-websockets",
    ),
    Scenario(
        "literal-upgrade",
        broken="the Socket.IO location sends `Upgrade: websocket` and `Connection: upgrade` as constants, "
        "so every request, polling included, reaches the backend as a WebSocket upgrade",
        symptom="polling requests get the backend's 400 for a key-less upgrade (Node: \"Missing or invalid "
        'Sec-WebSocket-Key header", uvicorn: "Failed to open a WebSocket connection: missing '
        'Sec-WebSocket-Key header."): polling clients fail with "xhr poll error", websocket-only clients connect',
    ),
    Scenario(
        "http10",
        broken="the Socket.IO location has no proxy_http_version 1.1: nginx before 1.29.7 sends HTTP/1.0 "
        "upstream, upgrades included",
        symptom="none a client sees with these backends: Node and uvicorn both accept the HTTP/1.0 upgrade "
        "(101); polling and websocket connect",
    ),
)

#: Every scenario by name, in a stable teaching order (a dict: ``list(SCENARIOS)`` gives the names).
SCENARIOS: dict[str, Scenario] = {s.name: s for s in _ALL}


def server_label(server: str) -> str:
    """What SERVER (a key of SERVERS) is, in words."""
    return SERVERS[server][1]


def get(name: str) -> Scenario:
    """The scenario called NAME, or a ValueError that lists the valid names."""
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown lab scenario {name!r}; choose one of: {', '.join(SCENARIOS)}") from None
