"""Live logs: the tail of the Socket.IO location's access and error logs, filtered as you type.

The app owns the line store (a capped deque of display lines, filled even while
this screen is hidden); this screen only decides what of it the ``LogView`` shows.
New lines are buffered and written in one batch every 100 ms, so a burst of
10,000 lines a second costs a handful of writes, and keys stay responsive.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from textual.app import ComposeResult
from textual.binding import Binding
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

from wsdoctor.widgets.logview import LOG_CAP, LogView

FLUSH_INTERVAL = 0.1


class LogsScreen(Screen):
    """``/`` filter, ``p`` pause, ``f`` follow, Esc back."""

    DEFAULT_CSS = """
    LogsScreen {
        #log-status {
            background: $boost;
            padding: 0 1;
            height: 1;
            text-wrap: nowrap;
            text-overflow: ellipsis;
        }
        #log-filter {
            display: none;
            height: 1;
            border: none;
            padding: 0 1;
            background: $boost;
            &:focus { background: $primary 30%; }
        }
        &.-filtering #log-filter { display: block; }
    }
    """

    BINDINGS = [
        Binding("slash", "filter", "Filter"),
        Binding("p", "pause", "Pause"),
        Binding("f", "follow", "Follow"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, store: Sequence[str] = (), *, cap: int = LOG_CAP) -> None:
        super().__init__()
        self.store = store  # the app's deque: every kept line, newest last
        self.cap = cap
        self.filter_text = ""
        self.paused = False
        self.missed = 0  # lines that arrived while paused
        self.source_status = "waiting for the log source…"
        self._buffer: list[str] = []
        self._status = ""

    def compose(self) -> ComposeResult:
        yield Static(id="log-status")
        yield LogView(max_lines=self.cap, id="log")
        yield Input(
            placeholder="filter (substring, case-insensitive); Enter keeps it, Esc clears", id="log-filter"
        )
        yield Footer()

    def on_mount(self) -> None:
        self.rerender()
        self.set_interval(FLUSH_INTERVAL, self.flush)
        self.query_one(LogView).focus()

    @property
    def view(self) -> LogView:
        return self.query_one(LogView)

    def matches(self, line: str) -> bool:
        return not self.filter_text or self.filter_text in line.lower()

    # -- data from the app -------------------------------------------------------

    def append(self, lines: Iterable[str]) -> None:
        """New display lines (already in the store); shown at the next flush unless paused."""
        if self.paused:
            self.missed += sum(1 for line in lines if self.matches(line))
            return
        if self.filter_text:
            self._buffer.extend(line for line in lines if self.matches(line))
        else:
            self._buffer.extend(lines)
        if len(self._buffer) > self.cap:
            del self._buffer[: len(self._buffer) - self.cap]

    def set_source_status(self, text: str) -> None:
        self.source_status = text
        if self.is_mounted:
            self.show_status()

    def flush(self) -> None:
        if self._buffer and not self.paused:
            lines, self._buffer = self._buffer, []
            self.view.write_lines(lines)
        self.show_status()

    def rerender(self) -> None:
        """Show the store again through the current filter (after a filter change or on follow)."""
        self._buffer = []
        view = self.view
        view.clear()
        view.write_lines([line for line in self.store if self.matches(line)])
        view.scroll_end(animate=False, immediate=True)
        self.show_status()

    def show_status(self) -> None:
        if self.paused:
            state = Content.styled(f"⏸ paused — {self.missed:,} new lines; f to follow", "bold $warning")
        else:
            state = Content.styled("● following", "bold $success")
        parts = [
            state,
            Content(f"{len(self.view.lines):,} shown / {len(self.store):,} kept (cap {self.cap:,})"),
        ]
        if self.filter_text:
            parts.append(Content.assemble(("filter ", "$text-muted"), (repr(self.filter_text), "bold")))
        parts.append(Content.styled(self.source_status, "$text-muted"))
        status = Content.styled(" · ", "$text-muted").join(parts)
        if status.plain != self._status:  # called 10 times a second: repaint only on change
            self._status = status.plain
            self.query_one("#log-status", Static).update(status)

    # -- actions -------------------------------------------------------------------

    def action_filter(self) -> None:
        self.add_class("-filtering")
        self.query_one("#log-filter", Input).focus()

    def action_pause(self) -> None:
        self.paused = True
        self.view.auto_scroll = False
        self.show_status()

    def action_follow(self) -> None:
        self.paused = False
        self.missed = 0
        self.view.auto_scroll = True
        self.rerender()

    def action_back(self) -> None:
        """Esc in the filter clears it and returns to the lines; elsewhere it leaves the screen."""
        field = self.query_one("#log-filter", Input)
        if field.has_focus:
            field.value = ""
            self.remove_class("-filtering")
            self.view.focus()
            return
        self.dismiss()

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.filter_text = event.value.strip().lower()
        self.missed = 0
        self.rerender()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if not event.value.strip():
            self.remove_class("-filtering")
        self.view.focus()
