"""The live halves: probe facts built by hand, combined with the config; agreement and disagreement."""

from __future__ import annotations

import base64
import json
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.checks.helpers import exchange, make_facts
from wsdoctor import checks
from wsdoctor.facts import (
    ENGINEIO_NODE,
    ENGINEIO_PY,
    EXPRESS,
    NGINX,
    NODE_WS,
    PY_WEBSOCKETS,
    CommandResult,
    ConnectProbe,
    CorsProbe,
    Handshake,
    HoldProbe,
    LogEvent,
    StickyProbe,
    TlsProbe,
    UpgradeProbe,
    WebSocketProbe,
)
from wsdoctor.report import Report, Status

PUBLIC = "https://ws.example.com"
OPEN = (
    b'0{"sid":"abc","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}'
)


def lab_conf(location: str, upstream: str = "", server_extra: str = "") -> str:
    up = (
        upstream
        or "server 127.0.0.1:3350;\n        server 127.0.0.1:3351;\n        hash $remote_addr consistent;"
    )
    return textwrap.dedent(
        """\
        events {{}}
        http {{
            upstream backends {{
                {up}
            }}
            server {{
                listen 443 ssl;
                server_name ws.example.com;
                ssl_certificate /etc/nginx/c.pem;
                ssl_certificate_key /etc/nginx/k.pem;
        {extra}
                location /chat/ {{
        {loc}
                }}
            }}
        }}
        """
    ).format(up=up, extra=server_extra, loc=textwrap.indent(textwrap.dedent(location), " " * 12))


GOOD_LOC = """\
proxy_pass http://backends/;
proxy_http_version 1.1;
proxy_set_header Upgrade $http_upgrade;
proxy_set_header Connection "upgrade";
proxy_set_header Host $host;
proxy_buffering off;
"""


def tree(tmp: Path, conf: str) -> Path:
    (tmp / "etc/nginx").mkdir(parents=True, exist_ok=True)
    (tmp / "etc/nginx/nginx.conf").write_text(conf)
    return tmp


def live_facts(tmp: Path, conf: str | None = None, **kw):
    kw.setdefault("url", "wss://ws.example.com")
    kw.setdefault("path", "/chat/socket.io")
    root = tree(tmp, conf) if conf else None
    facts = make_facts(root=root, offline=False, **kw)
    return facts


def hs(where: str, url: str, status: int | None, body: bytes = b"", by: str = "nobody", **kw) -> Handshake:
    ok = status == 200 and body.startswith(b"0{")
    h = Handshake(where=where, exchange=exchange(url, status, body, by, **kw), ok=ok)
    if ok:
        h.sid, h.ping_interval, h.ping_timeout = "abc", 25000, 20000
    return h


def proxy_ok() -> Handshake:
    return hs("proxy", f"{PUBLIC}/chat/socket.io/?EIO=4&transport=polling", 200, OPEN, ENGINEIO_PY)


# --- route ----------------------------------------------------------------------------------------------


def test_route_backend_404_is_the_wrong_upstream_path_and_the_fix_maps_the_prefix(tmp_path: Path) -> None:
    conf = lab_conf(GOOD_LOC.replace("proxy_pass http://backends/;", "proxy_pass http://backends;"))
    f = live_facts(tmp_path, conf)
    f.handshakes["proxy"] = hs(
        "proxy", f"{PUBLIC}/chat/socket.io/?EIO=4&transport=polling", 404, b"Not Found", ENGINEIO_PY
    )
    f.handshakes["http://127.0.0.1:3350"] = hs(
        "http://127.0.0.1:3350",
        "http://127.0.0.1:3350/socket.io/?EIO=4&transport=polling",
        200,
        OPEN,
        ENGINEIO_PY,
    )
    r = checks.run_check("route", f)
    assert r.status is Status.FAIL
    assert "404" in r.title and "/chat/socket.io/" in r.title
    assert "http://backends/chat/socket.io/?EIO=4&transport=polling" in r.summary
    assert any(e.kind == "probe" and "404" in e.text for e in r.evidence)
    assert r.fix is not None and "+            proxy_pass http://backends/;" in r.fix.diff


def test_route_live_agrees(tmp_path: Path) -> None:
    f = live_facts(tmp_path, lab_conf(GOOD_LOC))
    f.handshakes["proxy"] = proxy_ok()
    r = checks.run_check("route", f)
    assert r.status is Status.PASS
    assert "python-engineio" in r.summary


def test_route_config_404_but_live_answers_is_a_disagreement(tmp_path: Path) -> None:
    f = live_facts(tmp_path, lab_conf(GOOD_LOC), path=None)  # /socket.io/ reaches no location
    f.handshakes["proxy"] = hs(
        "proxy", f"{PUBLIC}/socket.io/?EIO=4&transport=polling", 200, OPEN, ENGINEIO_PY
    )
    r = checks.run_check("route", f)
    assert r.status is Status.WARN and "disagree" in r.title


