"""The argument table of ``checks/_args.py`` held to the real ``nginx -t`` (1.22 here): same accept/refuse.

Each case is a statement in one context of a small config; nginx -t runs on it in a private prefix (never the
system nginx), and wsdoctor must refuse exactly what nginx refuses.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from wsdoctor.checks._args import parse_msec, statement_errors
from wsdoctor.nginx.load import load_file

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
VERSION = "1.22.1"

# (context, statement text): context is where the statement goes.
CASES = [
    ("location", "proxy_pass http://up/chat/\n            proxy_http_version 1.1;"),
    ("location", "proxy_pass http://up/chat/;"),
    ("location", "proxy_pass;"),
    ("location", "proxy_http_version 1.1;"),
    ("location", "proxy_http_version 2.0;"),
    ("location", "proxy_http_version 1.1 1.0;"),
    ("location", "proxy_set_header Upgrade;"),
    ("location", "proxy_set_header Upgrade $http_upgrade;"),
    ("location", "proxy_set_header Upgrade $http_upgrade x;"),
    ("location", "proxy_read_timeout 7d;"),
    ("location", "proxy_read_timeout 7days;"),
    ("location", "proxy_read_timeout 30s1m;"),
    ("location", "proxy_read_timeout 1m30;"),
    ("location", "proxy_read_timeout 1M;"),
    ("location", "proxy_read_timeout 3w;"),
    ("location", "proxy_read_timeout 60S;"),
    ("location", "proxy_read_timeout 1s500ms;"),
    ("location", "proxy_read_timeout $t;"),
    ("location", "proxy_read_timeout 5 s;"),
    ("location", "proxy_connect_timeout 604800s;"),
    ("location", "proxy_send_timeout;"),
    ("location", "proxy_buffering off;"),
    ("location", "proxy_buffering yes;"),
    ("location", "proxy_buffering off on;"),
    ("location", "proxy_buffering off; proxy_buffering on;"),
    ("location", "proxy_cache off;"),
    ("location", "proxy_cache a b;"),
    ("location", "add_header X a;"),
    ("location", "add_header X a always;"),
    ("location", "add_header X a b;"),
    ("location", "add_header X;"),
    ("location", "add_header X-Frame-Options deny;\n            deny all;"),
    ("location", "return 204;"),
    ("location", "return 301 /x;"),
    ("location", "return 1 2 3;"),
    ("location", "rewrite ^ /x last;"),
    ("location", "rewrite ^ /x foo;"),
    ("location", "rewrite ^;"),
    ("location", "include;"),
    ("location", "proxy_pass http://a; proxy_pass http://b;"),
    ("location", "root /a; alias /b/;"),
    ("location", "proxy_pass http://x { }"),
    ("location", "proxy_next_upstream error timeout;"),
    ("location", "proxy_next_upstream;"),
    ("location", "proxy_hide_header A B;"),
    ("upstream", "keepalive 32;"),
    ("upstream", "keepalive 32 local;"),
    ("upstream", "keepalive;"),
    ("upstream", "hash $remote_addr consistent;"),
    ("upstream", "hash $remote_addr foo;"),
    ("upstream", "hash;"),
    ("upstream", "ip_hash;"),
    ("upstream", "ip_hash x;"),
    ("upstream", "least_conn;"),
    ("upstream", "ip_hash\n        server 127.0.0.1:2;"),
    ("server", "server_name a.example.com b.example.com;"),
    ("server", "listen;"),
    ("server", "location /x/ /y/ /z/ { }"),
    ("server", "location { }"),
    ("server", "location /x/;"),
    ("http", "upstream u2;"),
    ("http", "upstream { server 127.0.0.1:1; }"),
    ("http", "map $http_upgrade $c { default upgrade; '' close; }"),
    ("http", "map $http_upgrade { default upgrade; }"),
    ("http", "server foo { listen 127.0.0.1:8999; }"),
]

TEMPLATE = """\
events {{}}
http {{
    {http}
    upstream up {{
        server 127.0.0.1:1;
        {upstream}
    }}
    server {{
        listen 127.0.0.1:8999;
        {server}
        location /a/ {{
            {location}
        }}
    }}
}}
"""


def _conf(context: str, stmt: str) -> str:
    parts = {"http": "", "upstream": "", "server": "", "location": ""}
    parts[context] = stmt
    return TEMPLATE.format(**parts)


def _nginx_accepts(conf: Path, prefix: Path) -> tuple[bool, str]:
    (prefix / "logs").mkdir(exist_ok=True)
    done = subprocess.run(
        [
            NGINX,
            "-t",
            "-p",
            str(prefix),
            "-c",
            str(conf),
            "-g",
            f"pid {prefix}/n.pid; error_log {prefix}/e.log;",
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )
    return done.returncode == 0, done.stderr.strip()


@pytest.mark.skipif(NGINX is None, reason="no nginx binary to compare with")
def test_table_agrees_with_nginx_t(tmp_path: Path) -> None:
    disagree = []
    for i, (context, stmt) in enumerate(CASES):
        d = tmp_path / str(i)
        (d / "etc/nginx").mkdir(parents=True)
        conf = d / "etc/nginx/nginx.conf"
        conf.write_text(_conf(context, stmt))
        ok, err = _nginx_accepts(conf, d)
        config = load_file(str(conf), root=str(d))
        ours = [m for _d, m, sev in statement_errors(config, VERSION) if sev == "fail"] + [
            e.message for e in config.errors
        ]
        if ok == bool(ours):
            disagree.append(
                f"{context}: {stmt!r}: nginx {'accepts' if ok else 'refuses: ' + err}; wsdoctor {ours}"
            )
    assert not disagree, "\n".join(disagree)


def test_missing_semicolon_is_named_with_both_lines(tmp_path: Path) -> None:
    (tmp_path / "etc/nginx").mkdir(parents=True)
    conf = tmp_path / "etc/nginx/nginx.conf"
    conf.write_text(_conf("location", "proxy_pass http://up/chat/\n            proxy_http_version 1.1;"))
    errors = statement_errors(load_file(str(conf), root=str(tmp_path)), VERSION)
    assert len(errors) == 1
    d, message, severity = errors[0]
    assert severity == "fail" and d.name == "proxy_pass" and d.where == "/etc/nginx/nginx.conf:12"
    assert message.startswith('invalid number of arguments in "proxy_pass" directive')
    assert '"proxy_http_version" on line 13' in message


def test_keepalive_local_depends_on_the_version(tmp_path: Path) -> None:
    (tmp_path / "etc/nginx").mkdir(parents=True)
    conf = tmp_path / "etc/nginx/nginx.conf"
    conf.write_text(_conf("upstream", "keepalive 32 local;"))
    config = load_file(str(conf), root=str(tmp_path))
    assert [m for _d, m, _s in statement_errors(config, "1.22.1")][0].endswith(
        "needs nginx 1.29.7, this is 1.22.1"
    )
    assert statement_errors(config, "1.29.7") == []
    assert statement_errors(config, None) == []  # unknown version: not judged


def test_glued_statement_that_nginx_accepts_is_a_warning(tmp_path: Path) -> None:
    (tmp_path / "etc/nginx").mkdir(parents=True)
    conf = tmp_path / "etc/nginx/nginx.conf"
    conf.write_text(_conf("server", "server_name a.example.com\n        listen 443;"))
    errors = statement_errors(load_file(str(conf), root=str(tmp_path)), VERSION)
    assert [(d.name, sev) for d, _m, sev in errors] == [("server_name", "warn")]


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("60s", 60000),
        ("1m30s", 90000),
        ("1m30", 90000),
        ("500ms", 500),
        ("1s500ms", 1500),
        ("7d", 604800000),
        ("0", 0),
        ("30s1m", None),
        ("1h1h", None),
        ("60S", None),
        ("1M", None),
        ("$x", None),
        ("", None),
    ],
)
def test_parse_msec_is_nginx_strict(text: str, ms: int | None) -> None:
    assert parse_msec(text) == ms
