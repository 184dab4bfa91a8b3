"""What upgrade and buffering say, word for word where the words carry the diagnosis: the literal-Upgrade trap,
HTTP/1.0 upstream as a backend-dependent warning (a live 101 decides), no WebSocket as "degraded, not down",
buffering as a note and a query-blind cache key as the real fail."""

from __future__ import annotations

import textwrap
from pathlib import Path

from tests.checks.helpers import apply_diff, case_facts, exchange, make_facts, run
from wsdoctor import checks
from wsdoctor.facts import ENGINEIO_NODE, Handshake, WebSocketProbe
from wsdoctor.report import Status

PUBLIC = "http://ticker.example.com"


def tree(tmp: Path, conf: str) -> Path:
    (tmp / "etc/nginx").mkdir(parents=True, exist_ok=True)
    (tmp / "etc/nginx/nginx.conf").write_text(textwrap.dedent(conf))
    return tmp


def conf(location: str, http: str = "", upstream: str = "server 127.0.0.1:3001;") -> str:
    return (
        "events {}\nhttp {\n"
        + textwrap.indent(textwrap.dedent(http), "    ")
        + f"    upstream sio {{ {upstream} }}\n"
        + "    server {\n        listen 80;\n        server_name ticker.example.com;\n"
        + "        location /socket.io/ {\n"
        + textwrap.indent(textwrap.dedent(location), " " * 12)
        + "        }\n    }\n}\n"
    )


LITERAL = """\
proxy_pass http://sio;
proxy_http_version 1.1;
proxy_set_header Upgrade websocket;
proxy_set_header Connection upgrade;
"""
MAP = "map $http_upgrade $connection_upgrade { default upgrade; '' close; }\n"


def facts_for(tmp: Path, text: str, transports=("polling", "websocket"), version="1.22.1", offline=True):
    return make_facts(
        url=PUBLIC, transports=transports, version=version, root=tree(tmp, text), offline=offline
    )


# --- the literal Upgrade trap ---------------------------------------------------------------------------


def test_literal_upgrade_with_polling_fails_saying_what_breaks_and_the_map_fix_applies(
    tmp_path: Path,
) -> None:
    f = run(facts_for(tmp_path / "a", conf(LITERAL)))["upgrade"]
    assert f.status is Status.FAIL
    assert "polling clients never connect" in f.title
    assert "400" in f.summary and "websocket-only clients do" in f.summary
    assert f.fix is not None
    assert "At http level (/etc/nginx/nginx.conf:2)" in f.fix.summary
    assert "+    map $http_upgrade $connection_upgrade {" in f.fix.diff
    assert "+            proxy_set_header Upgrade $http_upgrade;" in f.fix.diff
    assert "+            proxy_set_header Connection $connection_upgrade;" in f.fix.diff
    fixed = apply_diff(tmp_path / "a", f.fix.diff, tmp_path / "b")
    again = run(make_facts(url=PUBLIC, version="1.22.1", root=fixed))["upgrade"]
    assert again.status is Status.PASS, again.summary


def test_literal_upgrade_with_an_existing_map_reuses_it(tmp_path: Path) -> None:
    f = run(facts_for(tmp_path, conf(LITERAL, http=MAP)))["upgrade"]
    assert f.status is Status.FAIL and f.fix is not None
    assert "map $http_upgrade" not in f.fix.diff and "At http level" not in f.fix.summary
    assert "Connection $connection_upgrade" in f.fix.diff


def test_literal_upgrade_with_the_map_for_connection_is_not_the_trap(tmp_path: Path) -> None:
    loc = LITERAL.replace("Connection upgrade", "Connection $connection_upgrade")
    f = run(facts_for(tmp_path, conf(loc, http=MAP)))["upgrade"]
    assert f.status is Status.PASS and "literal" in f.summary  # polls carry Connection: close: a note


def test_literal_upgrade_with_websocket_only_clients_is_a_note(tmp_path: Path) -> None:
    f = run(facts_for(tmp_path, conf(LITERAL), transports=("websocket",)))["upgrade"]
    assert f.status is Status.PASS
    assert "harmless for websocket-only clients" in f.summary and "polling client would get 400" in f.summary


def test_literal_upgrade_in_a_snippet_fix_names_the_snippet() -> None:
    f = run(case_facts("upgrade", "fail_literal_upgrade_in_snippet"))["upgrade"]
    assert f.status is Status.FAIL and f.fix is not None
    assert f.fix.summary.startswith(
        "In /etc/nginx/snippets/websocket.conf, which location /socket.io/ includes"
    )
    assert "--- a/etc/nginx/snippets/websocket.conf" in f.fix.diff


def _polling(status: int, body: bytes, ok: bool = False) -> Handshake:
    return Handshake(
        where="proxy",
        exchange=exchange(f"{PUBLIC}/socket.io/?EIO=4&transport=polling", status, body, ENGINEIO_NODE),
        ok=ok,
    )