def test_route_nginx_404_when_config_proxies_is_a_disagreement(tmp_path: Path) -> None:
    f = live_facts(tmp_path, lab_conf(GOOD_LOC))
    body = b"<html><head><title>404 Not Found</title></head><body><center>nginx</center></body></html>"
    f.handshakes["proxy"] = hs("proxy", f"{PUBLIC}/chat/socket.io/?EIO=4&transport=polling", 404, body, NGINX)
    r = checks.run_check("route", f)
    assert r.status is Status.FAIL and "disagree" in r.title


def test_route_without_config_uses_the_probe(tmp_path: Path) -> None:
    f = live_facts(tmp_path, None)
    f.handshakes["proxy"] = hs(
        "proxy", f"{PUBLIC}/chat/socket.io/?EIO=4&transport=polling", 404, b"<html>nginx</html>", NGINX
    )
    r = checks.run_check("route", f)
    assert r.status is Status.FAIL and "404" in r.title


# --- upstream -------------------------------------------------------------------------------------------


def test_upstream_names_the_dead_backend_with_its_probe_and_log(tmp_path: Path) -> None:
    f = live_facts(tmp_path, lab_conf(GOOD_LOC))
    f.handshakes["http://127.0.0.1:3350"] = hs(
        "http://127.0.0.1:3350",
        "http://127.0.0.1:3350/chat/socket.io/?EIO=4&transport=polling",
        200,
        OPEN,
        ENGINEIO_PY,
    )
    dead = hs(
        "http://127.0.0.1:3351",
        "http://127.0.0.1:3351/chat/socket.io/?EIO=4&transport=polling",
        None,
        error="connection refused",
        stage="connect",
    )
    dead.error = "connection refused"
    f.handshakes["http://127.0.0.1:3351"] = dead
    line = (
        "2026/01/01 10:00:00 [error] 1#1: *5 connect() failed (111: Connection refused) while connecting to upstream, "
        'upstream: "http://127.0.0.1:3351/chat/socket.io/?EIO=4&transport=polling"'
    )
    f.logs.append(LogEvent("error", "/var/log/nginx/error.log", 17, line, "connect-refused", "upstream"))
    r = checks.run_check("upstream", f)
    assert r.status is Status.FAIL
    assert "127.0.0.1:3351" in r.title and "127.0.0.1:3350" not in r.title
    assert "1 of 2" in r.summary and "connection refused" in r.summary
    wheres = [e.where for e in r.evidence]
    assert "/var/log/nginx/error.log:17" in wheres
    assert any(e.kind == "config" and "server 127.0.0.1:3351;" in e.text for e in r.evidence)


def test_upstream_all_alive_passes(tmp_path: Path) -> None:
    f = live_facts(tmp_path, lab_conf(GOOD_LOC))
    for port in (3350, 3351):
        base = f"http://127.0.0.1:{port}"
        f.handshakes[base] = hs(
            base, f"{base}/chat/socket.io/?EIO=4&transport=polling", 200, OPEN, ENGINEIO_PY
        )
    r = checks.run_check("upstream", f)
    assert r.status is Status.PASS and "All 2" in r.summary and "/chat/socket.io/" in r.summary


def test_upstream_proxy_502_fails(tmp_path: Path) -> None:
    f = live_facts(tmp_path, lab_conf(GOOD_LOC))
    f.handshakes["proxy"] = hs(
        "proxy",
        f"{PUBLIC}/chat/socket.io/?EIO=4&transport=polling",
        502,
        b"<html>502 Bad Gateway nginx</html>",
        NGINX,
    )
    r = checks.run_check("upstream", f)
    assert r.status is Status.FAIL and "502" in r.title


# --- upgrade --------------------------------------------------------------------------------------------


def ws_probe(status: int | None, body: bytes = b"", by: str = "nobody", ok: bool = False) -> WebSocketProbe:
    return WebSocketProbe(
        where="proxy",
        exchange=exchange(f"{PUBLIC}/chat/socket.io/?EIO=4&transport=websocket", status, body, by),
        ok=ok,
    )


def test_upgrade_refused_live_as_the_config_predicts(tmp_path: Path) -> None:
    loc = "proxy_pass http://backends/;\nproxy_http_version 1.1;\nproxy_buffering off;\n"
    f = live_facts(tmp_path, lab_conf(loc))
    f.websocket = ws_probe(400, b'"Invalid websocket upgrade"', ENGINEIO_PY)
    r = checks.run_check("upgrade", f)
    assert r.status is Status.FAIL
    assert "as predicted" in r.summary and "400" in r.summary
    assert any(e.kind == "probe" for e in r.evidence)


def test_upgrade_101_passes(tmp_path: Path) -> None:
    f = live_facts(tmp_path, lab_conf(GOOD_LOC))
    f.websocket = ws_probe(101, by=ENGINEIO_PY, ok=True)
    f.upgrade = UpgradeProbe(where="proxy", ok=True)
    r = checks.run_check("upgrade", f)
    assert r.status is Status.PASS and "101" in r.summary


def test_upgrade_good_config_refused_live_is_a_disagreement(tmp_path: Path) -> None:
    f = live_facts(tmp_path, lab_conf(GOOD_LOC))
    f.websocket = ws_probe(400, b'{"code":3,"message":"Bad request"}', ENGINEIO_NODE)
    r = checks.run_check("upgrade", f)
    assert r.status is Status.FAIL and "disagree" in r.title


