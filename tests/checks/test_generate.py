"""`wsdoctor generate`: the config it prints passes every check and real `nginx -t`; the client matches it."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.apply.helpers import Proxy, real_client, wait_transport
from tests.apply.sioservers import Backend
from tests.checks.helpers import make_facts, parse_client_code, run
from wsdoctor.lab.procs import free_ports
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


# --- generate's new options ---------------------------------------------------------------------------


def test_json_output_per_the_contract(capsys: pytest.CaptureFixture[str]) -> None:
    from wsdoctor.cli import main

    argv = ["generate", "--server-name", "api.x-or.cloud", "--public-path", "/dev/aiwm/chat/"]
    argv += ["--backend-path", "/chat/socket.io/", "--format", "json"]
    for port in (3350, 3351, 3352):
        argv += ["--backend", f"172.16.2.100:{port}"]
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"version", "nginx", "clients", "notes"} and data["version"] == 1
    assert set(data["clients"]) == {"socket.io-client", "python-socketio"}
    assert "location ^~ /dev/aiwm/chat/socket.io/ {" in data["nginx"]
    assert 'socketio_path="/dev/aiwm/chat/socket.io"' in data["clients"]["python-socketio"]
    assert all(isinstance(n, str) and n for n in data["notes"])


def test_timeouts_follow_the_ping_interval() -> None:
    assert "proxy_read_timeout 60s;" in generate(SetupOptions(ping_interval=25000)).nginx_conf
    long = generate(SetupOptions(ping_interval=45000))
    assert "proxy_read_timeout 90s;" in long.nginx_conf and "proxy_send_timeout 90s;" in long.nginx_conf
    assert any("pingInterval is 45 s" in n for n in long.notes)
    with pytest.raises(GenerateError, match="milliseconds"):
        generate(SetupOptions(ping_interval=25))


def test_nginx_version_decides_the_syntax() -> None:
    old = generate(SetupOptions(nginx_version="1.22.1"))
    assert "listen 443 ssl http2;" in old.nginx_conf and "http2 on;" not in old.nginx_conf
    new = generate(SetupOptions(nginx_version="1.30.0"))
    assert "listen 443 ssl;" in new.nginx_conf and "    http2 on;" in new.nginx_conf
    assert "proxy_http_version 1.1;" in new.nginx_conf  # the default now, harmless, and right for older ones
    why = dict(new.reasons)
    assert "default since nginx 1.29.7" in why["proxy_http_version 1.1;"]
    assert "before 1.29.7" in dict(old.reasons)["proxy_http_version 1.1;"]
    unknown = generate(SetupOptions())
    assert "http2" not in unknown.nginx_conf and any("--nginx-version" in n for n in unknown.notes)


def test_namespace_and_client_version() -> None:
    out = generate(SetupOptions(namespace="/admin", public_path="/rt/"))
    assert "io('wss://api.example.com/admin', {" in out.client_js and "path: '/rt/socket.io'" in out.client_js
    assert 'namespaces=["/admin"]' in out.client_py and '@sio.event(namespace="/admin")' in out.client_py
    assert "namespace" not in out.nginx_conf  # nginx routes paths, not namespaces
    v2 = generate(SetupOptions(client_version=2))
    assert "allowEIO3" in v2.client_js and "query: { token }" in v2.client_js and "auth:" not in v2.client_js
    assert any("allowEIO3: true" in n for n in v2.notes)
    assert "python-socketio<5" in v2.client_py
    with pytest.raises(GenerateError, match="--client-version"):
        generate(SetupOptions(client_version=1))


# --- real nginx, real backends, real clients -------------------------------------------------------------

TRANSPORTS = {"default": ("polling", "websocket"), "websocket": ("websocket",), "polling": ("polling",)}
# The backends ping every half second: a polling client's disconnect waits for its pending long poll.
PING_MS = 500
PATHS = {"same": ("/", "/socket.io/"), "prefixed": ("/dev/aiwm/chat/", "/chat/socket.io/")}
_PY_URL = re.compile(r'^\s+"(https://[^"]+)",$', re.M)
_PY_PATH = re.compile(r'socketio_path="([^"]+)"')
_PY_NS = re.compile(r'namespaces=\["([^"]+)"\]')
_PY_TRANSPORTS = re.compile(r"transports=\[([^\]]+)\]")


@pytest.fixture(scope="module")
def backends() -> Iterator[dict[str, list[Backend]]]:
    started = {
        name: [Backend(f"b{i}", back, PING_MS / 1000).start() for i in range(3)]
        for name, (_pub, back) in PATHS.items()
    }
    try:
        yield started
    finally:
        for group in started.values():
            for b in group:
                b.stop()


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    trustme = pytest.importorskip("trustme")
    d = tmp_path_factory.mktemp("gen-tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(d / "server.pem"))
    cert.private_key_pem.write_to_path(str(d / "server.key"))
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    return {"cert": str(d / "server.pem"), "key": str(d / "server.key"), "ca": str(d / "ca.pem")}


def _py_params(code: str) -> tuple[str, str, str, list[str]]:
    """(url, socketio_path, namespace, transports) of the generated python-socketio code."""
    url, path, ns, tr = (r.search(code) for r in (_PY_URL, _PY_PATH, _PY_NS, _PY_TRANSPORTS))
    assert url and path and ns and tr, code
    return url.group(1), path.group(1), ns.group(1), json.loads(f"[{tr.group(1)}]")


@pytest.mark.skipif(not os.path.exists(NGINX), reason="nginx binary not installed")
@pytest.mark.parametrize("paths", list(PATHS))
@pytest.mark.parametrize("count", [1, 3])
@pytest.mark.parametrize("transports", list(TRANSPORTS))
async def test_real_clients_connect_through_the_generated_config(
    transports: str, count: int, paths: str, backends, tls, tmp_path: Path
) -> None:
    port = free_ports(1)[0]
    public, back = PATHS[paths]
    group = backends[paths][:count]
    proxy = Proxy(tmp_path / "nginx", port)
    try:
        for ns in ("/", "/admin"):
            out = generate(
                SetupOptions(
                    server_name="127.0.0.1",
                    public_path=public,
                    backend_path=back,
                    backends=[b.address for b in group],
                    transports=TRANSPORTS[transports],
                    namespace=ns,
                    ping_interval=PING_MS,
                    cert=tls["cert"],
                    key=tls["key"],
                    listen=f"127.0.0.1:{port}",
                )
            )
            if ns == "/":
                (proxy.sites / "site.conf").write_text(out.nginx_conf)
                proxy.start()
                test = subprocess.run(
                    [NGINX, "-t", "-p", f"{proxy.dir}/", "-c", str(proxy.conf)],
                    capture_output=True,
                    text=True,
                    timeout=20,
                )
                assert test.returncode == 0, test.stderr
            url, path, namespace, tr = _py_params(out.client_py)
            assert (url, path, namespace, tuple(tr)) == (
                f"https://127.0.0.1:{port}",
                out.public_engine_path.rstrip("/"),
                ns,
                TRANSPORTS[transports],
            )
            async with real_client(url, path, "t", tls["ca"], tr, namespace=namespace) as client:
                if transports == "default":
                    await wait_transport(client, "websocket")  # polling, then the upgrade through nginx
                else:
                    assert client.transport() == tr[0]
                first = await client.call("whoami", namespace=namespace, timeout=5)
                assert first.endswith(namespace) and first[: -len(namespace)] in {b.instance for b in group}
                for _ in range(3 if transports == "polling" else 1):  # a polling session stays on its backend
                    assert await client.call("whoami", namespace=namespace, timeout=5) == first
    finally:
        proxy.stop()


def _served(backends, tls, tmp_path: Path, **options: Any):  # noqa: ANN001, ANN202
    """The generated config for the prefixed backends (public /dev/aiwm/chat/ → /chat/socket.io/), served by a
    real nginx of the test's own on a free port: (the generated output, the running proxy)."""
    port = free_ports(1)[0]
    out = generate(
        SetupOptions(
            server_name="127.0.0.1",
            public_path="/dev/aiwm/chat/",
            backend_path="/chat/socket.io/",
            backends=[b.address for b in backends["prefixed"]],
            ping_interval=PING_MS,
            cert=tls["cert"],
            key=tls["key"],
            listen=f"127.0.0.1:{port}",
            **options,
        )
    )
    proxy = Proxy(tmp_path / "nginx", port)
    (proxy.sites / "site.conf").write_text(out.nginx_conf)
    proxy.start()
    return out, proxy


