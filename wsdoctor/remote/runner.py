"""One Runner interface for the proxy host: run a command, read a file, stream lines, reach a port.

Why one interface: every gatherer (``nginx -T``, ``ss -ltnp``, log tails, backend probes) is written once
and works the same on this machine (:class:`LocalRunner`) and over SSH (``wsdoctor.remote.ssh.SshRunner``).
Commands are argv lists, never shell strings: over SSH each argument is ``shlex.quote``-d, so paths and
unit names taken from configs or options stay data.  Every call is bounded by a timeout; stdout and
stderr are read concurrently (no deadlock on megabytes of output) and capped; a command that cannot run
becomes a :class:`CommandResult` with a one-sentence ``error``, never an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import queue
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from wsdoctor.facts import CommandResult
from wsdoctor.remote.errors import RemoteError
from wsdoctor.remote.text import decode, sanitize

OUTPUT_CAP = 16 * 1024 * 1024  # bytes kept per stream; the rest is read and dropped
READ_CHUNK = 65536
NOT_FOUND = 127  # exit status of "command not found" (shell convention), also used locally

_SUDO_PASSWORD = ("a password is required", "a terminal is required", "no tty present", "askpass")


def sudo_argv(argv: list[str]) -> list[str]:
    """``sudo -n -- ARGV``: never prompts; fails at once when a password would be needed."""
    return ["sudo", "-n", "--", *argv]


@dataclass
class Output:
    """What one command produced, before decoding (shared by the local and SSH implementations)."""

    exit_status: int | None
    stdout: bytes
    stderr: bytes
    error: str | None = None  # could not run / timed out / connection dropped
    truncated: bool = False


class Capped:
    """A byte buffer that keeps the first ``cap`` bytes and counts the rest (so readers never block)."""

    def __init__(self, cap: int = OUTPUT_CAP) -> None:
        self.cap = cap
        self.parts: list[bytes] = []
        self.size = 0
        self.dropped = 0

    def add(self, data: bytes) -> None:
        room = self.cap - self.size
        if room <= 0:
            self.dropped += len(data)
            return
        if len(data) > room:
            self.dropped += len(data) - room
            data = data[:room]
        self.parts.append(data)
        self.size += len(data)

    def value(self) -> bytes:
        return b"".join(self.parts)


def finish(argv: list[str], host: str, out: Output, *, sudo: bool, user: str | None) -> CommandResult:
    """Decode and sanitize, and turn the known failure shapes into one clear sentence."""
    stdout = decode(out.stdout)
    stderr = decode(out.stderr)
    shown = CommandResult(argv=argv, host=host, exit_status=None).display
    where = "this machine" if host == "local" else host
    error = out.error
    if out.truncated:
        stderr += f"\n[wsdoctor: output truncated at {OUTPUT_CAP // (1024 * 1024)} MiB per stream]"
    if error is None and sudo and out.exit_status not in (0, None):
        low = stderr.lower()
        if any(marker in low for marker in _SUDO_PASSWORD):
            who = user or "this user"
            error = (
                f"`{shown}` needs root and sudo asks for a password: allow it without one "
                f"(sudoers: `{who} ALL=(root) NOPASSWD: {argv[0]}`) or connect as root."
            )
        elif out.exit_status == NOT_FOUND and "sudo" in low and "not found" in low:
            error = (
                f"sudo is not installed on {where}, so `{shown}` cannot run as root; connect as root instead."
            )
    if error is None and out.exit_status == NOT_FOUND and not sudo and "not found" in stderr.lower():
        error = f"`{argv[0]}` is not installed (or not in PATH) on {where}."
    return CommandResult(
        argv=list(argv), host=host, exit_status=out.exit_status, stdout=stdout, stderr=stderr, error=error
    )


def not_found(result: CommandResult) -> bool:
    """True when the program itself is missing: optional tools (pm2, systemctl) are then skipped quietly."""
    return result.exit_status == NOT_FOUND and result.error is not None and "not installed" in result.error


async def poll_batches(
    get: Callable[[float], list[Any] | None], close: Callable[[], None], interval: float
) -> AsyncIterator[list[Any]]:
    """Non-empty batches from a blocking GET(timeout) (None: the source ended), read in a thread so the event
    loop stays free; CLOSE runs however the consumer stops (end, break, cancel)."""
    try:
        while True:
            batch = await asyncio.to_thread(get, interval)
            if batch is None:
                return
            if batch:
                yield batch
    finally:
        await asyncio.to_thread(close)


class LineStream:
    """Lines of a long-running command (a live ``tail -F``), as they come; cancel with :meth:`close`.

    A reader thread fills a queue; consumers take batches synchronously (:meth:`get`, iteration) or
    asynchronously (:meth:`batches`).  Every line is sanitized.  ``close()`` is idempotent and returns only
    after the producer is stopped (process killed / channel closed), so nothing keeps running behind it.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.error: str | None = None
        # The command's exit status once it ended by itself (None while running, or when it was stopped or
        # the status never came): a status can say what a line lost with the process's end cannot.
        self.exit_status: int | None = None
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._ended = threading.Event()
        self._closed = threading.Event()
        self._stopper: Callable[[], None] | None = None
        self._partial = b""
        self._lock = threading.Lock()

    # -- producer side -----------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Split raw bytes into lines (``\\r\\n`` from a PTY too); keep an unfinished last line."""
        data = self._partial + data
        *lines, self._partial = data.split(b"\n")
        for raw in lines:
            self._queue.put(sanitize(raw.decode("utf-8", "replace")))

    def end(self, error: str | None = None, exit_status: int | None = None) -> None:
        """The producer stopped (EOF, error, or close); EXIT_STATUS when the command ended by itself."""
        with self._lock:
            if self._ended.is_set():
                return
            self.exit_status = exit_status
            if self._partial:
                self._queue.put(sanitize(self._partial.decode("utf-8", "replace")))
                self._partial = b""
            if error and not self._closed.is_set():
                self.error = error
            self._ended.set()
            self._queue.put(None)

    def set_stopper(self, stopper: Callable[[], None]) -> None:
        self._stopper = stopper

    # -- consumer side -----------------------------------------------------

    @property
    def ended(self) -> bool:
        return self._ended.is_set() and self._queue.empty()

    def get(self, timeout: float, max_lines: int = 5000) -> list[str] | None:
        """Up to ``max_lines`` lines, waiting at most ``timeout`` for the first; None once ended."""
        try:
            first = self._queue.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return []
        if first is None:
            self._queue.put(None)  # keep the end marker for later calls
            return None
        lines = [first]
        while len(lines) < max_lines:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._queue.put(None)
                break
            lines.append(item)
        return lines

    def __iter__(self) -> Iterator[str]:
        while True:
            batch = self.get(timeout=0.5)
            if batch is None:
                return
            yield from batch

    def batches(self, interval: float = 0.1) -> AsyncIterator[list[str]]:
        """Async batches of lines; cancelling the consuming task closes the stream."""
        return poll_batches(self.get, self.close, interval)

    def close(self) -> None:
        """Stop the producer and wait (bounded) for it; safe to call twice or from any thread."""
        if self._closed.is_set():
            return
        self._closed.set()
        if self._stopper is not None:
            with contextlib.suppress(Exception):
                self._stopper()
        self.end()

    def __enter__(self) -> LineStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Pending:
    """A command already under way; ``result()`` waits for its CommandResult (bounded by its own timeout)
    and returns the same one to every caller."""

    def __init__(self, wait: Callable[[], CommandResult]) -> None:
        self._wait = wait
        self._lock = threading.Lock()
        self._value: CommandResult | None = None

    def result(self) -> CommandResult:
        with self._lock:
            if self._value is None:
                self._value = self._wait()
            return self._value