def test_upgrade_does_not_blame_itself_for_a_404(tmp_path: Path) -> None:
    f = live_facts(tmp_path, lab_conf(GOOD_LOC))
    f.websocket = ws_probe(404, b"Not Found", ENGINEIO_PY)
    assert checks.run_check("upgrade", f).status is Status.PASS


def test_header_inheritance_shows_the_lost_headers(tmp_path: Path) -> None:
    loc = 'proxy_pass http://backends/;\nproxy_http_version 1.1;\nproxy_set_header Upgrade $http_upgrade;\nproxy_set_header Connection "upgrade";\n'
    extra = "        proxy_set_header Host $host;\n        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
    f = live_facts(tmp_path, lab_conf(loc, server_extra=extra))
    r = checks.run_check("upgrade", f)
    assert r.status is Status.WARN
    assert "Host" in r.title and "X-Forwarded-For" in r.title
    assert any("proxy_set_header Host $host;" in e.text for e in r.evidence)


# --- timeout --------------------------------------------------------------------------------------------


def test_timeout_measured_ping_longer_than_read_timeout_fails_and_the_hold_agrees(tmp_path: Path) -> None:
    f = live_facts(tmp_path, lab_conf(GOOD_LOC + "proxy_read_timeout 3s;\n"))
    h = proxy_ok()
    h.ping_interval = 5000
    f.handshakes["proxy"] = h
    f.hold = HoldProbe(
        where="proxy", held_for=3.02, requested=10, closed=True, close_code=None, ping_interval=5000
    )
    r = checks.run_check("timeout", f)
    assert r.status is Status.FAIL
    assert "pingInterval 5 s (the handshake through the proxy)" in r.summary
    assert "3.0 s" in r.summary and "matching proxy_read_timeout 3s" in r.summary
    assert r.fix is not None and "proxy_read_timeout 60s;" in r.fix.diff


def test_timeout_drop_not_from_nginx_says_where_to_look(tmp_path: Path) -> None:
    f = live_facts(tmp_path, lab_conf(GOOD_LOC))
    f.handshakes["proxy"] = proxy_ok()
    f.hold = HoldProbe(where="proxy", held_for=30.0, requested=90, closed=True, close_code=1006)
    r = checks.run_check("timeout", f)
    assert r.status is Status.FAIL and "load balancer" in r.summary


def test_timeout_held_tunnel_passes(tmp_path: Path) -> None:
    f = live_facts(tmp_path, lab_conf(GOOD_LOC))
    f.handshakes["proxy"] = proxy_ok()
    f.hold = HoldProbe(where="proxy", held_for=90.0, requested=90, closed=False, pings=3, ping_interval=25000)
    r = checks.run_check("timeout", f)
    assert r.status is Status.PASS and "3 pings" in r.summary


# --- sticky ---------------------------------------------------------------------------------------------


def refused_poll() -> object:
    return exchange(
        f"{PUBLIC}/chat/socket.io/?EIO=4&transport=polling&sid=abc",
        400,
        b'"Invalid session abc"',
        ENGINEIO_PY,
    )


def test_sticky_refused_live_fails_with_the_refused_request(tmp_path: Path) -> None:
    conf = lab_conf(GOOD_LOC, upstream="server 127.0.0.1:3350;\n        server 127.0.0.1:3351;")
    f = live_facts(tmp_path, conf)
    f.sticky = StickyProbe(where="proxy", requests=6, refused=[refused_poll()], ok=False)
    r = checks.run_check("sticky", f)
    assert r.status is Status.FAIL and "as predicted" in r.summary
    assert any("Invalid session" in e.text for e in r.evidence)


def test_sticky_config_pins_but_live_refused_is_a_disagreement(tmp_path: Path) -> None:
    f = live_facts(tmp_path, lab_conf(GOOD_LOC))
    f.sticky = StickyProbe(where="proxy", requests=6, refused=[refused_poll()], ok=False)
    r = checks.run_check("sticky", f)
    assert r.status is Status.FAIL and "disagree" in r.title


def test_sticky_live_ok_passes(tmp_path: Path) -> None:
    f = live_facts(tmp_path, lab_conf(GOOD_LOC))
    f.sticky = StickyProbe(where="proxy", requests=6, ok=True)
    r = checks.run_check("sticky", f)
    assert r.status is Status.PASS and "6 polling requests" in r.summary


# --- auth -----------------------------------------------------------------------------------------------


def make_jwt(**claims) -> str:
    def b64(d: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64(claims)}.c2lnbmF0dXJlLW5vdC1jaGVja2Vk"


def connect_probe(token: str, ok: bool, message: str | None = None, namespace: str = "/") -> ConnectProbe:
    sent = f'40{{"token":"{token}"}}' if namespace == "/" else f'40{namespace},{{"token":"{token}"}}'
    packets = ['0{"sid":"abc","pingInterval":25000}', "> " + sent]
    packets.append('40{"sid":"xyz"}' if ok else f'44{{"message":"{message}"}}')
    return ConnectProbe(
        where="proxy",
        namespace=namespace,
        transport="websocket",
        exchanges=[
            exchange(
                f"{PUBLIC}/chat/socket.io/?EIO=4&transport=websocket",
                101,
                answered_by=ENGINEIO_PY,
                request_headers=[("Authorization", f"Bearer {token}")],
            )
        ],
        packets=packets,
        ok=ok,
        refused_message=message,
        sent_token=True,
        sent_auth_header=True,
    )


