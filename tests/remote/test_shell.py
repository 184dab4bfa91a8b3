"""Many commands through one remote shell, the pipelined SFTP reads, the discovery batch, the login shell's
noise, and the polite end of a connection — over real OpenSSH sshd processes on loopback."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import shlex
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.remote.helpers import connect, kill_pids, pids_matching, wait_gone
from wsdoctor.demo import lab_target
from wsdoctor.diagnose import Diagnosis
from wsdoctor.lab.sshd import Sshd, start_sshd
from wsdoctor.remote import host as h
from wsdoctor.remote.ssh import SshRunner
from wsdoctor.remote.ssh.shell import _Request, _Stream, encode_arg

NOISE_ERR = "rm: cannot remove '/root/.pyenv/shims/.pyenv-shim': File exists"
NOISE_OUT = "pyenv: shims rehashed (noise from the login shell's start-up file)"
FAKE_PID = "wsdoctor-pid 22279"


# --- one shell, many commands --------------------------------------------------------------------------------


def test_arguments_survive_the_worker_byte_for_byte(session_runner: SshRunner, tmp_path: Path) -> None:
    marker = tmp_path / "injected"
    nasty = [
        "a b",
        "back\\slash",
        "new\nline",
        "tab\there",
        "é ü ✓",
        f"'\"$(touch {marker}) `touch {marker}`; touch {marker}",
        "-n",
        "",
        "\\0101 not an escape",
    ]
    shell = session_runner.shell()
    try:
        result = shell.run(["printf", "[%s]\\n", *nasty], 10)
        assert result.stdout == "".join(f"[{arg}]\n" for arg in nasty)
        assert (result.exit_status, result.error) == (0, None)
        assert not marker.exists()
    finally:
        shell.close()


def test_encoded_arguments_are_one_line_each() -> None:
    assert encode_arg("plain /path -g daemon off;") == "plain /path -g daemon off;"
    assert encode_arg("a\nb") == "a\\0012b"
    assert encode_arg("\\") == "\\0134"
    assert encode_arg("nul\x00") is None


@pytest.mark.parametrize("chunk", [1, 2, 5, 17, 4096])
def test_the_worker_streams_are_cut_right_however_they_arrive(chunk: int) -> None:
    m = b"wsdoctor-0123456789abcdef"
    out = (
        b"noise before\n" + m + b" ready 42\n"
        + m + b" begin 1\nhello\n" + b"\n" + m + b" end 1 3\n"
        + m + b" begin 12\nno newline, " + m[:-1] + b" almost a marker" + b"\n" + m + b" end 12 0\n"
    )  # fmt: skip
    err = (
        NOISE_ERR.encode() + b"\n" + m + b" ready 42\n"
        + m + b" begin 1\n" + m + b" pid 777\nerr one\n" + b"\n" + m + b" end 1\n"
        + m + b" begin 12\n" + m + b" pid 778\n" + b"\n" + m + b" end 12\n"
    )  # fmt: skip
    requests = {1: _Request(1, ["a"]), 12: _Request(12, ["b"])}
    ready: list[int] = []
    streams = [(_Stream(m, True), out), (_Stream(m, False), err)]
    ended: list[int] = []
    for stream, data in streams:
        for at in range(0, len(data), chunk):
            ended += [r.id for r in stream.feed(data[at : at + chunk], requests, ready.append)]
    first, second = requests[1], requests[12]
    assert (first.out.value(), first.err.value(), first.status, first.pid) == (
        b"hello\n",
        b"err one\n",
        3,
        777,
    )
    assert second.out.value() == b"no newline, " + m[:-1] + b" almost a marker"
    assert (second.err.value(), second.status, second.pid) == (b"", 0, 778)
    assert sorted(ended) == [1, 1, 12, 12] and ready == [42, 42]


def test_results_are_each_commands_own_in_the_order_sent(session_runner: SshRunner) -> None:
    shell = session_runner.shell()
    try:
        sent = [
            shell.submit(["sh", "-c", f"echo out{i}; echo err{i} >&2; printf tail{i}; exit {i}"], 10)
            for i in range(5)
        ]
        for i, pending in enumerate(sent):
            result = pending.result()
            assert (result.stdout, result.stderr, result.exit_status) == (f"out{i}\ntail{i}", f"err{i}\n", i)
        stats = session_runner.stats()
        assert stats["connections"] == 1
    finally:
        shell.close()


def test_threads_share_the_shell(session_runner: SshRunner) -> None:
    shell = session_runner.shell()
    box: dict[int, str] = {}

    def one(i: int) -> None:
        box[i] = shell.run(["sh", "-c", f"echo {i}"], 20).stdout

    try:
        threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert box == {i: f"{i}\n" for i in range(8)}
    finally:
        shell.close()


def test_missing_program_and_sudo_password_are_sentences_through_the_shell(session_runner: SshRunner) -> None:
    shell = session_runner.shell()
    try:
        missing = shell.run(["wsdoctor-no-such-tool", "x"], 10)
        assert missing.exit_status == 127
        assert missing.error == f"`wsdoctor-no-such-tool` is not installed (or not in PATH) on {shell.host}."
        sudo = shell.run(["/usr/sbin/nginx", "-T"], 10, sudo=True)  # the session sshd's fake sudo
        assert sudo.argv == ["/usr/sbin/nginx", "-T"]
        assert "`/usr/sbin/nginx -T` needs root" in (sudo.error or "")
    finally:
        shell.close()


def test_a_command_past_its_deadline_is_stopped_and_the_rest_still_run(
    session_runner: SshRunner, tmp_path: Path
) -> None:
    marker = str(tmp_path / "slow-marker")
    shell = session_runner.shell()
    try:
        started = time.monotonic()
        slow = shell.submit(["python3", "-c", "import time; time.sleep(60)", marker], 1)
        after = shell.submit(["echo", "after"], 20)
        result = slow.result()
        assert time.monotonic() - started < 6
        assert result.exit_status is None and "did not finish within 1 s" in (result.error or "")
        assert after.result().stdout == "after\n"  # queued behind it: run on its own channel instead
        assert wait_gone(marker) == []
        assert shell.run(["echo", "later"], 20).stdout == "later\n"
    finally:
        shell.close()
        kill_pids(pids_matching(marker))


def test_stdin_goes_to_a_channel_of_its_own(session_runner: SshRunner) -> None:
    shell = session_runner.shell()
    try:
        assert shell.run(["cat"], 10, stdin=b"fed\n").stdout == "fed\n"
    finally:
        shell.close()


def test_a_closed_shell_runs_each_command_on_its_own_channel(session_runner: SshRunner) -> None:
    shell = session_runner.shell()
    shell.close()
    assert shell.run(["echo", "still"], 10).stdout == "still\n"


# --- pipelined SFTP reads -------------------------------------------------------------------------------------


def test_sftp_tails_of_several_files_at_once_match_tail(session_runner: SshRunner, tmp_path: Path) -> None:
    files = []
    for i, (count, width) in enumerate([(10, 20), (5000, 90), (3, 0), (700, 4000)]):
        path = tmp_path / f"log{i}"
        path.write_text("".join(f"{i}:{n}:" + "x" * width + "\n" for n in range(count)))
        files.append(path)
    empty = tmp_path / "empty"
    empty.write_text("")
    files.append(empty)
    box: dict[Path, object] = {}

    def read(path: Path) -> None:
        box[path] = session_runner.read_tail(str(path), 400, timeout=20)

    threads = [threading.Thread(target=read, args=(p,)) for p in files]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for path in files:
        expected = subprocess.run(
            ["tail", "-n", "400", "--", str(path)], capture_output=True, text=True
        ).stdout
        result = box[path]
        assert result is not None and result.exit_status == 0  # type: ignore[attr-defined]
        assert result.argv == ["sftp-read", "-n", "400", "--", str(path)]  # type: ignore[attr-defined]
        assert result.stdout == expected, path  # type: ignore[attr-defined]


def test_sftp_missing_file_is_a_failed_result(session_runner: SshRunner, tmp_path: Path) -> None:
    missing = tmp_path / "missing.log"
    result = session_runner.read_tail(str(missing), 10, timeout=10)
    assert result is not None and result.exit_status == 1
    assert result.stderr == f"{missing}: No such file or directory"


# --- the discovery batch ---------------------------------------------------------------------------------------


@pytest.mark.lab
def test_the_discovery_guess_is_the_command_find_nginx_chooses(lab_factory) -> None:  # type: ignore[no-untyped-def]
    lab = lab_factory("healthy")
    info = lab.info()
    ssh = info["ssh"]
    runner = SshRunner.connect(
        f"{ssh['user']}@{ssh['host']}:{ssh['port']}", identity=ssh["key"], known_hosts=ssh["known_hosts"]
    )
    try:
        runner.prepare()
        batch = h.start_discovery(runner.shell(), guess=True, listen_port=info["public_port"])
        ps, clock = h.split_clock(batch.ps.result(), batch.before, time.time())
        assert clock.utc_offset is not None and abs(clock.skew) < 5
        found = h.find_nginx(batch.runner, listen_port=info["public_port"], ss=batch.ss.result(), ps=ps)
        assert found.process is not None and found.process.conf == info["nginx_conf"]
        # The guess is used as is: the same argv, the dump, and nginx's own stderr.
        dump = batch.nginx(found.process, "-T").result()
        assert dump.argv == found.process.argv("-T")
        assert dump.exit_status == 0 and dump.stdout.startswith(f"# configuration file {info['nginx_conf']}:")
        direct = runner.run(found.process.argv("-T"), 15)
        assert (dump.stdout, dump.stderr) == (direct.stdout, direct.stderr)
        version = batch.nginx(found.process, "-V").result()
        assert version.argv == [found.process.binary, "-V"] and "nginx version: nginx/" in version.stderr
        test = batch.nginx(found.process, "-t").result()
        assert test.argv == found.process.argv("-t") and "syntax is ok" in test.stderr
        # A master the guess did not pick: the command itself runs (its own argv in the result).
        other = dataclasses.replace(found.process, globals="daemon off; worker_processes 1;")
        assert batch.nginx(other, "-t").result().argv == other.argv("-t")
    finally:
        runner.close()


# --- the login shell's noise never reaches a result ----------------------------------------------------------


@pytest.fixture
def noisy_sshd(tmp_path: Path) -> Iterator[Sshd]:
    """An sshd whose user's shell start-up file prints noise on both streams (as pyenv, nvm, conda do)."""
    home = tmp_path / "home"
    home.mkdir()
    rc = f"echo {shlex.quote(NOISE_ERR)} >&2\necho {shlex.quote(NOISE_OUT)}\necho {shlex.quote(FAKE_PID)} >&2\n"
    (home / ".bashrc").write_text(rc)
    server = start_sshd(tmp_path / "sshd", extra_config=f"SetEnv HOME={home}")
    try:
        yield server
    finally:
        server.stop()


