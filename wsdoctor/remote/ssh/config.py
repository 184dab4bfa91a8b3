"""Where to connect and how: the destination and OpenSSH's configuration for it (``ssh -G`` when the
client is installed, so ``Include``/``Match`` work; else ``paramiko.SSHConfig``)."""

from __future__ import annotations

import getpass
import os
import pwd
import re
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from wsdoctor.remote.errors import ConnectError

DEFAULT_TIMEOUT = 10.0  # connect, banner, auth, channel open

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
        return pwd.getpwuid(os.getuid()).pw_dir
    except (ImportError, KeyError):
        return _home()


def _paramiko_lookup(host: str, config_file: str | None) -> dict[str, list[str]]:
    path = os.path.expanduser(config_file or "~/.ssh/config")
    if not os.path.isfile(path):
        return {}
    import paramiko  # the measured boundary: only without OpenSSH's client, and a config file to read

    try:
        config = paramiko.SSHConfig.from_path(path)
        found = config.lookup(host)
    except Exception as exc:  # paramiko raises several types for bad configs
        raise ConnectError(f"the ssh config {path} could not be read ({exc}); fix it and retry.") from exc
    options: dict[str, list[str]] = {}
    for key, value in found.items():
        options[key.lower()] = list(value) if isinstance(value, list) else [str(value)]
    return options


def dial(spec: SshSpec, timeout: float) -> socket.socket | OSError | None:
    """The TCP connection to SPEC, opened before paramiko is even loaded (its handshake and the server's
    banner travel meanwhile); the OSError when it failed (connecting says it as a sentence); None when a
    ProxyJump or ProxyCommand decides the way, which only connecting can take."""
    if spec.proxy_jump or spec.proxy_command:
        return None
    try:
        return socket.create_connection((spec.hostname, spec.port), timeout=spec.connect_timeout or timeout)
    except OSError as exc:
        return exc
