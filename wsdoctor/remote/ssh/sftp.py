"""Reading the last lines of files over SFTP with every request pipelined (SFTP version 3, read-only).

Why not paramiko's SFTPClient: it waits for each answer before the next request (a file costs an open, a
stat and a read, one after the other) and is meant for one thread.  Here any number of threads send
requests on ONE ``sftp`` subsystem channel and a reader thread hands each answer to the request that waits
for it: a file's ``open`` and ``stat`` travel together, its reads together, and several files at once, so
the logs of a run cost two round trips however many files there are.  No login shell, no process on the
host (OpenSSH serves it in-process with ``internal-sftp``).
"""

from __future__ import annotations

import contextlib
import errno
import struct
import threading
from concurrent.futures import Future
from typing import TYPE_CHECKING

from wsdoctor.remote.runner import last_lines

if TYPE_CHECKING:
    import paramiko

INIT, VERSION, OPEN, CLOSE, READ, STAT = 1, 2, 3, 4, 5, 17
STATUS, HANDLE, DATA, ATTRS = 101, 102, 103, 105
FX_EOF, FX_NO_SUCH_FILE, FX_PERMISSION_DENIED = 1, 2, 3
READ_SIZE = 32768  # what every server serves in one READ
MAX_PACKET = 1 << 20


class SftpStatus(OSError):
    """An SFTP status answer other than OK (errno set for "no such file" and "permission denied")."""

    code = 0


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


class Sftp:
    """One ``sftp`` subsystem channel shared by threads; each request gets its answer through a Future."""

    def __init__(self, chan: paramiko.Channel) -> None:
        self.chan = chan
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._next = 1
        self._waiting: dict[int, Future[tuple[int, bytes]]] = {}
        self._version: Future[int] = Future()
        self._broken: BaseException | None = None
        self._send(struct.pack(">BI", INIT, 3))
        self._reader = threading.Thread(target=self._read, name="wsdoctor-sftp", daemon=True)
        self._reader.start()

    # -- the wire --------------------------------------------------------------------------------------

    def _send(self, payload: bytes) -> None:
        with self._send_lock:
            self.chan.sendall(struct.pack(">I", len(payload)) + payload)

    def _recv_exact(self, size: int) -> bytes:
        parts, left = [], size
        while left:
            chunk = self.chan.recv(left)
            if not chunk:
                raise EOFError("the SFTP channel closed")
            parts.append(chunk)
            left -= len(chunk)
        return b"".join(parts)

    def _read(self) -> None:
        try:
            while True:
                (length,) = struct.unpack(">I", self._recv_exact(4))
                if length < 1 or length > MAX_PACKET:
                    raise EOFError(f"an SFTP packet of {length} bytes")
                packet = self._recv_exact(length)
                kind = packet[0]
                if kind == VERSION:
                    self._version.set_result(struct.unpack(">I", packet[1:5])[0])
                    continue
                (rid,) = struct.unpack(">I", packet[1:5])
                with self._lock:
                    future = self._waiting.pop(rid, None)
                if future is not None:
                    future.set_result((kind, packet[5:]))
        except BaseException as exc:  # noqa: BLE001 - every waiting request learns it
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        with self._lock:
            self._broken = exc
            waiting, self._waiting = list(self._waiting.values()), {}
        if not self._version.done():
            self._version.set_exception(exc)
        for future in waiting:
            if not future.done():
                future.set_exception(exc)

    def request(self, kind: int, body: bytes) -> Future[tuple[int, bytes]]:
        future: Future[tuple[int, bytes]] = Future()
        with self._lock:
            if self._broken is not None:
                future.set_exception(self._broken)
                return future
            rid, self._next = self._next, self._next + 1
            self._waiting[rid] = future
        try:
            self._send(struct.pack(">BI", kind, rid) + body)
        except Exception as exc:  # noqa: BLE001
            self._fail(exc)
        return future

    def ready(self, timeout: float) -> int:
        """The server's SFTP version (raises when the subsystem is not there)."""
        return self._version.result(timeout)

    @property
    def usable(self) -> bool:
        return self._broken is None and not self.chan.closed

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.chan.close()
        self._fail(EOFError("closed"))

    # -- answers ---------------------------------------------------------------------------------------

    @staticmethod
    def _status(path: str, body: bytes) -> SftpStatus:
        (code,) = struct.unpack(">I", body[:4])
        (mlen,) = struct.unpack(">I", body[4:8]) if len(body) >= 8 else (0,)
        message = body[8 : 8 + mlen].decode("utf-8", "replace")
        number = {FX_NO_SUCH_FILE: errno.ENOENT, FX_PERMISSION_DENIED: errno.EACCES}.get(code, errno.EIO)
        status = SftpStatus(number, message or f"SFTP status {code}", path)
        status.code = code
        return status

    def _answer(self, future: Future[tuple[int, bytes]], want: int, path: str, timeout: float) -> bytes:
        kind, body = future.result(timeout)
        if kind == want:
            return body
        if kind == STATUS:
            raise self._status(path, body)
        raise SftpStatus(errno.EIO, f"unexpected SFTP answer {kind}", path)

    def _data(self, future: Future[tuple[int, bytes]], path: str, timeout: float) -> bytes | None:
        """A READ's bytes; None at end of file."""
        try:
            body = self._answer(future, DATA, path, timeout)
        except SftpStatus as exc:
            if exc.code == FX_EOF:
                return None
            raise
        (size,) = struct.unpack(">I", body[:4])
        return body[4 : 4 + size]

    # -- what wsdoctor reads ---------------------------------------------------------------------------

    def tail(self, path: str, lines: int, timeout: float) -> bytes:
        """The last LINES lines of PATH: open and stat together, then the last window's reads together."""
        name = _string(path.encode("utf-8", "surrogateescape"))
        opened = self.request(OPEN, name + struct.pack(">II", 1, 0))  # read, no attributes
        stat = self.request(STAT, name)
        # The open's own status (missing, denied) is raised here.
        handle_body = self._answer(opened, HANDLE, path, timeout)
        (hlen,) = struct.unpack(">I", handle_body[:4])
        handle = handle_body[4 : 4 + hlen]
        try:
            attrs = self._answer(stat, ATTRS, path, timeout)
            (flags,) = struct.unpack(">I", attrs[:4])
            size = struct.unpack(">Q", attrs[4:12])[0] if flags & 1 else 0

            def read_at(offset: int, length: int) -> bytes:
                return self._read_at(handle, path, offset, length, timeout)

            return last_lines(read_at, size, lines)
        finally:
            self.request(CLOSE, _string(handle))  # its answer is not waited for

    def _read_at(self, handle: bytes, path: str, offset: int, length: int, timeout: float) -> bytes:
        chunks = []
        for at in range(offset, offset + length, READ_SIZE):
            size = min(READ_SIZE, offset + length - at)
            chunks.append((at, size, self.request(READ, _string(handle) + struct.pack(">QI", at, size))))
        out = bytearray()
        for at, size, future in chunks:
            data = self._data(future, path, timeout)
            # A short read: ask for the rest (a server may cap one READ).
            while data is not None and len(data) < size:
                rest = struct.pack(">QI", at + len(data), size - len(data))
                more = self._data(self.request(READ, _string(handle) + rest), path, timeout)
                if not more:
                    break
                data += more
            if data is None:  # end of file (it shrank since the stat)
                break
            out += data
            if len(data) < size:
                break
        return bytes(out)