def test_auth_expired_token_is_named_with_its_expiry_and_never_printed(tmp_path: Path) -> None:
    exp = datetime.now(UTC) - timedelta(hours=3)
    token = make_jwt(sub="u1", exp=int(exp.timestamp()), iat=int(exp.timestamp()) - 3600)
    f = live_facts(tmp_path, lab_conf(GOOD_LOC), token=token)
    f.connect = connect_probe(token, ok=False, message="authentication failed")
    r = checks.run_check("auth", f)
    assert r.status is Status.FAIL
    assert r.title == "The token has expired"
    assert "'authentication failed'" in r.summary
    assert exp.strftime("%Y-%m-%d %H:%M") in r.summary
    report = Report(
        target={"url": f.target.url}, findings=list(checks.run_all(f).values()), secrets=f.target.secrets()
    )
    for text in (report.to_text(), report.to_json(), report.to_markdown(), json.dumps(r.to_json())):
        assert token not in text
        assert token.split(".")[1] not in text  # not even the payload part


def test_auth_refused_valid_token_says_check_the_secret(tmp_path: Path) -> None:
    token = make_jwt(sub="u1", exp=int((datetime.now(UTC) + timedelta(hours=1)).timestamp()))
    f = live_facts(tmp_path, lab_conf(GOOD_LOC), token=token)
    f.connect = connect_probe(token, ok=False, message="authentication failed")
    r = checks.run_check("auth", f)
    assert r.status is Status.FAIL and "secret" in r.summary
    assert token not in json.dumps(r.to_json())


def test_auth_offline_expired_token_fails_without_network(tmp_path: Path) -> None:
    token = make_jwt(exp=int((datetime.now(UTC) - timedelta(days=2)).timestamp()))
    f = make_facts(root=tree(tmp_path, lab_conf(GOOD_LOC)), token=token, path="/chat/socket.io")
    r = checks.run_check("auth", f)
    assert r.status is Status.FAIL and "expired" in r.summary


def test_auth_offline_without_token_skips() -> None:
    f = make_facts()
    r = checks.run_check("auth", f)
    assert r.status is Status.SKIP and "--offline" in r.summary


def test_auth_accepted_passes_and_header_only_with_websocket_warns(tmp_path: Path) -> None:
    token = "opaque-secret-token-1234"
    f = live_facts(tmp_path, lab_conf(GOOD_LOC), token=token)
    f.connect = connect_probe(token, ok=True)
    assert checks.run_check("auth", f).status is Status.PASS
    f2 = live_facts(tmp_path, lab_conf(GOOD_LOC), token=token, transports=("websocket",), auth_header=True)
    f2.connect = connect_probe(token, ok=True)
    r = checks.run_check("auth", f2)
    assert r.status is Status.WARN and "browsers" in r.summary
    assert token not in json.dumps(r.to_json())


def test_auth_unknown_namespace_is_the_clients_problem(tmp_path: Path) -> None:
    f = live_facts(tmp_path, None, url="wss://ws.example.com/dev/chat", path=None, token="abcd-efgh")
    f.connect = connect_probe("abcd-efgh", ok=False, message="Invalid namespace", namespace="/dev/chat")
    assert checks.run_check("auth", f).status is Status.SKIP
    c = checks.run_check("client", f)
    assert c.status is Status.FAIL and "no namespace /dev/chat" in c.title
    assert "abcd-efgh" not in json.dumps(c.to_json())


# --- cors -----------------------------------------------------------------------------------------------


def cors_probe(values: list[str]) -> CorsProbe:
    headers = [("Access-Control-Allow-Origin", v) for v in values]
    return CorsProbe(
        where="proxy",
        origin="https://app.example.com",
        exchange=exchange(
            f"{PUBLIC}/chat/socket.io/?EIO=4&transport=polling", 200, OPEN, ENGINEIO_PY, headers=headers
        ),
        allow_origin=values,
    )


def test_cors_duplicate_live_fails_with_both_values(tmp_path: Path) -> None:
    loc = GOOD_LOC + "add_header Access-Control-Allow-Origin $http_origin always;\n"
    f = live_facts(tmp_path, lab_conf(loc))
    f.cors = cors_probe(["https://app.example.com", "*"])
    r = checks.run_check("cors", f)
    assert r.status is Status.FAIL
    assert "'https://app.example.com'" in r.summary and "'*'" in r.summary
    assert (
        r.fix is not None
        and "-            add_header Access-Control-Allow-Origin $http_origin always;" in r.fix.diff
    )


def test_cors_single_value_passes(tmp_path: Path) -> None:
    f = live_facts(tmp_path, lab_conf(GOOD_LOC))
    f.cors = cors_probe(["https://app.example.com"])
    assert checks.run_check("cors", f).status is Status.PASS


