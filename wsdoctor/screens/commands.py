"""Ctrl+P: every wsdoctor action in the command palette, offered where it makes sense.

Each command names an action and where it runs (the app, or a screen class); the
palette lists the app's commands everywhere and a screen's commands only on that
screen, so nothing it offers is dead.
"""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.screen import Screen

from wsdoctor.screens.detail import DetailScreen
from wsdoctor.screens.diagnosis import DiagnosisScreen
from wsdoctor.screens.logs import LogsScreen

# (title, help, action, screen class or None for the app)
COMMANDS: list[tuple[str, str, str, type[Screen] | None]] = [
    ("Re-run the diagnosis", "Gather every fact and run every check again (r)", "rerun", None),
    (
        "Export the report",
        "Markdown and JSON, secrets redacted, to $WSDOCTOR_EXPORT_DIR or the current directory (e)",
        "export",
        None,
    ),
    ("Live logs", "The tailed nginx logs, tagged with the check each line speaks for (l)", "logs", None),
    ("Edit the target", "Change the URL, path, SSH host or config and diagnose again", "edit_target", None),
    ("Keys", "Every key of every screen (?)", "help", None),
    ("Toggle light / dark theme", "Switch between the light and the dark theme (t)", "toggle_theme", None),
    ("Quit wsdoctor", "Stop every probe and remote command, then quit (q)", "quit", None),
    ("Open the selected finding", "Its evidence and its fix (Enter)", "open_selected", DiagnosisScreen),
    ("Show the fix", "Scroll the detail to its fix (f)", "show_fix", DetailScreen),
    ("Copy the fix", "The diff (and client code) to the clipboard (c)", "copy_fix", DetailScreen),
    ("Copy the evidence", "Every piece of evidence to the clipboard (y)", "copy_evidence", DetailScreen),
    ("Filter the logs", "Show only lines containing a text (/)", "filter", LogsScreen),
    ("Pause the logs", "Stop scrolling; new lines are counted (p)", "pause", LogsScreen),
    ("Follow the logs", "Show every new line as it arrives (f)", "follow", LogsScreen),
]


class WsdoctorCommands(Provider):
    """The palette's wsdoctor section."""

    def _available(self) -> list[tuple[str, str, str, Screen | None]]:
        screen = self.screen
        out = []
        for title, help_text, action, scope in COMMANDS:
            if scope is None:
                out.append((title, help_text, action, None))
            elif isinstance(screen, scope):
                out.append((title, help_text, action, screen))
        return out

    def _command(self, action: str, screen: Screen | None):
        return partial(self.app.run_action, action, screen if screen is not None else self.app)

    async def discover(self) -> Hits:
        for title, help_text, action, screen in self._available():
            yield DiscoveryHit(title, self._command(action, screen), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, action, screen in self._available():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), self._command(action, screen), help=help_text)
