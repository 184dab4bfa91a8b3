"""Gathering from the proxy host: the running nginx's -p/-c/-g, the logs that apply to a location (from the
config, nearest level first), backend log specs passed as data, and a real gather against the lab."""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from wsdoctor.diagnose import Diagnosis
from wsdoctor.gather.remote import live_logs
from wsdoctor.lab.sshd import Sshd
from wsdoctor.nginx.load import load_dump
from wsdoctor.remote import host as h
from wsdoctor.remote import logplan as lp
from wsdoctor.remote.logs import LogSource
from wsdoctor.remote.runner import LocalRunner, Runner
from wsdoctor.remote.session import RemoteSession
from wsdoctor.target import Target

from .helpers import connect

# --- the nginx master ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "binary", "prefix", "conf", "globals_"),
    [
        ("nginx: master process /usr/sbin/nginx -g daemon on; master_process on;", "/usr/sbin/nginx", None, None,
         "daemon on; master_process on;"),
        ("nginx: master process /usr/sbin/nginx -p /srv/lab/ -c /srv/lab/nginx.conf -g daemon off;",
         "/usr/sbin/nginx", "/srv/lab/", "/srv/lab/nginx.conf", "daemon off;"),
        ("nginx: master process nginx -c/etc/nginx/alt.conf", "nginx", None, "/etc/nginx/alt.conf", None),
        ("nginx: master process /usr/local/openresty/nginx/sbin/nginx", "/usr/local/openresty/nginx/sbin/nginx",
         None, None, None),
    ],
)  # fmt: skip
def test_parse_master(
    title: str, binary: str, prefix: str | None, conf: str | None, globals_: str | None
) -> None:
    proc = h.parse_master(title, 42)
    assert proc is not None
    assert (proc.binary, proc.prefix, proc.conf, proc.globals) == (binary, prefix, conf, globals_)


def test_master_argv_replays_the_same_files() -> None:
    proc = h.parse_master("nginx: master process /usr/sbin/nginx -p /l/ -c /l/n.conf -g daemon off;", 1)
    assert proc is not None
    assert proc.argv("-T") == ["/usr/sbin/nginx", "-T", "-p", "/l/", "-c", "/l/n.conf", "-g", "daemon off;"]
    assert h.parse_master("nginx: worker process", 2) is None


def test_process_list_falls_back_to_proc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "ps").write_text("#!/bin/sh\necho 'ps: unrecognized option: e' >&2\nexit 1\n")
    (fake / "ps").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:/usr/bin:/bin")
    result = h.process_list(LocalRunner())
    mine = [line for line in result.stdout.splitlines() if line.split(" ", 1)[0] == str(os.getpid())]
    assert mine and "pytest" in mine[0]


def test_listening_pids() -> None:
    ss = (
        "State  Recv-Q Send-Q Local Address:Port Peer Address:Port Process\n"
        'LISTEN 0      511        127.0.0.1:8443      0.0.0.0:*     users:(("nginx",pid=12,fd=6),("nginx",pid=11,fd=6))\n'
        'LISTEN 0      511            [::]:80            [::]:*     users:(("nginx",pid=99,fd=7))\n'
    )
    assert h.listening_pids(ss, 8443) == {11, 12}
    assert h.listening_pids(ss, 80) == {99}
    assert h.listening_pids(ss, 443) == set()


# --- which logs apply ----------------------------------------------------------------------------------

DUMP = """# configuration file /etc/nginx/nginx.conf:
error_log /var/log/nginx/main-error.log;
events {}
http {
    log_format timed '$remote_addr [$time_local] "$request" $status '
                     '$upstream_status $upstream_addr $request_time';
    access_log logs/http-access.log;
    server {
        listen 443;
        server_name api.example;
        access_log /var/log/nginx/api-access.log timed;
        location /chat/ {
            proxy_pass http://127.0.0.1:3350/;
            proxy_read_timeout 30s;
        }
        location /quiet/ {
            access_log off;
            error_log /var/log/nginx/quiet-error.log info;
        }
        location /elsewhere/ {
            access_log syslog:server=10.0.0.1 combined;
            access_log /var/log/nginx/$host.log;
        }
    }
}
"""


def _location(config, path: str):  # type: ignore[no-untyped-def]
    server = config.servers()[0]
    return next(loc for loc in server.children("location") if loc.args[-1] == path)


def test_location_inherits_the_server_access_log_and_main_error_log() -> None:
    config = load_dump(DUMP, "test")
    plan = lp.log_sources(config, _location(config, "/chat/"), prefix="/srv/nginx/", read_timeout=30.0)
    assert [(s.kind, s.path) for s in plan.sources] == [
        ("error", "/var/log/nginx/main-error.log"),
        ("access", "/var/log/nginx/api-access.log"),
    ]
    access = plan.sources[1]
    assert access.format is not None and access.format.name == "timed" and access.format.missing() == []
    assert (access.read_timeout, access.path_prefix) == (30.0, "/chat/")
    assert access.where == "/etc/nginx/nginx.conf:10"
    assert any("level 'error'" in note for note in plan.notes)  # [info] timeouts would be invisible


