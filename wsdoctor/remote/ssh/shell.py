"""``RemoteShell``: many commands through ONE remote shell on ONE channel, requests pipelined over its stdin.

Why: over a real link every exec costs a channel open, an exec request and, on the host, a login shell
whose start-up files (pyenv, nvm, conda…) often take longer than the command itself.  A run's discovery is
half a dozen commands (``ps``, ``ss``, ``nginx -T``/``-V``/``-t``, ``pm2``, ``systemctl``): through one
shell they cost one channel, one login shell, and one round trip per batch of requests sent together.

The worker is a fixed POSIX ``sh`` script (one line, no ``!``: any login shell can pass it to ``sh``).  It
reads a random marker, then requests: a header line ``MARKER ID ARGC`` and ARGC lines, one argument each
(an argument holding a newline, a backslash or another control byte is sent octal-escaped and decoded by
``printf %b``: arguments are data, never shell text).  Each command runs with stdin from /dev/null, framed
on both streams by ``MARKER begin ID`` and ``MARKER end ID [STATUS]`` lines, and prints its pid first, so a
command past its deadline is killed by pid.  What the login shell prints before the worker starts (its
start-up files' noise) comes before the marker and is dropped: it never reaches a result.

Any trouble with the worker (it could not start, a command overran its deadline, the channel dropped) makes
every waiting request, and every later one, run on its own channel as before (``SshRunner.run``).
"""

from __future__ import annotations

import contextlib
import itertools
import re
import secrets
import select
import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from wsdoctor.facts import CommandResult
from wsdoctor.remote.runner import (
    OUTPUT_CAP,
    READ_CHUNK,
    Capped,
    LineStream,
    Output,
    Pending,
    Runner,
    finish,
    sudo_argv,
)

if TYPE_CHECKING:
    import paramiko

    from wsdoctor.remote.ssh.runner import SshRunner

# One line, POSIX sh, no "!" (csh history) and no newline (some login shells cut there).
_WORKER = (
    "set -f; IFS= read -r n || exit 0; "
    'printf \'%s ready %s\\n\' "$n" "$$"; printf \'%s ready %s\\n\' "$n" "$$" >&2; '
    "while IFS= read -r h; do "
    'set -- $h; [ "$1" = "$n" ] || continue; id=$2; c=$3; set --; '
    'while [ "$c" -gt 0 ] && IFS= read -r a; do '
    "case $a in *\\\\*) a=$(printf '%b.' \"$a\"); a=${a%.};; esac; "
    'set -- "$@" "$a"; c=$((c-1)); done; '
    'printf \'%s begin %s\\n\' "$n" "$id"; printf \'%s begin %s\\n\' "$n" "$id" >&2; '
    'sh -c \'printf "%s pid %s\\n" "$1" "$$" >&2; shift; exec "$@"\' wsdoctor "$n" "$@" </dev/null; st=$?; '
    'printf \'\\n%s end %s %s\\n\' "$n" "$id" "$st"; printf \'\\n%s end %s\\n\' "$n" "$id" >&2; '
    "done"
)
_SAFE = re.compile(r"[ -\[\]-~]*")  # printable ASCII without the backslash: sent as is


def _phase(argv: list[str]) -> str:
    return "nginx -T" if argv[1:2] == ["-T"] else "discovery"


def encode_arg(arg: str) -> str | None:
    """ARG as one line the worker decodes back byte for byte (None: it holds a NUL, which no argv can)."""
    if "\x00" in arg:
        return None
    if _SAFE.fullmatch(arg):
        return arg
    out = []
    for ch in arg:
        if _SAFE.fullmatch(ch):
            out.append(ch)
        else:
            out.extend(f"\\0{b:03o}" for b in ch.encode("utf-8", "surrogateescape"))
    return "".join(out)


@dataclass
class _Request:
    id: int
    argv: list[str]
    out: Capped = field(default_factory=lambda: Capped(OUTPUT_CAP))
    err: Capped = field(default_factory=lambda: Capped(OUTPUT_CAP))
    status: int | None = None
    pid: int | None = None
    out_done: bool = False
    err_done: bool = False
    fallback: bool = False  # the worker failed: run it on its own channel
    done: threading.Event = field(default_factory=threading.Event)


