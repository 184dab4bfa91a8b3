"""Errors of the remote layer: each carries the one sentence the user reads (what happened, what to do).

They live in ``wsdoctor.*`` so ``wsdoctor.errors.describe`` shows their message as is (exit 2, no traceback).
"""

from __future__ import annotations


class RemoteError(Exception):
    """Something on the proxy host (or the way to it) failed; ``str(err)`` is the sentence to show."""


class ConnectError(RemoteError):
    """The SSH connection could not be made (refused, timed out, authentication failed, bad config)."""


class HostKeyUnknown(ConnectError):
    """The host's key is in no known_hosts file: the user must check the fingerprint and accept it."""

    def __init__(self, message: str, fingerprint: str, host: str) -> None:
        super().__init__(message)
        self.fingerprint = fingerprint
        self.host = host


class HostKeyChanged(ConnectError):
    """The host presents a different key than the one pinned: always refused, whatever the options."""

    def __init__(self, message: str, fingerprint: str, host: str) -> None:
        super().__init__(message)
        self.fingerprint = fingerprint
        self.host = host


class ForwardError(RemoteError):
    """The proxy host could not open a TCP connection to a backend (direct-tcpip refused)."""
