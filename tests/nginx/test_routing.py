"""Routing: the worked proxy_pass table of docs/nginx.md, the runbook's seed, and the algorithm's corners (offline)."""

from __future__ import annotations

from pathlib import Path

import pytest

from wsdoctor.facts import Facts
from wsdoctor.nginx.load import load_file
from wsdoctor.nginx.model import Config
from wsdoctor.nginx.routing import (
    normalize_uri,
    parse_proxy_pass,
    route,
    select_location,
    select_server,
)
from wsdoctor.routes import route_for
from wsdoctor.target import Target
from wsdoctor.wire.client import client_request

REQ = "/dev/aiwm/chat/socket.io/?EIO=4&transport=websocket"


def _conf(tmp_path: Path, body: str, name: str = "nginx.conf") -> Config:
    p = tmp_path / name
    p.write_text("http {\n" + body + "\n}\n")
    c = load_file(str(p))
    assert not c.errors, c.errors
    return c


@pytest.mark.parametrize(
    ("location", "proxy_pass", "uri", "upstream"),
    [  # docs/nginx.md#the-uri-sent-upstream, row by row
        ("/dev/aiwm/chat/", "http://up/chat/", REQ, "/chat/socket.io/?EIO=4&transport=websocket"),
        ("/dev/aiwm/chat", "http://up/chat", REQ, "/chat/socket.io/?EIO=4&transport=websocket"),
        ("/dev/aiwm/chat", "http://up/chat", "/dev/aiwm/chatroom", "/chatroom"),
        ("/dev/aiwm/chat/", "http://up/chat", REQ, "/chatsocket.io/?EIO=4&transport=websocket"),
        ("/dev/aiwm/chat", "http://up/chat/", REQ, "/chat//socket.io/?EIO=4&transport=websocket"),
        ("/dev/aiwm/chat/", "http://up/", REQ, "/socket.io/?EIO=4&transport=websocket"),
        ("/dev/aiwm/chat/", "http://up", REQ, "/dev/aiwm/chat/socket.io/?EIO=4&transport=websocket"),
    ],
)
def test_knowledge_table(tmp_path: Path, location: str, proxy_pass: str, uri: str, upstream: str) -> None:
    c = _conf(
        tmp_path,
        f"upstream up {{ server 10.0.0.1:3350; server 10.0.0.2; }}\n"
        f"server {{ listen 443 ssl; server_name h; location {location} {{ proxy_pass {proxy_pass}; }} }}",
    )
    r = route(c, "h", 443, uri)
    assert r.location is not None and r.location.args == [location]
    assert r.upstream_uri == upstream
    assert r.upstream_target == "http://up" and r.upstream_name == "up"
    assert r.upstream_servers == ["10.0.0.1:3350", "10.0.0.2:80"]


def test_seed_runbook_client_reaches_no_socketio_location(seed_tree: Config, seed_dump: Config) -> None:
    for c in (seed_tree, seed_dump):
        r = route(c, "api.x-or.cloud", 443, "/socket.io/?EIO=4&transport=websocket")
        assert r.server is c.servers()[0]
        assert r.location is None and r.proxy_pass is None and r.location_label == ""
        assert "no location matches /socket.io/" in r.location_reason
        assert r.answered_by_nginx


def test_seed_corrected_client_goes_upstream_as_chat(seed_tree: Config, seed_dump: Config) -> None:
    for c in (seed_tree, seed_dump):
        r = route(c, "api.x-or.cloud", 443, REQ)
        assert r.location_label == "location /dev/aiwm/chat/ (/etc/nginx/sites-enabled/api.x-or.cloud:12)"
        assert "longest matching prefix /dev/aiwm/chat/" in r.location_reason
        assert r.upstream_uri == "/chat/socket.io/?EIO=4&transport=websocket"
        assert r.upstream_target == "http://api-aiwm-ws" and r.upstream_name == "api-aiwm-ws"
        assert r.upstream is c.upstreams()["api-aiwm-ws"]
        assert r.upstream_servers == ["172.16.2.100:3350", "172.16.2.100:3351", "172.16.2.100:3352"]
        assert r.proxy_pass is not None and r.proxy_pass.where == "/etc/nginx/sites-enabled/api.x-or.cloud:18"
        assert [d.args[0] for d in r.candidates] == ["/dev/aiwm/chat/", "/dev/aiwm/"]
        assert r.redirect is None and r.return_status is None and not r.notes


