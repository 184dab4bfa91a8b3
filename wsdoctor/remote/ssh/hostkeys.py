"""Host keys: SHA256 fingerprints, a policy that never adds a key silently (only the exact fingerprint the
user passed with ``--accept-host-key``), and wsdoctor's own known_hosts file."""

from __future__ import annotations

import base64
import hashlib

import paramiko

from wsdoctor.remote.errors import HostKeyUnknown
from wsdoctor.remote.ssh.config import own_known_hosts


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


class AcceptOnlyPolicy(paramiko.MissingHostKeyPolicy):
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