def test_literal_upgrade_live_polling_400_confirms_and_polling_ok_disagrees(tmp_path: Path) -> None:
    facts = facts_for(tmp_path, conf(LITERAL), offline=False)
    facts.handshakes["proxy"] = _polling(400, b'{"code":3,"message":"Bad request"}')
    f = checks.run_check("upgrade", facts)
    assert f.status is Status.FAIL and "as predicted" in f.summary and "400" in f.summary
    assert any(e.kind == "probe" for e in f.evidence)
    facts.handshakes["proxy"] = _polling(200, b'0{"sid":"x","upgrades":["websocket"]}', ok=True)
    f = checks.run_check("upgrade", facts)
    assert f.status is Status.WARN and "disagree" in f.title


# --- HTTP/1.0 upstream ----------------------------------------------------------------------------------

NO_VERSION = """\
proxy_pass http://sio;
proxy_set_header Upgrade $http_upgrade;
proxy_set_header Connection "upgrade";
"""


def test_http_1_0_is_a_warning_that_names_the_backends(tmp_path: Path) -> None:
    f = run(facts_for(tmp_path, conf(NO_VERSION)))["upgrade"]
    assert f.status is Status.WARN
    assert "depends on the backend" in f.title
    for words in (
        "Node socket.io",
        "uvicorn",
        "aiohttp",
        "505",
        "python `websockets`",
        "RFC 6455",
        "live 101",
    ):
        assert words in f.summary, words
    assert f.fix is not None and "+            proxy_http_version 1.1;" in f.fix.diff


def test_http_1_0_unknown_version_says_both_outcomes(tmp_path: Path) -> None:
    f = run(facts_for(tmp_path, conf(NO_VERSION), version=None))["upgrade"]
    assert f.status is Status.WARN and "1.29.7" in f.summary and "--nginx-version" in f.summary


def test_http_1_0_nginx_1_29_7_passes(tmp_path: Path) -> None:
    assert run(facts_for(tmp_path, conf(NO_VERSION), version="1.29.7"))["upgrade"].status is Status.PASS


def _ws(status: int, ok: bool) -> WebSocketProbe:
    url = f"{PUBLIC}/socket.io/?EIO=4&transport=websocket"
    return WebSocketProbe(where="proxy", exchange=exchange(url, status, b"", ENGINEIO_NODE), ok=ok)


def test_http_1_0_live_101_decides_pass_and_a_505_fails(tmp_path: Path) -> None:
    facts = facts_for(tmp_path, conf(NO_VERSION), offline=False)
    facts.websocket = _ws(101, ok=True)
    f = checks.run_check("upgrade", facts)
    assert f.status is Status.PASS, f.summary
    assert "accepts the upgrade although" in f.summary and "HTTP/1.0" in f.summary and "505" in f.summary
    facts.websocket = _ws(505, ok=False)
    f = checks.run_check("upgrade", facts)
    assert f.status is Status.FAIL and "505" in f.summary


# --- no WebSocket: what the client loses ----------------------------------------------------------------

BARE = "proxy_pass http://sio;\nproxy_http_version 1.1;\n"


def test_no_upgrade_headers_with_polling_is_degraded_not_down(tmp_path: Path) -> None:
    f = run(facts_for(tmp_path, conf(BARE)))["upgrade"]
    assert f.status is Status.FAIL
    assert f.title == "No WebSocket: clients fall back to long-polling (degraded, not down)"
    assert f.summary.startswith("No WebSocket gets through location /socket.io/")
    assert "keep working" in f.summary and "Why:" in f.summary


def test_no_upgrade_headers_with_websocket_only_cannot_connect(tmp_path: Path) -> None:
    f = run(facts_for(tmp_path, conf(BARE), transports=("websocket",)))["upgrade"]
    assert f.status is Status.FAIL and "cannot connect" in f.title
    assert "no polling to fall back to" in f.summary


def test_missing_headers_lead_before_http_1_0(tmp_path: Path) -> None:
    f = run(facts_for(tmp_path, conf("proxy_pass http://sio;\n")))["upgrade"]
    assert f.status is Status.FAIL and f.summary.startswith("No WebSocket gets through")
    assert f.summary.index("Why:") < f.summary.index("HTTP/1.0")


def test_keepalive_note_only_when_polling(tmp_path: Path) -> None:
    loc = 'proxy_pass http://sio;\nproxy_http_version 1.1;\nproxy_set_header Upgrade $http_upgrade;\nproxy_set_header Connection "upgrade";\n'
    text = conf(loc, upstream="server 127.0.0.1:3001; keepalive 32;")
    polling = run(facts_for(tmp_path / "p", text))["upgrade"]
    assert polling.status is Status.PASS and "keepalive 32" in polling.summary
    ws_only = run(facts_for(tmp_path / "w", text, transports=("websocket",)))["upgrade"]
    assert ws_only.status is Status.PASS and "keepalive" not in ws_only.summary


