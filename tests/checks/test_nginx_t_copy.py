"""Real `nginx -t` of this machine's nginx on a copy of a `--nginx-conf` config (`nginx/testcopy.py`), and the
`syntax` check that reports it beside wsdoctor's own reading: the tree is never touched, nginx's file:line is
the one the user knows, what differs between this machine and the target is made equal or said, and a local
nginx of another version does not judge the target."""

from __future__ import annotations

import contextlib
import io
import json
import textwrap
from pathlib import Path

import pytest

from wsdoctor.cli import main as wsdoctor_main
from wsdoctor.nginx import testcopy, testoutput
from wsdoctor.nginx.load import load_file
from wsdoctor.nginx.version import local_version

NGINX = testcopy.find_binary()
HERE = local_version(NGINX) if NGINX else None
needs_nginx = pytest.mark.skipif(NGINX is None or HERE is None, reason="no nginx binary on this machine")

MAIN = """\
user nosuchuser-wsdoctor;
pid /run/nginx.pid;
error_log /var/log/nginx/error.log;
events {}
http {
    access_log /var/log/nginx/access.log;
    proxy_cache_path /var/cache/nginx/sio keys_zone=sio:1m;
    include /etc/nginx/conf.d/*.conf;
}
"""
SITE = """\
upstream pool { server redis-cache:6379; server app:3001; }
server {
    listen 443 ssl;
    server_name chat.example.com;
    ssl_certificate /etc/letsencrypt/live/chat.example.com/fullchain.pem;
    ssl_certificate_key /etc/letsencrypt/live/chat.example.com/privkey.pem;
    location /socket.io/ { proxy_pass http://app:3000; }
    location /pool/ { proxy_pass http://pool; }
}
"""


def tree(tmp: Path, site: str = SITE, main: str = MAIN) -> Path:
    (tmp / "etc/nginx/conf.d").mkdir(parents=True)
    (tmp / "etc/nginx/nginx.conf").write_text(main)
    (tmp / "etc/nginx/conf.d/chat.conf").write_text(textwrap.dedent(site))
    return tmp


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@needs_nginx
def test_copy_test_makes_the_machine_equal_and_leaves_the_tree_alone(tmp_path: Path) -> None:
    root = tree(tmp_path / "copy")
    before = snapshot(root)
    t = testcopy.run(load_file(str(root / "etc/nginx/nginx.conf"), root=str(root)))
    assert t is not None and t.exit_status == 0, t.output
    assert sorted(t.mapped_hosts) == ["app", "redis-cache"]
    assert sorted(t.made) == [
        "/etc/letsencrypt/live/chat.example.com/fullchain.pem",
        "/etc/letsencrypt/live/chat.example.com/privkey.pem",
    ]
    assert t.users == ["nosuchuser-wsdoctor"]
    assert snapshot(root) == before  # nothing written into the tree the user gave
    assert str(tmp_path) not in t.output and "wsdoctor-nginx-t-" not in t.output
    assert any(h.startswith(testoutput.HOSTS_LINE) for h in t.header())
    assert not Path(t.argv[t.argv.index("-p") + 1]).exists()  # the copy is gone


@needs_nginx
def test_copy_test_reports_file_line_as_the_user_knows_it(tmp_path: Path) -> None:
    root = tree(tmp_path, site=SITE.replace("server_name chat.example.com;", "server_nmae chat.example.com;"))
    t = testcopy.run(load_file(str(root / "etc/nginx/nginx.conf"), root=str(root)))
    assert t is not None and t.exit_status == 1
    outcome = testoutput.read(t.output, t.exit_status)
    assert outcome.emerg is not None
    assert 'unknown directive "server_nmae" in /etc/nginx/conf.d/chat.conf:4' in outcome.emerg


def check_json(*argv: str) -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = wsdoctor_main(["check", "--offline", "--format", "json", *argv])
    assert code in (0, 1), out.getvalue()
    return json.loads(out.getvalue())


def syntax_of(root: Path, *argv: str) -> dict:
    report = check_json("--nginx-conf", str(root / "etc/nginx/nginx.conf"), "--root", str(root),
                        "--url", "wss://chat.example.com", *argv)  # fmt: skip
    return next(f for f in report["findings"] if f["id"] == "syntax")


@needs_nginx
def test_syntax_reports_nginx_t_of_the_same_version_first(tmp_path: Path) -> None:
    root = tree(tmp_path, site=SITE.replace("server_name chat.example.com;", "server_nmae chat.example.com;"))
    f = syntax_of(root, "--nginx-version", str(HERE))
    assert f["status"] == "fail"
    assert f["title"] == f"nginx -t of nginx {HERE} here (on a copy) refuses the configuration"
    assert 'unknown directive "server_nmae" in /etc/nginx/conf.d/chat.conf:4' in f["summary"]
    command = next(e for e in f["evidence"] if e["kind"] == "command")
    assert f"# nginx {HERE} (" in command["text"] and "redis-cache" in command["text"]
    ok = syntax_of(tree(tmp_path / "ok"), "--nginx-version", str(HERE))
    assert ok["status"] == "pass" and "accepts the configuration" in ok["title"]
    assert (
        "mapped to 127.0.0.1 for it, as they resolve on the target but maybe not here: redis-cache, app"
        in ok["summary"]
    )


@needs_nginx
def test_a_local_nginx_of_another_version_does_not_judge_the_target(tmp_path: Path) -> None:
    if HERE is None or tuple(map(int, HERE.split("."))) >= (1, 25, 1):
        pytest.skip("needs a local nginx older than 1.25.1 (it refuses `http2 on;`)")
    site = SITE.replace("listen 443 ssl;", "listen 443 ssl;\n    http2 on;")
    f = syntax_of(tree(tmp_path / "new"), "--nginx-version", "1.26.2")
    assert f["status"] == "pass"
    f = syntax_of(tree(tmp_path / "h2", site=site), "--nginx-version", "1.26.2")
    assert f["status"] == "pass", f["summary"]
    assert "Statements checked by wsdoctor" in f["title"]
    assert f'nginx {HERE} here refuses unknown directive "http2"' in f["summary"]
    assert "which nginx 1.25.1 and later accept: the target runs 1.26.2" in f["summary"]
    old = syntax_of(tree(tmp_path / "old", site=site), "--nginx-version", str(HERE))
    assert old["status"] == "fail" and 'unknown directive "http2"' in old["summary"]


@needs_nginx
def test_an_environment_stop_is_not_a_config_error(tmp_path: Path) -> None:
    main = "load_module modules/ngx_wsdoctor_missing_module.so;\n" + MAIN
    f = syntax_of(tree(tmp_path, main=main), "--nginx-version", str(HERE))
    assert f["status"] == "pass", f["summary"]
    assert "stopped at a difference between this machine and the target, not a config error" in f["summary"]
    assert "ngx_wsdoctor_missing_module.so" in f["summary"]


def test_without_nginx_syntax_says_what_it_cannot_see(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(testcopy, "find_binary", lambda: None)
    f = syntax_of(tree(tmp_path), "--nginx-version", "1.22.1")
    assert f["status"] == "pass"
    assert f["title"] == "Statements checked by wsdoctor (not by nginx -t): nothing nginx 1.22.1 would refuse"
    assert "unknown directives" in f["summary"] and "host names that do not resolve" in f["summary"]
    assert not any(e["kind"] == "command" for e in f["evidence"])
