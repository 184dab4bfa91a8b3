"""SSH to the proxy host with paramiko, the way a careful operator expects.

Why this much care: wsdoctor runs during incidents, on production load balancers.  The target is resolved
like OpenSSH does it (``ssh -G`` when the client is installed, so ``Include``/``Match`` work; else
``paramiko.SSHConfig``), host keys are verified against the user's known_hosts files and wsdoctor's own
(``$XDG_STATE_HOME/wsdoctor/known_hosts``) with a policy that never adds a key silently: an unknown key is
refused with its SHA256 fingerprint and accepted only when the user passes that exact fingerprint with
``--accept-host-key``; a changed key is refused whatever the options.  Every step has a timeout; ONE
connection carries every command, tail and port forward (channels are multiplexed), and a dropped
connection turns the running command into an error result instead of a hang.

The parts, each with its own reason to change (as fabric splits its SSH layer):

- ``config``: the destination and OpenSSH's configuration for it (``ssh -G``, else paramiko's parser);
- ``hostkeys``: fingerprints, the accept-only policy, wsdoctor's own known_hosts;
- ``connect``: one hop, ProxyJump chains and ProxyCommand, failures as sentences;
- ``runner``: ``SshRunner`` — commands, SFTP reads, tails, on one connection;
- ``tunnels``: local listeners forwarded over ``direct-tcpip`` channels (the backend probes);
- ``shell``: ``RemoteShell`` — a batch of commands through one remote shell on one channel;
- ``sftp``: pipelined reads of the logs' last lines over the ``sftp`` subsystem.
"""


from typing import TYPE_CHECKING, Any

from wsdoctor.remote.ssh.config import SshSpec, own_known_hosts, parse_destination, resolve

if TYPE_CHECKING:
    from wsdoctor.remote.ssh.hostkeys import fingerprint
    from wsdoctor.remote.ssh.runner import SshRunner

__all__ = ["SshRunner", "SshSpec", "fingerprint", "own_known_hosts", "parse_destination", "resolve"]


def __getattr__(name: str) -> Any:
    """``SshRunner`` and ``fingerprint`` load paramiko (a quarter of a second): only when asked for, so a
    run can resolve the destination and dial it while paramiko loads."""
    if name == "SshRunner":
        from wsdoctor.remote.ssh.runner import SshRunner

        return SshRunner
    if name == "fingerprint":
        from wsdoctor.remote.ssh.hostkeys import fingerprint

        return fingerprint
    raise AttributeError(name)
