"""A real OpenSSH sshd on a free loopback port, for the lab and the remote tests.

Why a real sshd and not a paramiko server: the remote code must survive what an operator's proxy host
really does (OpenSSH's channel limits, PTY handling, ``direct-tcpip`` forwarding, host key formats), so
tests and the lab talk to the same daemon a production host runs.  Everything lives in one state
directory: host key, client key, ``authorized_keys``, ``known_hosts`` (host key pinned for
``[HOST]:PORT``), the config, the pid file and the daemon's log.  Nothing touches the system sshd.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = "/usr/sbin/sshd"
SSH_KEYGEN = "ssh-keygen"
STATE_FILE = "sshd.json"
READY_TIMEOUT = 10.0  # seconds to wait for the banner
STOP_TIMEOUT = 5.0


class SshdError(RuntimeError):
    """The lab sshd could not be started; the message says what to do next."""


@dataclass
class Sshd:
    """A running lab sshd: where it listens and the files a client needs to reach it."""

    pid: int
    port: int
    host: str
    user: str
    directory: Path
    client_key: Path
    client_pub: Path
    host_key: Path
    host_key_pub: Path
    known_hosts: Path
    config_file: Path
    log_file: Path

    @property
    def destination(self) -> str:
        """``USER@HOST:PORT`` as accepted by ``--ssh`` (IPv6 hosts bracketed)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user}@{host}:{self.port}"

    @property
    def host_key_line(self) -> str:
        """The host key as ``TYPE BASE64`` (no comment), what known_hosts pins."""
        return _key_line(self.host_key_pub)

    def dict(self) -> dict[str, str | int]:
        """A JSON-ready view, so ``lab status``/``lab down`` in another process can find the daemon."""
        return {
            "pid": self.pid,
            "port": self.port,
            "host": self.host,
            "user": self.user,
            "directory": str(self.directory),
            "client_key": str(self.client_key),
            "client_pub": str(self.client_pub),
            "host_key": str(self.host_key),
            "host_key_pub": str(self.host_key_pub),
            "known_hosts": str(self.known_hosts),
            "config_file": str(self.config_file),
            "log_file": str(self.log_file),
        }

    @classmethod
    def load(cls, source: dict[str, str | int] | Path) -> Sshd:
        """Rebuild from :meth:`dict` output, or from a state directory / its ``sshd.json``."""
        if isinstance(source, Path):
            path = source / STATE_FILE if source.is_dir() else source
            source = json.loads(path.read_text())
        data = dict(source)
        return cls(
            pid=int(data["pid"]),
            port=int(data["port"]),
            host=str(data["host"]),
            user=str(data["user"]),
            **{
                name: Path(str(data[name]))
                for name in (
                    "directory",
                    "client_key",
                    "client_pub",
                    "host_key",
                    "host_key_pub",
                    "known_hosts",
                    "config_file",
                    "log_file",
                )
            },
        )

    def save(self) -> Path:
        """Write the state file into the state directory and return its path."""
        path = self.directory / STATE_FILE
        path.write_text(json.dumps(self.dict(), indent=2) + "\n")
        return path

    def alive(self) -> bool:
        """True while the daemon's process exists (and is not a zombie)."""
        return _alive(self.pid)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the listener (SIGTERM, then SIGKILL after ``timeout``); idempotent.

        Only the listening daemon is signalled: sessions it forked end when their client goes away,
        which is the behaviour a real host has too.
        """
        if not _alive(self.pid):
            _reap(self.pid)
            return
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _reap(self.pid)
            if not _alive(self.pid):
                return
            time.sleep(0.02)
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(self.pid):
            _reap(self.pid)
            time.sleep(0.02)


def _key_line(pub: Path) -> str:
    parts = pub.read_text().split()
    return f"{parts[0]} {parts[1]}"


def _reap(pid: int) -> None:
    """Collect our own child if it exited, so it does not linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return True


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (the caller retries if someone takes it first)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _keygen(path: Path, comment: str) -> None:
    if path.exists():
        return
    try:
        subprocess.run(
            [SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
            check=True,
            capture_output=True,
            timeout=15,
        )
    except FileNotFoundError as exc:
        raise SshdError("ssh-keygen is missing; install the openssh-client package and retry.") from exc
    except subprocess.CalledProcessError as exc:
        detail = exc.stderr.decode(errors="replace").strip()
        raise SshdError(
            f"ssh-keygen could not create {path} ({detail}); check the directory is writable."
        ) from exc
    path.chmod(0o600)


def _config_text(
    directory: Path, host: str, port: int, host_key: Path, authorized: Path, extra_config: str
) -> str:
    # MaxSessions: wsdoctor multiplexes many channels (commands, tails, forwards) on ONE connection,
    # OpenSSH's default of 10 would refuse the 11th concurrent one.
    lines = [
        f"Port {port}",
        f"ListenAddress {host}",
        f"HostKey {host_key}",
        f"PidFile {directory / 'sshd.pid'}",
        f"AuthorizedKeysFile {authorized}",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "StrictModes no",
        "UsePAM no",
        "AllowTcpForwarding yes",
        "AllowAgentForwarding no",
        "X11Forwarding no",
        "PermitTunnel no",
        "PrintMotd no",
        "PrintLastLog no",
        "UseDNS no",
        "MaxSessions 64",
        "MaxStartups 64:30:128",
        "LoginGraceTime 30",
        "ClientAliveInterval 15",
        "LogLevel VERBOSE",
        "Subsystem sftp internal-sftp",
    ]
    text = "\n".join(lines) + "\n"
    if extra_config.strip():
        text += extra_config.rstrip("\n") + "\n"
    return text


def _wait_ready(proc: subprocess.Popen[bytes], host: str, port: int, log_file: Path, timeout: float) -> None:
    """Wait, bounded, until the daemon sends its ``SSH-2.0`` banner."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SshdError(_failure(log_file, f"sshd exited with status {proc.returncode}"))
        try:
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.settimeout(max(0.1, min(1.0, deadline - time.monotonic())))
                sock.connect((host, port))
                if sock.recv(64).startswith(b"SSH-"):
                    return
        except OSError:
            pass
        time.sleep(0.03)
    raise SshdError(_failure(log_file, f"sshd did not answer on {host}:{port} within {timeout:.0f} s"))


def _failure(log_file: Path, what: str) -> str:
    try:
        tail = log_file.read_text(errors="replace").strip().splitlines()[-3:]
    except OSError:
        tail = []
    detail = f" ({' | '.join(tail)})" if tail else ""
    return f"{what}{detail}; see {log_file} and retry."


def start_sshd(
    directory: Path,
    *,
    port: int | None = None,
    user: str = "root",
    host: str = "127.0.0.1",
    extra_config: str = "",
    ready_timeout: float = READY_TIMEOUT,
) -> Sshd:
    """Start ``sshd -D -e -f CFG`` in its own session and return once it answers.

    The daemon is detached from our process group so ``lab up`` can exit and leave it running;
    :meth:`Sshd.stop` (or ``Sshd.load(dir).stop()`` from another process) ends it.  With
    ``port=None`` a free port is picked and a lost bind race is retried.  ``extra_config`` is
    appended to sshd_config verbatim (e.g. ``SetEnv PATH=…`` for tests).
    """
    if not Path(SSHD).exists():
        raise SshdError(
            f"{SSHD} is missing; install the openssh-server package (apt-get install openssh-server)."
        )
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)  # privilege separation dir

    host_key = directory / "ssh_host_ed25519_key"
    client_key = directory / "client_ed25519"
    _keygen(host_key, "wsdoctor-lab-host")
    _keygen(client_key, "wsdoctor-lab-client")
    client_pub = client_key.with_name(client_key.name + ".pub")
    host_key_pub = host_key.with_name(host_key.name + ".pub")
    authorized = directory / "authorized_keys"
    authorized.write_text(client_pub.read_text())
    authorized.chmod(0o600)
    config_file = directory / "sshd_config"
    log_file = directory / "sshd.log"
    known_hosts = directory / "known_hosts"

    attempts = 1 if port is not None else 5
    last_error: SshdError | None = None
    for _ in range(attempts):
        chosen = port if port is not None else free_port(host)
        config_file.write_text(_config_text(directory, host, chosen, host_key, authorized, extra_config))
        check = subprocess.run([SSHD, "-t", "-f", str(config_file)], capture_output=True, timeout=15)
        if check.returncode != 0:
            detail = check.stderr.decode(errors="replace").strip()
            raise SshdError(f"the generated sshd_config is invalid ({detail}); fix extra_config and retry.")
        with open(log_file, "ab") as log:
            proc = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(config_file)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                close_fds=True,
            )
        try:
            _wait_ready(proc, host, chosen, log_file, ready_timeout)
        except SshdError as exc:
            last_error = exc
            if proc.poll() is None:
                proc.kill()
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
            continue
        bracket = f"[{host}]:{chosen}"
        known_hosts.write_text(f"{bracket} {_key_line(host_key_pub)}\n")
        sshd = Sshd(
            pid=proc.pid,
            port=chosen,
            host=host,
            user=user,
            directory=directory,
            client_key=client_key,
            client_pub=client_pub,
            host_key=host_key,
            host_key_pub=host_key_pub,
            known_hosts=known_hosts,
            config_file=config_file,
            log_file=log_file,
        )
        sshd.save()
        return sshd
    assert last_error is not None
    raise last_error