def test_location_level_wins_and_off_is_reported() -> None:
    config = load_dump(DUMP, "test")
    plan = lp.log_sources(config, _location(config, "/quiet/"))
    assert [(s.kind, s.path) for s in plan.sources] == [("error", "/var/log/nginx/quiet-error.log")]
    assert any("access_log is off" in note for note in plan.notes)
    assert not any("level" in note for note in plan.notes)


def test_untailable_logs_are_notes() -> None:
    config = load_dump(DUMP, "test")
    plan = lp.log_sources(config, _location(config, "/elsewhere/"))
    assert [s.kind for s in plan.sources] == ["error"]
    assert any("syslog:server=10.0.0.1" in note for note in plan.notes)
    assert any("contains variables" in note for note in plan.notes)


def test_no_location_uses_http_level_relative_to_the_prefix() -> None:
    config = load_dump(DUMP, "test")
    plan = lp.log_sources(config, None, prefix="/srv/nginx/")
    assert ("access", "/srv/nginx/logs/http-access.log") in [(s.kind, s.path) for s in plan.sources]
    assert any("lacks $upstream_status $upstream_addr $request_time" in note for note in plan.notes)


def test_defaults_come_from_the_compiled_paths() -> None:
    config = load_dump(
        "# configuration file /etc/nginx/nginx.conf:\nworker_processes 1;\nevents {}\nhttp { server { } }\n",
        "t",
    )
    compiled = {"prefix": "/usr/share/nginx", "error-log-path": "/var/log/nginx/error.log",
                "http-log-path": "/var/log/nginx/access.log"}  # fmt: skip
    plan = lp.log_sources(config, config.servers()[0], compiled=compiled)
    assert [(s.kind, s.path, s.where) for s in plan.sources] == [
        ("error", "/var/log/nginx/error.log", None),
        ("access", "/var/log/nginx/access.log", None),
    ]


# --- backend logs and shell injection ---------------------------------------------------------------------


def test_backend_log_specs() -> None:
    assert h.backend_log_argv("pm2:chat", 50)[0] == ["pm2", "logs", "chat", "--nostream", "--lines", "50"]
    assert h.backend_log_argv("journald:chat.service", 50)[0][:3] == ["journalctl", "-u", "chat.service"]
    assert h.backend_log_argv("/var/log/chat.log", 50)[0] == ["tail", "-n", "50", "--", "/var/log/chat.log"]


@pytest.fixture(params=["ssh", "local"])
def runner(request: pytest.FixtureRequest, sshd: Sshd) -> Runner:
    r: Runner = connect(sshd) if request.param == "ssh" else LocalRunner()
    yield r  # type: ignore[misc]
    r.close()


