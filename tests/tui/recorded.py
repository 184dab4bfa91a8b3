"""Recorded findings of a realistic incident, and a Diagnosis that replays them: TUI tests without a network.

The incident is the runbook's service (`wss://api.x-or.cloud/dev/aiwm/chat`, nginx
1.22.1 on lb1, backends on 172.16.2.100:3350-3352) with the runbook's client and
someone's "cleanup" of the upstream (``ip_hash`` gone): the client joins the wrong
namespace at the wrong path (404), polling sessions bounce between backends, the
7-day timeouts hide dead peers, the certificate is close to expiry. The texts follow
what the real checks and probes produce (docs/nginx.md, docs/socketio.md), written by hand so the
screens and screenshots are reproducible.

``RecordedDiagnosis`` is the real ``Diagnosis`` with its evaluation replaced by the
recorded steps, so ``report()`` and ``add_log_events()`` are the production code.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from wsdoctor.diagnose import Diagnosis, Update
from wsdoctor.errors import InputError
from wsdoctor.facts import LogEvent
from wsdoctor.report import CHECK_IDS, Evidence, Finding, Fix, Status
from wsdoctor.target import Target

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJvbmNhbGwiLCJleHAiOjE4OTM0NTYwMDB9.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg"
SITE = "/etc/nginx/sites-enabled/api.x-or.cloud"
UPSTREAM = "/etc/nginx/conf.d/upstream.conf"


def numbered(first: int, text: str) -> str:
    """An excerpt as the checks write it (nginx/model.py Config.excerpt): ``  42 | proxy_pass …``."""
    lines = text.split("\n")
    width = len(str(first + len(lines) - 1))
    return "\n".join(f"{first + i:>{width}} | {line}" for i, line in enumerate(lines))


def recorded_target() -> Target:
    return Target(
        url="wss://api.x-or.cloud/dev/aiwm/chat",
        transports=("polling", "websocket"),
        token=TOKEN,
        token_env="WS_TOKEN",
        ssh="root@lb1.x-or.cloud",
    )


CHAIN: list[tuple[str, str]] = [
    ("url", "wss://api.x-or.cloud/dev/aiwm/chat"),
    ("request", "GET /socket.io/?EIO=4&transport=polling"),
    ("namespace", "/dev/aiwm/chat"),
    ("location", "(none: nginx's html root)"),
    ("upstream", "—"),
]

CLIENT = Finding(
    id="client",
    status=Status.FAIL,
    title="Client URL and path",
    summary=(
        "io('wss://api.x-or.cloud/dev/aiwm/chat') requests /socket.io/ and joins namespace "
        "/dev/aiwm/chat: the URL's path is a namespace, not where the server listens."
    ),
    evidence=[
        Evidence(
            "probe",
            "GET https://api.x-or.cloud/socket.io/?EIO=4&transport=polling",
            "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\nHost: api.x-or.cloud\n\n"
            "HTTP/1.1 404 Not Found\nServer: nginx/1.22.1\nContent-Type: text/html\n\n"
            "<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n"
            "<center><h1>404 Not Found</h1></center>\r\n<hr><center>nginx/1.22.1</center>",
        ),
    ],
    fix=Fix(
        summary="Give the engine path in `path` and keep the URL to the host (the backends serve namespace /).",
        code=(
            "const socket = io('wss://api.x-or.cloud', {\n"
            "  path: '/dev/aiwm/chat/socket.io',  // nginx strips /dev/aiwm/chat/ → /chat/socket.io/\n"
            "  auth: { token },\n"
            "  transports: ['polling', 'websocket'],\n"
            "});"
        ),
    ),
)

ROUTE = Finding(
    id="route",
    status=Status.FAIL,
    title="Server and location",
    summary=(
        "GET /socket.io/ matches no proxying location of server api.x-or.cloud, so nginx serves "
        "its html root and answers 404; /dev/aiwm/chat/ itself routes correctly to /chat/."
    ),
    evidence=[
        Evidence(
            "config",
            f"{SITE}:12",
            numbered(
                12,
                "    location /dev/aiwm/chat/ {\n"
                "        access_log /var/log/nginx/api.x-or.cloud/path-dev-aiwm-ws.access.log;\n"
                "        error_log  /var/log/nginx/api.x-or.cloud/path-dev-aiwm-ws.error.log;\n"
                "\n"
                "        # CRITICAL: Rewrite /dev/aiwm/chat/ to /chat/\n"
                "        # The trailing slash in both location and proxy_pass is REQUIRED\n"
                "        proxy_pass http://api-aiwm-ws/chat/;",
            ),
            highlight=(12, 18),
        ),
        Evidence(
            "config",
            f"{SITE}:47",
            numbered(
                47,
                "    location /dev/aiwm/ {\n"
                "        access_log /var/log/nginx/api.x-or.cloud/path-dev-aiwm-v2.access.log;\n"
                "        error_log  /var/log/nginx/api.x-or.cloud/path-dev-aiwm-v2.error.log;\n"
                "\n"
                "        include /etc/nginx/cors-01.conf;\n"
                '        proxy_pass http://api-aiwm/;  # "[REST]" [bold]not markup[/]',
            ),
            highlight=(47,),
        ),
        Evidence(
            "log",
            "/var/log/nginx/error.log:2291",
            '2026/11/26 03:12:09 [error] 811#811: *5402 open() "/usr/share/nginx/html/socket.io/index.html" '
            "failed (2: No such file or directory), client: 203.0.113.7, server: api.x-or.cloud, "
            'request: "GET /socket.io/?EIO=4&transport=polling HTTP/1.1", host: "api.x-or.cloud"',
        ),
    ],
    fix=Fix(
        summary="Fix the client (see `client`); to serve unchanged clients too, route /socket.io/ to the backends.",
        diff=(
            "--- a/etc/nginx/sites-enabled/api.x-or.cloud\n"
            "+++ b/etc/nginx/sites-enabled/api.x-or.cloud\n"
            "@@ -44,6 +44,14 @@\n"
            "     # ========================================\n"
            "     # Regular REST API endpoints\n"
            "     # ========================================\n"
            "+    location /socket.io/ {\n"
            "+        proxy_pass http://api-aiwm-ws/chat/socket.io/;\n"
            "+        proxy_http_version 1.1;\n"
            "+        proxy_set_header Upgrade $http_upgrade;\n"
            "+        proxy_set_header Connection $connection_upgrade;\n"
            "+        proxy_set_header Host $host;\n"
            "+    }\n"
            "+\n"
            "     location /dev/aiwm/ {\n"
            "         access_log /var/log/nginx/api.x-or.cloud/path-dev-aiwm-v2.access.log;\n"
            "         error_log  /var/log/nginx/api.x-or.cloud/path-dev-aiwm-v2.error.log;\n"
        ),
    ),
)

UPSTREAM_OK = Finding(
    id="upstream",
    status=Status.PASS,
    title="Backends reachable",
    summary="All 3 servers of api-aiwm-ws answer an Engine.IO handshake at /chat/socket.io/ (probed from lb1).",
    evidence=[
        Evidence(
            "probe",
            "GET http://172.16.2.100:3350/chat/socket.io/?EIO=4&transport=polling (from lb1)",
            "GET /chat/socket.io/?EIO=4&transport=polling HTTP/1.1\nHost: 172.16.2.100:3350\n\n"
            "HTTP/1.1 200 OK\nContent-Type: text/plain; charset=UTF-8\n\n"
            '0{"sid":"Qx1Yt9b3UuS2eM0fAAAB","upgrades":["websocket"],"pingTimeout":20000,'
            '"pingInterval":25000,"maxPayload":1000000}',
        ),
    ],
)

TIMEOUT = Finding(
    id="timeout",
    status=Status.WARN,
    title="Idle timeouts",
    summary=(
        "proxy_read_timeout 604800s keeps tunnels up (pingInterval is 25 s) but holds dead peers for "
        "7 days; proxy_connect_timeout 604800s delays failover to the next backend."
    ),
    evidence=[
        Evidence(
            "config",
            f"{SITE}:31",
            numbered(
                31,
                "        # Long timeouts for WebSocket (7 days = 604800 seconds)\n"
                "        proxy_connect_timeout 604800s;\n"
                "        proxy_send_timeout 604800s;\n"
                "        proxy_read_timeout 604800s;",
            ),
            highlight=(32, 34),
        ),
    ],
    fix=Fix(
        summary="Connect fast, read a little above pingInterval + pingTimeout (45 s).",
        diff=(
            "--- a/etc/nginx/sites-enabled/api.x-or.cloud\n"
            "+++ b/etc/nginx/sites-enabled/api.x-or.cloud\n"
            "@@ -29,9 +29,9 @@\n"
            "         proxy_set_header X-Forwarded-Proto $scheme;\n"
            " \n"
            "         # Long timeouts for WebSocket (7 days = 604800 seconds)\n"
            "-        proxy_connect_timeout 604800s;\n"
            "-        proxy_send_timeout 604800s;\n"
            "-        proxy_read_timeout 604800s;\n"
            "+        proxy_connect_timeout 5s;\n"
            "+        proxy_send_timeout 60s;\n"
            "+        proxy_read_timeout 60s;\n"
            " \n"
            "         # Disable buffering (REQUIRED for real-time)\n"
            "         proxy_buffering off;\n"
        ),
    ),
)

STICKY = Finding(
    id="sticky",
    status=Status.FAIL,
    title="Sticky sessions",
    summary=(
        "Upstream api-aiwm-ws balances 3 servers round-robin while clients poll: the 2nd request of a "
        'session reached another backend and got 400 "Invalid session".'
    ),
    evidence=[
        Evidence(
            "config",
            f"{UPSTREAM}:2",
            numbered(
                2,
                "upstream api-aiwm-ws {\n"
                "    server 172.16.2.100:3350 max_fails=3 fail_timeout=30s;\n"
                "    server 172.16.2.100:3351 max_fails=3 fail_timeout=30s;\n"
                "    server 172.16.2.100:3352 max_fails=3 fail_timeout=30s;\n"
                "    keepalive 64;\n"
                "}",
            ),
            highlight=(2,),
        ),
        Evidence(
            "probe",
            "polling session through https://api.x-or.cloud/dev/aiwm/chat/socket.io/",
            "GET /dev/aiwm/chat/socket.io/?EIO=4&transport=polling&sid=Qx1Yt9b3UuS2eM0fAAAB HTTP/1.1\n"
            f"Host: api.x-or.cloud\nAuthorization: Bearer {TOKEN}\nCookie: io=Qx1Yt9b3UuS2eM0fAAAB\n\n"
            "HTTP/1.1 400 Bad Request\nServer: nginx/1.22.1\nContent-Type: application/json\n\n"
            '"Invalid session Qx1Yt9b3UuS2eM0fAAAB"',
        ),
    ],
    fix=Fix(
        summary="Hash each client to one backend while polling is enabled (or use transports: ['websocket']).",
        diff=(
            "--- a/etc/nginx/conf.d/upstream.conf\n"
            "+++ b/etc/nginx/conf.d/upstream.conf\n"
            "@@ -1,5 +1,6 @@\n"
            " # Upstream for WebSocket with sticky sessions\n"
            " upstream api-aiwm-ws {\n"
            "+    ip_hash;\n"
            "     server 172.16.2.100:3350 max_fails=3 fail_timeout=30s;\n"
            "     server 172.16.2.100:3351 max_fails=3 fail_timeout=30s;\n"
            "     server 172.16.2.100:3352 max_fails=3 fail_timeout=30s;\n"
        ),
    ),
)

AUTH = Finding(
    id="auth",
    status=Status.PASS,
    title="Authentication",
    summary="CONNECT with the token in `auth` got 40{sid}: the backend accepts it; the token expires in 6 days.",
    evidence=[
        Evidence(
            "probe",
            "Socket.IO CONNECT / via http://172.16.2.100:3350/chat/socket.io/ (websocket)",
            f'> 40{{"token":"{TOKEN}"}}\n< 40{{"sid":"hB0p7mYfXXq2JdtsAAAD"}}',
        ),
    ],
)

UPGRADE = Finding(
    id="upgrade",
    status=Status.PASS,
    title="WebSocket upgrade",
    summary="proxy_http_version 1.1 and Upgrade/Connection are set in location /dev/aiwm/chat/.",
    evidence=[
        Evidence(
            "config",
            f"{SITE}:21",
            numbered(
                21,
                "        proxy_http_version 1.1;\n"
                "        proxy_set_header Upgrade $http_upgrade;\n"
                '        proxy_set_header Connection "upgrade";',
            ),
            highlight=(21, 22, 23),
        ),
    ],
)

BUFFERING = Finding(
    id="buffering",
    status=Status.PASS,
    title="Proxy buffering",
    summary="proxy_buffering off in the Socket.IO location (it matters for polling, not for tunnels).",
)

PROTOCOL = Finding(
    id="protocol",
    status=Status.PASS,
    title="Engine.IO / Socket.IO protocol versions",
    summary="The endpoint and its 3 backends speak Engine.IO 4 (Socket.IO 3/4), the protocol of socket.io-client 4.",
)

CORS = Finding(
    id="cors",
    status=Status.SKIP,
    title="CORS headers",
    summary="The handshake with an Origin header timed out after 5.0 s, so CORS was not checked.",
)

TLS = Finding(
    id="tls",
    status=Status.WARN,
    title="TLS certificate",
    summary="The certificate for api.x-or.cloud is valid but expires in 12 days (2026-12-08).",
    evidence=[
        Evidence(
            "probe",
            "TLS api.x-or.cloud:443",
            "subject: CN=api.x-or.cloud\nissuer: C=US, O=Let's Encrypt, CN=R11\n"
            "san: api.x-or.cloud\nnot after: 2026-12-08T09:14:02Z (12 days)\nversion: TLSv1.3, alpn: http/1.1",
        ),
    ],
    fix=Fix(summary="Renew the certificate now (e.g. certbot renew) and reload nginx."),
)

SYNTAX = Finding(
    id="syntax",
    status=Status.PASS,
    title="Config syntax",
    summary="nginx -t on lb1: the configuration file /etc/nginx/nginx.conf syntax is ok.",
    evidence=[
        Evidence(
            "command",
            "nginx -t (root@lb1.x-or.cloud)",
            "nginx: the configuration file /etc/nginx/nginx.conf syntax is ok\n"
            "nginx: configuration file /etc/nginx/nginx.conf test is successful",
        ),
    ],
)

FINAL: dict[str, Finding] = {
    f.id: f
    for f in (
        CLIENT,
        ROUTE,
        UPSTREAM_OK,
        TIMEOUT,
        STICKY,
        AUTH,
        UPGRADE,
        BUFFERING,
        PROTOCOL,
        CORS,
        TLS,
        SYNTAX,
    )
}
assert tuple(FINAL) == CHECK_IDS


def _waiting(cid: str) -> Finding:
    return Finding(cid, Status.SKIP, FINAL[cid].title, "waiting for its facts")


@dataclass
class Step:
    """One recorded update: which findings are final, which are still pending."""

    findings: dict[str, Finding]
    pending: frozenset[str]
    chain_len: int
    elapsed: float
    nginx_version: str | None = None
    notes: list[str] = field(default_factory=list)
    facts_pending: frozenset[str] = frozenset()  # the facts still being gathered (Fact names)


PROBE_FACTS = frozenset(
    {"handshake:proxy", "handshake:backends", "websocket", "upgrade", "connect", "sticky", "tls", "cors"}
)
HOST_FACTS = frozenset({"config", "version", "logs", "commands"})


def seed_steps() -> list[Step]:
    """Client first (pure), then the config-only checks, then the probes: as a real run arrives."""
    config_ids = {"route", "timeout", "upgrade", "buffering", "syntax"}
    probe_ids = {"upstream", "sticky", "auth", "protocol", "cors", "tls"}
    first = {cid: (FINAL[cid] if cid == "client" else _waiting(cid)) for cid in CHECK_IDS}
    second = {cid: (_waiting(cid) if cid in probe_ids else FINAL[cid]) for cid in CHECK_IDS}
    return [
        Step(
            first,
            frozenset(config_ids | probe_ids),
            chain_len=3,
            elapsed=0.02,
            facts_pending=HOST_FACTS | PROBE_FACTS,
        ),
        Step(
            second,
            frozenset(probe_ids),
            chain_len=5,
            elapsed=0.41,
            nginx_version="1.22.1",
            facts_pending=PROBE_FACTS | {"logs"},
        ),
        Step(dict(FINAL), frozenset(), chain_len=5, elapsed=2.73, nginx_version="1.22.1"),
    ]


class RecordedDiagnosis(Diagnosis):
    """Replays recorded steps (``delay`` seconds apart); classified log lines land as `log` evidence."""

    def __init__(
        self,
        target: Target,
        steps: Sequence[Step] | None = None,
        *,
        delay: float = 0.0,
        hold: bool = False,
        fail_with: BaseException | None = None,
        manual: bool = False,
        chain: Sequence[tuple[str, str]] = CHAIN,
    ) -> None:
        super().__init__(target, gatherers=[])
        self.chain = list(chain)
        self.steps = list(steps) if steps is not None else seed_steps()
        self.delay = delay
        self.hold = hold  # keep "running" after the last step until cancelled
        self.fail_with = fail_with
        self.manual = manual  # step i is yielded only once the test sets allowed >= i
        self.allowed = 0
        self.index = 0
        self.closed = False  # the update stream was closed (finished or cancelled)
        self.facts.ssh_host = target.ssh
        self.facts.pending = set(self.steps[0].facts_pending)

    def evaluate(self, done: bool = False) -> Update:
        step = self.steps[self.index]
        findings = {cid: copy.copy(f) for cid, f in step.findings.items()}
        for cid, f in findings.items():  # what the real checks do with facts.logs, in miniature
            lines = [e for e in self.facts.logs if e.check == cid]
            if lines:
                last = lines[-5:]
                f.evidence = [*f.evidence, Evidence("log", last[-1].file, "\n".join(e.text for e in last))]
        self.findings = findings
        if step.nginx_version:
            self.facts.nginx_version = step.nginx_version
        return Update(
            findings=dict(findings),
            pending=frozenset() if done else step.pending,
            facts=self.facts,
            chain=self.chain[: step.chain_len],
            elapsed=step.elapsed,
            done=done,
            notes=list(step.notes),
        )

    async def updates(self) -> AsyncIterator[Update]:
        try:
            last = len(self.steps) - 1
            for i in range(len(self.steps)):
                if i:
                    await asyncio.sleep(self.delay)
                while self.manual and self.allowed < i:
                    await asyncio.sleep(0.01)
                self.index = i
                self.facts.pending = set(self.steps[i].facts_pending)
                if i == last and not self.hold:
                    self.facts.pending = set()
                yield self.evaluate(done=i == last and not self.hold)
                if self.fail_with is not None:
                    raise self.fail_with
            if self.hold:
                await asyncio.sleep(3600)
        finally:
            self.closed = True


def recorded_factory(**kwargs):
    """A diagnosis factory for WsdoctorApp that remembers what it made."""
    made: list[RecordedDiagnosis] = []

    def factory(target: Target, session: object = None) -> RecordedDiagnosis:
        d = RecordedDiagnosis(target, **kwargs)
        made.append(d)
        return d

    factory.made = made  # type: ignore[attr-defined]
    return factory


# --- log lines -----------------------------------------------------------------------

LOG_LINES: list[LogEvent] = [
    LogEvent(
        source="access",
        file="/var/log/nginx/access.log",
        line_no=88121,
        text='203.0.113.7 - - [26/Nov/2026:03:12:09 +0000] "GET /socket.io/?EIO=4&transport=polling '
        'HTTP/1.1" 404 153 "-" "node-XMLHttpRequest"',
        kind="socketio-404",
        check="client",
        time="03:12:09",
        status=404,
        request="GET /socket.io/?EIO=4&transport=polling",
    ),
    LogEvent(
        source="access",
        file="/var/log/nginx/api.x-or.cloud/path-dev-aiwm-ws.access.log",
        line_no=4410,
        text='198.51.100.23 - - [26/Nov/2026:03:12:10 +0000] "GET /dev/aiwm/chat/socket.io/?EIO=4'
        '&transport=websocket HTTP/1.1" 101 5121 "-" "Mozilla/5.0"',
        kind="upgraded",
        check="upgrade",
        time="03:12:10",
        status=101,
    ),
    LogEvent(
        source="access",
        file="/var/log/nginx/api.x-or.cloud/path-dev-aiwm-ws.access.log",
        line_no=4411,
        text='198.51.100.23 - - [26/Nov/2026:03:12:11 +0000] "GET /dev/aiwm/chat/socket.io/?EIO=4'
        '&transport=polling&sid=Qx1Yt9b3UuS2eM0fAAAB HTTP/1.1" 400 44 "-" "Mozilla/5.0"',
        kind="session-unknown",
        check="sticky",
        time="03:12:11",
        status=400,
    ),
    LogEvent(
        source="error",
        file="/var/log/nginx/api.x-or.cloud/path-dev-aiwm-ws.error.log",
        line_no=17,
        text="2026/11/26 03:12:12 [error] 811#811: *5517 connect() failed (111: Connection refused) while "
        'connecting to upstream, client: 198.51.100.23, server: api.x-or.cloud, upstream: "http://172.16.2.100'
        ':3352/chat/socket.io/?EIO=4&transport=polling"',
        kind="connect-refused",
        check="upstream",
        time="03:12:12",
        upstream="http://172.16.2.100:3352/chat/socket.io/?EIO=4&transport=polling",
    ),
    LogEvent(
        source="access",
        file="/var/log/nginx/access.log",
        line_no=88122,
        text='192.0.2.10 - - [26/Nov/2026:03:12:12 +0000] "GET /healthz HTTP/1.1" 200 2 "-" "kube-probe/1.29"',
        kind="other",
        check="",
        time="03:12:12",
        status=200,
    ),
]

INJECTION = LogEvent(
    source="error",
    file="/var/log/nginx/error.log",
    line_no=2300,
    text="2026/11/26 03:12:13 [error] evil [bold red]x[/] [@click=app.quit]click[/] \x1b[2Jcleared\x1b]0;pwned\x07",
    kind="connect-refused",
    check="upstream",
    time="03:12:13",
)


# --- real runs, recorded against the lab (tests/tui/capture.py) -----------------------

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
SCENARIOS = ("seed", "no-rewrite", "backend-down", "short-timeout", "no-sticky", "bad-auth")


def _finding(d: dict) -> Finding:
    fix = d.get("fix")
    return Finding(
        id=d["id"],
        status=Status(d["status"]),
        title=d["title"],
        summary=d["summary"],
        evidence=[
            Evidence(e["kind"], e["where"], e["text"], tuple(e.get("highlight") or ())) for e in d["evidence"]
        ],
        fix=Fix(fix["summary"], fix.get("diff", ""), fix.get("code", "")) if fix else None,
        corrected=d.get("corrected"),
    )


@dataclass
class Recording:
    """One recorded run: the target, every update, the error it stopped with, the logs it gathered."""

    name: str
    target: Target
    updates: list[dict]
    error: dict | None
    logs: list[LogEvent]


def load_recording(name: str) -> Recording:
    data = json.loads((SCENARIO_DIR / f"{name}.json").read_text())
    t = data["target"]
    target = Target(
        url=t.get("url"),
        path=t.get("path"),
        transports=tuple(t.get("transports") or ("polling", "websocket")),
        ssh=t.get("ssh"),
        identity=t.get("identity"),
        known_hosts=t.get("known_hosts"),
        ca_file=t.get("ca_file"),
        backend_log=t.get("backend_log"),
        timeout=t.get("timeout", 5.0),
        hold=t.get("hold"),
    )
    logs = [LogEvent(**e) for e in data["logs"]]
    return Recording(name, target, data["updates"], data["error"], logs)


class ReplayDiagnosis(Diagnosis):
    """Replays a recorded real run update by update (``manual``: each only once the test allows it), the
    facts still being gathered included, then the error it stopped with, if it did."""

    def __init__(
        self, target: Target, recording: Recording, *, manual: bool = False, hold: bool = False
    ) -> None:
        super().__init__(target, gatherers=[])
        self.recording = recording
        self.manual = manual
        self.hold = hold
        self.allowed = 0
        self.index = -1
        self.closed = False

    def _apply(self, u: dict) -> Update:
        self.findings = {d["id"]: _finding(d) for d in u["findings"]}
        self.facts.nginx_version = u["nginx_version"]
        self.facts.ssh_host = u["ssh_host"]
        self.facts.pending = set(u["facts_pending"])
        if u["done"]:
            self.facts.logs = list(self.recording.logs)
        return Update(
            findings=dict(self.findings),
            pending=frozenset(u["pending"]),
            facts=self.facts,
            chain=[tuple(c) for c in u["chain"]],
            elapsed=u["elapsed"],
            done=u["done"],
            notes=list(u["notes"]),
        )

    def evaluate(self, done: bool = False) -> Update:
        u = dict(self.recording.updates[max(0, self.index)])
        return self._apply(u)

    async def updates(self) -> AsyncIterator[Update]:
        try:
            for i, _ in enumerate(self.recording.updates):
                while self.manual and self.allowed <= i:
                    await asyncio.sleep(0.01)
                self.index = i
                yield self.evaluate()
            if self.recording.error is not None:
                raise InputError(self.recording.error["message"])
            if self.hold:
                await asyncio.sleep(3600)
        finally:
            self.closed = True


def scenario_factory(name: str, **kwargs):
    """A diagnosis factory replaying the recorded run NAME; ``factory.made`` lists what it made."""
    recording = load_recording(name)
    made: list[ReplayDiagnosis] = []

    def factory(target: Target, session: object = None) -> ReplayDiagnosis:
        made.append(ReplayDiagnosis(target, recording, **kwargs))
        return made[-1]

    factory.made = made  # type: ignore[attr-defined]
    factory.recording = recording  # type: ignore[attr-defined]
    return factory