def _noise_free(text: str) -> None:
    for noise in (NOISE_ERR, NOISE_OUT, FAKE_PID):
        assert noise not in text
    assert not re.search(r"wsdoctor-[0-9a-f]{16}", text)  # nor the run's own markers


def test_login_shell_noise_stays_out_of_results_and_tails(noisy_sshd: Sshd, tmp_path: Path) -> None:
    plain = subprocess.run(
        ["ssh", "-i", str(noisy_sshd.client_key), "-o", f"UserKnownHostsFile={noisy_sshd.known_hosts}",
         "-o", "BatchMode=yes", "-p", str(noisy_sshd.port), "root@127.0.0.1", "true"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert NOISE_ERR in plain.stderr and NOISE_OUT in plain.stdout  # the noise is real
    log = tmp_path / "app.log"
    log.write_text("first line\nsecond line\n")
    with connect(noisy_sshd) as runner:
        own = runner.run(["sh", "-c", "echo out; echo err >&2; exit 3"], 20)
        assert (own.stdout, own.stderr, own.exit_status) == ("out\n", "err\n", 3)
        shell = runner.shell()
        batched = shell.run(["sh", "-c", "echo out; echo err >&2; exit 4"], 20)
        assert (batched.stdout, batched.stderr, batched.exit_status) == ("out\n", "err\n", 4)
        missing = runner.run(["no-such-tool-here"], 20)
        assert missing.error is not None and "not installed" in missing.error
        _noise_free(missing.stdout + missing.stderr)
        ps, clock = h.split_clock(shell.run(h.PS_ARGV, 20), time.time() - 20, time.time() + 1)
        assert clock.utc_offset is not None  # the clock line came first: the noise before it was cut
        assert ps.stdout.split(None, 1)[0].isdigit()
        shell.close()
        with runner.tail(str(log), backlog=5) as stream:
            lines: list[str] = []
            deadline = time.monotonic() + 20
            while len(lines) < 2 and time.monotonic() < deadline:
                lines += stream.get(0.5) or []
            with log.open("a") as out:
                out.write("third line\n")
            while len(lines) < 3 and time.monotonic() < deadline:
                lines += stream.get(0.5) or []
        assert lines == ["first line", "second line", "third line"]


# --- a polite end: no "Connection reset by peer" in the host's auth log ---------------------------------------


def _log_lines_for(log: Path, port: int) -> list[str]:
    pattern = re.compile(rf"\bport {port}\b")
    return [line for line in log.read_text(errors="replace").splitlines() if pattern.search(line)]


_ENDED = re.compile(r"Disconnected from|Connection closed by|Connection reset|Read error|Broken pipe|Timeout")


@pytest.mark.lab
def test_a_remote_check_ends_with_a_clean_disconnect_in_the_sshd_log(lab_factory) -> None:  # type: ignore[no-untyped-def]
    lab = lab_factory("healthy")
    log = Path(lab.state["processes"]["sshd"]["log"])
    target = dataclasses.replace(lab_target(lab.info()), backend_log=lab.info()["backend_log"], timeout=5.0)
    from wsdoctor.remote.session import RemoteSession

    with RemoteSession(target) as session:
        update = asyncio.run(asyncio.wait_for(Diagnosis(target, session).run(), 90))
        runner = session.runner
        assert isinstance(runner, SshRunner)
        address = runner.local_address
        assert address is not None
        assert update.facts.commands["nginx -V"].exit_status == 0  # the run did use the connection
    # sshd writes its lines a moment after the connection ends: wait (bounded) for the line that ends it.
    deadline = time.monotonic() + 15
    lines = _log_lines_for(log, address[1])
    while not any(_ENDED.search(line) for line in lines) and time.monotonic() < deadline:
        time.sleep(0.05)
        lines = _log_lines_for(log, address[1])
    text = "\n".join(lines)
    assert f"Received disconnect from 127.0.0.1 port {address[1]}:11: disconnected by user" in text, text
    assert f"Disconnected from user root 127.0.0.1 port {address[1]}" in text, text
    for bad in ("reset by peer", "Read error", "Broken pipe", "Connection closed by"):
        assert bad not in text, text


def test_close_is_polite_through_a_jump_host_too(sshd: Sshd, tmp_path: Path, home: Path) -> None:
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host jump\n  HostName 127.0.0.1\n  Port {sshd.port}\n  User root\n"
        f"  IdentityFile {sshd.client_key}\n  UserKnownHostsFile {sshd.known_hosts}\n"
        f"Host target\n  HostName 127.0.0.1\n  Port {sshd.port}\n  User root\n  ProxyJump jump\n"
        f"  IdentityFile {sshd.client_key}\n  UserKnownHostsFile {sshd.known_hosts}\n"
    )
    runner = SshRunner.connect("target", ssh_config=str(config))
    outer = runner._clients[0].get_transport()  # noqa: SLF001 - the jump host's own connection
    assert outer is not None
    port = outer.sock.getsockname()[1]
    assert runner.run(["true"], 10).exit_status == 0
    runner.close()
    deadline = time.monotonic() + 15
    lines = _log_lines_for(sshd.log_file, port)
    while not any(_ENDED.search(line) for line in lines) and time.monotonic() < deadline:
        time.sleep(0.05)
        lines = _log_lines_for(sshd.log_file, port)
    text = "\n".join(lines)
    assert f"Received disconnect from 127.0.0.1 port {port}:11: disconnected by user" in text, text
    assert "reset by peer" not in text and "Read error" not in text, text


# --- the guess reads the master as parse_master and find_nginx do ------------------------------------------


def _guess(tmp_path: Path, ps_lines: list[str], flag: str, port: str = "", ss: str = "") -> list[str]:
    """Run the discovery's guess here against a made-up process table (and `ss`); the argv it ran."""
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    table = "".join(f"echo {shlex.quote(line)}\n" for line in ps_lines)
    for name, body in (("ps", table), ("ss", f"printf '%s\\n' {shlex.quote(ss)}\n"), ("nginx", "exit 0\n")):
        (fake / name).write_text("#!/bin/sh\n" + body)
        (fake / name).chmod(0o755)
    done = subprocess.run(
        ["sh", "-c", h._SPECULATE, "wsdoctor", flag, "", port],  # noqa: SLF001 - the script under test
        capture_output=True, env={"PATH": f"{fake}:/usr/bin:/bin"}, timeout=30,
    )  # fmt: skip
    head = done.stdout.split(b"\n", 1)[0].split(b"\0")
    return [part.decode() for part in head[1:]] if head[0] == b"wsdoctor-nginx" else []


@pytest.mark.parametrize(
    "title",
    [
        "nginx: master process /usr/sbin/nginx -p /srv/lab/ -c /srv/lab/nginx.conf -g daemon off;",
        "nginx: master process nginx -g daemon off; pid /run/nginx.pid;",
        "nginx: master process /usr/sbin/nginx",
        "nginx: master process /opt/nginx -c/etc/a.conf -gdaemon off; -e /tmp/err",
        "nginx: master process /opt/nginx -s reload -c /etc/b.conf",
        "nginx: master process /opt/nginx -c",
    ],
)
def test_the_guess_reads_the_title_as_parse_master(tmp_path: Path, title: str) -> None:
    proc = h.parse_master(title, 4242)
    assert proc is not None
    for flag in ("-T", "-t"):
        assert _guess(tmp_path, ["   17 nginx: worker process", f" 4242 {title}"], flag) == proc.argv(flag)
    assert _guess(tmp_path, [f" 4242 {title}"], "-V") == [proc.binary, "-V"]


def test_the_guess_picks_the_master_listening_on_the_clients_port(tmp_path: Path) -> None:
    masters = [
        " 100 nginx: master process /usr/sbin/nginx -c /a/nginx.conf",
        " 200 nginx: master process /usr/sbin/nginx -c /b/nginx.conf",
    ]
    ss = (
        "State  Recv-Q Send-Q Local Address:Port Peer Address:Port Process\n"
        'LISTEN 0      511          0.0.0.0:8443      0.0.0.0:*    users:(("nginx",pid=201,fd=6),("nginx",pid=200,fd=6))\n'
        'LISTEN 0      511          0.0.0.0:443       0.0.0.0:*    users:(("nginx",pid=100,fd=6))'
    )
    ps = [*masters, "  201 nginx: worker process"]
    for port, conf in (
        ("8443", "/b/nginx.conf"),
        ("443", "/a/nginx.conf"),
        ("9999", "/a/nginx.conf"),
        ("", "/a/nginx.conf"),
    ):
        assert _guess(tmp_path, ps, "-T", port, ss) == ["/usr/sbin/nginx", "-T", "-c", conf], port
    assert _guess(tmp_path, ["  17 sshd: root@notty"], "-T") == []  # no master: nothing runs
