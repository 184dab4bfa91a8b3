"""``SshRunner``: every command, SFTP read, tail and port forward of a run on ONE connection (channels are
multiplexed); a dropped connection turns the running command into an error result instead of a hang."""

from __future__ import annotations

import contextlib
import errno
import re
import secrets
import select
import shlex
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import paramiko
from paramiko.common import cMSG_CHANNEL_REQUEST, cMSG_DISCONNECT
from paramiko.message import Message

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
    sudo_argv,
)
from wsdoctor.remote.ssh.config import SshSpec, resolve
from wsdoctor.remote.ssh.connect import DEFAULT_TIMEOUT, connect
from wsdoctor.remote.ssh.sftp import Sftp
from wsdoctor.remote.ssh.shell import RemoteShell
from wsdoctor.remote.ssh.tunnels import Forwarder
from wsdoctor.remote.text import decode

if TYPE_CHECKING:
    from wsdoctor.target import Target

MAX_SESSIONS = 6  # exec channels at once: with the run's shell, its SFTP channel and a live tail or two, within
# OpenSSH's default MaxSessions of 10
# Mark where our command starts on both streams (everything before is the login shell's start-up noise),
# print our pid, then become the command: on timeout we can kill exactly that process by pid.  $1 is the
# run's random marker ($0 stays "wsdoctor": sh names itself so in its own error messages).
_PID_WRAPPER = 'printf "%s\\n" "$1"; printf "%s pid %s\\n" "$1" "$$" >&2; shift; exec "$@"'
HEAD_LIMIT = 65536  # start-up noise kept back while looking for the marker (then given up: shown as is)
CLOSE_WAIT = 3.0  # the polite close: channels acknowledged, then the server's end of the connection
SSH_DISCONNECT_BY_APPLICATION = 11


def strip_head(data: bytes, marker: bytes) -> tuple[bytes, bool]:
    """DATA from the first line that follows MARKER's own line (the login shell's noise before it goes).

    Returns the data and whether the marker was found (when it is not, DATA is returned whole)."""
    at = data.find(marker + b"\n")
    while at > 0 and data[at - 1 : at] != b"\n":
        at = data.find(marker + b"\n", at + 1)
    if at < 0:
        return data, False
    return data[at + len(marker) + 1 :], True


def strip_pid(data: bytes, marker: bytes) -> tuple[bytes, int | None]:
    """DATA after the ``MARKER pid N`` line, and N (None, DATA whole, when the line is not there)."""
    match = re.search(rb"(?:^|\n)" + re.escape(marker) + rb" pid (\d+)\r?\n", data)
    if match is None:
        return data, None
    return data[match.end() :], int(match.group(1))


def send_request(chan: paramiko.Channel, kind: str, *args: str) -> None:
    """Send a channel request (``exec``, ``subsystem``) WITHOUT waiting for its answer: the data that follows
    travels in the same flight, and a refusal closes the channel (which the reader sees).  One round trip
    less per command over a real link."""
    m = Message()
    m.add_byte(cMSG_CHANNEL_REQUEST)
    m.add_int(chan.remote_chanid)
    m.add_string(kind)
    m.add_boolean(True)
    for arg in args:
        m.add_string(arg)
    chan._event_pending()  # noqa: SLF001 - paramiko's own bookkeeping for a request that expects an answer
    chan.transport._send_user_message(m)  # noqa: SLF001