def test_seed_slashless_request_gets_the_301(seed_tree: Config) -> None:
    r = route(seed_tree, "api.x-or.cloud", 443, "/dev/aiwm/chat?EIO=4&transport=websocket")
    assert r.redirect == "https://api.x-or.cloud/dev/aiwm/chat/?EIO=4&transport=websocket"
    assert r.location is not None and r.location.args == ["/dev/aiwm/chat/"]
    assert "301" in r.location_reason


def test_route_for_uses_the_clients_first_request(seed_tree: Config) -> None:
    facts = Facts(target=Target(url="wss://api.x-or.cloud/dev/aiwm/chat"), config=seed_tree)
    facts.client = client_request("wss://api.x-or.cloud/dev/aiwm/chat", transports="websocket")
    r = route_for(facts)
    assert r is not None and r.uri == "/socket.io/?EIO=4&transport=websocket" and r.location is None
    assert route_for(facts) is r  # cached
    fixed = Facts(target=Target(), config=seed_tree)
    fixed.client = client_request("wss://api.x-or.cloud", path="/dev/aiwm/chat/socket.io")
    r2 = route_for(fixed)
    assert r2 is not None and r2.upstream_uri == "/chat/socket.io/?EIO=4&transport=polling"
    assert route_for(Facts(target=Target())) is None


def test_prefix_order_never_matters(tmp_path: Path) -> None:
    a = "location /dev/aiwm/ { return 200 a; }\nlocation /dev/aiwm/chat/ { return 200 b; }"
    b = "location /dev/aiwm/chat/ { return 200 b; }\nlocation /dev/aiwm/ { return 200 a; }"
    for body in (a, b):
        c = _conf(tmp_path, f"server {{ listen 80; {body} }}")
        loc, _, why = select_location(c.servers()[0], "/dev/aiwm/chat/x")
        assert loc is not None and loc.args == ["/dev/aiwm/chat/"] and "order" in why


def test_regex_steals_unless_caret_tilde(tmp_path: Path) -> None:
    c = _conf(
        tmp_path,
        "server { listen 80;\n location /chat/ { proxy_pass http://a; }\n location ^~ /static/ { return 200; }\n"
        " location ~* \\.IO/ { return 404; }\n location ~ ^/static/ { return 403; } }",
    )
    s = c.servers()[0]
    loc, cands, why = select_location(s, "/chat/socket.io/")
    assert (
        loc is not None
        and loc.args == ["~*", "\\.IO/"]
        and "precedence over the prefix location /chat/" in why
    )
    assert [d.args[-1] for d in cands] == ["/chat/", "\\.IO/"]
    r = route(c, "h", 80, "/chat/socket.io/?EIO=4", "http")
    assert r.shadowed_prefix is not None and r.shadowed_prefix.args == ["/chat/"] and r.proxy_pass is None
    loc, cands, why = select_location(s, "/static/socket.io/")
    assert loc is not None and loc.args == ["^~", "/static/"] and "stops the regex search" in why
    assert [d.args[-1] for d in cands] == ["/static/", "\\.IO/", "^/static/"]  # matched but never tried


def test_named_locations_are_never_matched(tmp_path: Path) -> None:
    c = _conf(tmp_path, "server { listen 80; location @socket { proxy_pass http://a; } }")
    loc, _, _ = select_location(c.servers()[0], "/@socket")
    assert loc is None


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        ("/a/../b", "/b"),
        ("/a/./b/", "/a/b/"),
        ("//a//b", "/a/b"),
        ("/a/%2F%2Fb", "/a/b"),
        ("/%2e%2e/x", None),
        ("/..", None),
        ("/a/..", "/"),
        ("/a/.", "/a/"),
        ("/%41%3f?x=1", "/A?"),
        ("/a%zz", None),
        ("/a%00", None),
        ("/caf%C3%A9", "/café"),
        ("/x?y=/../", "/x"),
    ],
)
def test_normalize_uri(raw: str, norm: str | None) -> None:
    assert normalize_uri(raw) == norm


