"""The apply lock on the proxy host: two applies (from two engineers, two terminals) never interleave.

The lock is a kernel lock (``flock``) held by a small process *on the host* for as long as the apply runs:
it takes the lock, says ``locked``, and waits while its parent lives. When the apply ends it stops that
process; when the apply dies (Ctrl+C, SIGKILL, a dropped SSH connection) its session ends, the holder's
parent goes away or it gets SIGHUP, and the kernel releases the lock by itself. So a crashed apply never
leaves a stale lock behind, and ``--rollback`` after a crash is never refused by it. Where ``flock`` is
missing, ``mkdir`` of a directory stands in (removed when the holder ends).
"""

from __future__ import annotations

import os
import socket
import time

from wsdoctor.apply.hostfs import Host
from wsdoctor.remote.runner import LineStream

LOCK_NAME = "apply.lock"
WAIT = 2  # seconds the holder waits for a lock another apply holds before refusing
ANSWER_TIMEOUT = 15.0
BUSY = 75  # the holder's exit status when another apply holds the lock (EX_TEMPFAIL)

_HOLDER = r"""
lock=$1
exec 9>>"$lock" || exit 3
if command -v flock >/dev/null 2>&1; then
  flock -w "$3" 9 || { printf 'busy %s\n' "$(head -c 300 -- "$lock")"; exit 75; }  # 75: BUSY
else
  mkdir -- "$lock.d" 2>/dev/null || { printf 'busy %s\n' "$(head -c 300 -- "$lock")"; exit 75; }
  trap 'rmdir -- "$lock.d" 2>/dev/null' EXIT
  trap 'exit 1' HUP TERM INT
fi
printf '%s\n' "$2" > "$lock"
echo locked
while kill -0 "$PPID" 2>/dev/null; do sleep 1 9>&-; done
"""


class LockBusy(RuntimeError):
    """Another apply holds the lock; the message is the sentence to show."""


class HostLock:
    """``with HostLock(host, directory, what):`` — held on enter, released on exit."""

    def __init__(self, host: Host, directory: str, what: str) -> None:
        self.host = host
        self.path = directory.rstrip("/") + "/" + LOCK_NAME
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.info = f"{what} from {socket.gethostname()} (pid {os.getpid()}) since {stamp}"
        self._stream: LineStream | None = None

    def acquire(self) -> None:
        """Take the lock or raise LockBusy (another apply) / RuntimeError (the holder could not start)."""
        if self.host._sudo is None:
            self.host.identity()  # decides whether commands go through sudo
        stream = self.host.runner.stream_lines(
            ["sh", "-c", _HOLDER, "wsdoctor-lock", self.path, self.info, str(WAIT)],
            sudo=bool(self.host._sudo),
        )
        deadline = time.monotonic() + ANSWER_TIMEOUT
        while time.monotonic() < deadline:
            batch = stream.get(timeout=min(0.5, max(0.0, deadline - time.monotonic())))
            if batch is None:
                stream.close()
                if stream.exit_status == BUSY:  # its `busy` line can be lost with a PTY that ends at once
                    raise LockBusy(self._busy(self._holder_info()))
                raise RuntimeError(
                    f"the lock holder on {self.host.name} stopped at once ({stream.error or 'no answer'}); "
                    f"check that {self.path} can be written."
                )
            for line in batch:
                line = line.strip()
                if line == "locked":
                    self._stream = stream
                    return
                if line.startswith("busy"):
                    stream.close()
                    raise LockBusy(self._busy(line[4:].strip()))
        stream.close()
        raise RuntimeError(f"the lock on {self.host.name} did not answer within {ANSWER_TIMEOUT:g} s; retry.")

    def _busy(self, holder: str) -> str:
        return (
            f"another apply is changing nginx on {self.host.name} ({holder or 'another wsdoctor apply'}); "
            "wait for it to finish, then retry."
        )

    def _holder_info(self) -> str:
        """Who holds the lock, as its holder wrote it in the lock file (empty when it cannot be read)."""
        result = self.host.runner.run(
            ["head", "-c", "300", "--", self.path], timeout=10.0, sudo=bool(self.host._sudo)
        )
        return result.stdout.strip() if result.exit_status == 0 else ""

    def release(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()

    @property
    def held(self) -> bool:
        return self._stream is not None

    def __enter__(self) -> HostLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