@pytest.mark.skipif(not os.path.exists(NGINX), reason="nginx binary not installed")
@pytest.mark.parametrize("ns", ["/", "/admin"])
def test_the_generated_python_code_runs_as_written(ns: str, backends, tls, tmp_path: Path) -> None:
    out, proxy = _served(backends, tls, tmp_path, namespace=ns)
    script = tmp_path / "client.py"
    script.write_text(out.client_py)
    env = {**os.environ, "SSL_CERT_FILE": tls["ca"], "SOCKETIO_TOKEN": "t"}
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env
    )
    try:
        line = _first_line(proc, 20)
        assert line.startswith("connected "), line  # the snippet's own connect handler ran
    finally:
        proc.kill()
        proc.wait(5)
        proxy.stop()


def _first_line(proc: subprocess.Popen[bytes], timeout: float) -> str:
    """The first line PROC prints, read in a thread (bounded)."""
    box: list[str] = []
    t = threading.Thread(target=lambda: box.append(proc.stdout.readline().decode() if proc.stdout else ""))
    t.start()
    t.join(timeout)
    assert box, f"no output within {timeout} s"
    return box[0].strip()


NODE_DIR = Path(
    os.environ.get("WSDOCTOR_TEST_NODE_DIR") or Path(__file__).resolve().parents[2] / "wsdoctor/lab/node"
)
HAS_NODE = shutil.which("node") is not None and (NODE_DIR / "node_modules/socket.io-client").is_dir()


