"""Live tails: lines arrive classified, and cancelling leaves no ``tail`` on the host (SSH and local)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from wsdoctor.lab.sshd import Sshd
from wsdoctor.remote.logs import AccessFormat, LogFollower, LogSource
from wsdoctor.remote.runner import LocalRunner, Runner
from wsdoctor.remote.ssh import SshRunner

from .helpers import connect, kill_pids, pids_matching, wait_following, wait_gone

REFUSED = (
    "2026/05/01 10:00:00 [error] 7#7: *3 connect() failed (111: Connection refused) while connecting to upstream, "
    'client: 127.0.0.1, server: _, request: "GET /chat/socket.io/?EIO=4&transport=polling HTTP/1.1", '
    'upstream: "http://127.0.0.1:3351/chat/socket.io/?EIO=4&transport=polling", host: "lb"'
)


@pytest.fixture(params=["ssh", "local"])
def runner(request: pytest.FixtureRequest, sshd: Sshd) -> Iterator[Runner]:
    r: Runner = connect(sshd) if request.param == "ssh" else LocalRunner()
    try:
        yield r
    finally:
        r.close()


def _wait_for_lines(stream, count: int, timeout: float = 20.0) -> list[str]:  # type: ignore[no-untyped-def]
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while len(lines) < count and time.monotonic() < deadline:
        got = stream.get(0.1)
        if got is None:
            break
        lines += got
    return lines


def _wait_running(marker: str) -> None:
    """Until ``tail`` itself runs with the file open at its end (over SSH the login shell and the wrapper
    name the path first, and tail opens the file a moment after it starts)."""
    assert wait_following(marker), f"tail -F of {marker} did not start following it"


def test_tail_streams_sanitized_lines_and_close_leaves_no_tail(runner: Runner, tmp_path: Path) -> None:
    log = tmp_path / f"wsdoctor-tail-marker-{type(runner).__name__}.log"
    log.write_text("old line\n")
    marker = str(log)
    try:
        stream = runner.tail(marker)
        _wait_running(marker)
        assert pids_matching(marker), "tail did not start"
        with log.open("a") as handle:
            handle.write("first \x1b[31mred\x1b[0m\x07 line\nsecond\n")
        assert _wait_for_lines(stream, 2) == ["first red line", "second"]
        stream.close()
        assert wait_gone(marker) == [], "a tail survived the cancel"
        assert stream.get(0.1) is None  # ended
        stream.close()  # idempotent
    finally:
        kill_pids(pids_matching(marker))


def test_follower_classifies_live_lines_and_cancel_stops_tails(runner: Runner, tmp_path: Path) -> None:
    error_log = tmp_path / f"err-marker-{type(runner).__name__}.log"
    access_log = tmp_path / f"acc-marker-{type(runner).__name__}.log"
    error_log.write_text("")
    access_log.write_text("")
    sources = [
        LogSource("error", str(error_log)),
        LogSource("access", str(access_log), format=AccessFormat.build()),
    ]

    async def scenario() -> list:
        follower = LogFollower(runner, sources)
        got: list = []

        async def consume() -> None:
            async for batch in follower.batches(interval=0.05):
                got.extend(batch)

        task = asyncio.create_task(consume())
        for marker in (str(error_log), str(access_log)):
            await asyncio.to_thread(_wait_running, marker)
        with error_log.open("a") as handle:
            handle.write(REFUSED + "\n2026/05/01 10:00:01 [notice] 7#7: signal process started\n")
        with access_log.open("a") as handle:
            handle.write(
                '127.0.0.1 - - [01/May/2026:10:00:02 +0000] "GET /chat/socket.io/?EIO=4&transport=polling&sid=x '
                'HTTP/1.1" 400 33 "-" "curl"\n'
            )
        deadline = time.monotonic() + 20
        while len(got) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return got

    try:
        events = asyncio.run(scenario())
        assert sorted((e.source, e.kind, e.check) for e in events) == [
            ("access", "400-polling-sid", "sticky"),
            ("error", "connect-refused", "upstream"),
        ]
        for marker in (str(error_log), str(access_log)):
            assert wait_gone(marker) == [], f"a tail of {marker} survived the cancel"
    finally:
        kill_pids(pids_matching(str(error_log)) + pids_matching(str(access_log)))


def test_ssh_tail_of_a_missing_file_reports_and_keeps_following(sshd: Sshd, tmp_path: Path) -> None:
    log = tmp_path / "appears-later.log"
    with connect(sshd) as ssh:
        assert isinstance(ssh, SshRunner)
        follower = LogFollower(ssh, [LogSource("error", str(log))])
        try:
            deadline = time.monotonic() + 20  # (the file does not exist yet: tail says so, then waits)
            while not follower.notes and time.monotonic() < deadline:
                follower.poll(0.1)
            assert any("cannot open" in note for note in follower.notes)
            log.write_text(REFUSED + "\n")
            events: list = []
            deadline = time.monotonic() + 20  # tail -F retries once a second
            while not events and time.monotonic() < deadline:
                events += follower.poll(0.2) or []
            assert [e.kind for e in events] == ["connect-refused"]
        finally:
            follower.close()
        assert wait_gone(str(log)) == []


def test_close_stops_a_silent_streaming_process(runner: Runner, tmp_path: Path) -> None:
    """A follower that ignores SIGHUP (so a closed PTY does not end it) and then never writes (so it never
    notices a closed pipe) is still stopped by close(): the runner kills it by pid."""
    marker = str(tmp_path / f"silent-marker-{type(runner).__name__}")
    program = (
        "import signal, sys, time; signal.signal(signal.SIGHUP, signal.SIG_IGN); print('ready', flush=True); "
        "[time.sleep(0.2) for _ in iter(int, 1)]"
    )
    try:
        stream = runner.stream_lines(["python3", "-c", program, marker])
        assert _wait_for_lines(stream, 1) == ["ready"], "the process did not start"
        stream.close()
        assert wait_gone(marker) == [], "the streaming process survived the cancel"
    finally:
        kill_pids(pids_matching(marker))
