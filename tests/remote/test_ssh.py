"""SSH against a real OpenSSH sshd on loopback: host keys, auth, config resolution, jumps, big output,
timeouts, dropped connections, sudo, forwards — each the way an operator's proxy host behaves."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from wsdoctor.lab.sshd import Sshd, start_sshd
from wsdoctor.remote.errors import ConnectError, ForwardError, HostKeyChanged, HostKeyUnknown
from wsdoctor.remote.ssh import SshRunner, fingerprint, own_known_hosts, parse_destination, resolve

from .helpers import connect, kill_pids, pids_matching, wait_gone


def _real_fingerprint(sshd: Sshd) -> str:
    out = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", str(sshd.host_key_pub)],
        capture_output=True,
        text=True,
        timeout=5,
    ).stdout
    return out.split()[1]


# --- destinations -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("proxy", (None, "proxy", None)),
        ("root@10.0.0.5", ("root", "10.0.0.5", None)),
        ("deploy@lb.example.org:2222", ("deploy", "lb.example.org", 2222)),
        ("[::1]:2222", (None, "::1", 2222)),
        ("ops@[fe80::1]:22", ("ops", "fe80::1", 22)),
        ("::1", (None, "::1", None)),
        ("ssh://admin@host:2200", ("admin", "host", 2200)),
    ],
)
def test_parse_destination(text: str, expected: tuple[str | None, str, int | None]) -> None:
    assert parse_destination(text) == expected


@pytest.mark.parametrize("text", ["", "host:0", "host:99999", "host:x", "[::1", "-oProxyCommand=x", "a b"])
def test_parse_destination_rejects_with_a_sentence(text: str) -> None:
    with pytest.raises(ConnectError) as err:
        parse_destination(text)
    assert str(err.value).endswith(".")


# --- host keys ------------------------------------------------------------------------------------


def test_unknown_host_key_is_refused_with_its_fingerprint(sshd: Sshd, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(HostKeyUnknown) as err:
        connect(sshd, known_hosts=str(empty))
    fp = _real_fingerprint(sshd)
    assert err.value.fingerprint == fp
    assert f"--accept-host-key {fp}" in str(err.value)
    assert not own_known_hosts().exists()


def test_accept_host_key_trusts_exactly_that_key_and_remembers_it(sshd: Sshd, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(HostKeyUnknown, match="not the SHA256:AAAA"):
        connect(sshd, known_hosts=str(empty), accept_host_key="SHA256:AAAA")
    fp = _real_fingerprint(sshd)
    with connect(sshd, known_hosts=str(empty), accept_host_key=fp) as runner:
        assert runner.run(["echo", "ok"], 10).stdout == "ok\n"
    saved = own_known_hosts().read_text()
    assert saved.startswith(f"[127.0.0.1]:{sshd.port} ssh-ed25519 ")
    with connect(sshd, known_hosts=str(empty)) as runner:  # now known: no option needed
        assert runner.run(["true"], 10).exit_status == 0


def test_changed_host_key_is_refused_even_when_accepted(sshd: Sshd, tmp_path: Path) -> None:
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True, timeout=10)
    pub = (tmp_path / "other_key.pub").read_text().split()
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {pub[0]} {pub[1]}\n")
    fp = _real_fingerprint(sshd)
    with pytest.raises(HostKeyChanged) as err:
        connect(sshd, known_hosts=str(known), accept_host_key=fp)
    assert "CHANGED" in str(err.value) and fp in str(err.value)
    assert not own_known_hosts().exists()


# --- authentication and resolution -------------------------------------------------------------------


def test_identity_file_auth_without_agent(sshd: Sshd, home: Path) -> None:
    with connect(sshd) as runner:
        assert runner.spec.look_for_keys is False
        assert runner.spec.identity_files == [str(sshd.client_key)]
        assert runner.run(["id", "-un"], 10).stdout.strip() == "root"


def test_wrong_key_fails_with_a_sentence(sshd: Sshd, tmp_path: Path, home: Path) -> None:
    stranger = tmp_path / "stranger"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True, timeout=10
    )
    with pytest.raises(ConnectError, match=r"root@127\.0\.0\.1:\d+ rejected the SSH login as root") as err:
        connect(sshd, identity=str(stranger))
    assert "--identity" in str(err.value) and "ssh-agent" in str(err.value)


def test_no_key_at_all_points_at_identity_and_the_agent(sshd: Sshd, home: Path) -> None:
    with pytest.raises(ConnectError, match="no SSH key to log in to root@127.0.0.1") as err:
        SshRunner.connect(sshd.destination, known_hosts=str(sshd.known_hosts), timeout=30)
    assert "--identity KEY" in str(err.value) and "ssh-agent" in str(err.value)
    assert "check the host" not in str(err.value)


def test_a_file_that_is_not_a_key_is_named(sshd: Sshd, tmp_path: Path, home: Path) -> None:
    junk = tmp_path / "not-a-key"
    junk.write_text("garbage\n")
    with pytest.raises(ConnectError, match="is not a private key") as err:
        connect(sshd, identity=str(junk))
    assert str(junk) in str(err.value) and "--identity" in str(err.value)


def test_agent_auth(sshd: Sshd, tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(
        ["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        env = {**os.environ, "SSH_AUTH_SOCK": str(sock)}
        subprocess.run(
            ["ssh-add", "-q", str(sshd.client_key)], env=env, check=True, timeout=10, capture_output=True
        )
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        config = tmp_path / "ssh_config"
        config.write_text("")
        runner = SshRunner.connect(
            sshd.destination, ssh_config=str(config), known_hosts=str(sshd.known_hosts)
        )
        with runner:
            assert runner.spec.identity_files == []  # nothing but the agent could have authenticated
            assert runner.run(["echo", "agent"], 10).stdout == "agent\n"
    finally:
        agent.terminate()
        agent.wait(timeout=5)


def _config(tmp_path: Path, sshd: Sshd, extra: str = "") -> Path:
    path = tmp_path / "ssh_config"
    path.write_text(
        f"""Host jumpbox
    HostName 127.0.0.1
    Port {sshd.port}
    User root
    IdentityFile {sshd.client_key}
    UserKnownHostsFile {sshd.known_hosts}