@pytest.mark.skipif(not HAS_NODE, reason="node or the lab's socket.io-client package is not installed")
@pytest.mark.parametrize("transports", ["default", "websocket"])
def test_the_generated_js_runs_in_node(transports: str, backends, tls, tmp_path: Path) -> None:
    out, proxy = _served(backends, tls, tmp_path, namespace="/admin", transports=TRANSPORTS[transports])
    script = NODE_DIR / f".wsdoctor-generated-{os.getpid()}-{transports}.mjs"  # resolves node_modules there
    script.write_text(
        'const token = "t";\n'
        + out.client_js
        + "\nsocket.on('connect', () => socket.emit('whoami', (who) => {\n"
        "  console.log('connected', socket.io.engine.transport.name, who); process.exit(0); }));\n"
        "socket.on('connect_error', (e) => { console.log('error', e.message); process.exit(1); });\n"
    )
    env = {**os.environ, "NODE_EXTRA_CA_CERTS": tls["ca"]}
    proc = subprocess.Popen(["node", str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    try:
        line = _first_line(proc, 20)
        assert line.startswith("connected ") and line.endswith("/admin"), line
    finally:
        proc.kill()
        proc.wait(5)
        script.unlink()
        proxy.stop()


def test_an_existing_upgrade_map_is_used_not_defined_twice() -> None:
    out = generate(SetupOptions(define_map=False))
    assert "map $http_upgrade" not in out.nginx_conf
    assert "proxy_set_header Connection $connection_upgrade;" in out.nginx_conf
    assert any("already defines `map $http_upgrade $connection_upgrade`" in n for n in out.notes)