def test_bad_uri_is_a_400(seed_tree: Config) -> None:
    r = route(seed_tree, "api.x-or.cloud", 443, "/../etc/passwd")
    assert r.return_status == 400 and r.location is None


def test_server_selection(tmp_path: Path) -> None:
    c = _conf(
        tmp_path,
        "server { listen 80; server_name a.test; }\n"
        "server { listen 443 ssl; server_name a.test; }\n"
        "server { listen [::]:443 ssl default_server; listen 443 ssl default_server; server_name _; }\n"
        "server { listen 127.0.0.1:8080; server_name *.w.test; }\n"
        "server { server_name implicit.test; }",
    )
    s = c.servers()
    assert select_server(c, "A.TEST", 443)[0] is s[1]
    srv, why = select_server(c, "other", 443)
    assert srv is s[2] and "default_server" in why
    srv, why = select_server(c, "other", 80)
    assert srv is s[0] and "first server listening on port 80" in why
    assert select_server(c, "x.w.test:8080", 8080)[0] is s[3]
    srv, why = select_server(c, "x", 9999)
    assert srv is None and "no server listens on port 9999" in why and "80, 443, 8080" in why
    srv, why = select_server(c, "a.test", 80, ssl=True)
    assert srv is s[0] and "not a `listen … ssl` port" in why
    assert route(c, "a.test", 80, "/").ssl_mismatch
    assert select_server(c, "implicit.test", 80)[0] is s[4]  # no listen: *:80


def test_proxy_pass_parsing() -> None:
    p = parse_proxy_pass("http://up/chat/")
    assert (p.scheme, p.host, p.uri, p.variables) == ("http", "up", "/chat/", False)
    assert parse_proxy_pass("https://[::1]:8443").host == "[::1]:8443"
    assert parse_proxy_pass("http://unix:/run/s.sock:/x/").uri == "/x/"
    assert parse_proxy_pass("http://up$request_uri").variables


def test_uri_part_in_regex_location_is_flagged(tmp_path: Path) -> None:
    c = _conf(tmp_path, "server { listen 80; location ~ ^/ws { proxy_pass http://127.0.0.1:3000/x/; } }")
    r = route(c, "h", 80, "/ws/a", "http")
    assert any("cannot have URI part" in n for n in r.notes)


def test_rewrite_break_ignores_the_uri_part(tmp_path: Path) -> None:
    c = _conf(
        tmp_path,
        "server { listen 80;\n location /api/ { rewrite ^/api/(.*)$ /v2/$1 break; proxy_pass http://b:81/x/; } }",
    )
    r = route(c, "h", 80, "/api/socket.io/?EIO=4", "http")
    assert r.upstream_uri == "/v2/socket.io/?EIO=4" and r.upstream_servers == ["b:81"]
    assert any("rewrite … break" in n for n in r.notes)


def test_upstream_with_port_is_flagged(tmp_path: Path) -> None:
    c = _conf(
        tmp_path, "upstream up { server a:1; }\nserver { listen 80; location / { proxy_pass http://up:81; } }"
    )
    r = route(c, "h", 80, "/", "http")
    assert any("may not have a port" in n for n in r.notes)


def test_if_with_unknowable_condition_is_noted(tmp_path: Path) -> None:
    c = _conf(
        tmp_path,
        "server { listen 80; location / { if (-f $request_filename) { return 404; } proxy_pass http://a; } }",
    )
    r = route(c, "h", 80, "/x", "http")
    assert r.proxy_pass is not None and any("not evaluated offline" in n for n in r.notes)
