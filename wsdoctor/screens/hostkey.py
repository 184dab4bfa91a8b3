"""Trust an unknown SSH host key only after the engineer has seen its SHA256 fingerprint.

The remote layer refuses unknown keys (never AutoAddPolicy); the TUI turns that refusal into this
question. Accepting re-runs the diagnosis with exactly this fingerprint (``Target.accept_host_key``),
so a different key presented later is still refused; once the connection with it is made, the key is
remembered in wsdoctor's own known_hosts (as OpenSSH's ``accept-new`` remembers it in yours), so the
next run, and the next wsdoctor, trusts it without asking.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

from wsdoctor.widgets.keys import HOSTKEY, bindings


class HostKeyScreen(ModalScreen[bool]):
    """`y` trusts this fingerprint and re-runs; `n` / Esc leaves the key untrusted."""

    DEFAULT_CSS = """
    HostKeyScreen {
        align: center middle;
        #hostkey {
            width: 84;
            max-width: 100%;
            height: auto;
            border: thick $warning;
            background: $panel;
            padding: 1 2;
        }
    }
    """

    BINDINGS = bindings(HOSTKEY)

    def __init__(self, host: str, fingerprint: str, remember_in: str | None = None) -> None:
        super().__init__()
        self.host = host
        self.fingerprint = fingerprint
        self.remember_in = remember_in or _own_known_hosts()

    def compose(self) -> ComposeResult:
        with Vertical(id="hostkey") as box:
            box.border_title = "Unknown SSH host key"
            yield Static(
                Content.assemble(
                    "wsdoctor has never seen the host key of ",
                    (self.host, "bold"),
                    ". Compare its fingerprint with the one the host's owner gives you "
                    "(ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on the host):\n\n",
                    (f"  {self.fingerprint}\n\n", "bold $warning"),
                    ("y", "bold $accent"),
                    " trust this key, remember it in ",
                    (self.remember_in, "bold"),
                    " (like OpenSSH's accept-new) and run again\n",
                    ("n", "bold $accent"),
                    " / ",
                    ("Esc", "bold $accent"),
                    " do not trust it: nothing is read from that host",
                )
            )

    def action_trust(self) -> None:
        """Trust and remember (the remote layer saves the key once the connection with it is made)."""
        self.dismiss(True)

    def action_refuse(self) -> None:
        self.dismiss(False)


def _own_known_hosts() -> str:
    from wsdoctor.remote.ssh.config import own_known_hosts  # paramiko: loaded by the SSH connect already

    return str(own_known_hosts())
