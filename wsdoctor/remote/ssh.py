"""SSH to the proxy host with paramiko, the way a careful operator expects.

Why this much care: wsdoctor runs during incidents, on production load balancers.  The target is resolved
like OpenSSH does it (``ssh -G`` when the client is installed, so ``Include``/``Match`` work; else
``paramiko.SSHConfig``), host keys are verified against the user's known_hosts files and wsdoctor's own
(``$XDG_STATE_HOME/wsdoctor/known_hosts``) with a policy that never adds a key silently: an unknown key is
refused with its SHA256 fingerprint and accepted only when the user passes that exact fingerprint with
``--accept-host-key``; a changed key is refused whatever the options.  Every step has a timeout; ONE
connection carries every command, tail and port forward (channels are multiplexed), and a dropped
connection turns the running command into an error result instead of a hang.
"""

from __future__ import annotations

import base64
import contextlib
import getpass
import hashlib
import logging
import os
import re
import select
import shlex
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paramiko

from wsdoctor.facts import CommandResult
from wsdoctor.remote.errors import ConnectError, ForwardError, HostKeyChanged, HostKeyUnknown, RemoteError
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
from wsdoctor.remote.text import decode

if TYPE_CHECKING:
    from wsdoctor.target import Target

# paramiko logs refused channels and dropped transports itself; with no handler configured Python would
# print them on stderr as raw tracebacks.  wsdoctor reports those as sentences instead.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

DEFAULT_TIMEOUT = 10.0  # connect, banner, auth, channel open
KEEPALIVE = 15  # seconds between keepalive packets
MAX_SESSIONS = 8  # concurrent exec channels (OpenSSH's MaxSessions defaults to 10)
MAX_JUMPS = 8
# What `ssh -G` lists when no IdentityFile is configured: then paramiko may look for keys itself.
_DEFAULT_IDENTITIES = {
    "~/.ssh/id_rsa",
    "~/.ssh/id_ecdsa",
    "~/.ssh/id_ecdsa_sk",
    "~/.ssh/id_ed25519",
    "~/.ssh/id_ed25519_sk",
    "~/.ssh/id_xmss",
    "~/.ssh/id_dsa",
}
# Print our pid, then become the command: on timeout we can kill exactly that process by pid.
_PID_WRAPPER = 'echo "wsdoctor-pid $$" >&2; exec "$@"'
_PID_LINE = re.compile(rb"^wsdoctor-pid (\d+)\r?\n")


# --- destination and configuration -----------------------------------------


