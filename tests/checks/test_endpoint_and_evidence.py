"""A dead endpoint, one dead backend among live ones, the log lines that explain a verdict, and the server's own
words: each decided once, by the check that owns it, with the others saying why they wait."""

from __future__ import annotations

from pathlib import Path

from tests.checks.helpers import exchange, make_facts
from tests.checks.test_live import GOOD_LOC, OPEN, PUBLIC, hs, lab_conf, live_facts
from wsdoctor import checks
from wsdoctor.checks import _util as u
from wsdoctor.facts import (
    ENGINEIO_PY,
    NGINX,
    CommandResult,
    ConnectProbe,
    CorsProbe,
    LogEvent,
    StickyProbe,
    TlsProbe,
    WebSocketProbe,
)
from wsdoctor.report import Status

POLL = f"{PUBLIC}/chat/socket.io/?EIO=4&transport=polling"
WS = f"{PUBLIC}/chat/socket.io/?EIO=4&transport=websocket"
REFUSED = "connection to ws.example.com:443 refused: nothing listens there"


def _dead(f, stage: str = "connect", error: str = REFUSED) -> None:
    """Every live probe through the proxy got no HTTP answer, as the probes leave it."""
    f.handshakes["proxy"] = hs("proxy", POLL, None, error=error, stage=stage)
    f.websocket = WebSocketProbe("proxy", exchange(WS, None, error=error, stage=stage), error=error)
    f.connect = ConnectProbe("proxy", "/", "polling", error=error)
    f.sticky = StickyProbe("proxy", error=f"no session to keep: {error}")
    f.cors = CorsProbe("proxy", "https://ws.example.com", exchange(POLL, None, error=error), error=error)
    if stage in ("dns", "connect"):
        f.tls = TlsProbe("ws.example.com", 443, ok=False, error=error, stage=stage)


def test_dead_endpoint_without_config_is_one_route_failure(tmp_path: Path) -> None:
    f = live_facts(tmp_path, None)
    _dead(f)
    found = checks.run_all(f)
    route = found["route"]
    assert route.status is Status.FAIL
    assert route.title == "Nothing answers at ws.example.com"
    assert route.summary.startswith("Nothing answers at ws.example.com (connection refused at connect)")
    assert route.evidence and route.evidence[0].kind == "probe"
    assert route.fix is not None and "ss -ltnp" in route.fix.summary
    failing = {cid for cid, x in found.items() if x.status is Status.FAIL}
    assert failing == {"route"}
    for cid in ("upgrade", "sticky", "cors", "auth", "timeout", "upstream", "tls"):
        assert u.DEAD in found[cid].summary, (cid, found[cid].summary)


def test_dead_endpoint_with_config_fails_route_and_keeps_the_config_verdicts(tmp_path: Path) -> None:
    f = live_facts(tmp_path, lab_conf(GOOD_LOC))
    _dead(f, stage="connect", error="timed out after 5.0 s")
    found = checks.run_all(f)
    assert found["route"].status is Status.FAIL
    assert "(timed out after 5.0 s at connect)" in found["route"].summary
    assert {cid for cid, x in found.items() if x.status is Status.FAIL} == {"route"}
    assert found["upgrade"].status is Status.PASS and u.DEAD in found["upgrade"].summary
    assert found["auth"].status is Status.SKIP and u.DEAD in found["auth"].summary
    assert u.DEAD in found["sticky"].summary


def test_connected_but_silent_endpoint_says_so(tmp_path: Path) -> None:
    f = live_facts(tmp_path, lab_conf(GOOD_LOC))
    _dead(f, stage="response", error="timed out after 5.0 s")
    r = checks.run_check("route", f)
    assert r.status is Status.FAIL and "accepts connections but never answers" in r.title


