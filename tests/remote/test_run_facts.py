"""What one run gathers from the proxy host, made sensible: the log lines of THIS run in time order, the
``ss -ltnp`` lines of nginx and the upstream only, a backend log that cannot be read said as a note, and
the last lines of a file read without a login shell (SFTP)."""

from __future__ import annotations

import calendar
import time
from pathlib import Path

import pytest

from wsdoctor import logtime as lt
from wsdoctor.facts import CommandResult, LogEvent
from wsdoctor.remote import host as h
from wsdoctor.remote.runner import LocalRunner, last_lines
from wsdoctor.remote.ssh import SshRunner

T = calendar.timegm((2026, 11, 26, 1, 14, 22))  # 2026-11-26 01:14:22 UTC


def _ev(source: str, when: str | None, text: str, check: str = "upstream", kind: str = "x") -> LogEvent:
    return LogEvent(
        source=source, file=f"/{source}.log", line_no=None, text=text, kind=kind, check=check, time=when
    )


# --- time ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stamp", "offset", "expected"),
    [
        ("26/Nov/2026:01:14:22 +0000", None, T),
        ("26/Nov/2026:02:14:22 +0100", None, T),  # $time_local carries its zone
        ("2026/11/26 03:14:22", 7200, T),  # the error log is in the host's zone, without an offset
        ("2026/11/26 01:14:22", None, None),  # ... so it cannot be placed when the zone is unknown
        ("2026-11-26T01:14:22+00:00", None, T),
        ("2026-11-26T01:14:22Z", None, T),
        ("2026-11-25T20:14:22-0500", None, T),
        ("2026-11-26T01:14:22", 0, T),  # a naive backend time: the host's zone
        ("yesterday", 0, None),
        (None, 0, None),
    ],
)
def test_log_epoch(stamp: str | None, offset: int | None, expected: float | None) -> None:
    assert lt.log_epoch(stamp, offset) == expected


def test_parse_clock_measures_skew_and_zone() -> None:
    clock = lt.parse_clock(f"{int(T) + 30} -0130", T - 0.25, T + 0.25)
    assert clock.utc_offset == -5400
    assert 29 <= clock.skew <= 31
    assert lt.parse_clock("garbage", T, T).utc_offset is None


def test_processes_and_clock_locally() -> None:
    ps, clock = h.processes_and_clock(LocalRunner())
    assert not ps.stdout.startswith("wsdoctor-clock")
    assert any(line.split(" ", 1)[0].isdigit() for line in ps.stdout.splitlines())
    assert clock.utc_offset is not None and abs(clock.skew) < 2


def test_order_keeps_this_run_in_time_order_errors_last_within_a_second() -> None:
    clock = lt.Clock(0.0, 0)
    events = [
        _ev("error", "2026/11/26 00:50:00", "old refusal from an earlier run"),
        _ev("access", "26/Nov/2026:00:50:00 +0000", "old probe line", kind="502"),
        _ev("access", "26/Nov/2026:01:14:22 +0000", "access A", kind="502"),
        _ev("access", "26/Nov/2026:01:14:23 +0000", "access B", kind="502"),
        _ev("error", "2026/11/26 01:14:22", "error A"),
        _ev("error", None, "error A, no time: takes the time of the line before it"),
        _ev("error", "2026/11/26 01:14:23", "error B"),
        _ev("backend", "2026-11-26T01:14:22", "backend auth A", check="auth"),
    ]
    kept, dropped = lt.order_logs(events, since=T, clock=clock)
    assert dropped == 2
    assert [e.text for e in kept] == [
        "access A",
        "backend auth A",
        "error A",
        "error A, no time: takes the time of the line before it",
        "access B",
        "error B",
    ]
    everything, none = lt.order_logs(events, since=None, clock=clock)  # --offline: history is all there is
    assert (
        none == 0
        and len(everything) == len(events)
        and everything[0].text == "old probe line"  # (access before error in the same second)
    )


def test_recent_upstream_errors_count_for_this_run() -> None:
    """nginx logs a refused server once per fail_timeout: a run right after another may not log it again."""
    clock = lt.Clock(0.0, 0)
    recent = _ev("error", "2026/11/26 01:14:05", "connect() failed (111: Connection refused) 17 s ago")
    old_404 = _ev("error", "2026/11/26 01:14:05", "open() socket.io failed 17 s ago", check="route")
    kept, dropped = lt.order_logs([recent, old_404], since=T, clock=clock)
    assert [e.text for e in kept] == [recent.text] and dropped == 1