# --- buffering and caching ------------------------------------------------------------------------------


def test_proxy_buffering_on_is_a_note_without_a_fix(tmp_path: Path) -> None:
    f = run(facts_for(tmp_path, conf(NO_VERSION + "proxy_buffering on;\n")))["buffering"]
    assert f.status is Status.PASS and f.fix is None
    assert "complete response" in f.summary


def test_cache_key_decides_between_warn_and_fail(tmp_path: Path) -> None:
    cache = "proxy_cache_path /var/cache/nginx/sio keys_zone=sio:1m;\n"
    loc = NO_VERSION + "proxy_cache sio;\nproxy_cache_valid 200 1m;\n"
    default = run(facts_for(tmp_path / "d", conf(loc, http=cache)))["buffering"]
    assert default.status is Status.WARN and "keeps the query" in default.summary
    blind = run(facts_for(tmp_path / "b", conf(loc, http=cache + "proxy_cache_key $scheme$host$uri;\n")))
    f = blind["buffering"]
    assert f.status is Status.FAIL and "ignores the query" in f.title
    assert "$scheme$host$uri" in f.summary and f.fix is not None and "proxy_cache off;" in f.fix.diff
    ws_only = run(facts_for(tmp_path / "w", conf(loc, http=cache), transports=("websocket",)))["buffering"]
    assert ws_only.status is Status.WARN


# --- route: proxy_pass with variables and no resolver -------------------------------------------------------

VARIABLE = "set $game game-server;\nproxy_pass http://$game:7000;\n"


def test_variable_proxy_pass_without_resolver_is_a_502_for_every_request(tmp_path: Path) -> None:
    f = run(facts_for(tmp_path / "none", conf(VARIABLE + NO_VERSION.split("\n", 1)[1])))["route"]
    assert f.status is Status.FAIL and "every request 502" in f.title
    assert "no resolver defined to resolve game-server" in f.summary
    assert f.fix is not None and "resolver 127.0.0.11" in f.fix.summary
    for name, http, loc in (
        ("resolver", "resolver 127.0.0.11 valid=10s;\n", VARIABLE),
        ("upstream", "upstream game-server { server 127.0.0.1:7000; }\n", VARIABLE.replace(":7000", "")),
        ("ip", "", VARIABLE.replace("game-server", "127.0.0.1")),
    ):
        ok = run(facts_for(tmp_path / name, conf(loc, http=http)))["route"]
        assert ok.status is Status.PASS, (name, ok.summary)


# --- route: a regex location that takes the request ---------------------------------------------------------

SIO_LOC = "proxy_pass http://sio;\nproxy_http_version 1.1;\nproxy_set_header Upgrade $http_upgrade;\nproxy_set_header Connection upgrade;\n"


def _regex_conf(regex: str, regex_pass: str, prefix: str, prefix_body: str) -> str:
    return textwrap.dedent(f"""\
        events {{}}
        http {{
            upstream sio {{ server 127.0.0.1:3001; }}
            upstream other {{ server 127.0.0.1:3002; }}
            server {{
                listen 80;
                server_name ticker.example.com;
                location ~ {regex} {{ proxy_pass {regex_pass}; }}
                location {prefix} {{ {prefix_body} }}
            }}
        }}
        """)


def test_a_regex_that_takes_the_request_to_the_same_backend_is_a_warning(tmp_path: Path) -> None:
    body = SIO_LOC.replace("\n", " ")
    same = run(
        facts_for(tmp_path / "s", _regex_conf(r"^/(api|socket\.io)/", "http://sio", "/socket.io/", body))
    )
    assert same["route"].status is Status.WARN and "polling still works" in same["route"].summary
    other = run(
        facts_for(tmp_path / "o", _regex_conf(r"^/(api|socket\.io)/", "http://other", "/socket.io/", body))
    )
    assert other["route"].status is Status.FAIL


def test_a_regex_written_for_the_path_beats_a_catch_all_without_blame(tmp_path: Path) -> None:
    text = _regex_conf(r"^/(static/|socket.io/)", "http://sio", "/", "proxy_pass http://sio/p/;")
    assert run(facts_for(tmp_path, text))["route"].status is Status.PASS


def test_a_spa_catch_all_is_named_for_its_try_files_not_a_return(tmp_path: Path) -> None:
    text = _regex_conf(r"^/never/", "http://sio", "/", "try_files $uri $uri/ /index.html;")
    f = run(facts_for(tmp_path, text))["route"]
    assert f.status is Status.FAIL and f.title == "location / serves files (try_files), never the backend"
    assert "return" not in f.summary and "falls back to /index.html" in f.summary