def parse_destination(text: str) -> tuple[str | None, str, int | None]:
    """``[USER@]HOST[:PORT]`` (``[::1]:2222``, ``ssh://user@host:port`` too) → (user, host, port)."""
    spec = text.strip()
    if spec.startswith("ssh://"):
        spec = spec[len("ssh://") :].rstrip("/")
    if not spec or any(c.isspace() for c in spec):
        raise ConnectError(
            f"{text!r} is not an SSH destination; give [USER@]HOST[:PORT] or a ssh config alias."
        )
    user: str | None = None
    if "@" in spec:
        user, _, spec = spec.rpartition("@")
        user = user or None
    port: int | None = None
    if spec.startswith("["):
        host, sep, rest = spec[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ConnectError(f"{text!r} has an unclosed '[': write an IPv6 host as [::1]:2222.")
        if rest:
            port = _port(rest[1:], text)
    elif spec.count(":") == 1:
        host, _, port_text = spec.partition(":")
        port = _port(port_text, text)
    else:
        host = spec  # a name, an IPv4 address, or a bare IPv6 address without a port
    if not host or host.startswith("-"):
        raise ConnectError(f"{text!r} has no valid host name; give [USER@]HOST[:PORT].")
    return user, host, port


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ConnectError(f"{whole!r} has an invalid port {text!r}; give a number from 1 to 65535.")
    return int(text)


@dataclass
class SshSpec:
    """Everything needed to reach one host, after ssh config evaluation."""

    destination: str  # as the user wrote it
    hostname: str  # what to connect to
    port: int
    user: str
    identity_files: list[str] = field(default_factory=list)  # explicit keys (paths expanded)
    look_for_keys: bool = True  # no explicit IdentityFile: let paramiko try ~/.ssh/id_*
    allow_agent: bool = True
    known_hosts_files: list[str] = field(default_factory=list)
    host_key_alias: str | None = None
    proxy_jump: list[str] = field(default_factory=list)  # hop destinations, in order
    proxy_command: str | None = None  # tokens expanded
    connect_timeout: float | None = None
    source: str = "command line"  # "ssh -G", "paramiko.SSHConfig …", "command line"

    @property
    def key_name(self) -> str:
        """The known_hosts name: ``host`` on port 22, ``[host]:port`` otherwise (or the HostKeyAlias)."""
        if self.host_key_alias:
            return self.host_key_alias
        return self.hostname if self.port == 22 else f"[{self.hostname}]:{self.port}"

    @property
    def label(self) -> str:
        host = f"[{self.hostname}]" if ":" in self.hostname else self.hostname
        return f"{self.user}@{host}" + ("" if self.port == 22 else f":{self.port}")


def own_known_hosts() -> Path:
    """wsdoctor's own known_hosts: keys the user accepted with --accept-host-key."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "wsdoctor" / "known_hosts"


def resolve(
    destination: str,
    *,
    config_file: str | None = None,
    identity: str | None = None,
    known_hosts: str | None = None,
    use_openssh: bool = True,
) -> SshSpec:
    """Evaluate the ssh config for ``destination`` like ``ssh`` would (``-F``, ``-i``, known_hosts overrides).

    ProxyJump hops are returned as destinations; :func:`connect` resolves each with the same config.
    """
    user, host, port = parse_destination(destination)
    if config_file is not None and not os.path.isfile(os.path.expanduser(config_file)):
        raise ConnectError(f"the ssh config file {config_file} does not exist; check --ssh-config.")
    options: dict[str, list[str]] | None = None
    source = ""
    if use_openssh and shutil.which("ssh"):
        options = _ssh_g(host, user, port, config_file)
        source = "ssh -G"
    if options is None:
        options = _paramiko_lookup(host, config_file)
        source = "paramiko.SSHConfig"
        if user:
            options["user"] = [user]
        if port:
            options["port"] = [str(port)]

    def first(key: str) -> str | None:
        values = options.get(key) if options else None
        return values[0] if values else None

    hostname = first("hostname") or host
    final_user = first("user") or user or getpass.getuser()
    final_port = int(first("port") or port or 22)
    tokens = {
        "%h": hostname,
        "%p": str(final_port),
        "%r": final_user,
        "%n": host,
        "%d": _home(),
        "%u": getpass.getuser(),
    }

    files = options.get("identityfile", [])
    explicit = not (files and len(files) >= 4 and all(f in _DEFAULT_IDENTITIES for f in files))
    if source != "ssh -G":
        explicit = bool(files)
    identity_files = [_expand(f, tokens) for f in files] if explicit else []
    identities_only = (first("identitiesonly") or "no").lower() == "yes"
    if identity:
        identity_files = [os.path.expanduser(identity)]
        explicit = True
    if identity_files and not any(os.path.isfile(f) for f in identity_files) and identity:
        raise ConnectError(f"the identity file {identity} does not exist; check --identity.")

    if known_hosts:
        known = [os.path.expanduser(known_hosts)]
    else:
        known = []
        for key in ("userknownhostsfile", "globalknownhostsfile"):
            for value in options.get(key, []):
                known += [_expand(part, tokens) for part in value.split()]
        if not known:
            known = [os.path.expanduser("~/.ssh/known_hosts"), "/etc/ssh/ssh_known_hosts"]
        elif not options.get("globalknownhostsfile"):
            known.append("/etc/ssh/ssh_known_hosts")

    jump = first("proxyjump")
    hops = [] if not jump or jump.lower() == "none" else [h.strip() for h in jump.split(",") if h.strip()]
    command = first("proxycommand")
    proxy_command = None
    if command and command.lower() != "none" and not hops:
        proxy_command = _expand(command, tokens, home=False)
    timeout_text = first("connecttimeout")
    return SshSpec(
        destination=destination,
        hostname=hostname,
        port=final_port,
        user=final_user,
        identity_files=identity_files,
        look_for_keys=not explicit,
        allow_agent=not identities_only,
        known_hosts_files=known,
        host_key_alias=first("hostkeyalias"),
        proxy_jump=hops,
        proxy_command=proxy_command,
        connect_timeout=float(timeout_text) if timeout_text and timeout_text.isdigit() else None,
        source=source + (f" -F {config_file}" if config_file else ""),
    )


def _home() -> str:
    return os.path.expanduser("~")


def _expand(value: str, tokens: dict[str, str], home: bool = True) -> str:
    out = re.sub(
        r"%[%hprndu]", lambda m: "%" if m.group(0) == "%%" else tokens.get(m.group(0), m.group(0)), value
    )
    return os.path.expanduser(out) if home else out


def _ssh_g(
    host: str, user: str | None, port: int | None, config_file: str | None
) -> dict[str, list[str]] | None:
    """``ssh -G`` output as {key: [values]}; None when the client cannot run (fallback to paramiko)."""
    argv = ["ssh", "-G"]
    if config_file:
        argv += ["-F", os.path.expanduser(config_file)]
    else:
        # OpenSSH reads the passwd home, not $HOME; honour $HOME like the paramiko fallback does.
        user_config = os.path.expanduser("~/.ssh/config")
        if _home() != _passwd_home() and os.path.isfile(user_config):
            argv += ["-F", user_config]
    if user:
        argv += ["-l", user]
    if port:
        argv += ["-p", str(port)]
    argv += ["--", host]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=10, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip().splitlines()
        reason = detail[-1] if detail else f"exit status {done.returncode}"
        raise ConnectError(
            f"ssh could not evaluate the ssh config for {host} ({reason}); fix the config and retry."
        )
    options: dict[str, list[str]] = {}
    for line in done.stdout.decode(errors="replace").splitlines():
        key, _, value = line.strip().partition(" ")
        if key:
            options.setdefault(key.lower(), []).append(value.strip())
    return options


def _passwd_home() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_dir
    except (ImportError, KeyError):
        return _home()


def _paramiko_lookup(host: str, config_file: str | None) -> dict[str, list[str]]:
    path = os.path.expanduser(config_file or "~/.ssh/config")
    if not os.path.isfile(path):
        return {}
    try:
        config = paramiko.SSHConfig.from_path(path)
        found = config.lookup(host)
    except Exception as exc:  # paramiko raises several types for bad configs
        raise ConnectError(f"the ssh config {path} could not be read ({exc}); fix it and retry.") from exc
    options: dict[str, list[str]] = {}
    for key, value in found.items():
        options[key.lower()] = list(value) if isinstance(value, list) else [str(value)]
    return options


# --- host keys ----------------------------------------------------------------


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's ``SHA256:…`` fingerprint (base64 without padding) of a public key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _same_fingerprint(given: str | None, actual: str) -> bool:
    if not given:
        return False
    norm = given.strip()
    if norm.upper().startswith("SHA256:"):
        norm = norm[7:]
    return norm.rstrip("=") == actual[7:]


class _AcceptOnlyPolicy(paramiko.MissingHostKeyPolicy):
    """Unknown key: refuse with the fingerprint, unless it is exactly the one the user accepted."""

    def __init__(self, accept: str | None) -> None:
        self.accept = accept

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        fp = fingerprint(key)
        if _same_fingerprint(self.accept, fp):
            _save_host_key(hostname, key)
            return
        if self.accept:
            raise HostKeyUnknown(
                f"the SSH host key of {hostname} is {fp}, not the {self.accept} given with --accept-host-key; "
                "check the fingerprint with the host's owner before accepting it.",
                fp,
                hostname,
            )
        raise HostKeyUnknown(
            f"the SSH host key of {hostname} is unknown ({key.get_name()} {fp}); if it is right, "
            f"re-run with --accept-host-key {fp}.",
            fp,
            hostname,
        )


def _save_host_key(name: str, key: paramiko.PKey) -> None:
    path = own_known_hosts()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(path, "a") as handle:
        handle.write(f"{name} {key.get_name()} {key.get_base64()}\n")


# --- connecting ---------------------------------------------------------------


def _describe_connect_error(exc: BaseException, spec: SshSpec, timeout: float) -> str:
    """One sentence naming what failed and the option that fixes it (never "check the host" for a key)."""
    where = spec.label
    key_help = "give --identity KEY or load the key into ssh-agent (ssh-add KEY)"
    if isinstance(exc, paramiko.PasswordRequiredException):
        return f"the SSH key for {spec.label} is protected by a passphrase: load it into ssh-agent (ssh-add KEY) and retry."
    if isinstance(exc, paramiko.AuthenticationException):
        tried = ", ".join(spec.identity_files) or (
            "ssh-agent and ~/.ssh keys" if spec.look_for_keys else "ssh-agent"
        )
        return (
            f"{where} rejected the SSH login as {spec.user} (tried {tried}): {key_help}, and check the user "
            "in --ssh USER@HOST and the server's authorized_keys."
        )
    if isinstance(exc, socket.gaierror):
        return f"the SSH host {spec.hostname} cannot be resolved: check the name in --ssh or your ssh config."
    if isinstance(exc, ConnectionRefusedError):
        return (
            f"{where} refused the SSH connection: check the host and port (--ssh USER@HOST:PORT) "
            "and that sshd runs there."
        )
    if isinstance(exc, socket.timeout | TimeoutError):
        return (
            f"{where} did not answer within {timeout:g} s: check the host and port (--ssh USER@HOST:PORT) "
            "and the network path."
        )
    if isinstance(exc, paramiko.SSHException | EOFError):
        text = str(exc) or type(exc).__name__
        low = text.lower()
        if "no authentication methods available" in low:
            return f"no SSH key to log in to {where} with: {key_help}."
        if (
            "private key" in low
            or "not a valid" in low
            or "could not deserialize" in low
            or "key format" in low
        ):
            keys = ", ".join(spec.identity_files) or "the key"
            return (
                f"{keys} is not a private key wsdoctor can use ({text}): give the private key file "
                "(not the .pub) with --identity, or load it into ssh-agent."
            )
        stalled = ("banner", "no existing session", "negotiation timed out", "eof")
        if isinstance(exc, EOFError) or any(m in low for m in stalled):
            # paramiko words a silent or hung-up peer differently depending on where the handshake stalled
            return (
                f"{where} did not answer as an SSH server within {timeout:g} s (or dropped the handshake): "
                "check the port in --ssh USER@HOST:PORT and that sshd runs there."
            )
        return f"the SSH connection to {where} failed ({text}): check --ssh and your ssh config."
    if isinstance(exc, OSError):
        return (
            f"the SSH connection to {where} failed ({exc.strerror or exc}): check the host in --ssh and the "
            "network path."
        )
    return f"the SSH connection to {where} failed ({type(exc).__name__}: {exc}): check --ssh and your ssh config."


def _connect_hop(spec: SshSpec, sock: Any, accept_host_key: str | None, timeout: float) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    own = str(own_known_hosts())
    for path in [*spec.known_hosts_files, own]:
        if os.path.isfile(path):
            with contextlib.suppress(Exception):  # an unreadable / malformed file must not stop us
                client.load_system_host_keys(path)
    # SSHClient looks the key up as "host" on port 22 and "[host]:port" otherwise; a HostKeyAlias has no port.
    if spec.host_key_alias:
        lookup_host, lookup_port = spec.host_key_alias, 22
    else:
        lookup_host, lookup_port = spec.hostname, spec.port
    # A known key of another type than the one offered counts as changed (paramiko raises BadHostKey).
    client.set_missing_host_key_policy(_AcceptOnlyPolicy(accept_host_key))
    key_files = [f for f in spec.identity_files if os.path.isfile(f)]
    try:
        client.connect(
            hostname=lookup_host,
            port=lookup_port,
            username=spec.user,
            key_filename=key_files or None,
            timeout=timeout,
            allow_agent=spec.allow_agent,
            look_for_keys=spec.look_for_keys,
            sock=sock,
            banner_timeout=timeout,
            auth_timeout=timeout,
            channel_timeout=timeout,
        )
    except paramiko.BadHostKeyException as exc:
        client.close()
        got, expected = fingerprint(exc.key), fingerprint(exc.expected_key)
        raise HostKeyChanged(
            f"WARNING: the SSH host key of {spec.key_name} has CHANGED (now {got}, known as {expected}): "
            "this can be an attack, so wsdoctor refuses to connect; if the change is legitimate, remove the "
            f"old key (ssh-keygen -R '{spec.key_name}') and retry.",
            got,
            spec.key_name,
        ) from None
    except (HostKeyUnknown, HostKeyChanged):
        client.close()
        raise
    except Exception as exc:  # paramiko, socket and proxy errors all become one sentence
        client.close()
        raise ConnectError(_describe_connect_error(exc, spec, timeout)) from exc
    transport = client.get_transport()
    assert transport is not None
    transport.set_keepalive(KEEPALIVE)
    return client


def connect(
    spec: SshSpec,
    *,
    accept_host_key: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    config_file: str | None = None,
    identity: str | None = None,
    known_hosts: str | None = None,
) -> list[paramiko.SSHClient]:
    """Open the connection (through each ProxyJump hop, or the ProxyCommand); the target's client is last."""
    clients: list[paramiko.SSHClient] = []

    def hops_of(current: SshSpec, depth: int) -> list[SshSpec]:
        # A jump host may have its own ProxyJump (as with ssh): its hops come first.
        out: list[SshSpec] = []
        for hop in current.proxy_jump:
            if depth + len(out) >= MAX_JUMPS:
                raise ConnectError(
                    f"ProxyJump for {spec.destination} needs more than {MAX_JUMPS} hops (a loop?); "
                    "check the ssh config."
                )
            resolved = resolve(hop, config_file=config_file, identity=identity, known_hosts=known_hosts)
            out += [*hops_of(resolved, depth + len(out) + 1), resolved]
        return out

    chain = [*hops_of(spec, 0), spec]
    try:
        sock: Any = None
        for index, hop in enumerate(chain):
            hop_timeout = hop.connect_timeout or timeout
            if index == 0:
                if hop.proxy_command:
                    try:
                        sock = paramiko.ProxyCommand(hop.proxy_command)
                    except Exception as exc:
                        raise ConnectError(
                            f"the ProxyCommand for {hop.destination} could not start ({exc}); fix the ssh config."
                        ) from exc
                    sock.settimeout(hop_timeout)
                else:
                    try:
                        sock = socket.create_connection((hop.hostname, hop.port), timeout=hop_timeout)
                    except OSError as exc:
                        raise ConnectError(_describe_connect_error(exc, hop, hop_timeout)) from exc
            else:
                previous = clients[-1].get_transport()
                assert previous is not None
                try:
                    sock = previous.open_channel(
                        "direct-tcpip", (hop.hostname, hop.port), ("127.0.0.1", 0), timeout=hop_timeout
                    )
                except Exception as exc:
                    raise ConnectError(
                        f"the jump host {chain[index - 1].label} could not reach {hop.hostname}:{hop.port} "
                        f"({exc}); check ProxyJump and that the jump host allows TCP forwarding."
                    ) from exc
            clients.append(_connect_hop(hop, sock, accept_host_key, hop_timeout))
    except BaseException:
        for client in reversed(clients):
            client.close()
        raise
    return clients


# --- the runner -----------------------------------------------------------------


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
        self._forwards: list[_Forwarder] = []
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
        import errno

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
        forwarder = _Forwarder(self, host, port, first, timeout)
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


class _Forwarder:
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
            threading.Thread(target=self._pump, args=(conn, chan), daemon=True).start()

    def _pump(self, conn: socket.socket, chan: paramiko.Channel) -> None:
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
            with contextlib.suppress(Exception):
                chan.close()
            with contextlib.suppress(Exception):
                conn.close()
            with self._lock, contextlib.suppress(ValueError):
                self._pairs.remove((conn, chan))

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
