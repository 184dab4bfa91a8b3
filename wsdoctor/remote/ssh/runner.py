"""``SshRunner``: every command, SFTP read, tail and port forward of a run on ONE connection (channels are
multiplexed); a dropped connection turns the running command into an error result instead of a hang."""

from __future__ import annotations

import contextlib
import errno
import re
import select
import shlex
import threading
import time
from typing import TYPE_CHECKING

import paramiko

from wsdoctor.facts import CommandResult
from wsdoctor.remote.errors import ConnectError, ForwardError, RemoteError
from wsdoctor.remote.runner import (
    OUTPUT_CAP,
    READ_CHUNK,
    Capped,
    LineStream,
    Output,
    Runner,
    finish,
    last_lines,
    sudo_argv,
)
from wsdoctor.remote.ssh.config import SshSpec, resolve
from wsdoctor.remote.ssh.connect import DEFAULT_TIMEOUT, connect
from wsdoctor.remote.ssh.tunnels import Forwarder
from wsdoctor.remote.text import decode

if TYPE_CHECKING:
    from wsdoctor.target import Target

MAX_SESSIONS = 8  # concurrent exec channels (OpenSSH's MaxSessions defaults to 10)
# Print our pid, then become the command: on timeout we can kill exactly that process by pid.
_PID_WRAPPER = 'echo "wsdoctor-pid $$" >&2; exec "$@"'
_PID_LINE = re.compile(rb"^wsdoctor-pid (\d+)\r?\n")


