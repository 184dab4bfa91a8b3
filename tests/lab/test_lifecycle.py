"""The lab as a product: its JSON contract, SSH access, up/down/status, and no leaked process."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import paramiko
import pytest

from wsdoctor.lab import SCENARIOS, Lab, LabError, procs
from wsdoctor.lab import lab as lab_module
from wsdoctor.lab.cli import lab_command

pytestmark = pytest.mark.lab

ISSUE_KEYS = {
    "scenario", "dir", "url", "path", "transports", "token", "ca_file", "nginx_conf", "nginx_prefix",
    "access_log", "error_log", "backends", "ssh", "pids",
}  # fmt: skip


def _dead(pids: list[int], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while any(procs.alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _listeners(ports: list[int]) -> dict[int, set[str]]:
    """The addresses listening on PORTS, from /proc/net/tcp{,6} (hex, host byte order for IPv4)."""
    found: dict[int, set[str]] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, port = local.rsplit(":", 1)
            if state == "0A" and int(port, 16) in ports:
                ip = ".".join(str(b) for b in reversed(bytes.fromhex(addr))) if len(addr) == 8 else addr
                found.setdefault(int(port, 16), set()).add(ip)
    return found


def test_info_is_the_issue_json_and_ssh_works(lab: Lab) -> None:
    info = lab.info()
    assert set(info) >= ISSUE_KEYS
    json.dumps(info)  # JSON-ready
    assert (
        info["url"] == f"wss://127.0.0.1:{info['public_port']}" and info["path"] == "/dev/aiwm/chat/socket.io"
    )
    assert info["backends"] == [f"http://127.0.0.1:{p}" for p in info["backend_ports"]]
    assert set(info["pids"]) == {"nginx", "sshd", "backend-0", "backend-1", "backend-2"}
    assert Path(info["nginx_conf"]).is_file() and Path(info["ca_file"]).is_file()
    assert info["check_command"].startswith("wsdoctor check --url wss://127.0.0.1:")
    assert "--ca-file" in info["check_command"] and "--token-env WSDOCTOR_LAB_TOKEN" in info["check_command"]
    for name, pid in info["pids"].items():
        assert procs.owned(pid, f"{info['dir']}/"), name
    # Every port of the lab listens on 127.0.0.1 only, never on all addresses.
    ports = [info["public_port"], *info["backend_ports"], info["ssh"]["port"]]
    assert _listeners(ports) == {port: {"127.0.0.1"} for port in ports}
    # `wsdoctor check --ssh root@127.0.0.1:PORT --identity KEY --known-hosts FILE` can reach it:
    # the host key is pinned (RejectPolicy), the client key is accepted.
    ssh = info["ssh"]
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.load_host_keys(ssh["known_hosts"])
    try:
        client.connect(
            ssh["host"],
            port=ssh["port"],
            username=ssh["user"],
            key_filename=ssh["key"],
            look_for_keys=False,
            allow_agent=False,
            timeout=5,
            banner_timeout=5,
            auth_timeout=5,
        )
        _, stdout, _ = client.exec_command(f"cat {info['nginx_prefix']}nginx.pid", timeout=5)
        assert int(stdout.read().decode().strip()) == info["pids"]["nginx"]
    finally:
        client.close()


def test_up_twice_leaks_nothing_and_down_keeps_files(lab_factory, tmp_path: Path) -> None:
    directory = tmp_path / "lab"
    started = time.monotonic()
    first = Lab.up("healthy", directory, ssh=False)
    elapsed = time.monotonic() - started
    lab_factory.remember(first)
    assert elapsed < 8, f"lab up took {elapsed:.1f} s"
    first_pids = list(first.pids().values())
    second = Lab.up("no-sticky", directory, ssh=False)  # same directory: the first lab is stopped
    lab_factory.remember(second)
    try:
        assert _dead(first_pids)
        assert not set(first_pids) & set(second.pids().values())
        assert second.status()["state"] == "up" and Lab.load(directory).info()["scenario"] == "no-sticky"
    finally:
        stopped = Lab.load(directory).down()
    assert set(stopped.values()) == set(second.pids().values())
    assert _dead(list(stopped.values()))
    for kept in ("state.json", "tls/ca.pem", "nginx/nginx.conf", "logs/error.log", "logs/backend.log"):
        assert (directory / kept).exists(), kept
    assert Lab.load(directory).status()["state"] == "down"


def test_down_kills_exactly_its_pids(lab_factory) -> None:
    lab = lab_factory.fresh("healthy", ssh=False)
    marker = f"{lab.directory}/"
    sleeper = [sys.executable, "-c", "import time; time.sleep(30)"]
    stranger = subprocess.Popen(sleeper)  # not the lab's: no lab path on its command line
    lookalike = subprocess.Popen(
        [*sleeper, f"{marker}decoy"]
    )  # names the lab dir, but the lab never started it
    real_backend = lab.pids()["backend-0"]
    try:
        # A recorded pid that now belongs to someone else (pid reuse) must not be signalled.
        lab.state["processes"]["backend-0"]["pid"] = stranger.pid
        stopped = lab.down()
        assert "backend-0" not in stopped
        assert set(stopped) == {"backend-1", "backend-2", "nginx"}
        assert stranger.poll() is None and lookalike.poll() is None
        assert procs.owned(real_backend, marker)  # it was not in the state any more: untouched
    finally:
        procs.terminate(real_backend, marker)
        for p in (stranger, lookalike):
            p.kill()
            p.wait(timeout=5)


async def test_status_reports_a_crashed_backend(lab_factory, capsys: pytest.CaptureFixture[str]) -> None:
    lab = lab_factory.fresh("healthy", ssh=False)
    victim = lab.pids()["backend-1"]
    os.kill(victim, signal.SIGKILL)
    assert _dead([victim])
    status = lab.status()
    assert status["state"] == "degraded" and status["crashed"] == ["backend-1"]
    assert status["processes"]["backend-1"]["status"] == "crashed"
    assert status["processes"]["backend-0"]["status"] == "running"
    # `wsdoctor lab status` (another process would load the state file the same way) says so and exits 1.
    assert lab_command("status", None, "json", str(lab.directory)) == 1
    printed = json.loads(capsys.readouterr().out)
    assert printed["status"]["crashed"] == ["backend-1"] and printed["scenario"] == "healthy"
    assert lab_command("status", None, "text", str(lab.directory)) == 1
    assert "CRASHED:  backend-1" in capsys.readouterr().out

    new_pid = lab.start_backend(1)
    lab_factory.remember(lab)
    assert new_pid != victim and lab.status()["state"] == "up"
    lab.stop_backend(0)  # stopped on purpose is not a crash
    status = lab.status()
    assert status["processes"]["backend-0"]["status"] == "stopped" and status["crashed"] == []


def _wsdoctor(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the real command line in its own process, as a user does."""
    env = {**os.environ, "PYTHONPATH": str(Path(lab_module.__file__).resolve().parents[2])}
    return subprocess.run(
        [sys.executable, "-m", "wsdoctor", *args], capture_output=True, text=True, timeout=60, env=env
    )


