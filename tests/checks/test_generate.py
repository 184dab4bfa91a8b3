"""`wsdoctor generate`: the config it prints passes every check and real `nginx -t`; the client matches it."""

from __future__ import annotations

import argparse
import os
import subprocess
from pathlib import Path

import pytest

from tests.checks.helpers import make_facts, parse_client_code, run
from wsdoctor.nginx.generate import GenerateError, SetupOptions, engine_paths, generate, generate_command
from wsdoctor.report import Status

NGINX = "/usr/sbin/nginx"
RUNBOOK = SetupOptions(
    server_name="api.x-or.cloud",
    public_path="/dev/aiwm/chat/",
    backend_path="/chat/socket.io",
    backends=["172.16.2.100:3350", "172.16.2.100:3351", "172.16.2.100:3352"],
    upstream="api-aiwm-ws",
)


def _tree(tmp: Path, conf: str, main_extra: str = "") -> Path:
    d = tmp / "etc/nginx"
    (d / "conf.d").mkdir(parents=True, exist_ok=True)
    (d / "nginx.conf").write_text(
        "events {}\nhttp {\n" + main_extra + "    include /etc/nginx/conf.d/*.conf;\n}\n"
    )
    (d / "conf.d/socketio.conf").write_text(conf)
    return tmp


@pytest.mark.parametrize(
    "opts",
    [
        RUNBOOK,
        SetupOptions(),  # defaults: one backend at /socket.io/, public /
        SetupOptions(public_path="/rt", backends=["10.0.0.1:80", "10.0.0.2:80"], transports=("websocket",)),
    ],
    ids=["runbook", "defaults", "websocket-only"],
)
@pytest.mark.parametrize("version", ["1.22.1", None])
def test_generated_config_passes_every_check(opts: SetupOptions, version: str | None, tmp_path: Path) -> None:
    out = generate(opts)
    root = _tree(tmp_path, out.nginx_conf)
    url, path, transports = parse_client_code(out.client_js)
    assert (path or "/socket.io") == out.public_engine_path.rstrip("/")  # the default path is left out
    findings = run(make_facts(url=url, path=path, transports=transports, version=version, root=root))
    for cid, f in findings.items():
        if cid in ("upstream", "auth", "tls", "protocol"):
            assert f.status is Status.SKIP, (cid, f.summary)  # offline
        else:
            assert f.status is Status.PASS, (cid, f.title, f.summary)
    route = findings["route"].summary
    assert f"upstream as http://{opts.upstream}{out.backend_engine_path}?EIO=4" in route


def test_runbook_generation_maps_the_prefix_and_pins_sessions() -> None:
    out = generate(RUNBOOK)
    assert "location ^~ /dev/aiwm/chat/socket.io/ {" in out.nginx_conf
    assert "proxy_pass http://api-aiwm-ws/chat/socket.io/;" in out.nginx_conf
    assert "hash $remote_addr consistent;" in out.nginx_conf
    assert "path: '/dev/aiwm/chat/socket.io'" in out.client_js
    assert "io('wss://api.x-or.cloud'," in out.client_js  # the prefix is never in the URL
    one = generate(SetupOptions(backends=["127.0.0.1:3000"], transports=("websocket",)))
    assert "hash" not in one.nginx_conf and "proxy_pass http://socketio_backends;" in one.nginx_conf


def test_engine_paths() -> None:
    assert engine_paths("/dev/aiwm/chat/", "/chat/socket.io") == (
        "/dev/aiwm/chat/socket.io/",
        "/chat/socket.io/",
    )
    assert engine_paths("/", "/socket.io/") == ("/socket.io/", "/socket.io/")
    assert engine_paths("/x/socket.io", "socket.io") == ("/x/socket.io/", "/socket.io/")


@pytest.mark.skipif(not os.path.exists(NGINX), reason="nginx binary not installed")
def test_real_nginx_accepts_the_generated_config(tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("api.x-or.cloud")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "server.key"))
    opts = SetupOptions(
        **{**RUNBOOK.__dict__, "cert": str(tmp_path / "server.pem"), "key": str(tmp_path / "server.key")}
    )
    out = generate(opts)
    site = tmp_path / "socketio.conf"
    site.write_text(out.nginx_conf)
    (tmp_path / "logs").mkdir()
    main = tmp_path / "nginx.conf"
    main.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/logs/error.log;\nevents {{}}\n"
        f"http {{\n    access_log off;\n    include {site};\n}}\n"
    )
    proc = subprocess.run(
        [NGINX, "-t", "-p", str(tmp_path), "-c", str(main)], capture_output=True, text=True, timeout=20
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["--backend", "nope"],
        ["--server-name", "bad name"],
        ["--public-path", "/x;y"],
        ["--transports", "carrier"],
        ["--cert", "relative.pem"],
    ],
)
def test_bad_options_are_one_line_and_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    p = argparse.ArgumentParser()
    for opt in (
        "--server-name",
        "--public-path",
        "--backend-path",
        "--upstream",
        "--transports",
        "--cert",
        "--key",
    ):
        p.add_argument(opt)
    p.add_argument("--backend", action="append")
    assert generate_command(p.parse_args(argv)) == 2
    err = capsys.readouterr().err
    assert err.startswith("wsdoctor: ") and err.count("\n") == 1
    with pytest.raises(GenerateError):
        from wsdoctor.nginx.generate import options_from_namespace

        generate(options_from_namespace(p.parse_args(argv)))


def test_cli_prints_both_parts(capsys: pytest.CaptureFixture[str]) -> None:
    from wsdoctor.cli import main

    assert main(["generate", "--server-name", "ws.example.com", "--backend", "127.0.0.1:3000"]) == 0
    out = capsys.readouterr().out
    assert "location ^~ /socket.io/ {" in out and "const socket = io('wss://ws.example.com'" in out
