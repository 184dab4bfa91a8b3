"""`?`: every key of every screen and what the signs mean, read from the one key vocabulary (``keys.py``).

A key appears here with the same name as in the footers and the palette, and only where the screen
really has its action, so the help cannot go stale or describe a key that does something else.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import App, ComposeResult
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

from wsdoctor.widgets.keys import (
    APP,
    CONFIRM,
    DETAIL,
    DIAGNOSIS,
    FORM,
    HELP,
    HOSTKEY,
    LOGS,
    NOTES,
    SCOPE_TITLES,
    WHOLE_LINE,
    bindings,
    help_rows,
    offered,
)

# The signs the screens use, said once.
SIGNS: tuple[tuple[str, str], ...] = (
    ("✗ FAIL", "the check found the problem here"),
    ("! WARN", "suspicious, or depends on something wsdoctor cannot see"),
    ("✓ PASS", "checked, and fine"),
    ("– SKIP", "not checked: the reason says what to give"),
    ("⠋ ····", "no verdict yet: the row says what it waits for"),
    ("↻", "the last run's verdict, kept while a re-run decides again"),
    ("■ STOP", "not decided: the run stopped (the reason is above the list)"),
    ("↪", "judged for the corrected request: the client's own request misses the location it means"),
    ("└ Fix:", "under the selected check: its fix in one line (Enter for the diff)"),
    ("log ✗ !", "a log line that speaks for a check (its tag), failing or worth a look; · is noise"),
)


def help_sections(app: App) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """(title, rows) per screen: the keys of the vocabulary each screen really offers."""
    from wsdoctor.screens.detail import DetailScreen
    from wsdoctor.screens.diagnosis import DiagnosisScreen
    from wsdoctor.screens.hostkey import HostKeyScreen
    from wsdoctor.screens.logs import LogsScreen, WholeLineScreen
    from wsdoctor.screens.notes import NotesScreen
    from wsdoctor.screens.target import ConfirmLeave, TargetScreen

    owners = {
        APP: app,
        DIAGNOSIS: DiagnosisScreen,
        DETAIL: DetailScreen,
        LOGS: LogsScreen,
        WHOLE_LINE: WholeLineScreen,
        FORM: TargetScreen,
        CONFIRM: ConfirmLeave,
        HOSTKEY: HostKeyScreen,
        NOTES: NotesScreen,
        HELP: HelpScreen,
    }
    sections = []
    for scope, title in SCOPE_TITLES.items():
        owner = owners[scope]
        keys = offered(scope, owner)
        if scope == DIAGNOSIS:  # the list's own keys (move, open) live on the list widget
            from wsdoctor.widgets.findings import FindingList

            keys = tuple(k for k in keys) + tuple(k for k in offered(scope, FindingList) if k not in keys)
        if scope == LOGS:
            from wsdoctor.widgets.logview import LogView

            keys = tuple(keys) + tuple(k for k in offered(scope, LogView) if k not in keys)
        sections.append((title, help_rows(keys)))
    return sections


def help_content(sections: Sequence[tuple[str, Sequence[tuple[str, str, str]]]]) -> Content:
    parts: list[Content] = [Content.styled("Signs", "bold $accent")]
    for sign, meaning in SIGNS:
        parts.append(Content.assemble((f"  {sign:<10}", "bold"), meaning))
    parts.append(Content(""))
    for title, rows in sections:
        if not rows:
            continue
        parts.append(Content.styled(title, "bold $accent"))
        for keys, name, sentence in rows:
            parts.append(Content.assemble((f"  {keys:<14}", "bold"), (f"{name:<18}", "bold"), sentence))
        parts.append(Content(""))
    return Content("\n").join(parts)


class HelpScreen(ModalScreen[None]):
    """A modal list of signs and keys; any of Esc, q, ? closes it."""

    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
        #help {
            width: 110;
            max-width: 100%;
            height: auto;
            max-height: 100%;
            border: round $primary;
            border-title-style: bold;
            background: $panel;
            padding: 0 1;
        }
        #help Static { background: $panel; }
    }
    """

    BINDINGS = bindings(HELP)

    def __init__(self, app: App) -> None:
        super().__init__()
        self.sections = help_sections(app)

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help") as box:
            box.border_title = "wsdoctor: signs and keys"
            box.border_subtitle = "↑/↓ scroll · Esc closes"
            yield Static(help_content(self.sections))

    def action_close(self) -> None:
        self.dismiss()