class _Stream:
    """One of the worker's two streams, cut into the sections of its requests."""

    def __init__(self, marker: bytes, with_status: bool) -> None:
        self.marker = marker
        self.with_status = with_status
        self.buf = bytearray()
        self.ready = False
        self.current: _Request | None = None
        self.pid_next = False  # stderr: the section's first line is the command's pid

    def feed(
        self, data: bytes, requests: dict[int, _Request], on_ready: Callable[[int], None]
    ) -> list[_Request]:
        """Add DATA; return the requests whose section on this stream ended."""
        self.buf += data
        ended: list[_Request] = []
        m = self.marker
        while True:
            if not self.ready:
                at = self.buf.find(m + b" ready ")
                nl = self.buf.find(b"\n", at) if at >= 0 else -1
                if nl < 0:
                    if at < 0 and len(self.buf) > 65536:  # start-up noise: keep only what may hold the marker
                        del self.buf[: -len(m) - 32]
                    return ended
                with contextlib.suppress(ValueError):
                    on_ready(int(self.buf[at + len(m) + 7 : nl]))
                del self.buf[: nl + 1]  # the login shell's noise goes with it
                self.ready = True
                continue
            if self.current is None:
                at = self.buf.find(m + b" begin ")
                nl = self.buf.find(b"\n", at) if at >= 0 else -1
                if nl < 0:
                    return ended
                try:
                    rid = int(self.buf[at + len(m) + 7 : nl])
                except ValueError:
                    del self.buf[: nl + 1]
                    continue
                del self.buf[: nl + 1]
                # (a request abandoned at its deadline is still read through, and dropped)
                self.current = requests.get(rid) or _Request(rid, [])
                self.pid_next = not self.with_status
                continue
            req = self.current
            if self.pid_next:
                nl = self.buf.find(b"\n")
                if nl < 0:
                    return ended
                line = bytes(self.buf[:nl])
                if line.startswith(m + b" pid "):
                    with contextlib.suppress(ValueError):
                        req.pid = int(line[len(m) + 5 :])
                    del self.buf[: nl + 1]
                self.pid_next = False
                continue
            # "MARKER end ID STATUS" on stdout, "MARKER end ID" on stderr: exactly this request's line.
            end = b"\n" + m + b" end " + str(req.id).encode() + (b" " if self.with_status else b"\n")
            at = self.buf.find(end)
            if at < 0:
                keep = len(end) + 16
                if len(self.buf) > keep:
                    sink = req.out if self.with_status else req.err
                    sink.add(bytes(self.buf[: len(self.buf) - keep]))
                    del self.buf[: len(self.buf) - keep]
                return ended
            nl = self.buf.find(b"\n", at + len(end)) if self.with_status else at + len(end) - 1
            if nl < 0:
                return ended
            sink = req.out if self.with_status else req.err
            sink.add(bytes(self.buf[:at]))
            if self.with_status:
                with contextlib.suppress(ValueError):
                    req.status = int(self.buf[at + len(end) : nl])
                req.out_done = True
            else:
                req.err_done = True
            del self.buf[: nl + 1]
            self.current = None
            ended.append(req)


