"""nginx/patch.py: edits at the directives' own lines, rendered as diffs that `patch -p1` applies."""

from __future__ import annotations

import subprocess
from pathlib import Path

from wsdoctor.nginx.load import load_file
from wsdoctor.nginx.patch import Patch

CONF = """\
events {}
http {
    upstream up {
        ip_hash;  # CRITICAL: sticky
        server 127.0.0.1:1;
        server 127.0.0.1:2;
    }
    server {
        listen 80;
        location /ws/ {
            proxy_pass http://up/;
            proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection "";
            proxy_read_timeout
                10s;
            include /etc/nginx/extra.conf;  # BROKEN: shared CORS
        }
    }
}
"""
EXTRA = "add_header X-A a;\nadd_header X-B b;"  # no final newline on purpose


def _config(tmp: Path, conf: str = CONF, extra: str = EXTRA, crlf: bool = False):
    d = tmp / "etc/nginx"
    d.mkdir(parents=True)
    (d / "nginx.conf").write_bytes((conf.replace("\n", "\r\n") if crlf else conf).encode())
    (d / "extra.conf").write_text(extra)
    return load_file(str(d / "nginx.conf"), root=str(tmp))


def _find(config, name: str, arg0: str | None = None):
    for d in config.walk():
        if d.name == name and (arg0 is None or (d.args and d.args[0] == arg0)):
            return d
    raise AssertionError(name)


def _apply(tmp: Path, diff: str) -> None:
    proc = subprocess.run(
        ["patch", "-p1", "--batch", "-d", str(tmp)], input=diff, text=True, capture_output=True, timeout=20
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_statement_edits_keep_neighbours_and_drop_the_replaced_statements_comment(tmp_path: Path) -> None:
    config = _config(tmp_path)
    p = Patch(config)
    p.replace_statement(_find(config, "ip_hash"), "hash $remote_addr consistent;")
    p.replace_statement(
        _find(config, "proxy_set_header", "Connection"), 'proxy_set_header Connection "upgrade";'
    )
    p.replace_statement(_find(config, "proxy_read_timeout"), "proxy_read_timeout 60s;")  # spans two lines
    diff = p.diff()
    assert diff.startswith("--- a/etc/nginx/nginx.conf\n+++ b/etc/nginx/nginx.conf\n")
    assert "+        hash $remote_addr consistent;\n" in diff  # "# CRITICAL: sticky" described ip_hash
    assert "-        ip_hash;  # CRITICAL: sticky\n" in diff
    assert (
        '+            proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection "upgrade";\n'
        in diff
    )
    assert "+            proxy_read_timeout 60s;\n" in diff and "-                10s;\n" in diff
    _apply(tmp_path, diff)
    text = (tmp_path / "etc/nginx/nginx.conf").read_text()
    assert text == p.new_text("/etc/nginx/nginx.conf")
    assert "ip_hash" not in text and "proxy_read_timeout 60s;\n            include" in text


def test_insert_delete_comment_out_across_files(tmp_path: Path) -> None:
    config = _config(tmp_path)
    loc = _find(config, "location")
    up = _find(config, "upstream")
    p = Patch(config)
    p.insert_in_block(loc, ["proxy_http_version 1.1;"], after=_find(config, "proxy_pass"))
    p.insert_in_block(up, ["keepalive 8;"], at_end=True)
    p.delete_statement(_find(config, "add_header", "X-B"))  # in extra.conf, the line without newline
    p.comment_out(_find(config, "include"), "why not")
    diff = p.diff()
    assert "--- a/etc/nginx/extra.conf" in diff and "\\ No newline at end of file" in diff
    assert "+            proxy_http_version 1.1;\n" in diff
    assert "+        keepalive 8;\n" in diff
    assert "+            # include /etc/nginx/extra.conf;  # wsdoctor: why not\n" in diff  # "BROKEN: …" went
    _apply(tmp_path, diff)
    again = load_file(str(tmp_path / "etc/nginx/nginx.conf"), root=str(tmp_path))
    names = [d.name for d in _find(again, "location").block]
    assert names.index("proxy_http_version") == names.index("proxy_pass") + 1
    assert (tmp_path / "etc/nginx/extra.conf").read_text() == "add_header X-A a;\n"
    assert not again.errors


def test_crlf_files_stay_crlf(tmp_path: Path) -> None:
    config = _config(tmp_path, crlf=True)
    p = Patch(config)
    p.insert_in_block(_find(config, "location"), ["proxy_buffering off;"], at_end=True)
    new = p.new_text("/etc/nginx/nginx.conf")
    assert "            proxy_buffering off;\r\n        }\r\n" in new
    _apply(tmp_path, p.diff())
    assert (tmp_path / "etc/nginx/nginx.conf").read_bytes().decode() == new


def test_edits_use_original_line_numbers_and_no_change_means_no_diff(tmp_path: Path) -> None:
    config = _config(tmp_path)
    p = Patch(config)
    assert p.diff() == "" and not p
    # inserting above a line does not shift a later edit of another line
    p.insert_before("/etc/nginx/nginx.conf", 3, ["    # upstreams"])
    p.replace_statement(_find(config, "listen"), "listen 443 ssl;")
    text = p.new_text("/etc/nginx/nginx.conf")
    assert "    # upstreams\n    upstream up {" in text and "        listen 443 ssl;\n" in text