Host lb-alias
    HostName 127.0.0.1
    Port {sshd.port}
    User root
    IdentityFile {sshd.client_key}
    UserKnownHostsFile {sshd.known_hosts}
Host lb-via-jump
    HostName 127.0.0.1
    Port {sshd.port}
    User root
    IdentityFile {sshd.client_key}
    UserKnownHostsFile {sshd.known_hosts}
    ProxyJump jumpbox
{extra}"""
    )
    return path


def test_alias_from_ssh_config_file(sshd: Sshd, tmp_path: Path, home: Path) -> None:
    config = _config(tmp_path, sshd)
    spec = resolve("lb-alias", config_file=str(config))
    assert (spec.hostname, spec.port, spec.user, spec.source) == (
        "127.0.0.1",
        sshd.port,
        "root",
        f"ssh -G -F {config}",
    )
    assert spec.identity_files == [str(sshd.client_key)] and spec.look_for_keys is False
    with SshRunner.connect("lb-alias", ssh_config=str(config)) as runner:
        assert runner.run(["echo", "alias"], 10).stdout == "alias\n"


def test_alias_from_home_ssh_config(sshd: Sshd, tmp_path: Path, home: Path) -> None:
    config = _config(tmp_path, sshd)
    (home / ".ssh" / "config").write_text(config.read_text())
    for use_openssh in (True, False):  # ssh -G, and the paramiko.SSHConfig fallback
        spec = resolve("lb-alias", use_openssh=use_openssh)
        assert (spec.hostname, spec.port, spec.user) == ("127.0.0.1", sshd.port, "root")
        assert spec.identity_files == [str(sshd.client_key)]
        assert str(sshd.known_hosts) in spec.known_hosts_files
    with SshRunner.connect("lb-alias") as runner:
        assert runner.run(["true"], 10).exit_status == 0


def test_proxyjump_chain_through_the_same_sshd(sshd: Sshd, tmp_path: Path, home: Path) -> None:
    config = _config(tmp_path, sshd)
    with SshRunner.connect("lb-via-jump", ssh_config=str(config)) as runner:
        assert runner.spec.proxy_jump == ["jumpbox"]
        assert runner.run(["echo", "through"], 10).stdout == "through\n"
        assert runner.stats()["connections"] == 2


def test_jump_host_with_its_own_proxyjump(sshd: Sshd, tmp_path: Path, home: Path) -> None:
    extra = f"""Host jump2
    HostName 127.0.0.1
    Port {sshd.port}
    User root
    IdentityFile {sshd.client_key}
    UserKnownHostsFile {sshd.known_hosts}
    ProxyJump jumpbox
Host lb-via-two
    HostName 127.0.0.1
    Port {sshd.port}
    User root
    IdentityFile {sshd.client_key}
    UserKnownHostsFile {sshd.known_hosts}
    ProxyJump jump2