def test_tls_failure_is_named_by_tls_not_route(tmp_path: Path) -> None:
    f = live_facts(tmp_path, None)
    err = "certificate verify failed: self-signed certificate"
    _dead(f, stage="tls", error=err)
    f.tls = TlsProbe("ws.example.com", 443, ok=False, error=err, stage="tls")
    found = checks.run_all(f)
    assert found["tls"].status is Status.FAIL and found["route"].status is Status.SKIP
    assert "see tls" in found["route"].summary
    f.tls = None  # no TLS probe ran: route names the failure itself
    assert checks.run_check("route", f).status is Status.FAIL


# --- one dead backend among live ones ---------------------------------------------------------------------


def _one_dead(f, ports=(3350, 3351)) -> None:
    alive, dead = ports
    base = f"http://127.0.0.1:{alive}"
    f.handshakes[base] = hs(base, f"{base}/socket.io/?EIO=4&transport=polling", 200, OPEN, ENGINEIO_PY)
    base = f"http://127.0.0.1:{dead}"
    f.handshakes[base] = hs(
        base,
        f"{base}/socket.io/?EIO=4&transport=polling",
        None,
        error=f"connection to 127.0.0.1:{dead} refused: nothing listens there",
        stage="connect",
    )


def test_one_dead_backend_fails_over_but_loses_its_sessions(tmp_path: Path) -> None:
    f = live_facts(tmp_path, lab_conf(GOOD_LOC))  # hash $remote_addr consistent over 2 servers
    _one_dead(f)
    r = checks.run_check("upstream", f)
    assert r.status is Status.FAIL and r.title == "Backend down: 127.0.0.1:3351"
    s = r.summary
    assert "1 of 2 servers of backends fails the Engine.IO handshake" in s
    assert "nginx fails over to the others, proxy_next_upstream error timeout, the default" in s
    assert "polling sessions and WebSocket tunnels on the dead backend are lost" in s
    assert "hash re-maps" in s and "lose any in-memory state" in s
    assert "get 502" not in s and "pinned" not in s
    assert "Start the backend process on 127.0.0.1:3351" in r.fix.summary


def test_one_dead_backend_without_failover_gets_502(tmp_path: Path) -> None:
    f = live_facts(tmp_path, lab_conf(GOOD_LOC + "proxy_next_upstream off;\n"))
    _one_dead(f)
    r = checks.run_check("upstream", f)
    assert r.status is Status.FAIL
    assert "proxy_next_upstream off at /etc/nginx/nginx.conf:" in r.summary and "get 502" in r.summary


def test_round_robin_dead_backend_has_no_remap_clause(tmp_path: Path) -> None:
    conf = lab_conf(GOOD_LOC, upstream="server 127.0.0.1:3350;\n        server 127.0.0.1:3351;")
    f = live_facts(tmp_path, conf)
    _one_dead(f)
    s = checks.run_check("upstream", f).summary
    assert "re-maps" not in s and "those clients reconnect" in s


# --- log lines and commands as evidence ------------------------------------------------------------------


def _ev(source: str, n: int, text: str, kind: str) -> LogEvent:
    file = f"/var/log/nginx/{source}.log"
    return LogEvent(source, file, n, text, kind, "upstream")