class SshRunner(Runner):
    """Commands, file reads, tails and port forwards over ONE SSH connection (channels multiplexed).

    Counters (``stats()``): ``connections`` (SSH transports, jump hops included), ``channels`` opened,
    ``round_trips`` (requests the client waited an answer for: channel opens, exec and pty requests),
    ``commands`` run.  The key exchange and authentication of each connection are not counted.
    """

    def __init__(
        self, clients: list[paramiko.SSHClient], spec: SshSpec, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self._clients = clients
        transport = clients[-1].get_transport()
        assert transport is not None
        self._transport: paramiko.Transport = transport
        self.spec = spec
        self.host = spec.label
        self.user = spec.user
        self.is_root = spec.user == "root"
        self.timeout = timeout
        self._lock = threading.Lock()
        self._counts = {"connections": len(clients), "channels": 0, "round_trips": 0, "commands": 0}
        self._sessions = threading.BoundedSemaphore(MAX_SESSIONS)
        self._streams: list[LineStream] = []
        self._forwards: list[Forwarder] = []
        self._closed = False
        self._sftp: paramiko.SFTPClient | None = None
        self._sftp_lock = threading.Lock()  # one SFTP request stream, used by one thread at a time
        self._sftp_refused = False  # the host has no SFTP subsystem: reads run `tail` instead

    # -- construction ------------------------------------------------------

    @classmethod
    def connect(
        cls,
        destination: str,
        *,
        ssh_config: str | None = None,
        identity: str | None = None,
        known_hosts: str | None = None,
        accept_host_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> SshRunner:
        """Resolve, verify the host key, authenticate; raises ConnectError (one sentence) on failure."""
        spec = resolve(destination, config_file=ssh_config, identity=identity, known_hosts=known_hosts)
        clients = connect(
            spec,
            accept_host_key=accept_host_key,
            timeout=timeout,
            config_file=ssh_config,
            identity=identity,
            known_hosts=known_hosts,
        )
        return cls(clients, spec, timeout)

    @classmethod
    def from_target(cls, target: Target) -> SshRunner:
        if not target.ssh:
            raise ConnectError("no SSH host given; pass --ssh [USER@]HOST[:PORT].")
        return cls.connect(
            target.ssh,
            ssh_config=target.ssh_config,
            identity=target.identity,
            known_hosts=target.known_hosts,
            accept_host_key=target.accept_host_key,
            timeout=max(DEFAULT_TIMEOUT, target.timeout),
        )

    # -- plumbing ------------------------------------------------------------

    def _count(self, **deltas: int) -> None:
        with self._lock:
            for key, value in deltas.items():
                self._counts[key] += value

    @property
    def connected(self) -> bool:
        return not self._closed and self._transport.is_active()

    def _dropped(self, what: str) -> str:
        return (
            f"the SSH connection to {self.host} dropped {what}; the run goes on with what it has "
            "(re-run when the host is reachable)."
        )

    def _open_session(self, timeout: float) -> paramiko.Channel:
        if not self.connected:
            raise RemoteError(self._dropped("before the command could start"))
        try:
            chan = self._transport.open_session(timeout=timeout)
        except Exception as exc:
            if not self._transport.is_active():
                raise RemoteError(self._dropped("before the command could start")) from exc
            raise RemoteError(
                f"{self.host} refused a new SSH channel ({exc}); raise MaxSessions in its sshd_config or retry."
            ) from exc
        finally:
            self._count(channels=1, round_trips=1)
        return chan

    def _wrapped(self, argv: list[str]) -> str:
        return " ".join(shlex.quote(a) for a in ["sh", "-c", _PID_WRAPPER, "wsdoctor", *argv])

    def _kill_remote(self, pid: int) -> None:
        """Best effort: stop the process (and its group) we started, by pid, on a fresh channel."""
        if not self.connected:
            return
        with contextlib.suppress(Exception):
            chan = self._transport.open_session(timeout=3)
            self._count(channels=1, round_trips=2)
            chan.exec_command(
                f"kill -TERM -- -{pid} {pid} 2>/dev/null; kill -KILL -- -{pid} {pid} 2>/dev/null; true"
            )
            chan.status_event.wait(3)
            chan.close()

    # -- Runner API ------------------------------------------------------------

    def run(
        self, argv: list[str], timeout: float, sudo: bool = False, stdin: bytes | None = None
    ) -> CommandResult:
        full = sudo_argv(argv) if sudo else list(argv)
        self._count(commands=1)
        return finish(argv, self.host, self._exec(full, timeout, stdin), sudo=sudo, user=self.user)

    def _exec(self, argv: list[str], timeout: float, stdin: bytes | None) -> Output:
        deadline = time.monotonic() + timeout
        if not self._sessions.acquire(timeout=timeout):
            return Output(None, b"", b"", f"`{argv[0]}` waited {timeout:g} s for a free SSH channel; retry.")
        try:
            try:
                chan = self._open_session(max(0.1, deadline - time.monotonic()))
            except RemoteError as exc:
                return Output(None, b"", b"", str(exc))
            return self._exec_on(chan, argv, deadline, timeout, stdin)
        finally:
            self._sessions.release()

    def _exec_on(
        self, chan: paramiko.Channel, argv: list[str], deadline: float, timeout: float, stdin: bytes | None
    ) -> Output:
        out, err = Capped(OUTPUT_CAP), Capped(OUTPUT_CAP)
        watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), chan.close)
        watchdog.daemon = True
        watchdog.start()
        error: str | None = None
        try:
            try:
                chan.exec_command(self._wrapped(argv))
                self._count(round_trips=1)
            except Exception:
                if time.monotonic() >= deadline:
                    return Output(
                        None, b"", b"", f"`{argv[0]}` did not start within {timeout:g} s on {self.host}."
                    )
                return Output(None, b"", b"", self._dropped(f"while starting `{argv[0]}`"))
            if stdin is not None:
                threading.Thread(target=_send_stdin, args=(chan, stdin), daemon=True).start()
            else:
                with contextlib.suppress(Exception):
                    chan.shutdown_write()
            while True:
                progressed = False
                if chan.recv_ready():
                    out.add(chan.recv(READ_CHUNK))
                    progressed = True
                if chan.recv_stderr_ready():
                    err.add(chan.recv_stderr(READ_CHUNK))
                    progressed = True
                if progressed:
                    continue
                if chan.eof_received or chan.closed:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                if not self._transport.is_active():
                    break
                select.select([chan], [], [], min(remaining, 0.5))
            # Data is complete; wait (bounded) for the exit status that follows EOF.
            chan.status_event.wait(max(0.0, min(deadline - time.monotonic(), 5.0)))
            status: int | None = chan.exit_status if chan.exit_status_ready() else None
            if status == -1:
                status = None
            if status is None:
                if not self._transport.is_active():
                    error = self._dropped(f"while `{argv[0]}` was running")
                elif time.monotonic() >= deadline:
                    error = f"`{argv[0]}` did not finish within {timeout:g} s on {self.host} and was stopped."
                else:
                    error = f"`{argv[0]}` ended without an exit status on {self.host}."
        finally:
            watchdog.cancel()
            with contextlib.suppress(Exception):
                chan.close()
        raw_err = err.value()
        pid = None
        match = _PID_LINE.match(raw_err)
        if match:
            pid = int(match.group(1))
            raw_err = raw_err[match.end() :]
        if error is not None and pid is not None and status is None:
            self._kill_remote(pid)
        return Output(status, out.value(), raw_err, error, truncated=bool(out.dropped or err.dropped))

    def read_file(self, path: str, max_bytes: int = OUTPUT_CAP, timeout: float = 10.0) -> bytes:
        out = self._exec(["head", "-c", str(max_bytes), "--", path], timeout, None)
        if out.error:
            raise RemoteError(out.error)
        if out.exit_status != 0:
            detail = out.stderr.decode(errors="replace").strip().splitlines()
            reason = detail[-1] if detail else f"exit status {out.exit_status}"
            raise RemoteError(
                f"{path} could not be read on {self.host} ({reason}); check the path and rights."
            )
        return out.stdout

    def read_tail(self, path: str, lines: int, timeout: float = 10.0) -> CommandResult | None:
        """The last LINES lines of PATH over SFTP: no session, no login shell on the host (whose rc files
        often cost more than the read), several reads pipelined in one request stream.

        A missing file is a failed result (``tail`` would say the same); permission denied, no SFTP
        subsystem or any SFTP trouble returns None, and the caller runs ``tail`` (with sudo if needed).
        """
        argv = ["sftp-read", "-n", str(lines), "--", path]
        with self._sftp_lock:
            if self._sftp_refused or not self.connected:
                return None
            try:
                if self._sftp is None:
                    self._count(channels=1, round_trips=3)
                    self._sftp = paramiko.SFTPClient.from_transport(self._transport)
                    if self._sftp is None:
                        raise paramiko.SSHException("no SFTP subsystem")
                self._sftp.get_channel().settimeout(timeout)
                with self._sftp.open(path, "rb") as handle:
                    size = handle.stat().st_size or 0

                    def read_at(offset: int, length: int) -> bytes:
                        return b"".join(handle.readv([(offset, length)]))

                    data = last_lines(read_at, size, lines)
                self._count(round_trips=3)
            except FileNotFoundError:
                return CommandResult(
                    argv=argv, host=self.host, exit_status=1, stderr=f"{path}: No such file or directory"
                )
            except OSError as exc:
                if exc.errno not in (errno.EACCES, errno.EPERM):  # (denied: `tail` with sudo may read it)
                    self._drop_sftp()  # a broken request stream: the next read opens a new one
                return None
            except Exception:  # noqa: BLE001 - no SFTP here (disabled subsystem, old server): use tail
                self._sftp_refused = True
                self._drop_sftp()
                return None
        return CommandResult(argv=argv, host=self.host, exit_status=0, stdout=decode(data))

    def _drop_sftp(self) -> None:
        sftp, self._sftp = self._sftp, None
        if sftp is not None:
            with contextlib.suppress(Exception):
                sftp.close()

    def stream_lines(self, argv: list[str], sudo: bool = False) -> LineStream:
        """A live command on a PTY: when the channel closes the remote side gets SIGHUP, and we also
        kill the process by pid, so no ``tail`` survives a cancel."""
        full = sudo_argv(argv) if sudo else list(argv)
        stream = LineStream(" ".join(argv))
        try:
            chan = self._open_session(self.timeout)
        except RemoteError as exc:
            stream.end(str(exc))
            return stream
        watchdog = threading.Timer(self.timeout, chan.close)
        watchdog.daemon = True
        watchdog.start()
        try:
            chan.get_pty(term="dumb", width=500, height=24)
            chan.exec_command(self._wrapped(full))
            self._count(round_trips=2, commands=1)
        except Exception:
            chan.close()
            stream.end(self._dropped(f"while starting `{argv[0]}`"))
            return stream
        finally:
            watchdog.cancel()
        pid_box: list[int] = []
        pid_seen = threading.Event()

        def pump() -> None:
            head = b""
            while True:
                try:
                    ready, _, _ = select.select([chan], [], [], 0.5)
                    if not ready:
                        if chan.closed or not self._transport.is_active():
                            break
                        continue
                    data = chan.recv(READ_CHUNK)
                except Exception:
                    break
                if not data:
                    break
                if not pid_seen.is_set():
                    head += data
                    match = _PID_LINE.match(head)
                    if match:
                        pid_box.append(int(match.group(1)))
                        pid_seen.set()
                        data = head[match.end() :]
                    elif b"\n" in head or len(head) > 256:
                        pid_seen.set()
                        data = head
                    else:
                        continue
                if data:
                    stream.feed(data)
            pid_seen.set()
            problem = None
            if not self._transport.is_active() and not self._closed:
                problem = self._dropped(f"while following `{argv[-1]}`")
            elif chan.exit_status_ready() and chan.exit_status not in (0, -1):
                problem = f"`{argv[0]}` stopped on {self.host} with exit status {chan.exit_status}."
            stream.end(problem)

        def stop() -> None:
            pid_seen.wait(1.0)
            with contextlib.suppress(Exception):
                chan.close()
            if pid_box:
                self._kill_remote(pid_box[0])
            thread.join(timeout=3)

        thread = threading.Thread(target=pump, name="wsdoctor-ssh-tail", daemon=True)
        stream.set_stopper(stop)
        thread.start()
        with self._lock:
            self._streams.append(stream)
        return stream

    def open_direct(self, host: str, port: int, timeout: float = 5.0) -> paramiko.Channel:
        """A ``direct-tcpip`` channel to ``host:port`` as the proxy host reaches it."""
        if not self.connected:
            raise ForwardError(self._dropped(f"before {host}:{port} could be reached"))
        try:
            chan = self._transport.open_channel(
                "direct-tcpip", (host, port), ("127.0.0.1", 0), timeout=timeout
            )
        except paramiko.ChannelException as exc:
            raise ForwardError(
                f"{self.host} could not connect to {host}:{port} ({exc.text or 'connect failed'}): "
                "the backend is down or unreachable from the proxy host."
            ) from exc
        except Exception as exc:
            if not self._transport.is_active():
                raise ForwardError(self._dropped(f"while reaching {host}:{port}")) from exc
            if "unable to open channel" in str(exc).lower():
                # The host refused the tunnel, but paramiko keeps ONE refusal per connection: another
                # tunnel refused at the same moment took its reason.  The refusal itself is certain.
                raise ForwardError(
                    f"{self.host} could not connect to {host}:{port}: "
                    "the backend is down or unreachable from the proxy host."
                ) from exc
            raise ForwardError(
                f"{self.host} did not open a tunnel to {host}:{port} within {timeout:g} s ({exc}); "
                "check AllowTcpForwarding on the proxy host."
            ) from exc
        finally:
            self._count(channels=1, round_trips=1)
        return chan

    def forward(self, host: str, port: int, timeout: float = 5.0) -> tuple[str, int]:
        """A local port whose connections are tunnelled to ``host:port`` from the proxy host.

        The first tunnel is opened at once, so a backend that the proxy host cannot reach raises
        :class:`ForwardError` here (with the reason) instead of looking like a reset later.
        """
        first = self.open_direct(host, port, timeout)
        forwarder = Forwarder(self, host, port, first, timeout)
        with self._lock:
            self._forwards.append(forwarder)
        return "127.0.0.1", forwarder.port

    def stats(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def close(self) -> None:
        if self._closed:
            return
        with self._lock:
            streams, self._streams = self._streams, []
            forwards, self._forwards = self._forwards, []
        for stream in streams:
            stream.close()
        for forwarder in forwards:
            forwarder.close()
        with self._sftp_lock:
            self._drop_sftp()
        self._closed = True
        for client in reversed(self._clients):
            with contextlib.suppress(Exception):
                client.close()


def _send_stdin(chan: paramiko.Channel, data: bytes) -> None:
    with contextlib.suppress(Exception):
        chan.sendall(data)
        chan.shutdown_write()