def test_injection_in_paths_and_units_stays_data(runner: Runner, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = [
        f"x'; touch {marker}; $(touch {marker}) `touch {marker}`\ntouch {marker}\n echo '",
        f'x"; touch {marker}; echo "$(touch {marker})',
    ]
    for text in evil:
        result, events = h.backend_auth_logs(runner, f"journald:{text}", lines=5, timeout=10)
        assert result.argv[2] == text
        result, events = h.backend_auth_logs(runner, f"pm2:{text}", lines=5, timeout=10)
        result, events = h.backend_auth_logs(runner, str(tmp_path / text), lines=5, timeout=10)
        assert result.argv[-1] == str(tmp_path / text) and result.exit_status != 0
        source = LogSource("error", str(tmp_path / text))
        lp.tail_log(runner, source, lines=5, timeout=10)
    assert not marker.exists()


def test_backend_auth_lines_are_filtered(runner: Runner, tmp_path: Path) -> None:
    log = tmp_path / "backend.log"
    log.write_text(
        "info: listening on 3350\nerror: JWT expired for user 7\nwarn: \x1b[31minvalid token\x1b[0m\ninfo: ok\n"
        "INFO connected sid=abc from 10.0.0.7 sub=alice token via auth\n"  # a success: not evidence
        "2026-05-01T10:00:00+0000 WARN authentication failed for sid=def: jwt InvalidSignatureError\n"
    )
    result, events = h.backend_auth_logs(runner, str(log), timeout=10)
    assert result.exit_status == 0
    assert [(e.text, e.check, e.source) for e in events] == [
        ("error: JWT expired for user 7", "auth", "backend"),
        ("warn: invalid token", "auth", "backend"),
        (
            "2026-05-01T10:00:00+0000 WARN authentication failed for sid=def: jwt InvalidSignatureError",
            "auth",
            "backend",
        ),
    ]
    assert [e.time for e in events] == [None, None, "2026-05-01T10:00:00+0000"]


# --- against the lab over SSH -------------------------------------------------------------------------------


HANDSHAKE_BOUND = 30.0  # a real TLS handshake and request under full-suite load: bounded, never raced


def _target(lab_info: dict, **extra: object) -> Target:
    ssh = lab_info["ssh"]
    return Target(
        url=lab_info["url"],
        path=lab_info["path"],
        ssh=f"{ssh['user']}@{ssh['host']}:{ssh['port']}",
        identity=ssh["key"],
        known_hosts=ssh["known_hosts"],
        ca_file=lab_info["ca_file"],
        offline=True,  # the remote gatherer alone: no probes
        **extra,  # type: ignore[arg-type]
    )


def _polling(info: dict, count: int, sid: str | None = None) -> list[httpx.Response]:
    """Handshakes, or (with SID) POSTs of a Socket.IO CONNECT: answered at once, 400 on a backend without it."""
    url = f"{info['url'].replace('wss://', 'https://')}{info['path']}/"
    out = []
    with httpx.Client(verify=ssl.create_default_context(cafile=info["ca_file"]), timeout=HANDSHAKE_BOUND) as client:
        for _ in range(count):
            if sid:
                params = {"EIO": "4", "transport": "polling", "sid": sid}
                out.append(client.post(url, params=params, content=b"40"))
            else:
                out.append(client.get(url, params={"EIO": "4", "transport": "polling"}))
    return out


def _run(target: Target) -> Diagnosis:
    with RemoteSession(target) as session:
        diagnosis = Diagnosis(target, session)
        asyncio.run(diagnosis.run())
    assert session.runner is None  # closed when the run's owner is done with it
    return diagnosis


@pytest.mark.lab
def test_gather_from_the_lab_backend_down(lab_factory) -> None:  # type: ignore[no-untyped-def]
    lab = lab_factory("backend-down")
    info = lab.info()
    _polling(info, 2)  # ip_hash sends 127.0.0.1 to the stopped backend first: nginx logs the refusal
    target = _target(info)
    diagnosis = _run(target)
    facts = diagnosis.facts
    assert facts.config is not None and facts.config_source == f"nginx -T dump from {facts.ssh_host}"
    assert facts.config.main_file == info["nginx_conf"]
    assert facts.nginx_version == "1.22.1" and facts.version_source.startswith("nginx -V on root@")
    assert facts.commands["nginx -t"].exit_status == 0
    assert facts.commands["ss -ltnp"].exit_status == 0
    refused = [e for e in facts.logs if e.kind == "connect-refused"]
    assert refused and refused[-1].check == "upstream" and refused[-1].file == info["error_log"]
    assert refused[-1].upstream and refused[-1].upstream.startswith("http://127.0.0.1:")


@pytest.mark.lab
def test_gather_from_the_lab_no_sticky_sees_400_with_sid(lab_factory) -> None:  # type: ignore[no-untyped-def]
    lab = lab_factory("no-sticky")
    info = lab.info()
    first = _polling(info, 1)[0]
    sid = first.text.split('"sid":"')[1].split('"')[0]
    answers = _polling(info, 6, sid=sid)
    assert any(a.status_code == 400 for a in answers), "round robin should have refused the session somewhere"
    diagnosis = _run(_target(info))
    sticky = [e for e in diagnosis.facts.logs if e.check == "sticky"]
    assert sticky and sticky[-1].kind == "400-polling-sid" and sticky[-1].status == 400
    assert sticky[-1].file == info["access_log"] and "sid=" in (sticky[-1].request or "")
    assert sticky[-1].upstream  # the lab's log_format has $upstream_addr


@pytest.mark.lab
def test_gather_from_the_lab_short_timeout_sees_the_idle_drop(lab_factory) -> None:  # type: ignore[no-untyped-def]
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect as ws_connect

    lab = lab_factory("short-timeout")
    info = lab.info()
    url = f"{info['url']}{info['path']}/?EIO=4&transport=websocket"
    context = ssl.create_default_context(cafile=info["ca_file"])
    # Nothing crosses the tunnel after the open packet (ping interval 5 s > proxy_read_timeout 3 s): nginx closes
    # it.  The wait is on that close itself; the bounds are generous (a real TLS and WebSocket handshake on a
    # loaded machine can take seconds), never a race with the work they bound.
    with ws_connect(url, ssl=context, open_timeout=HANDSHAKE_BOUND) as ws, pytest.raises(ConnectionClosed):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ws.recv(timeout=max(0.1, deadline - time.monotonic()))
    diagnosis = _run(_target(info))
    logs = diagnosis.facts.logs
    idle = [e for e in logs if e.kind == "upgraded-timeout"]
    assert idle and idle[-1].check == "timeout" and "[info]" in idle[-1].text
    tunnels = [e for e in logs if e.kind == "101-idle-timeout"]
    assert tunnels and tunnels[-1].status == 101 and tunnels[-1].duration is not None


@pytest.mark.lab
def test_live_logs_over_the_run_session_and_cancel(lab_factory) -> None:  # type: ignore[no-untyped-def]
    from .helpers import tail_pattern, wait_following, wait_gone

    lab = lab_factory("backend-down")
    info = lab.info()
    target = _target(info)
    session = RemoteSession(target)
    diagnosis = Diagnosis(target, session)

    async def scenario() -> list:
        await diagnosis.run()  # the gatherer opens the session; the tail reuses its connection
        events: list = []

        async def consume() -> None:
            async for batch in live_logs(session, diagnosis.facts, interval=0.05):
                events.extend(batch)

        task = asyncio.create_task(consume())
        assert await asyncio.to_thread(wait_following, info["access_log"]), "the access log is not followed"
        await asyncio.to_thread(_polling, info, 1)
        deadline = time.monotonic() + 20
        while not any(e.source == "access" for e in events) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return events

    try:
        events = asyncio.run(scenario())
        assert session.runner.stats()["connections"] == 1  # type: ignore[union-attr]
    finally:
        session.close()
    assert any(e.source == "access" and "EIO=4" in e.text for e in events)
    assert wait_gone(tail_pattern(info["access_log"])) == []
    assert wait_gone(tail_pattern(info["error_log"])) == []


def test_gatherer_stops_the_run_on_an_unknown_host_key(sshd: Sshd, tmp_path: Path) -> None:
    from wsdoctor.errors import InputError

    empty = tmp_path / "known_hosts"
    empty.write_text("")
    target = Target(ssh=sshd.destination, identity=str(sshd.client_key), known_hosts=str(empty), offline=True)
    with pytest.raises(InputError, match="--accept-host-key SHA256:"):
        _run(target)


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_gatherer_on_an_unreachable_host_stops_the_run(tmp_path: Path) -> None:
    """A diagnosis without the host it was asked to look at would pass checks it never ran: exit 2 instead."""
    from wsdoctor.errors import InputError

    port = _closed_port()
    target = Target(ssh=f"root@127.0.0.1:{port}", known_hosts=str(tmp_path / "kh"), offline=True)
    with pytest.raises(InputError, match=rf"root@127\.0\.0\.1:{port} refused the SSH connection") as err:
        _run(target)
    assert "--ssh USER@HOST:PORT" in str(err.value)


def _cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    env.update(HOME=str(home), XDG_STATE_HOME=str(home / "state"))
    return subprocess.run(
        [sys.executable, "-m", "wsdoctor", "check", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
    )


def _one_line_exit_2(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, (done.returncode, done.stdout[-500:], done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wsdoctor: "), done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    return lines[0]


def test_cli_ssh_refused_exits_2_with_one_line(tmp_path: Path) -> None:
    port = _closed_port()
    line = _one_line_exit_2(
        _cli("--url", "ws://127.0.0.1:1/", "--ssh", f"root@127.0.0.1:{port}", "--timeout", "2", home=tmp_path)
    )
    assert f"root@127.0.0.1:{port} refused the SSH connection" in line and "--ssh USER@HOST:PORT" in line


def test_cli_ssh_rejected_key_and_no_key_exit_2_naming_identity(sshd: Sshd, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True, timeout=10
    )
    common = ("--url", "ws://127.0.0.1:1/", "--ssh", sshd.destination, "--known-hosts", str(sshd.known_hosts))
    rejected = _one_line_exit_2(_cli(*common, "--identity", str(stranger), home=tmp_path))
    assert "rejected the SSH login" in rejected and "--identity KEY" in rejected and "ssh-agent" in rejected
    (tmp_path / ".ssh").mkdir()
    nokey = _one_line_exit_2(_cli(*common, home=tmp_path))
    assert "no SSH key to log in" in nokey and "--identity KEY" in nokey


def test_privileged_commands_without_passwordless_sudo(
    fakebin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not root and sudo wants a password: a read that works anyway is used; else the NOPASSWD sentence."""
    monkeypatch.setenv("PATH", f"{fakebin}:/usr/bin:/bin")
    runner = LocalRunner()
    runner.is_root = False
    ok = h.run_privileged(runner, ["echo", "readable anyway"], timeout=10)
    assert (ok.exit_status, ok.stdout, ok.error) == (0, "readable anyway\n", None)
    denied = h.run_privileged(runner, ["sh", "-c", "echo 'permission denied' >&2; exit 1"], timeout=10)
    assert denied.error is not None and "needs root and sudo asks for a password" in denied.error
    assert denied.argv == ["sh", "-c", "echo 'permission denied' >&2; exit 1"]
