"""Port forwards: a local listener whose connections travel over ``direct-tcpip`` channels, so a backend
probe reaches exactly what the proxy host reaches."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from typing import TYPE_CHECKING

import paramiko

from wsdoctor.remote.errors import ForwardError
from wsdoctor.remote.runner import (
    READ_CHUNK,
)

if TYPE_CHECKING:
    from wsdoctor.remote.ssh.runner import SshRunner


class Forwarder:
    """A loopback listener; each accepted connection is pumped through its own direct-tcpip channel."""

    def __init__(
        self, runner: SshRunner, host: str, port: int, first: paramiko.Channel, timeout: float
    ) -> None:
        self.runner = runner
        self.target = (host, port)
        self.timeout = timeout
        self._first: paramiko.Channel | None = first
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(32)
        self._listener.settimeout(0.25)
        self.port = int(self._listener.getsockname()[1])
        self._closed = threading.Event()
        self._pairs: list[tuple[socket.socket, paramiko.Channel]] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name=f"wsdoctor-forward-{port}", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                chan, self._first = self._first, None
            if chan is None or chan.closed:
                try:
                    chan = self.runner.open_direct(*self.target, timeout=self.timeout)
                except ForwardError:
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    conn.close()  # reset: the client sees the connection fail at once
                    continue
            with self._lock:
                self._pairs.append((conn, chan))
            threading.Thread(target=self._pump, args=(conn, chan, time.monotonic()), daemon=True).start()

    def _pump(self, conn: socket.socket, chan: paramiko.Channel, started: float) -> None:
        try:
            while not self._closed.is_set():
                ready, _, _ = select.select([conn, chan], [], [], 0.5)
                if conn in ready:
                    data = conn.recv(READ_CHUNK)
                    if not data:
                        break
                    chan.sendall(data)
                if chan in ready:
                    data = chan.recv(READ_CHUNK)
                    if not data:
                        break
                    conn.sendall(data)
                if chan.closed and not chan.recv_ready():
                    break
        except (OSError, EOFError, paramiko.SSHException):
            pass
        finally:
            # The channel ended without the server's EOF (not the backend closing, not us): if that is the
            # connection dropping, say so before the probe sees its connection end, so the note is in time.
            cut = chan.closed and not chan.eof_received
            if cut and not self._closed.is_set() and self.runner.lost_connection():
                self.runner.notice_drop(f"a backend probe through the tunnel to {self.target[0]}:{self.target[1]}")
            with contextlib.suppress(Exception):
                chan.close()
            with contextlib.suppress(Exception):
                conn.close()
            with self._lock, contextlib.suppress(ValueError):
                self._pairs.remove((conn, chan))
            self.runner.note("probes", started, time.monotonic())

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):  # wakes the accept() at once (Linux), so the join is immediate
            self._listener.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            pairs, self._pairs = list(self._pairs), []
            first, self._first = self._first, None
        if first is not None:
            with contextlib.suppress(Exception):
                first.close()
        for conn, chan in pairs:
            with contextlib.suppress(Exception):
                chan.close()
            with contextlib.suppress(Exception):
                conn.close()
        self._thread.join(timeout=2)