def test_cli_up_status_down_json(lab_factory, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`wsdoctor lab up` returns and the lab keeps running; status and down find it from its state file."""
    directory = str(tmp_path / "cli-lab")
    done = _wsdoctor("lab", "up", "--scenario", "bad-auth", "--dir", directory, "--format", "json")
    assert done.returncode == 0, done.stderr
    up = json.loads(done.stdout)
    lab_factory.remember(Lab.load(directory))
    try:
        assert set(up) >= ISSUE_KEYS and up["scenario"] == "bad-auth"
        # The command line's default backends are Node socket.io 4 (the runbook's); recorded for later.
        assert (up["backends_kind"], up["server"]) == ("node", "socketio4")
        assert up["status"]["backends_kind"] == "node"
        assert json.loads((Path(directory) / "state.json").read_text())["backends_kind"] == "node"
        assert all("node" in procs.cmdline(up["pids"][f"backend-{i}"]) for i in range(3))
        assert up["token"] != up["valid_token"] and up["status"]["state"] == "up"
        assert all(procs.alive(pid) for pid in up["pids"].values())  # outlived the command
        assert lab_command("status", None, "json", directory) == 0
        status = json.loads(capsys.readouterr().out)
        assert status["pids"] == up["pids"] and status["token"] == up["token"]
        assert lab_command("status", None, "text", directory) == 0
        text = capsys.readouterr().out
        assert up["token"] in text and up["check_command"] in text and up["ca_file"] in text
        assert f"-p {up['ssh']['port']}" in text and "this token is refused on purpose" in text
        assert "Node socket.io 4." in text and "(--backends node)" in text
    finally:
        down = _wsdoctor("lab", "down", "--dir", directory, "--format", "json")
    assert down.returncode == 0, down.stderr
    assert set(json.loads(down.stdout)["stopped"].values()) == set(up["pids"].values())
    assert _dead(list(up["pids"].values()))
    again = _wsdoctor("lab", "down", "--dir", directory)  # idempotent
    assert again.returncode == 0 and "nothing was running" in again.stdout


def test_clear_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert lab_command("up", "no-such-scenario", "text", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "choose one of: healthy, seed" in err
    assert lab_command("status", None, "text", str(tmp_path / "nothing")) == 2
    assert "no lab in" in capsys.readouterr().err
    with pytest.raises(LabError, match=r"choose another with --dir"):
        Lab.up("healthy", tmp_path / "a b;c")  # nginx config cannot carry it
    assert not (tmp_path / "a b;c").exists()
    monkeypatch.setattr(lab_module, "find_binary", lambda name: None)
    with pytest.raises(LabError, match=r"apt-get install nginx openssh-server"):
        Lab.up("healthy", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_nginx_start_failure_is_one_sentence(
    lab_factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A config nginx rejects: LabError quoting nginx's own complaint; nothing left running."""
    real_render = lab_module.render

    def broken_render(template: str, values: dict[str, str]) -> dict[str, str]:
        files = real_render(template, values)
        files["nginx.conf"] = files["nginx.conf"].replace("proxy_buffering off;", "proxy_buffering maybe;")
        return files

    monkeypatch.setattr(lab_module, "render", broken_render)
    with pytest.raises(LabError) as failed:
        Lab.up("healthy", tmp_path / "bad", ssh=False)
    message = str(failed.value)
    assert "the lab's nginx exited" in message and "proxy_buffering" in message and "\n" not in message
    lab = Lab.load(tmp_path / "bad")
    lab_factory.remember(lab)
    assert lab.status()["state"] == "down" and _dead(lab.all_pids())


def test_a_port_taken_before_nginx_binds_it_is_retried(
    lab_factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """free_ports() can race with another program: nginx then fails to bind and the lab retries."""
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    real_free_ports = procs.free_ports
    calls: list[int] = []

    def racy_free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
        calls.append(count)
        ports = real_free_ports(count, host)
        return [taken, *ports[1:]] if len(calls) == 1 else ports

    monkeypatch.setattr(procs, "free_ports", racy_free_ports)
    try:
        lab = Lab.up("healthy", tmp_path / "racy", ssh=False)
        lab_factory.remember(lab)
        assert len(calls) == 2 and lab.info()["public_port"] != taken
        assert lab.status()["state"] == "up"
        lab.down()
    finally:
        squatter.close()


def test_templates_document_their_failure_and_render_completely() -> None:
    values = {k: f"<{k}>" for k in ("dir", "prefix", "log_dir", "access_log", "error_log", "pid_file", "tmp")}
    values |= {
        "cert": "c",
        "key": "k",
        "public_port": "1",
        "backend_0": "b0",
        "backend_1": "b1",
        "backend_2": "b2",
    }
    for name, scenario in SCENARIOS.items():
        text = (lab_module.TEMPLATE_DIR / scenario.template).read_text()
        head = text[:1500]
        assert f'scenario "{name}"' in head and "Symptom" in head, name
        assert ("What is broken" in head) or name.startswith("healthy"), name
        files = lab_module.render(text, values)
        for rel, body in files.items():
            assert not re.search(r"(?<!\$)\{[a-z][a-z0-9_]*\}", body), (name, rel)
        conf = files["nginx.conf"]
        assert "error_log <error_log> info;" in conf and "pid <pid_file>;" in conf
        assert "listen 127.0.0.1:1 ssl" in "".join(files.values())  # loopback only, TLS
        assert "upstream" in "".join(files.values()) and "location /dev/aiwm/ {" in "".join(files.values())


def test_backends_kinds_and_their_errors(
    lab_factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Lab.up's default kind (Node, like the CLI's), the python choice, and a clear sentence for a bad or
    missing kind."""
    default = lab_factory("healthy")
    assert lab_module.DEFAULT_BACKENDS == "node"  # the runbook's backends are Node processes
    assert (default.info()["backends_kind"], default.info()["server"]) == ("node", "socketio4")
    assert default.status()["backends_kind"] == "node"
    directory = str(tmp_path / "py")
    assert lab_command("up", "http10", "json", directory, backends="python") == 0
    lab = Lab.load(directory)
    lab_factory.remember(lab)
    try:
        up = json.loads(capsys.readouterr().out)
        assert (up["backends_kind"], up["scenario"]) == ("python", "http10")
        assert "wsdoctor.lab.backend" in procs.cmdline(up["pids"]["backend-0"])
    finally:
        lab.down()
    with pytest.raises(LabError, match=r"unknown backends 'java'; choose one of: node, python"):
        Lab.up("healthy", tmp_path / "java", backends="java")
    monkeypatch.setattr(lab_module, "node_binary", lambda: None)
    assert lab_command("up", "healthy", "text", str(tmp_path / "nonode"), backends="node") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Node.js is not installed" in err and "./run setup" in err
    assert not (tmp_path / "nonode").exists()
    monkeypatch.undo()  # Node is back; its packages are not
    monkeypatch.setattr(lab_module, "NODE_DIR", tmp_path / "empty")
    with pytest.raises(LabError, match=r"Node packages are not installed \(missing: socket.io, express\)"):
        Lab.up("healthy", tmp_path / "nomodules", backends="node")


def test_demo_text_diagnoses_the_seed_lab_and_stops_it(tmp_path: Path) -> None:
    """`wsdoctor demo` as a script sees it (no terminal: the text report): the runbook's 404 found live over
    the lab's sshd, on python-socketio backends (the TUI tests drive the Node default), and nothing left."""
    lab_dir = tmp_path / "demo-lab"
    out = subprocess.run(
        [sys.executable, "-m", "wsdoctor", "demo", "--text", "--backends", "python", "--dir", str(lab_dir)],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert out.returncode == 1, out.stderr
    assert "starting the 'seed' lab (real nginx, 3 python-socketio backends, sshd)" in out.stderr
    assert "lab stopped." in out.stderr and "Traceback" not in out.stderr
    assert re.search(r"FAIL client +The client joins namespace /dev/aiwm/chat", out.stdout), out.stdout
    assert re.search(r"^  ssh: root@127\.0\.0\.1:\d+$", out.stdout, re.M), out.stdout  # over the lab's sshd
    state = json.loads((lab_dir / "state.json").read_text())
    assert state["down"] and state["backends_kind"] == "python"
    assert _dead([p["pid"] for p in state["processes"].values()])