# --- tls ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("probe", "status", "word"),
    [
        (
            TlsProbe(
                "ws.example.com",
                443,
                ok=True,
                verified=True,
                hostname_ok=True,
                days_left=80,
                version="TLSv1.3",
            ),
            "pass",
            "verified",
        ),
        (
            TlsProbe("ws.example.com", 443, ok=True, verified=True, hostname_ok=True, days_left=5),
            "warn",
            "expires",
        ),
        (
            TlsProbe(
                "ws.example.com", 443, ok=True, verified=False, insecure=True, hostname_ok=None, days_left=80
            ),
            "warn",
            "--insecure",
        ),
        (
            TlsProbe(
                "ws.example.com",
                443,
                ok=False,
                error="certificate verify failed: certificate has expired",
                stage="tls",
            ),
            "fail",
            "expired",
        ),
        (
            TlsProbe(
                "ws.example.com",
                443,
                ok=False,
                error="certificate verify failed: Hostname mismatch, certificate is not valid for 'ws.example.com'",
                stage="tls",
            ),
            "fail",
            "match",
        ),
    ],
)
def test_tls(probe: TlsProbe, status: str, word: str, tmp_path: Path) -> None:
    f = live_facts(tmp_path, lab_conf(GOOD_LOC))
    f.tls = probe
    r = checks.run_check("tls", f)
    assert r.status.value == status, r.summary
    assert word in (r.title + r.summary)


def test_tls_skips_for_plain_ws() -> None:
    f = make_facts(url="ws://ws.example.com", offline=False)
    r = checks.run_check("tls", f)
    assert r.status is Status.SKIP and "not wss://" in r.summary


# --- syntax ---------------------------------------------------------------------------------------------


def test_syntax_nginx_t(tmp_path: Path) -> None:
    f = live_facts(tmp_path, lab_conf(GOOD_LOC))
    f.commands["nginx -t"] = CommandResult(
        ["nginx", "-t"],
        "root@proxy",
        1,
        stderr='nginx: [emerg] unknown directive "proxy_passs" in /etc/nginx/nginx.conf:14',
    )
    r = checks.run_check("syntax", f)
    assert r.status is Status.FAIL and "proxy_passs" in r.summary
    f.commands["nginx -t"] = CommandResult(["nginx", "-t"], "local", 0, stderr="nginx: configuration file ok")
    r = checks.run_check("syntax", f)
    assert r.status is Status.PASS and "`nginx -t` succeeds" in r.summary


# --- every check, everything missing ----------------------------------------------------------------------


def test_no_facts_at_all_every_check_skips_with_a_reason() -> None:
    f = make_facts(url=None, offline=False)
    for cid, finding in checks.run_all(f).items():
        assert finding.status is Status.SKIP, (cid, finding.summary)
        assert "internal error" not in finding.summary
        assert finding.summary.strip(), cid


# --- log lines as evidence ------------------------------------------------------------------------------


def test_logs_become_evidence(tmp_path: Path) -> None:
    # route: nginx's own 404 for the runbook client's request
    f = live_facts(tmp_path, lab_conf(GOOD_LOC), path=None)
    line = '2026/01/01 10:00:00 [error] 7#7: *1 open() "/usr/share/nginx/html/socket.io/index.html" failed (2: No such file or directory)'
    f.logs.append(LogEvent("error", "/var/log/nginx/error.log", 3, line, "socketio-404", "route"))
    r = checks.run_check("route", f)
    assert r.status is Status.FAIL and any(e.kind == "log" and "index.html" in e.text for e in r.evidence)

    # sticky: config pins, but the access log shows polling requests refused with 400
    f = live_facts(tmp_path, lab_conf(GOOD_LOC))
    access = '10.0.0.9 - - [01/Jan/2026:10:00:00 +0000] "POST /chat/socket.io/?EIO=4&transport=polling&sid=x HTTP/1.1" 400 29'
    f.logs.append(LogEvent("access", "/var/log/nginx/access.log", 9, access, "400-polling-sid", "sticky"))
    s = checks.run_check("sticky", f)
    assert s.status is Status.WARN and s.evidence[-1].where == "/var/log/nginx/access.log:9"

    # timeout: config fine, but nginx logged idle tunnels closed by its timer
    f = live_facts(tmp_path, lab_conf(GOOD_LOC))
    info = (
        "2026/01/01 10:01:00 [info] 7#7: *9 upstream timed out (110: Connection timed out) while proxying "
        "upgraded connection, client: 10.0.0.9"
    )
    f.logs.append(LogEvent("error", "/var/log/nginx/error.log", 40, info, "upgraded-timeout", "timeout"))
    t = checks.run_check("timeout", f)
    assert t.status is Status.FAIL and "error log" in t.summary
    assert any(e.kind == "log" for e in t.evidence)


