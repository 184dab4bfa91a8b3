"""Trust an unknown SSH host key only after the engineer has seen its SHA256 fingerprint.

The remote layer refuses unknown keys (never AutoAddPolicy); the TUI turns that refusal
into this question. Accepting re-runs the diagnosis with exactly this fingerprint
(``Target.accept_host_key``), so a different key presented later is still refused.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static


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

    BINDINGS = [
        Binding("y", "trust", "Trust this key"),
        Binding("n,escape", "refuse", "Do not trust"),
    ]

    def __init__(self, host: str, fingerprint: str) -> None:
        super().__init__()
        self.host = host
        self.fingerprint = fingerprint

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
                    ("y", "bold"),
                    " trust this key and re-run · ",
                    ("n", "bold"),
                    " / Esc do not trust it",
                )
            )

    def action_trust(self) -> None:
        self.dismiss(True)

    def action_refuse(self) -> None:
        self.dismiss(False)