"""
    config = _config(tmp_path, sshd, extra)
    with SshRunner.connect("lb-via-two", ssh_config=str(config)) as runner:
        assert runner.run(["echo", "two hops"], 10).stdout == "two hops\n"
        assert runner.stats()["connections"] == 3


def test_proxyjump_loop_is_a_sentence(tmp_path: Path, home: Path) -> None:
    config = tmp_path / "loop_config"
    config.write_text("Host a\n    ProxyJump b\nHost b\n    ProxyJump a\n")
    with pytest.raises(ConnectError, match="a loop"):
        SshRunner.connect("a", ssh_config=str(config), timeout=2)


def test_proxycommand(sshd: Sshd, tmp_path: Path, home: Path) -> None:
    config = _config(tmp_path, sshd)
    with config.open("a") as handle:
        handle.write(
            f"""Host lb-via-command
    HostName 127.0.0.1
    Port {sshd.port}
    User root
    IdentityFile {sshd.client_key}
    UserKnownHostsFile {sshd.known_hosts}
    ProxyCommand ssh -F {config} -o BatchMode=yes -W %h:%p jumpbox
"""
        )
    with SshRunner.connect("lb-via-command", ssh_config=str(config)) as runner:
        assert runner.spec.proxy_command and f"-W 127.0.0.1:{sshd.port} jumpbox" in runner.spec.proxy_command
        assert runner.run(["echo", "piped"], 10).stdout == "piped\n"


def test_ipv6_destination(tmp_path: Path) -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    server = start_sshd(tmp_path / "sshd6", host="::1")
    try:
        assert server.destination == f"root@[::1]:{server.port}"
        with connect(server) as runner:
            assert runner.run(["echo", "v6"], 10).stdout == "v6\n"
    finally:
        server.stop()


def test_refused_port_is_a_sentence(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ConnectError, match=rf"root@127\.0\.0\.1:{port} refused the SSH connection") as err:
        SshRunner.connect(f"root@127.0.0.1:{port}", known_hosts=str(tmp_path / "none"), timeout=3)
    assert "--ssh USER@HOST:PORT" in str(err.value)


def test_silent_port_times_out_on_the_banner(tmp_path: Path) -> None:
    with socket.socket() as listener:  # accepts, never speaks SSH
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        started = time.monotonic()
        with pytest.raises(ConnectError, match="did not answer as an SSH server"):
            SshRunner.connect(f"root@127.0.0.1:{listener.getsockname()[1]}", timeout=1)
        assert time.monotonic() - started < 5


# --- running commands ------------------------------------------------------------------------------------


def test_megabytes_on_both_streams_without_deadlock(session_runner: SshRunner) -> None:
    script = "import sys; sys.stdout.write('o' * 5_000_000); sys.stderr.write('e' * 3_000_000)"
    started = time.monotonic()
    result = session_runner.run(["python3", "-c", script], timeout=30)
    assert (result.exit_status, result.error) == (0, None)
    assert len(result.stdout) == 5_000_000 and len(result.stderr) == 3_000_000
    assert time.monotonic() - started < 20


def test_stdin_is_fed_while_output_is_read(session_runner: SshRunner) -> None:
    data = b"line\n" * 400_000  # 2 MB through cat both ways
    result = session_runner.run(["cat"], timeout=30, stdin=data)
    assert result.exit_status == 0 and len(result.stdout) == len(data)


def test_arguments_are_data_not_shell(session_runner: SshRunner, tmp_path: Path) -> None:
    marker = tmp_path / "injected"
    nasty = f"a'b\"c; touch {marker}; $(touch {marker}) `touch {marker}` | touch {marker}\n&& touch {marker} $HOME *"
    result = session_runner.run(["printf", "%s", nasty], 10)
    assert result.stdout == nasty
    assert not marker.exists()


def test_missing_program_is_a_sentence(session_runner: SshRunner) -> None:
    result = session_runner.run(["wsdoctor-no-such-tool", "x"], 10)
    assert result.exit_status == 127
    assert (
        result.error == f"`wsdoctor-no-such-tool` is not installed (or not in PATH) on {session_runner.host}."
    )


def test_sudo_wanting_a_password_is_a_result_not_a_prompt(session_runner: SshRunner) -> None:
    started = time.monotonic()
    result = session_runner.run(["/usr/sbin/nginx", "-T"], 10, sudo=True)
    assert time.monotonic() - started < 5
    assert result.argv == ["/usr/sbin/nginx", "-T"]
    assert result.error is not None
    assert "`/usr/sbin/nginx -T` needs root" in result.error and "NOPASSWD: /usr/sbin/nginx" in result.error


def test_timeout_stops_the_remote_process(session_runner: SshRunner, tmp_path: Path) -> None:
    marker = str(tmp_path / "slow-marker")
    try:
        started = time.monotonic()
        result = session_runner.run(["python3", "-c", "import time; time.sleep(60)", marker], timeout=1)
        assert time.monotonic() - started < 5
        assert result.exit_status is None and "did not finish within 1 s" in (result.error or "")
        assert wait_gone(marker) == []
    finally:
        kill_pids(pids_matching(marker))


def test_read_file(session_runner: SshRunner, tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(bytes(range(256)) * 10)
    assert session_runner.read_file(str(path), max_bytes=300) == (bytes(range(256)) * 2)[:300]
    with pytest.raises(Exception, match="could not be read"):
        session_runner.read_file(str(tmp_path / "missing"))


def test_one_connection_many_channels(sshd: Sshd) -> None:
    with connect(sshd) as runner:
        threads = [threading.Thread(target=runner.run, args=(["true"], 20)) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        stats = runner.stats()
        assert stats["connections"] == 1 and stats["commands"] == 6 and stats["channels"] >= 6


# --- dropped connections --------------------------------------------------------------------------------------


def _connection_processes(server: Sshd) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(server.pid)], capture_output=True, text=True, timeout=5).stdout
    return [int(p) for p in out.split()]


def test_dropped_connection_mid_run_is_an_error_result(fresh_sshd: Sshd, tmp_path: Path) -> None:
    marker = str(tmp_path / "drop-marker")
    runner = connect(fresh_sshd)
    try:
        box: list = []
        thread = threading.Thread(
            target=lambda: box.append(
                runner.run(["python3", "-c", "import time; time.sleep(30)", marker], 20)
            )
        )
        thread.start()
        deadline = time.monotonic() + 5
        while not pids_matching(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in _connection_processes(fresh_sshd):  # the server side of our connection dies
            os.kill(pid, signal.SIGKILL)
        thread.join(10)
        assert not thread.is_alive()
        result = box[0]
        assert result.exit_status is None and "dropped" in (result.error or "")
        after = runner.run(["true"], 5)  # the run goes on: later commands fail at once, as results
        assert after.error and "dropped" in after.error
        with pytest.raises(ForwardError, match="dropped"):
            runner.forward("127.0.0.1", 9)
    finally:
        runner.close()
        kill_pids(pids_matching(marker))  # orphaned by the killed sshd: ours, by pid


# --- port forwarding --------------------------------------------------------------------------------------------


def test_forward_reaches_what_the_proxy_host_reaches(session_runner: SshRunner) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    server.settimeout(5)

    def echo_once() -> None:
        conn, _ = server.accept()
        with conn:
            conn.sendall(b"echo:" + conn.recv(100))

    for _ in range(2):  # the first connection uses the tunnel opened by forward(), the second a new one
        thread = threading.Thread(target=echo_once)
        thread.start()
        host, port = session_runner.forward("127.0.0.1", server.getsockname()[1])
        with socket.create_connection((host, port), timeout=5) as client:
            client.sendall(b"ping")
            assert client.recv(100) == b"echo:ping"
        thread.join(5)
    server.close()


def test_forward_to_a_closed_port_says_so(
    session_runner: SshRunner, capfd: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ForwardError, match=f"could not connect to 127.0.0.1:{port}"):
        session_runner.forward("127.0.0.1", port)


def test_no_paramiko_noise_on_stderr(sshd: Sshd) -> None:
    """A refused channel is a sentence for the caller, not a paramiko log line on the user's terminal."""
    script = f"""
import socket
from wsdoctor.remote.errors import ForwardError
from wsdoctor.remote.ssh import SshRunner
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
with SshRunner.connect({sshd.destination!r}, identity={str(sshd.client_key)!r}, known_hosts={str(sshd.known_hosts)!r}) as r:
    try:
        r.forward("127.0.0.1", port)
    except ForwardError:
        print("refused")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert done.stdout.strip() == "refused"
    assert done.stderr == ""


def test_fingerprint_matches_openssh(sshd: Sshd) -> None:
    import paramiko

    data = sshd.host_key_pub.read_text().split()
    key = paramiko.Ed25519Key(data=__import__("base64").b64decode(data[1]))
    assert fingerprint(key) == _real_fingerprint(sshd)