class RemoteShell(Runner):
    """A Runner whose commands run one after another in ONE remote shell (see the module docstring).

    ``run`` blocks until its own result; several threads may call it at once: their requests are pipelined
    and run in the order they were sent.  Reads, tails and forwards go to the SSH runner itself.
    """

    def __init__(self, ssh: SshRunner) -> None:
        self.ssh = ssh
        self.host = ssh.host
        self.user = ssh.user
        self.is_root = ssh.is_root
        self._marker = f"wsdoctor-{secrets.token_hex(8)}"
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._requests: dict[int, _Request] = {}
        self._backlog: list[bytes] = []  # requests made before the channel was up
        self._chan: paramiko.Channel | None = None
        self._broken = False
        self._closed = False
        self._worker_pid: int | None = None
        self._started = threading.Event()
        self._reader: threading.Thread | None = None
        threading.Thread(target=self._start, name="wsdoctor-ssh-shell", daemon=True).start()

    # -- the worker ------------------------------------------------------------------------------------

    def _start(self) -> None:
        started = time.monotonic()
        try:
            chan = self.ssh.open_exec(shlex.join(["sh", "-c", _WORKER]), self.ssh.timeout)
        except Exception:  # noqa: BLE001 - no worker: every request runs on its own channel
            chan = None
        with self._lock:
            if chan is None or self._closed:
                self._broken = True
            else:
                self._chan = chan
                backlog, self._backlog = self._backlog, []
        self.ssh.note("discovery", started, time.monotonic())
        if chan is None or self._broken:
            if chan is not None:
                with contextlib.suppress(Exception):
                    chan.close()
            self._fail()
            self._started.set()
            return
        try:
            with self._send_lock:
                chan.sendall((self._marker + "\n").encode() + b"".join(backlog))
        except Exception:  # noqa: BLE001
            self._fail()
        self._started.set()
        self._reader = threading.Thread(
            target=self._read, args=(chan,), name="wsdoctor-ssh-shell-read", daemon=True
        )
        self._reader.start()

    def _read(self, chan: paramiko.Channel) -> None:
        marker = self._marker.encode()
        out, err = _Stream(marker, True), _Stream(marker, False)

        def ready(pid: int) -> None:
            self._worker_pid = pid

        try:
            while True:
                progressed = False
                if chan.recv_ready():
                    data = chan.recv(READ_CHUNK)
                    progressed = True
                    self._finish(out.feed(data, self._requests, ready))
                if chan.recv_stderr_ready():
                    data = chan.recv_stderr(READ_CHUNK)
                    progressed = True
                    self._finish(err.feed(data, self._requests, ready))
                if progressed:
                    continue
                if chan.eof_received or chan.closed or not self.ssh.connected:
                    if not (chan.recv_ready() or chan.recv_stderr_ready()):
                        break
                    continue
                select.select([chan], [], [], 0.5)
        except Exception:  # noqa: BLE001 - a dropped channel: the waiting requests fall back
            pass
        self._fail()

    def _finish(self, ended: list[_Request]) -> None:
        for req in ended:
            if req.out_done and req.err_done:
                with self._lock:
                    self._requests.pop(req.id, None)
                req.done.set()

    def _fail(self) -> None:
        """The worker is gone or unusable: every waiting request runs on its own channel."""
        with self._lock:
            self._broken = True
            waiting, self._requests = list(self._requests.values()), {}
        for req in waiting:
            req.fallback = True
            req.done.set()

    def _send(self, req: _Request) -> bool:
        lines = [f"{self._marker} {req.id} {len(req.argv)}"]
        for arg in req.argv:
            encoded = encode_arg(arg)
            if encoded is None:
                return False
            lines.append(encoded)
        payload = ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")
        with self._lock:
            if self._broken or self._closed:
                return False
            self._requests[req.id] = req
            chan = self._chan
            if chan is None:
                self._backlog.append(payload)
                return True
        try:
            with self._send_lock:
                chan.sendall(payload)
        except Exception:  # noqa: BLE001
            self._fail()
        return True

    # -- Runner API ------------------------------------------------------------------------------------

    def run(
        self, argv: list[str], timeout: float, sudo: bool = False, stdin: bytes | None = None
    ) -> CommandResult:
        if stdin is not None:
            return self.ssh.run(argv, timeout, sudo=sudo, stdin=stdin)
        return self.submit(argv, timeout, sudo).result()

    def submit(self, argv: list[str], timeout: float, sudo: bool = False) -> Pending:
        """Send ARGV to the worker now (it runs after what was sent before) and return at once."""
        raw = self.submit_raw(sudo_argv(argv) if sudo else list(argv), timeout, phase=_phase(argv))
        return Pending(lambda: finish(argv, self.host, raw(), sudo=sudo, user=self.user))

    def submit_raw(self, argv: list[str], timeout: float, phase: str = "discovery") -> Callable[[], Output]:
        """Send ARGV now; the returned function waits for its raw Output (bytes, status, error) — for a
        caller that builds the CommandResult itself (a command whose first line it reads)."""
        req = _Request(next(self._ids), list(argv))
        started = time.monotonic()
        if not self._send(req):
            return lambda: self.ssh.exec_output(argv, timeout)
        self.ssh.count(commands=1)
        box: list[Output] = []
        lock = threading.Lock()

        def wait() -> Output:
            with lock:
                if not box:
                    box.append(self._wait(req, argv, timeout, started, phase))
                return box[0]

        return wait

    def _wait(self, req: _Request, argv: list[str], timeout: float, started: float, phase: str) -> Output:
        finished = req.done.wait(max(0.0, started + timeout - time.monotonic()))
        self.ssh.note(phase, started, time.monotonic())
        if finished and req.fallback:
            return self.ssh.exec_output(argv, max(1.0, timeout - (time.monotonic() - started)))
        if not finished:
            # Past its deadline: stop it, and let the requests queued behind it run on their own channels.
            with self._lock:
                self._requests.pop(req.id, None)
            if req.pid is not None:
                self.ssh.kill_remote(req.pid)
            self._stop_worker()
            name = argv[3] if argv[:3] == ["sudo", "-n", "--"] and len(argv) > 3 else argv[0]
            why = f"`{name}` did not finish within {timeout:g} s on {self.host} and was stopped."
            return Output(None, b"", b"", why)
        truncated = bool(req.out.dropped or req.err.dropped)
        return Output(req.status, req.out.value(), req.err.value(), truncated=truncated)

    def _stop_worker(self) -> None:
        with self._lock:
            chan, self._chan = self._chan, None
            self._broken = True
        if chan is not None:
            with contextlib.suppress(Exception):
                chan.close()
        if self._worker_pid is not None:
            self.ssh.kill_remote(self._worker_pid)
        self._fail()

    def read_file(self, path: str, max_bytes: int = OUTPUT_CAP, timeout: float = 10.0) -> bytes:
        return self.ssh.read_file(path, max_bytes, timeout)

    def read_tail(self, path: str, lines: int, timeout: float = 10.0) -> CommandResult | None:
        return self.ssh.read_tail(path, lines, timeout)

    def stream_lines(self, argv: list[str], sudo: bool = False) -> LineStream:
        return self.ssh.stream_lines(argv, sudo=sudo)

    def forward(self, host: str, port: int, timeout: float = 5.0) -> tuple[str, int]:
        return self.ssh.forward(host, port, timeout)

    def stats(self) -> dict[str, int]:
        return self.ssh.stats()

    def close(self) -> None:
        """End the worker (EOF on its stdin ends its loop, then the channel is closed) and the run's SFTP
        channel with it: both were opened for the run, and channels closed as soon as the run is done with
        them are acknowledged by the time the connection itself is closed."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            chan = self._chan
        if chan is not None:
            with contextlib.suppress(Exception):
                chan.shutdown_write()
            with contextlib.suppress(Exception):
                chan.close()
        self._fail()
        self.ssh.close_sftp()
