"""Connecting: one hop with its timeouts and keepalive, ProxyJump chains and ProxyCommand, and every
failure turned into the one sentence a user reads."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from typing import Any

import paramiko

from wsdoctor.remote.errors import ConnectError, HostKeyChanged, HostKeyUnknown
from wsdoctor.remote.ssh.config import DEFAULT_TIMEOUT, SshSpec, own_known_hosts, resolve
from wsdoctor.remote.ssh.hostkeys import AcceptOnlyPolicy, fingerprint

# paramiko logs refused channels and dropped transports itself; with no handler configured Python would
# print them on stderr as raw tracebacks.  wsdoctor reports those as sentences instead.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

KEEPALIVE = 15  # seconds between keepalive packets
MAX_JUMPS = 8


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
    client.set_missing_host_key_policy(AcceptOnlyPolicy(accept_host_key))
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
    dialed: socket.socket | OSError | None = None,
) -> list[paramiko.SSHClient]:
    """Open the connection (through each ProxyJump hop, or the ProxyCommand); the target's client is last.

    DIALED: the TCP connection to SPEC already opened by ``config.dial`` (or why it failed)."""
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
                elif isinstance(dialed, OSError) and len(chain) == 1:
                    raise ConnectError(_describe_connect_error(dialed, hop, hop_timeout)) from dialed
                elif dialed is not None and len(chain) == 1:
                    sock = dialed
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
