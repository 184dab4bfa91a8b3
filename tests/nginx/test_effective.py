"""Effective directives: inheritance as nginx merges it, version-aware defaults, maps; and the version."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from wsdoctor.nginx import effective
from wsdoctor.nginx.load import load_file
from wsdoctor.nginx.model import Config
from wsdoctor.nginx.routing import route
from wsdoctor.nginx.version import at_least, local_version, parse_version

CONF = """http {
    proxy_read_timeout 30s;
    proxy_set_header X-Http 1;
    add_header X-H h;
    map $http_upgrade $connection_upgrade { default upgrade; '' close; }
    upstream up { server 10.0.0.1:1; keepalive 8; }
    upstream bare { server 10.0.0.2:1; }
    server {
        listen 80;
        server_name h;
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_buffering off;
        location /inherit/ { proxy_pass http://up; }
        location /ws/ {
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_read_timeout 1h;
            add_header X-L l;
            location /ws/nested/ { proxy_pass http://up; }
        }
    }
}
"""


@pytest.fixture
def conf(tmp_path: Path) -> Config:
    p = tmp_path / "nginx.conf"
    p.write_text(CONF)
    return load_file(str(p))


def _loc(conf: Config, uri: str):
    r = route(conf, "h", 80, uri, "http", headers={"Upgrade": "websocket", "Connection": "Upgrade"})
    assert r.location is not None
    return r


def test_scalars_inherit_nearest_level(conf: Config) -> None:
    inh = _loc(conf, "/inherit/x").location
    ws = _loc(conf, "/ws/x").location
    nested = _loc(conf, "/ws/nested/x").location
    assert effective.scalar(inh, "proxy_read_timeout").value == ["30s"]  # from http
    assert effective.scalar(ws, "proxy_read_timeout").directive.line == 20  # its own
    assert effective.scalar(nested, "proxy_read_timeout").value == ["1h"]  # from the enclosing location
    assert effective.scalar(inh, "proxy_buffering").value == ["off"]  # from server
    s = effective.scalar(inh, "proxy_send_timeout")
    assert s.default and s.value == ["60s"] and s.directive is None and not s.depends_on_version


def test_version_dependent_defaults(conf: Config) -> None:
    inh = _loc(conf, "/inherit/x").location
    unknown = effective.scalar(inh, "proxy_http_version")
    assert unknown.default and unknown.depends_on_version and unknown.value == ["1.0"]
    assert "1.1 from 1.29.7" in unknown.note
    assert effective.scalar(inh, "proxy_http_version", "1.22.1").value == ["1.0"]
    assert effective.scalar(inh, "proxy_http_version", "1.29.7").value == ["1.1"]
    assert effective.connection_default(None).depends_on_version
    assert effective.connection_default("1.30.0").value is None
    assert effective.upstream_keepalive(conf.upstreams()["up"]).value == ["8"]
    assert effective.upstream_keepalive(conf.upstreams()["bare"]).depends_on_version
    assert effective.upstream_keepalive(conf.upstreams()["bare"], "1.29.7").value == ["on"]


def test_proxy_set_header_is_all_or_nothing(conf: Config) -> None:
    inh = effective.proxy_headers(_loc(conf, "/inherit/x").location, "1.22.1")
    assert [(n, v) for n, v, _ in inh] == [
        ("Host", "$host"),
        ("X-Forwarded-For", "$proxy_add_x_forwarded_for"),
        ("Connection", "close"),
    ]
    ws = effective.proxy_headers(_loc(conf, "/ws/x").location, "1.22.1")
    # the location's own two headers replace the server's: Host falls back to $proxy_host
    assert [(n, v, d is None) for n, v, d in ws] == [
        ("Upgrade", "$http_upgrade", False),
        ("Connection", "$connection_upgrade", False),
        ("Host", "$proxy_host", True),
    ]
    new = effective.proxy_headers(_loc(conf, "/inherit/x").location, "1.29.7")
    assert all(n != "Connection" for n, _, _ in new)


def test_add_header_is_all_or_nothing(conf: Config) -> None:
    assert [n for n, _, _ in effective.add_headers(_loc(conf, "/inherit/x").location)] == ["X-H"]
    assert [n for n, _, _ in effective.add_headers(_loc(conf, "/ws/x").location)] == ["X-L"]
    assert [n for n, _, _ in effective.add_headers(_loc(conf, "/ws/nested/x").location)] == ["X-L"]


def test_forwarded_headers_and_maps(conf: Config) -> None:
    assert effective.forwarded_headers(_loc(conf, "/ws/x"), conf, "1.22.1") == {
        "host": "up",
        "upgrade": "websocket",
        "connection": "upgrade",
    }
    assert effective.forwarded_headers(_loc(conf, "/inherit/x"), conf, "1.22.1") == {
        "host": "h",
        "upgrade": None,
        "connection": "close",
    }
    assert effective.map_value(conf, "$connection_upgrade", "") == "close"
    assert effective.map_value(conf, "connection_upgrade", "websocket") == "upgrade"
    assert effective.map_value(conf, "$nothing", "x") is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("60s", 60),
        ("1m30s", 90),
        ("7d", 604800),
        ("500ms", 0.5),
        ("75", 75),
        ("1h 2m", 3720),
        ("x", None),
        ("", None),
    ],
)
def test_parse_duration(text: str, seconds: float | None) -> None:
    assert effective.parse_duration(text) == seconds


def test_version_parsing() -> None:
    assert parse_version("nginx version: nginx/1.22.1 (Ubuntu)") == (1, 22, 1)
    assert parse_version("1.29.7") == (1, 29, 7)
    assert parse_version("nginx version: openresty/1.21.4.1") == (1, 21, 4)
    assert parse_version("Tengine version: Tengine/2.3.3 (nginx/1.18.0)") == (1, 18, 0)
    assert parse_version("garbage") is None
    assert at_least("1.29.7", (1, 29, 7)) is True
    assert at_least("1.22.1", (1, 29, 7)) is False
    assert at_least(None, (1, 29, 7)) is None and at_least("x", (1, 0, 0)) is None


@pytest.mark.skipif(not os.access("/usr/sbin/nginx", os.X_OK), reason="needs the nginx binary")
def test_local_version_runs_nginx_v() -> None:
    import subprocess

    v = local_version("/usr/sbin/nginx")
    said = subprocess.run(["/usr/sbin/nginx", "-v"], capture_output=True, text=True, timeout=5).stderr
    assert v is not None and f"nginx/{v}" in said
    assert local_version("/nonexistent/nginx") is None
