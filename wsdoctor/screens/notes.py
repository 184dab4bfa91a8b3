"""`i`: the gatherers' notes in full (the diagnosis screen shows each on one line, cut to its width)."""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

from wsdoctor.widgets.keys import NOTES, bindings


class NotesScreen(ModalScreen[None]):
    """A modal list of notes (remote text: shown literally); Esc, q or i closes it."""

    DEFAULT_CSS = """
    NotesScreen {
        align: center middle;
        #notes-box {
            width: 90;
            max-width: 100%;
            height: auto;
            max-height: 90%;
            border: round $warning;
            color: $text;
            border-title-style: bold;
            background: $panel;
            padding: 0 1;
        }
        .note { margin-bottom: 1; }
    }
    """

    BINDINGS = bindings(NOTES)

    def __init__(self, notes: Sequence[str]) -> None:
        super().__init__()
        self.notes = tuple(notes)

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="notes-box") as box:
            box.border_title = "Notes from gathering the facts"
            box.border_subtitle = "Esc closes"
            for note in self.notes:
                yield Static(Content(f"! {note}"), classes="note")

    def action_close(self) -> None:
        self.dismiss()