def test_route_error_log_upstream_field_confirms_or_contradicts(tmp_path: Path) -> None:
    line = (
        "2026/01/01 10:00:00 [error] 7#7: *1 connect() failed (111: Connection refused) while connecting to upstream, "
        'request: "GET /chat/socket.io/?EIO=4&transport=polling HTTP/1.1", upstream: "http://127.0.0.1:3350{uri}"'
    )
    for uri, status in (
        ("/socket.io/?EIO=4&transport=polling", Status.PASS),
        ("/chat/socket.io/?EIO=4", Status.FAIL),
    ):
        f = live_facts(tmp_path, lab_conf(GOOD_LOC))
        ev = LogEvent(
            "error", "/var/log/nginx/error.log", 5, line.format(uri=uri), "connect-refused", "upstream"
        )
        ev.upstream = "http://127.0.0.1:3350" + uri
        ev.request = "GET /chat/socket.io/?EIO=4&transport=polling HTTP/1.1"
        f.logs.append(ev)
        r = checks.run_check("route", f)
        assert r.status is status, r.summary
        if status is Status.PASS:
            assert "the error log confirms nginx sent /socket.io/ upstream" in r.summary
        else:
            assert "disagree" in r.title and r.evidence[-1].kind == "log"


def test_client_without_config() -> None:
    warn = checks.run_check("client", make_facts(url="wss://api.x-or.cloud/dev/aiwm/chat"))
    assert warn.status is Status.WARN and "path prefix" in warn.title
    assert "path: '/dev/aiwm/chat/socket.io'" in warn.fix.code
    ok = checks.run_check("client", make_facts(url="wss://api.x-or.cloud/admin"))
    assert ok.status is Status.PASS and "must define namespace /admin" in ok.summary
    raw = checks.run_check(
        "client", make_facts(url="ws://localhost:3350/chat", transports=("websocket",), raw=True)
    )
    assert raw.status is Status.WARN and "EIO" in raw.summary


# --- who answered: attribution before any conclusion -------------------------------------------------------

PROXY_URL = f"{PUBLIC}/chat/socket.io/?EIO=4&transport=polling"
EXPRESS_404 = (
    b'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>Error</title>\n</head>\n'
    b"<body>\n<pre>Cannot GET /chat/socket.io/</pre>\n</body>\n</html>\n"
)
NGINX_404 = (
    b"<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n<center><h1>404 Not Found</h1></center>"
    b"\r\n<hr><center>nginx/1.22.1</center>\r\n</body>\r\n</html>\r\n"
)


def test_route_express_404_is_the_backend_not_a_disagreement(tmp_path: Path) -> None:
    f = live_facts(tmp_path, lab_conf(GOOD_LOC))
    f.handshakes["proxy"] = hs("proxy", PROXY_URL, 404, EXPRESS_404, EXPRESS)
    r = checks.run_check("route", f)
    assert r.status is Status.FAIL and "disagree" not in r.title, r.title
    assert "the backend's Node app (Express) answers 404" in r.summary
    assert "not the one nginx runs" not in r.summary


def test_route_blames_nginx_only_with_nginx_s_own_page_and_says_so(tmp_path: Path) -> None:
    f = live_facts(tmp_path, lab_conf(GOOD_LOC))
    f.handshakes["proxy"] = hs("proxy", PROXY_URL, 404, NGINX_404, NGINX)
    r = checks.run_check("route", f)
    assert r.status is Status.FAIL and "disagree" in r.title
    # the evidence that rules the backend out, in the summary
    assert "nginx's own error page" in r.summary and "which no backend writes" in r.summary


@pytest.mark.parametrize(
    ("status", "body", "by", "see"),
    [
        (400, b"Missing or invalid Sec-WebSocket-Key header", NODE_WS, "(see upgrade)"),
        (
            400,
            b"Failed to open a WebSocket connection: missing Sec-WebSocket-Key header.\n",
            PY_WEBSOCKETS,
            "(see upgrade)",
        ),
        (426, b"Upgrade Required", NODE_WS, "(see protocol)"),
        (400, b'{"code":5,"message":"Unsupported protocol version"}', ENGINEIO_NODE, "(see protocol)"),
    ],
)
def test_route_backend_answers_another_check_explains(tmp_path: Path, status, body, by, see) -> None:  # noqa: ANN001
    f = live_facts(tmp_path, lab_conf(GOOD_LOC))
    f.handshakes["proxy"] = hs("proxy", PROXY_URL, status, body, by)
    r = checks.run_check("route", f)
    assert r.status is Status.PASS and see in r.summary, r.summary
    assert "nginx itself" not in r.summary


def test_route_502_in_front_of_backends_at_the_wrong_path_is_the_path(tmp_path: Path) -> None:
    """nginx took the backends out after failed requests: its 502 hides that they answer, at a wrong path."""
    conf = lab_conf(GOOD_LOC.replace("proxy_pass http://backends/;", "proxy_pass http://backends;"))
    f = live_facts(tmp_path, conf)
    f.handshakes["proxy"] = hs("proxy", PROXY_URL, 502, b"<hr><center>nginx</center>", NGINX)
    base = "http://127.0.0.1:3350"
    f.handshakes[base] = hs(
        base, f"{base}/chat/socket.io/?EIO=4&transport=polling", 404, EXPRESS_404, EXPRESS
    )
    f.path_probes[f"{base}/socket.io/"] = hs(
        base, f"{base}/socket.io/?EIO=4&transport=polling", 200, OPEN, ENGINEIO_NODE
    )
    r = checks.run_check("route", f)
    assert r.status is Status.FAIL and "404" in r.title, r.summary
    assert "taken the backends out" in r.summary
    u = checks.run_check("upstream", f)
    assert u.status is Status.PASS and "took them out" in u.summary, u.summary


