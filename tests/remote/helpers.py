"""Helpers shared by the remote tests (connect to a test sshd, find processes by a unique marker)."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from wsdoctor.lab.sshd import Sshd
from wsdoctor.remote.ssh import SshRunner


def connect(sshd: Sshd, **options: object) -> SshRunner:
    """Connect to SSHD with its client key and pinned known_hosts unless overridden."""
    kwargs: dict[str, object] = {"identity": str(sshd.client_key), "known_hosts": str(sshd.known_hosts)}
    kwargs.update(options)
    return SshRunner.connect(sshd.destination, **kwargs)  # type: ignore[arg-type]


def pids_matching(marker: str) -> list[int]:
    """Pids whose command line contains MARKER (the test's unique path), never our own."""
    done = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True, timeout=5)
    return [int(p) for p in done.stdout.split() if int(p) != os.getpid()]


def wait_gone(marker: str, timeout: float = 20.0) -> list[int]:
    """Wait (bounded) until no process names MARKER; return what is left."""
    deadline = time.monotonic() + timeout
    left = pids_matching(marker)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = pids_matching(marker)
    return left


def kill_pids(pids: list[int]) -> None:
    """Clean up after a failing test: only the pids it started, by pid."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _at_end(pid: int, path: str) -> bool:
    """Process PID holds PATH open with its offset at the file's end (``tail -n 0`` is then following it)."""
    try:
        size = os.path.getsize(path)
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") != path:
                    continue
                with open(f"/proc/{pid}/fdinfo/{fd}") as info:
                    pos = next((int(line.split()[1]) for line in info if line.startswith("pos:")), -1)
            except OSError:
                continue
            if pos == size:
                return True
    except OSError:
        return False
    return False


def tail_pattern(path: str) -> str:
    """``pgrep -f`` pattern of a ``tail -n N -F -- PATH`` (any backlog N)."""
    return f"^tail -n [0-9]+ -F -- {path}"


def wait_following(path: str, timeout: float = 30.0) -> bool:
    """Wait (bounded) until ``tail -n N -F -- PATH`` runs AND has PATH open at its end: lines appended from
    then on are the ones it shows (waiting on that state, never on a delay)."""
    pattern = tail_pattern(path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(_at_end(pid, path) for pid in pids_matching(pattern)):
            return True
        time.sleep(0.02)
    return False