class SshRunner(Runner):
    """Commands, file reads, tails and port forwards over ONE SSH connection (channels multiplexed).

    Counters (``stats()``): ``connections`` (SSH transports, jump hops included), ``channels`` opened,
    ``round_trips`` (requests the client waited an answer for: channel opens, pty requests, SFTP start-up
    and reads), ``commands`` run.  ``timeline()`` gives, per phase (discovery, nginx -T, logs, forwards,
    probes), how many such waits it made and when it started and ended.  The key exchange and
    authentication of each connection are not counted.
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
        self.marker = f"wsdoctor-{secrets.token_hex(8)}"
        self._lock = threading.Lock()
        self._counts = {"connections": len(clients), "channels": 0, "round_trips": 0, "commands": 0}
        self._timeline: dict[str, list[float]] = {}
        self._sessions = threading.BoundedSemaphore(MAX_SESSIONS)
        self._streams: list[LineStream] = []
        self._forwards: list[Forwarder] = []
        self._shells: list[RemoteShell] = []
        self._prepared: RemoteShell | None = None
        self._closed = False
        self._sftp: Sftp | None = None
        self._sftp_lock = threading.Lock()  # one SFTP channel, opened by one thread
        self._sftp_refused = False  # the host has no SFTP subsystem: reads run `tail` instead
        # Told what was under way when the connection dropped (a tunnel's probe cut short), so the run
        # can say it once, as one sentence.
        self.on_drop: Callable[[str], None] | None = None

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
        spec: SshSpec | None = None,
        dialed: socket.socket | OSError | None = None,
    ) -> SshRunner:
        """Resolve, verify the host key, authenticate; raises ConnectError (one sentence) on failure.

        SPEC and DIALED: the destination already resolved and its TCP connection already opened (see
        ``config.dial``)."""
        if spec is None:
            spec = resolve(destination, config_file=ssh_config, identity=identity, known_hosts=known_hosts)
        clients = connect(
            spec,
            accept_host_key=accept_host_key,
            timeout=timeout,
            config_file=ssh_config,
            identity=identity,
            known_hosts=known_hosts,
            dialed=dialed,
        )
        return cls(clients, spec, timeout)

    @classmethod
    def from_target(
        cls, target: Target, spec: SshSpec | None = None, dialed: socket.socket | OSError | None = None
    ) -> SshRunner:
        if not target.ssh:
            raise ConnectError("no SSH host given; pass --ssh [USER@]HOST[:PORT].")
        return cls.connect(
            target.ssh,
            ssh_config=target.ssh_config,
            identity=target.identity,
            known_hosts=target.known_hosts,
            accept_host_key=target.accept_host_key,
            timeout=max(DEFAULT_TIMEOUT, target.timeout),
            spec=spec,
            dialed=dialed,
        )

    def prepare(self) -> None:
        """Open, at once and side by side, what a run uses first: a remote shell for the discovery commands
        and the SFTP channel for the logs (each costs round trips; here they overlap each other and the
        caller's own work)."""
        with self._lock:
            if self._prepared is None and not self._closed:
                self._prepared = self._new_shell()
        threading.Thread(target=self._sftp_client, name="wsdoctor-sftp-open", daemon=True).start()

    def shell(self) -> RemoteShell:
        """A remote shell for a batch of commands (the one ``prepare`` opened, else a new one)."""
        with self._lock:
            prepared, self._prepared = self._prepared, None
        return prepared or self._new_shell()

    def _new_shell(self) -> RemoteShell:
        shell = RemoteShell(self)
        self._shells.append(shell)
        return shell

    # -- plumbing ------------------------------------------------------------

    def count(self, **deltas: int) -> None:
        with self._lock:
            for key, value in deltas.items():
                self._counts[key] += value


    def note(self, phase: str, start: float, end: float, requests: int = 1) -> None:
        """Record REQUESTS waits of PHASE between START and END (monotonic clock), for ``timeline()``."""
        with self._lock:
            span = self._timeline.setdefault(phase, [0, start, end])
            span[0] += requests
            span[1] = min(span[1], start)
            span[2] = max(span[2], end)

    def timeline(self) -> dict[str, tuple[int, float, float]]:
        """Per phase: the waits it made, its first start and last end (monotonic clock)."""
        with self._lock:
            return {name: (int(c), s, e) for name, (c, s, e) in self._timeline.items()}

    def lost_connection(self, wait: float = 0.5) -> bool:
        """Whether the connection dropped (not closed by us).  A dropped transport closes its channels a
        moment before it marks itself inactive: wait up to WAIT for its thread to finish ending."""
        if self._closed:
            return False
        if self._transport.is_active():
            self._transport.join(wait)
        return not self._closed and not self._transport.is_active()

    def notice_drop(self, what: str) -> None:
        """The connection dropped (not closed by us) while WHAT was under way: tell ``on_drop``."""
        hook = self.on_drop
        if hook is not None and not self._closed:
            with contextlib.suppress(Exception):
                hook(what)

    @property
    def local_address(self) -> tuple[str, int] | None:
        """This end of the connection (host, port): how the host's auth log names it ("port N")."""
        sock = self._transport.sock
        try:
            return sock.getsockname()[:2] if isinstance(sock, socket.socket) else None
        except OSError:
            return None

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
            self.count(channels=1, round_trips=1)
        return chan

    def open_exec(self, command: str, timeout: float) -> paramiko.Channel:
        """A session channel running COMMAND (the exec request is not waited for).  Raises RemoteError."""
        chan = self._open_session(timeout)
        try:
            send_request(chan, "exec", command)
        except Exception as exc:
            chan.close()
            raise RemoteError(self._dropped("while starting a command")) from exc
        return chan

    def _wrapped(self, argv: list[str]) -> str:
        return " ".join(shlex.quote(a) for a in ["sh", "-c", _PID_WRAPPER, "wsdoctor", self.marker, *argv])

    def kill_remote(self, pid: int) -> None:
        """Best effort: stop the process (and its group) we started, by pid, on a fresh channel."""
        if not self.connected:
            return
        with contextlib.suppress(Exception):
            chan = self._transport.open_session(timeout=3)
            self.count(channels=1, round_trips=1)
            send_request(
                chan,
                "exec",
                f"kill -TERM -- -{pid} {pid} 2>/dev/null; kill -KILL -- -{pid} {pid} 2>/dev/null; true",
            )
            chan.shutdown_write()
            chan.status_event.wait(3)
            chan.close()


    # -- Runner API ------------------------------------------------------------

    def run(
        self, argv: list[str], timeout: float, sudo: bool = False, stdin: bytes | None = None
    ) -> CommandResult:
        full = sudo_argv(argv) if sudo else list(argv)
        self.count(commands=1)
        return finish(argv, self.host, self._exec(full, timeout, stdin), sudo=sudo, user=self.user)

    def exec_output(self, argv: list[str], timeout: float) -> Output:
        """ARGV (already with ``sudo`` if wanted) on its own channel, as raw Output."""
        self.count(commands=1)
        return self._exec(argv, timeout, None)

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
        status: int | None = None
        try:
            try:
                send_request(chan, "exec", self._wrapped(argv))
            except Exception:
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
            status = chan.exit_status if chan.exit_status_ready() else None
            if status == -1:
                status = None
            if status is None:
                if not self._transport.is_active():
                    error = self._dropped(f"while `{argv[0]}` was running")
                elif time.monotonic() >= deadline:
                    error = f"`{argv[0]}` did not finish within {timeout:g} s on {self.host} and was stopped."
                elif chan.closed and not chan.eof_received and not out.size and not err.size:
                    error = f"{self.host} refused to run `{argv[0]}` (the exec request was rejected)."
                else:
                    error = f"`{argv[0]}` ended without an exit status on {self.host}."
        finally:
            watchdog.cancel()
            with contextlib.suppress(Exception):
                chan.close()
        marker = self.marker.encode()
        raw_out, _ = strip_head(out.value(), marker)
        raw_err, pid = strip_pid(err.value(), marker)
        if error is not None and pid is not None and status is None:
            self.kill_remote(pid)
        return Output(status, raw_out, raw_err, error, truncated=bool(out.dropped or err.dropped))

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

    def _sftp_client(self, timeout: float | None = None) -> Sftp | None:
        """The run's SFTP channel, opened once: the channel, the subsystem request and SFTP's version
        exchange go in two round trips (the request is not waited for).  None when the host has none."""
        with self._sftp_lock:
            if self._sftp is not None and self._sftp.usable:
                return self._sftp
            if self._sftp_refused or not self.connected:
                return None
            started = time.monotonic()
            try:
                chan = self._open_session(timeout or self.timeout)
                send_request(chan, "subsystem", "sftp")
                sftp = Sftp(chan)
                sftp.ready(timeout or self.timeout)
                self.count(round_trips=1)
            except Exception:  # noqa: BLE001 - no SFTP here (disabled subsystem, old server): use tail
                self._sftp_refused = self.connected
                return None
            finally:
                self.note("logs", started, time.monotonic(), 0)
            self._sftp = sftp
            return sftp

    def read_tail(self, path: str, lines: int, timeout: float = 10.0) -> CommandResult | None:
        """The last LINES lines of PATH over SFTP: no session, no login shell on the host (whose rc files
        often cost more than the read); the open and stat travel together, then the reads together, and
        several files at once share the round trips.

        A missing file is a failed result (``tail`` would say the same); permission denied, no SFTP
        subsystem or any SFTP trouble returns None, and the caller runs ``tail`` (with sudo if needed).
        """
        argv = ["sftp-read", "-n", str(lines), "--", path]
        sftp = self._sftp_client(timeout)
        if sftp is None:
            return None
        started = time.monotonic()
        try:
            data = sftp.tail(path, lines, timeout)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return CommandResult(
                    argv=argv, host=self.host, exit_status=1, stderr=f"{path}: No such file or directory"
                )
            if exc.errno not in (errno.EACCES, errno.EPERM):  # (denied: `tail` with sudo may read it)
                with self._sftp_lock:
                    if self._sftp is sftp:
                        self._sftp = None  # a broken request stream: the next read opens a new one
                sftp.close()
            return None
        except Exception:  # noqa: BLE001 - a dropped channel or a timeout: `tail` says what it can
            with self._sftp_lock:
                if self._sftp is sftp:
                    self._sftp = None
            sftp.close()
            return None
        finally:
            self.note("logs", started, time.monotonic(), 2)
            self.count(round_trips=2)
        return CommandResult(argv=argv, host=self.host, exit_status=0, stdout=decode(data))

    def close_sftp(self) -> None:
        """Close the SFTP channel now (a later read opens a new one)."""
        with self._sftp_lock:
            self._drop_sftp()

    def _drop_sftp(self) -> None:
        sftp, self._sftp = self._sftp, None
        if sftp is not None:
            sftp.close()

    def stream_lines(self, argv: list[str], sudo: bool = False) -> LineStream:
        """A live command on a PTY: when the channel closes the remote side gets SIGHUP, and we also
        kill the process by pid, so no ``tail`` survives a cancel.  What the login shell prints before the
        command starts (its start-up files' noise) is dropped: the lines are the command's own."""
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
            send_request(chan, "exec", self._wrapped(full))
            self.count(round_trips=1, commands=1)
        except Exception:
            chan.close()
            stream.end(self._dropped(f"while starting `{argv[0]}`"))
            return stream
        finally:
            watchdog.cancel()
        pid_box: list[int] = []
        pid_seen = threading.Event()
        marker = self.marker.encode()

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
                    rest, pid = strip_pid(head, marker)
                    if pid is not None:
                        pid_box.append(pid)
                        pid_seen.set()
                        data = rest
                    elif len(head) > HEAD_LIMIT:  # no marker in sight: show what came
                        pid_seen.set()
                        data = head
                    else:
                        continue
                if data:
                    stream.feed(data)
            pid_seen.set()
            problem = None
            if not chan.closed and self._transport.is_active():
                chan.status_event.wait(1.0)  # the status follows the output's end on its own message
            status = chan.exit_status if chan.exit_status_ready() and chan.exit_status != -1 else None
            if not self._transport.is_active() and not self._closed:
                problem = self._dropped(f"while following `{argv[-1]}`")
            elif status not in (0, None):
                problem = f"`{argv[0]}` stopped on {self.host} with exit status {status}."
            stream.end(problem, exit_status=status)

        def stop() -> None:
            pid_seen.wait(1.0)
            with contextlib.suppress(Exception):
                chan.close()
            if pid_box:
                self.kill_remote(pid_box[0])
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
            if not self._closed:
                self.notice_drop(f"a backend probe through the tunnel to {host}:{port}")
            raise ForwardError(self._dropped(f"before {host}:{port} could be reached"))
        started = time.monotonic()
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
                self.notice_drop(f"a backend probe through the tunnel to {host}:{port}")
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
            self.count(channels=1, round_trips=1)
            self.note("forwards", started, time.monotonic())
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

    # -- the end -------------------------------------------------------------------------------------

    def close(self) -> None:
        """Close politely: every channel ends with EOF and CLOSE, the server acknowledges them, then the
        connection ends with SSH_MSG_DISCONNECT and we wait (bounded) for the server to close its side
        before our socket goes, so the host's auth log reads "Received disconnect … disconnected by user",
        never "Connection reset by peer".  Jump hosts are closed the same way, innermost first."""
        with self._lock:
            if self._closed:
                return
            streams, self._streams = self._streams, []
            forwards, self._forwards = self._forwards, []
            shells, self._shells = self._shells, []
            self._prepared = None
        for stream in streams:
            stream.close()
        for forwarder in forwards:
            forwarder.close()
        for shell in shells:
            shell.close()
        with self._sftp_lock:
            self._drop_sftp()
        self._closed = True
        for client in reversed(self._clients):
            transport = client.get_transport()
            if transport is not None:
                close_politely(transport, CLOSE_WAIT)
            with contextlib.suppress(Exception):
                client.close()


def close_politely(transport: paramiko.Transport, wait: float) -> None:
    """End TRANSPORT the way OpenSSH's client does, without a reset: every channel still open gets its EOF
    and CLOSE, then SSH_MSG_DISCONNECT (by application) follows in the same flight and our side of the
    socket is half-closed; the transport's thread goes on reading what the server still sends (its CLOSE
    answers) until the server ends the connection, so no byte is left unread when the socket goes (an
    unread byte is what makes the kernel send the reset that sshd logs as "Connection reset by peer").
    Bounded by WAIT; a connection already gone is just stopped."""
    if not transport.is_active():
        return
    for chan in list(transport._channels.values()):  # noqa: SLF001 - paramiko's live channels
        with contextlib.suppress(Exception):
            chan.close()
    m = Message()
    m.add_byte(cMSG_DISCONNECT)
    m.add_int(SSH_DISCONNECT_BY_APPLICATION)
    m.add_string("disconnected by user")
    m.add_string("")
    try:
        transport._send_user_message(m)  # noqa: SLF001
        sock = transport.sock
        if isinstance(sock, socket.socket):
            sock.shutdown(socket.SHUT_WR)
        elif isinstance(sock, paramiko.Channel):  # a jump host's tunnel
            sock.shutdown_write()
    except Exception:  # noqa: BLE001 - the connection is going anyway
        return
    transport.join(wait)  # the transport's thread ends at the server's EOF


def _send_stdin(chan: paramiko.Channel, data: bytes) -> None:
    with contextlib.suppress(Exception):
        chan.sendall(data)
        chan.shutdown_write()