# --- upstream: a hang, a refusal, a reset, a slow answer ---------------------------------------------------


def _ss(*lines: str) -> CommandResult:
    head = "State  Recv-Q Send-Q Local Address:Port Peer Address:Port Process"
    return CommandResult(["ss", "-ltnp"], "root@lb1", 0, "\n".join([head, *lines]))


def _two_backends(f, dead: Handshake) -> None:  # noqa: ANN001
    ok = "http://127.0.0.1:3350"
    f.handshakes[ok] = hs(ok, f"{ok}/chat/socket.io/?EIO=4&transport=polling", 200, OPEN, ENGINEIO_PY)
    f.handshakes[dead.where] = dead


def _dead(error: str, stage: str) -> Handshake:
    base = "http://127.0.0.1:3351"
    h = hs(base, f"{base}/chat/socket.io/?EIO=4&transport=polling", None, error=error, stage=stage)
    h.error = error
    return h


def test_upstream_hung_backend_is_not_down(tmp_path: Path) -> None:
    f = live_facts(tmp_path, lab_conf(GOOD_LOC))
    f.target.timeout = 5.0
    _two_backends(f, _dead("timed out after 5.0 s waiting for the HTTP response", "response"))
    f.commands["ss -ltnp"] = _ss('LISTEN 2 511 127.0.0.1:3351 0.0.0.0:* users:(("node",pid=7,fd=20))')
    r = checks.run_check("upstream", f)
    words = r.title + r.summary + (r.fix.summary if r.fix else "")
    assert r.status is Status.FAIL and "hung" in r.title and "down" not in r.title.lower(), r.title
    assert (
        "did not answer within 5 s" in r.summary and "2 connections waiting in the accept queue" in r.summary
    )
    assert "crash" not in words and "kill -CONT" in r.fix.summary
    assert any(e.where.startswith("$ ss") and "127.0.0.1:3351" in e.text for e in r.evidence)


def test_upstream_refused_while_ss_showed_it_listening_says_it_stopped_since(tmp_path: Path) -> None:
    f = live_facts(tmp_path, lab_conf(GOOD_LOC))
    _two_backends(f, _dead("connection to 127.0.0.1:3351 refused: nothing listens there", "connect"))
    f.commands["ss -ltnp"] = _ss('LISTEN 0 511 127.0.0.1:3351 0.0.0.0:* users:(("node",pid=7,fd=20))')
    r = checks.run_check("upstream", f)
    assert r.status is Status.FAIL and "down" in r.title
    assert "`ss -ltnp` showed the port listening when it ran: the process stopped in between" in r.summary


def test_upstream_reset_and_slow(tmp_path: Path) -> None:
    f = live_facts(tmp_path, lab_conf(GOOD_LOC))
    _two_backends(
        f, _dead("127.0.0.1:3351 reset the connection while waiting for the HTTP response", "response")
    )
    r = checks.run_check("upstream", f)
    assert r.status is Status.FAIL and "resetting" in r.title and "reset" in r.summary
    slow = live_facts(tmp_path, lab_conf(GOOD_LOC))
    _two_backends(
        slow,
        hs("http://127.0.0.1:3351", "http://127.0.0.1:3351/chat/socket.io/?EIO=4", 200, OPEN, ENGINEIO_PY),
    )
    slow.handshakes["http://127.0.0.1:3351"].exchange.elapsed = 3.4
    r = checks.run_check("upstream", slow)
    assert r.status is Status.WARN and "127.0.0.1:3351 (3.4 s)" in r.summary, r.summary


# --- protocol ---------------------------------------------------------------------------------------------

V3_OPEN = b'97:0{"sid":"abc","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000}'


def _v3(where: str, url: str) -> Handshake:
    h = hs(where, url, 200, V3_OPEN, ENGINEIO_NODE)
    h.ok, h.server_eio, h.sid = True, 3, "abc"
    return h


def test_protocol_engineio4_passes_and_offline_skips(tmp_path: Path) -> None:
    f = live_facts(tmp_path, lab_conf(GOOD_LOC))
    f.handshakes["proxy"] = proxy_ok()
    r = checks.run_check("protocol", f)
    assert r.status is Status.PASS and "Engine.IO 4 (Socket.IO 3/4)" in r.summary
    off = make_facts(url="wss://ws.example.com")
    r = checks.run_check("protocol", off)
    assert r.status is Status.SKIP and "--offline" in r.summary


def test_protocol_socketio2_server_with_v4_clients_fails_with_both_ways_out(tmp_path: Path) -> None:
    f = live_facts(tmp_path, lab_conf(GOOD_LOC))
    f.handshakes["proxy"] = _v3("proxy", PROXY_URL)
    r = checks.run_check("protocol", f)
    assert r.status is Status.FAIL and "Socket.IO 2" in r.title
    assert "server error" in r.summary and "It seems you are trying to reach" in r.summary
    assert r.fix is not None and "allowEIO3: true" in r.fix.summary and "--client-version 2" in r.fix.summary
    f.target.client_version = 2
    assert checks.run_check("protocol", f).status is Status.PASS