class Runner:
    """The interface both runners implement (see the module docstring)."""

    host: str = "local"  # "local" or "user@host[:port]": where commands ran, for evidence
    user: str | None = None
    is_root: bool = False

    def run(
        self, argv: list[str], timeout: float, sudo: bool = False, stdin: bytes | None = None
    ) -> CommandResult:
        raise NotImplementedError

    def submit(self, argv: list[str], timeout: float, sudo: bool = False) -> Pending:
        """Start ARGV now and return at once: commands submitted one after the other start in that order
        (here each in its own thread; a remote shell runs them in order on one channel)."""
        done: Future[CommandResult] = Future()

        def work() -> None:
            try:
                done.set_result(self.run(argv, timeout, sudo=sudo))
            except BaseException as exc:  # noqa: BLE001 - handed to whoever waits for the result
                done.set_exception(exc)

        threading.Thread(target=work, name=f"wsdoctor-run-{argv[0]}", daemon=True).start()
        return Pending(done.result)

    def shell(self) -> Runner:
        """A runner for a batch of commands sent together (over SSH: one remote shell on one channel,
        see ``RemoteShell``); here the runner itself."""
        return self

    def read_file(self, path: str, max_bytes: int = OUTPUT_CAP, timeout: float = 10.0) -> bytes:
        raise NotImplementedError

    def stream_lines(self, argv: list[str], sudo: bool = False) -> LineStream:
        raise NotImplementedError

    def read_tail(self, path: str, lines: int, timeout: float = 10.0) -> CommandResult | None:
        """The last LINES lines of PATH read without starting a process, as a CommandResult (a missing
        file is a failed result); None when this runner has no such way or it was refused (permission, no
        SFTP): the caller runs ``tail`` then.  Here a local ``tail`` costs nothing worth saving."""
        return None

    def tail(self, path: str, sudo: bool = False, backlog: int = 0) -> LineStream:
        """Follow a file by name (``tail -n BACKLOG -F -- PATH``): its last BACKLOG lines, then every new one,
        surviving rotation."""
        return self.stream_lines(["tail", "-n", str(max(0, int(backlog))), "-F", "--", path], sudo=sudo)

    def forward(self, host: str, port: int, timeout: float = 5.0) -> tuple[str, int]:
        """An address on this machine that reaches ``host:port`` as seen from the proxy host."""
        raise NotImplementedError

    def stats(self) -> dict[str, int]:
        """Counters for benchmarks: connections, round trips, channels, commands."""
        return {}

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalRunner(Runner):
    """Runs on this machine: the same behaviour as SSH without a network hop (``--ssh`` not given)."""

    host = "local"

    def __init__(self) -> None:
        self.user = _local_user()
        self.is_root = os.geteuid() == 0
        self._streams: list[LineStream] = []
        self._commands = 0
        self._lock = threading.Lock()

    def run(
        self, argv: list[str], timeout: float, sudo: bool = False, stdin: bytes | None = None
    ) -> CommandResult:
        with self._lock:
            self._commands += 1
        full = sudo_argv(argv) if sudo else list(argv)
        return finish(argv, self.host, _exec_local(full, timeout, stdin), sudo=sudo, user=self.user)

    def read_file(self, path: str, max_bytes: int = OUTPUT_CAP, timeout: float = 10.0) -> bytes:
        try:
            with open(path, "rb") as handle:
                return handle.read(max_bytes)
        except FileNotFoundError as exc:
            raise RemoteError(f"{path} does not exist here; check the path.") from exc
        except PermissionError as exc:
            raise RemoteError(
                f"{path} is not readable by {self.user}; run as a user who can read it."
            ) from exc
        except IsADirectoryError as exc:
            raise RemoteError(f"{path} is a directory; give a file.") from exc
        except OSError as exc:
            raise RemoteError(f"{path} could not be read ({exc.strerror}).") from exc

    def stream_lines(self, argv: list[str], sudo: bool = False) -> LineStream:
        full = sudo_argv(argv) if sudo else list(argv)
        stream = LineStream(" ".join(argv))
        try:
            proc = subprocess.Popen(
                full,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            stream.end(f"`{full[0]}` could not be started here ({exc.strerror or exc}).")
            return stream

        def pump() -> None:
            assert proc.stdout is not None
            fd = proc.stdout.fileno()
            while True:
                try:
                    data = os.read(fd, READ_CHUNK)
                except OSError:
                    break
                if not data:
                    break
                stream.feed(data)
            status = proc.wait()
            stream.end(
                None
                if status in (0, -signal.SIGTERM, -signal.SIGKILL)
                else f"`{argv[0]}` exited with {status}.",
                exit_status=status if status >= 0 else None,
            )

        def stop() -> None:
            _kill_group(proc)
            thread.join(timeout=5)
            if proc.stdout is not None:
                proc.stdout.close()

        thread = threading.Thread(target=pump, name=f"wsdoctor-tail-{proc.pid}", daemon=True)
        stream.set_stopper(stop)
        thread.start()
        with self._lock:
            self._streams.append(stream)
        return stream

    def forward(self, host: str, port: int, timeout: float = 5.0) -> tuple[str, int]:
        return host, port  # this machine is the proxy host: nothing to forward

    def stats(self) -> dict[str, int]:
        return {"connections": 0, "round_trips": 0, "channels": 0, "commands": self._commands}

    def close(self) -> None:
        with self._lock:
            streams, self._streams = self._streams, []
        for stream in streams:
            stream.close()


def last_lines(read_at: Callable[[int, int], bytes], size: int, lines: int, cap: int = 4 << 20) -> bytes:
    """The last LINES lines of a file of SIZE bytes (each ending in a newline), reading backwards in
    growing windows through ``read_at(offset, length)``, at most CAP bytes: what ``tail -n LINES`` prints."""
    window = 256 * 1024
    while True:
        start = max(0, size - min(window, cap))
        data = read_at(start, size - start) if size > start else b""
        if start > 0:  # the window's first line is cut: drop it
            cut = data.find(b"\n")
            data = data[cut + 1 :] if cut >= 0 else b""
        complete = data.split(b"\n")
        if complete and complete[-1] == b"":
            complete.pop()
        if len(complete) >= lines or start == 0 or window >= cap:
            return b"".join(line + b"\n" for line in (complete[-lines:] if lines > 0 else []))
        window *= 4


def _local_user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        return os.environ.get("USER", "this user")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """TERM the process group, KILL it if it lingers, and reap it (bounded)."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=2)
        return
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=2)


def _exec_local(argv: list[str], timeout: float, stdin: bytes | None) -> Output:
    """Run ``argv`` with a deadline, reading both pipes and feeding stdin through one selector."""
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except FileNotFoundError:
        return Output(NOT_FOUND, b"", f"{argv[0]}: not found".encode())
    except PermissionError:
        return Output(126, b"", b"", f"`{argv[0]}` is not executable here; check its permissions.")
    except OSError as exc:
        return Output(None, b"", b"", f"`{argv[0]}` could not be started here ({exc.strerror or exc}).")
    assert proc.stdout is not None and proc.stderr is not None
    out, err = Capped(), Capped()
    sinks = {proc.stdout.fileno(): out, proc.stderr.fileno(): err}
    pending = memoryview(stdin) if stdin is not None else None
    deadline = time.monotonic() + timeout
    timed_out = False
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        sel.register(proc.stderr, selectors.EVENT_READ)
        if proc.stdin is not None:
            if pending:
                os.set_blocking(proc.stdin.fileno(), False)
                sel.register(proc.stdin, selectors.EVENT_WRITE)
            else:
                proc.stdin.close()
        while len(sel.get_map()) > 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            for key, _ in sel.select(timeout=min(remaining, 1.0)):
                if proc.stdin is not None and key.fileobj is proc.stdin:
                    assert pending is not None
                    try:
                        written = os.write(key.fd, pending[:READ_CHUNK])
                    except BrokenPipeError:
                        written = len(pending)
                    pending = pending[written:]
                    if not pending:
                        sel.unregister(proc.stdin)
                        proc.stdin.close()
                    continue
                data = os.read(key.fd, READ_CHUNK)
                if data:
                    sinks[key.fd].add(data)
                else:
                    sel.unregister(key.fileobj)
    if timed_out:
        _kill_group(proc)
        status: int | None = None
        error: str | None = f"`{argv[0]}` did not finish within {timeout:g} s and was stopped."
    else:
        try:
            status = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            error = None
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            status, error = None, f"`{argv[0]}` did not finish within {timeout:g} s and was stopped."
    for pipe in (proc.stdout, proc.stderr, proc.stdin):
        if pipe is not None and not pipe.closed:
            pipe.close()
    return Output(status, out.value(), err.value(), error, truncated=bool(out.dropped or err.dropped))
