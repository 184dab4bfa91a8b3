"""`?`: every key of every screen, read from the bindings themselves so the list cannot go stale."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

_KEY_NAMES = {
    "question_mark": "?",
    "slash": "/",
    "escape": "Esc",
    "enter": "Enter",
    "backspace": "Backspace",
    "up": "↑",
    "down": "↓",
    "home": "Home",
    "end": "End",
    "pageup": "PgUp",
    "pagedown": "PgDn",
    "left": "←",
    "right": "→",
    "tab": "Tab",
    "shift+tab": "Shift+Tab",
}


def key_label(keys: str) -> str:
    """`down,j` → `↓ / j`, `ctrl+q` → `Ctrl+Q`."""
    out = []
    for key in keys.split(","):
        key = key.strip()
        if key in _KEY_NAMES:
            out.append(_KEY_NAMES[key])
        elif key.startswith("ctrl+"):
            out.append("Ctrl+" + key[5:].upper())
        else:
            out.append(key)
    return " / ".join(out)


def binding_rows(bindings: Iterable[BindingType]) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for b in bindings:
        if isinstance(b, Binding):  # the tooltip, when there is one, says more than the footer's label
            key, description = b.key, b.tooltip or b.description or b.action
        else:
            key, _action, *rest = b
            description = rest[0] if rest else _action
        rows.append((key_label(key), description))
    return rows


def help_content(sections: Sequence[tuple[str, Sequence[tuple[str, str]]]]) -> Content:
    parts: list[Content] = []
    for title, rows in sections:
        if not rows:
            continue
        parts.append(Content.styled(title, "bold $accent"))
        for key, description in rows:
            parts.append(Content.assemble((f"  {key:<18}", "bold"), description))
        parts.append(Content(""))
    return Content("\n").join(parts)


class HelpScreen(ModalScreen[None]):
    """A modal list of keys; any of Esc, q, ? closes it."""

    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
        #help {
            width: 72;
            max-width: 100%;
            height: auto;
            max-height: 90%;
            border: round $primary;
            border-title-style: bold;
            background: $panel;
            padding: 0 1;
        }
    }
    """

    BINDINGS = [Binding("escape,q,question_mark", "close", "Close")]

    def __init__(self, sections: Sequence[tuple[str, Sequence[tuple[str, str]]]]) -> None:
        super().__init__()
        self.sections = sections

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help") as box:
            box.border_title = "wsdoctor keys"
            box.border_subtitle = "Esc closes"
            yield Static(help_content(self.sections))

    def action_close(self) -> None:
        self.dismiss()
