"""Process bookkeeping for the lab: free ports, readiness waits, and stopping exactly our own pids.

The lab's processes outlive the command that started them (``wsdoctor lab up`` returns, the lab keeps
running), so they are found again by pid from the state file. A pid is only ever signalled after
``/proc/PID/cmdline`` proves it is still ours (it names the lab directory): pids get reused, and
``down`` must never kill a stranger.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import time
from pathlib import Path


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """COUNT distinct free TCP ports on HOST (all held open until all are chosen, so none repeats)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def quiet_port(host: str = "127.0.0.1", attempts: int = 200) -> int:
    """A free TCP port BELOW the kernel's ephemeral range, for a backend that is meant to stay down.

    Ports from ``free_ports`` (bind to 0) come from the ephemeral range, so once freed they are handed to the
    next process that asks, e.g. another lab's backend, which would then answer on a "dead" backend's port.
    The kernel never hands out a port below the range on its own, so a stopped backend's port stays dead.
    """
    import random

    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    rng = random.Random()
    for _ in range(attempts):
        port = rng.randrange(max(1024, low - 12000), max(1025, low - 1))
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        if not port_open(port, host):
            return port
    return free_ports(1, host)[0]


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.2) -> bool:
    """True when something accepts TCP connections on HOST:PORT."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _listen_inodes(port: int, host: str) -> set[str]:
    """Socket inodes LISTENing on HOST:PORT (or on all addresses), from /proc/net/tcp."""
    want = f"{socket.htonl(int.from_bytes(socket.inet_aton(host), 'big')):08X}:{port:04X}"
    inodes: set[str] = set()
    with open("/proc/net/tcp") as f:
        next(f, None)
        for line in f:
            fields = line.split()
            if len(fields) > 9 and fields[3] == "0A" and fields[1] in (want, f"00000000:{port:04X}"):
                inodes.add(fields[9])
    return inodes


def listening(port: int, host: str = "127.0.0.1", pid: int | None = None) -> bool:
    """True when a socket LISTENs on HOST:PORT (held by PID, when given), read from /proc, no connect.

    Not connecting matters: a bare TCP connect to nginx's TLS port leaves a "client closed connection
    while SSL handshaking" line in the lab's error log, noise that log classification would then read.
    Checking the owner matters too: another program listening on a port we picked must not pass for
    our nginx (which keeps retrying its bind for seconds before it gives up).
    Falls back to a connect where /proc is not available.
    """
    try:
        inodes = _listen_inodes(port, host)
    except OSError:
        return port_open(port, host)
    if not inodes or pid is None:
        return bool(inodes)
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            return True
    return False


def cmdline(pid: int) -> str:
    """The process's command line, NUL separators as spaces ("" when it is gone or unreadable)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()


def _state(pid: int) -> str | None:
    """The one-letter process state from /proc/PID/stat (Z = zombie), None when the pid is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces: the state follows the last ')'.
    return stat[stat.rfind(")") + 2 :].split(" ", 1)[0]


def reap(pid: int) -> None:
    """Collect PID's exit status if it is our child, so a dead child does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def alive(pid: int) -> bool:
    """PID exists and is not a zombie (a zombie is reaped on the way when it is our child)."""
    reap(pid)
    state = _state(pid)
    return state is not None and state != "Z"


def owned(pid: int, marker: str) -> bool:
    """PID is alive and its command line names MARKER (the lab directory): it is ours to signal."""
    return alive(pid) and marker in cmdline(pid)


def _children() -> dict[int, list[int]]:
    """Every live process's children, from one pass over /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def descendants_of(pids: list[int]) -> list[int]:
    """Every live descendant of each of PIDS (sshd's per-connection children, nginx's workers), in one pass
    over /proc however many PIDS there are."""
    children = _children()
    out: list[int] = []
    todo = list(pids)
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def descendants(pid: int) -> list[int]:
    """Every live descendant of PID."""
    return descendants_of([pid])


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError as e:
        if e.errno != errno.ESRCH:
            raise


def terminate(pid: int, marker: str, grace: float = 3.0) -> bool:
    """Stop PID (and its descendants) if it is ours: SIGTERM, then SIGKILL after GRACE seconds.

    Returns True when a process of ours was stopped, False when PID was already gone or is not ours.
    """
    return bool(terminate_all([pid], marker, grace))


def terminate_all(pids: list[int], marker: str, grace: float = 3.0) -> list[int]:
    """Stop every pid of PIDS that is ours, all at once (SIGTERM, SIGKILL after GRACE), and the
    children they leave behind (sshd sessions outlive their listener). Returns the pids stopped."""
    mine = [pid for pid in pids if owned(pid, marker)]
    for pid in pids:
        if pid not in mine:
            reap(pid)
    family = descendants_of(mine)
    for pid in mine:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(alive(pid) for pid in mine) and time.monotonic() < deadline:
        time.sleep(0.02)
    for pid in mine:
        if alive(pid):
            _signal(pid, signal.SIGKILL)
    for child in family:
        if alive(child):
            _signal(child, signal.SIGKILL)
    deadline = time.monotonic() + 2.0
    while any(alive(pid) for pid in mine + family) and time.monotonic() < deadline:
        time.sleep(0.01)
    for pid in mine:
        reap(pid)
    return mine


def first_lines(path: Path, count: int = 3, max_bytes: int = 64 * 1024) -> str:
    """The first COUNT meaningful lines of a log (for a start-up error sentence), "" when empty."""
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes)
    except OSError:
        return ""
    lines = [ln.strip() for ln in data.decode("utf-8", "replace").splitlines() if ln.strip()]
    return " | ".join(lines[:count])


def last_lines(path: Path, count: int = 3, max_bytes: int = 64 * 1024) -> str:
    """The last COUNT meaningful lines of a log (a crash's traceback ends with its reason)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return ""
    lines = [ln.strip() for ln in data.decode("utf-8", "replace").splitlines() if ln.strip()]
    return " | ".join(lines[-count:])