def test_log_evidence_prefers_the_error_lines_that_explain_newest_first() -> None:
    access = '127.0.0.1 - - [26/Nov/2026:01:14:{s:02d} +0000] "GET /chat/socket.io/?EIO=4&transport=polling&t=Q{s} HTTP/1.1" 502 157'
    refused = (
        "2026/11/26 01:14:{s:02d} [error] 7#7: *{s} connect() failed (111: Connection refused) while connecting "
        'to upstream, upstream: "http://127.0.0.1:{port}/chat/socket.io/"'
    )
    nolive = "2026/11/26 01:14:{s:02d} [error] 7#7: *{s} no live upstreams while connecting to upstream"
    events = [_ev("access", i, access.format(s=i), "502") for i in range(1, 6)]
    events += [
        _ev("error", 10 + i, refused.format(s=i, port=3350 + i % 3), "connect-refused") for i in range(9)
    ]
    events += [_ev("error", 30 + i, nolive.format(s=20 + i), "no-live-upstreams") for i in range(5)]
    events += [_ev("access", 6, access.format(s=40), "502")]
    shown = u.log_evidence(events)
    wheres = [e.where for e in shown]
    assert len(shown) == 4
    # the newest "no live upstreams" (repeats are one line), then the refusals per port, newest first
    assert wheres[0] == "/var/log/nginx/error.log:34"
    assert wheres[1:] == [
        "/var/log/nginx/error.log:18",
        "/var/log/nginx/error.log:17",
        "/var/log/nginx/error.log:16",
    ]
    only_access = u.log_evidence([e for e in events if e.source == "access"])
    assert len(only_access) == 1  # the same request and status: one line, the newest
    assert only_access[0].where == "/var/log/nginx/access.log:6"


def test_ss_evidence_only_when_it_speaks_of_the_dead_port(tmp_path: Path) -> None:
    f = live_facts(tmp_path, lab_conf(GOOD_LOC))
    _one_dead(f)
    head = "State  Recv-Q Send-Q Local Address:Port  Peer Address:Port Process"
    other = 'LISTEN 0      511        127.0.0.1:60343      0.0.0.0:*    users:(("nginx",pid=3930,fd=5))'
    f.commands["ss -ltnp"] = CommandResult(["ss", "-ltnp"], "root@proxy", 0, stdout=f"{head}\n{other}\n")
    r = checks.run_check("upstream", f)
    assert not any(e.kind == "command" for e in r.evidence)
    mine = 'LISTEN 0      128        10.0.0.5:3351      0.0.0.0:*    users:(("node",pid=77,fd=20))'
    f.commands["ss -ltnp"] = CommandResult(
        ["ss", "-ltnp"], "root@proxy", 0, stdout=f"{head}\n{other}\n{mine}\n(nothing listens on port 3351)\n"
    )
    r = checks.run_check("upstream", f)
    cmd = [e for e in r.evidence if e.kind == "command"]
    assert len(cmd) == 1 and "10.0.0.5:3351" in cmd[0].text and "60343" not in cmd[0].text
    assert "(nothing listens on port 3351)" in cmd[0].text


# --- what the server said ------------------------------------------------------------------------------


def test_sticky_quotes_the_server_it_talked_to(tmp_path: Path) -> None:
    conf = lab_conf(GOOD_LOC, upstream="server 127.0.0.1:3350;\n        server 127.0.0.1:3351;")
    offline = checks.run_check("sticky", make_facts(root=None, url=None))
    assert offline.status is Status.SKIP
    f = live_facts(tmp_path, conf)
    generic = checks.run_check("sticky", f)
    assert "400 because it does not know the session" in generic.summary
    assert "Session ID unknown" not in generic.summary and "Invalid session" not in generic.summary
    f.handshakes["proxy"] = hs("proxy", POLL, 200, OPEN, ENGINEIO_PY)
    python = checks.run_check("sticky", f)
    assert '400 "Invalid session <sid>"' in python.summary and "Session ID unknown" not in python.summary
    refused = exchange(POLL + "&sid=abc", 400, b'"Invalid session abc"', ENGINEIO_PY)
    f.sticky = StickyProbe("proxy", requests=6, refused=[refused])
    live = checks.run_check("sticky", f)
    assert 'refused with 400 Bad Request "Invalid session abc"' in live.summary


def test_nginx_404_without_config_still_fails(tmp_path: Path) -> None:
    f = live_facts(tmp_path, None)
    body = b"<html><head><title>404 Not Found</title></head><body><center>nginx</center></body></html>"
    f.handshakes["proxy"] = hs("proxy", POLL, 404, body, NGINX)
    r = checks.run_check("route", f)
    assert r.status is Status.FAIL and "404" in r.title
    assert "nginx has no location that proxies it" in r.summary