def test_order_uses_the_hosts_clock() -> None:
    """The proxy host's clock runs 60 s ahead: its lines of this run must not look like the future's (or the
    past's when it runs behind)."""
    behind = lt.Clock(-60.0, 0)
    line = _ev("access", "26/Nov/2026:01:13:23 +0000", "written 1 s into this run, by a clock 60 s behind")
    kept, dropped = lt.order_logs([line], since=T, clock=behind)
    assert kept == [line] and dropped == 0
    kept, dropped = lt.order_logs([line], since=T, clock=lt.Clock(0.0, 0))
    assert kept == [] and dropped == 1


def test_unplaceable_error_lines_are_kept() -> None:
    line = _ev("error", "2020/01/01 00:00:00", "zone unknown: cannot tell, so it is kept")
    kept, _ = lt.order_logs([line], since=T, clock=lt.Clock(0.0, None))
    assert kept == [line]


# --- ss -ltnp -------------------------------------------------------------------------------------------

SS = """State  Recv-Q Send-Q Local Address:Port  Peer Address:PortProcess
LISTEN 0      2048       127.0.0.1:60215      0.0.0.0:*    users:(("python3.11",pid=29369,fd=7))
LISTEN 0      511        127.0.0.1:56649      0.0.0.0:*    users:(("nginx",pid=3930,fd=5),("nginx",pid=3927,fd=5))
LISTEN 0      511        127.0.0.1:60317      0.0.0.0:*    users:(("nginx",pid=32026,fd=5),("nginx",pid=31999,fd=5))
LISTEN 0      511        127.0.0.1:8080       0.0.0.0:*    users:(("nginx",pid=3930,fd=6),("nginx",pid=3927,fd=6))
LISTEN 0      2048       127.0.0.1:47371      0.0.0.0:*    users:(("python3.11",pid=29252,fd=7))
LISTEN 0      128        127.0.0.1:59649      0.0.0.0:*    users:(("sshd",pid=17633,fd=3))
"""


def test_focus_listening_keeps_nginx_and_the_upstream() -> None:
    result = CommandResult(argv=["ss", "-ltnp"], host="root@lb1", exit_status=0, stdout=SS)
    ports = {56649: "nginx", 47371: "upstream chat_ws", 39519: "upstream chat_ws"}
    expected = {47371: "127.0.0.1:47371", 39519: "127.0.0.1:39519"}
    focused = h.focus_listening(result, pids={3927}, ports=ports, expected=expected)
    lines = focused.stdout.splitlines()
    assert lines[0].startswith("State")
    assert [line.split()[3] for line in lines[1:4]] == [
        "127.0.0.1:56649",
        "127.0.0.1:8080",
        "127.0.0.1:47371",
    ]
    assert "60317" not in focused.stdout and "59649" not in focused.stdout  # another lab's nginx, sshd
    assert "nothing listens on port 39519 (127.0.0.1:39519)" in focused.stdout
    assert "3 other listening sockets left out" in focused.stdout
    assert result.stdout == SS  # the original is untouched
    failed = CommandResult(argv=["ss", "-ltnp"], host="h", exit_status=1, stderr="ss: not found")
    assert h.focus_listening(failed, pids={1}, ports={80: "nginx"}) is failed


# --- backend log problems ----------------------------------------------------------------------------------


def _result(argv: list[str], status: int | None, out: str = "", err: str = "", error: str | None = None):
    return CommandResult(argv=argv, host="root@lb1", exit_status=status, stdout=out, stderr=err, error=error)


def test_backend_log_problems_are_sentences() -> None:
    missing = h.backend_log_problem(
        "/var/log/chat.log",
        _result(
            ["tail"], 1, err="tail: cannot open '/var/log/chat.log' for reading: No such file or directory"
        ),
    )
    assert missing == (
        "the backend log /var/log/chat.log cannot be read on root@lb1 (No such file or directory); "
        "check --backend-log."
    )
    header_only = (
        "[TAILING] Tailing last 300 lines for [nope] process (change the value with --lines option)\n"
    )
    assert "pm2 on root@lb1 runs no app named nope (apps: chat, api)" in (
        h.backend_log_problem("pm2:nope", _result(["pm2"], 0, out=header_only), ["chat", "api"]) or ""
    )
    assert "pm2 shows no log lines for nope" in (
        h.backend_log_problem("pm2:nope", _result(["pm2"], 0, out=header_only)) or ""
    )
    no_pm2 = h.backend_log_problem(
        "pm2:chat", _result(["pm2"], 127, error="`pm2` is not installed (or not in PATH) on root@lb1.")
    )
    assert no_pm2 and "`pm2` is not installed" in no_pm2 and no_pm2.endswith("check --backend-log.")
    assert "no entries for unit chat.service" in (
        h.backend_log_problem("journald:chat.service", _result(["journalctl"], 0, out="-- No entries --\n"))
        or ""
    )
    assert h.backend_log_problem("/x.log", _result(["tail"], 0, out="")) == (
        "the backend log /x.log on root@lb1 is empty; check --backend-log."
    )
    assert h.backend_log_problem("/x.log", _result(["tail"], 0, out="a line\n")) is None
    assert (
        h.backend_log_problem("pm2:chat", _result(["pm2"], 0, out=header_only + "0|chat | up\n"), ["chat"])
        is None
    )