def test_protocol_v2_clients_against_socketio4(tmp_path: Path) -> None:
    f = live_facts(tmp_path, lab_conf(GOOD_LOC))
    f.target.client_version = 2
    refused = hs(
        "proxy", PROXY_URL, 400, b'{"code":5,"message":"Unsupported protocol version"}', ENGINEIO_NODE
    )
    refused.eio, refused.retry = 3, proxy_ok()
    refused.retry.server_eio = 4
    f.handshakes["proxy"] = refused
    r = checks.run_check("protocol", f)
    assert r.status is Status.FAIL and "socket.io-client 2 cannot talk" in r.title
    assert "allowEIO3" in r.fix.summary and "--client-version 4" in r.fix.summary
    # the rest of the diagnosis speaks what the server speaks: the route is fine
    assert checks.run_check("route", f).status is Status.PASS


def test_protocol_plain_websocket_fails_and_socketio_checks_skip(tmp_path: Path) -> None:
    f = live_facts(tmp_path, lab_conf(GOOD_LOC))
    f.handshakes["proxy"] = hs("proxy", PROXY_URL, 426, b"Upgrade Required", NODE_WS)
    ws = ws_probe(101)
    ws.foreign_frame = '{"type":"hello"}'
    f.websocket = ws
    f.sticky = StickyProbe(where="proxy", error="no session to keep: 426")
    r = checks.run_check("protocol", f)
    assert r.status is Status.FAIL and "plain WebSocket" in r.title
    assert '{"type":"hello"}' in r.summary and "new WebSocket(" in r.fix.summary
    for cid in ("sticky", "auth"):
        s = checks.run_check(cid, f)
        assert s.status is Status.SKIP and "not Socket.IO (see protocol)" in s.summary, (cid, s.summary)


def test_protocol_mixed_backends_fail(tmp_path: Path) -> None:
    f = live_facts(tmp_path, lab_conf(GOOD_LOC))
    a, b = "http://127.0.0.1:3350", "http://127.0.0.1:3351"
    f.handshakes[a] = hs(a, f"{a}/chat/socket.io/?EIO=4&transport=polling", 200, OPEN, ENGINEIO_NODE)
    f.handshakes[b] = _v3(b, f"{b}/chat/socket.io/?EIO=4&transport=polling")
    r = checks.run_check("protocol", f)
    assert r.status is Status.FAIL and "not all speak the same" in r.title
    assert "127.0.0.1:3350: Engine.IO 4" in r.summary and "127.0.0.1:3351: Engine.IO 3" in r.summary


# --- a dropped tunnel: the explanation agrees with what was asked right after ----------------------------


def test_timeout_drop_because_nginx_went_away(tmp_path: Path) -> None:
    f = live_facts(tmp_path, lab_conf(GOOD_LOC))
    f.handshakes["proxy"] = proxy_ok()
    gone = exchange(PROXY_URL, None, error="connection to ws.example.com:443 refused: nothing listens there")
    f.hold = HoldProbe(where="proxy", held_for=1.2, requested=10, closed=True, opened=True, after=gone)
    r = checks.run_check("timeout", f)
    assert r.status is Status.FAIL and "load balancer" not in r.summary + (r.fix.summary if r.fix else "")
    assert "nginx is no longer running there" in r.summary and "systemctl start nginx" in r.fix.summary


def test_timeout_drop_because_its_backend_died(tmp_path: Path) -> None:
    f = live_facts(tmp_path, lab_conf(GOOD_LOC))
    f.handshakes["proxy"] = proxy_ok()
    _two_backends(
        f, hs("http://127.0.0.1:3351", "http://127.0.0.1:3351/chat/socket.io/?EIO=4", 200, OPEN, ENGINEIO_PY)
    )
    after = _dead("connection to 127.0.0.1:3351 refused: nothing listens there", "connect")
    fine = proxy_ok()
    f.hold = HoldProbe(
        where="proxy", held_for=1.2, requested=10, closed=True, opened=True, after=fine.exchange,
        backends_after={"http://127.0.0.1:3351": after, "http://127.0.0.1:3350": f.handshakes["http://127.0.0.1:3350"]},
    )  # fmt: skip
    r = checks.run_check("timeout", f)
    assert r.status is Status.FAIL and "load balancer" not in r.summary
    assert "the backend 127.0.0.1:3351, which answered its handshake at the start of the run" in r.summary


def test_a_tunnel_that_never_opened_is_no_drop(tmp_path: Path) -> None:
    """The held tunnel's upgrade timed out (a hung backend behind nginx): no "dropped after 0.0 s"."""
    f = live_facts(tmp_path, lab_conf(GOOD_LOC))
    f.handshakes["proxy"] = proxy_ok()
    f.hold = HoldProbe(
        where="proxy", requested=10, closed=False, opened=False, stage="upgrade",
        error="timed out after 5.0 s waiting for the answer to the WebSocket upgrade",
    )  # fmt: skip
    r = checks.run_check("timeout", f)
    assert "dropped" not in r.title and "0.0 s" not in r.summary, r.summary