def test_pm2_apps_from_the_summary() -> None:
    summary = _result(
        ["pm2", "jlist"],
        0,
        out="chat  status=online  pid=1  restarts=0\napi  status=stopped  pid=0  restarts=3\n",
    )
    assert h.pm2_apps({"pm2 jlist": summary}) == ["chat", "api"]
    assert h.pm2_apps({}) is None


# --- the last lines of a file ----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 5, 400, 3000])
def test_last_lines_is_tail_n(tmp_path: Path, size: int) -> None:
    import subprocess

    path = tmp_path / "log"
    path.write_bytes(b"".join(b"line %d %s\n" % (i, b"x" * (i % 300)) for i in range(size)))
    data = path.read_bytes()
    want = subprocess.run(["tail", "-n", "400", "--", str(path)], capture_output=True, timeout=10).stdout
    got = last_lines(lambda at, n: data[at : at + n], len(data), 400)
    assert got == want
    assert last_lines(lambda at, n: data[at : at + n], len(data), 400, cap=1024).count(b"\n") <= 400


def test_read_tail_over_sftp(session_runner: SshRunner, tmp_path: Path) -> None:
    import subprocess

    path = tmp_path / "access.log"
    path.write_text("".join(f"127.0.0.1 request {i}\n" for i in range(1000)))
    started = session_runner.stats()["commands"]
    result, sudo = h.read_last_lines(session_runner, str(path), 400)
    assert (result.exit_status, sudo, result.argv[0]) == (0, False, "sftp-read")
    want = subprocess.run(["tail", "-n", "400", "--", str(path)], capture_output=True, text=True, timeout=10)
    assert result.stdout == want.stdout
    assert session_runner.stats()["commands"] == started  # no process was started on the host
    missing, _ = h.read_last_lines(session_runner, str(tmp_path / "nope.log"), 10)
    assert missing.exit_status == 1 and "No such file" in missing.stderr


def test_read_tail_falls_back_to_tail_without_sftp(sshd, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from .helpers import connect

    path = tmp_path / "error.log"
    path.write_text("one\ntwo\nthree\n")
    with connect(sshd) as runner:
        runner._sftp_refused = True  # as on a host whose sshd has no sftp subsystem
        result, _ = h.read_last_lines(runner, str(path), 2)
        assert (result.argv[0], result.stdout) == ("tail", "two\nthree\n")


def test_clock_of_an_ssh_host(session_runner: SshRunner) -> None:
    before = time.time()
    _, clock = h.processes_and_clock(session_runner)
    assert clock.utc_offset is not None and abs(clock.skew) < 2, clock
    assert time.time() - before < 15


# --- --backend-log without --ssh ---------------------------------------------------------------------------


def _diagnose(target):  # type: ignore[no-untyped-def]
    import asyncio

    from wsdoctor.diagnose import Diagnosis
    from wsdoctor.remote.session import RemoteSession

    with RemoteSession(target) as session:
        diagnosis = Diagnosis(target, session)
        asyncio.run(diagnosis.run())
    return diagnosis


def test_local_backend_log_is_read_and_a_bad_one_is_a_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wsdoctor.target import Target

    log = tmp_path / "backend.log"
    log.write_text("2026-11-26T01:14:22 WARN authentication failed for sid=abc: jwt ExpiredSignatureError\n")
    read = _diagnose(Target(backend_log=str(log), offline=True))
    assert [e.kind for e in read.facts.logs] == ["backend-auth"] and not read.notes
    auth = read.findings["auth"]  # offline: no CONNECT, but the backend's own words are evidence
    assert auth.status.value == "warn" and "ExpiredSignatureError" in "".join(e.text for e in auth.evidence)

    missing = _diagnose(Target(backend_log=str(tmp_path / "nope.log"), offline=True))
    assert missing.notes == [
        f"the backend log {tmp_path / 'nope.log'} cannot be read on this machine (No such file or directory); "
        "check --backend-log."
    ]
    assert missing.report().notes == missing.notes  # the CLI prints them in every format

    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "pm2").write_text("#!/bin/sh\necho '[TAILING] Tailing last 300 lines for [nope] process'\n")
    (fake / "pm2").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:/usr/bin:/bin")
    unknown = _diagnose(Target(backend_log="pm2:nope", offline=True))
    assert any("pm2 shows no log lines for nope on this machine" in note for note in unknown.notes), (
        unknown.notes
    )
