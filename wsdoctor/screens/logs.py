"""Live logs: the tail of the Socket.IO location's access and error logs, filtered as you type.

The app owns the line store (a capped deque of rows, filled even while this screen is
hidden); this screen only decides what of it the ``LogView`` shows. New lines are
buffered and written in one batch every 100 ms, so a burst of 10,000 lines a second
costs a handful of writes, and keys stay responsive.

Unclassified lines (nginx's [notice] and [info] chatter, other locations' requests) are
dimmed; ``u`` hides them. ↑/↓ select a row, which pauses the view and shows the whole
line with its classification and file under it; ``y`` copies it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

from wsdoctor.widgets.logview import LOG_CAP, LogLine, LogView

FLUSH_INTERVAL = 0.1
_MARK_CONTENT_STYLE = {"✗": "bold $error", "!": "bold $warning", "✓": "bold $success", "·": "$text-muted"}


def line_panel(line: LogLine) -> Content:
    """The selected row in full: what it was classified as, where it was read, the whole line."""
    if line.classified:
        head = Content.assemble(
            (line.mark, _MARK_CONTENT_STYLE.get(line.mark, "")),
            " ",
            (line.check, "bold"),
            " · ",
            (line.kind, "bold"),
            " · ",
            (f"{line.source} log", "$text-muted"),
        )
    else:
        head = Content.styled(f"· unclassified · {line.source} log", "$text-muted")
    return Content("\n").join([head, Content.styled(line.where, "$text-muted"), Content(line.text)])


class LogsScreen(Screen):
    """``/`` filter, ``p`` pause, ``f`` follow, ``u`` hide unclassified lines, ↑/↓ select, Esc back."""

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
        #log-line {
            display: none;
            height: auto;
            max-height: 8;
            padding: 0 1;
            background: $boost;
            border-top: solid $primary 50%;
        }
        &.-selecting #log-line { display: block; }
    }
    """

    BINDINGS = [
        # priority: `/` then text in one burst (a paste) must move the focus before the text is handed out
        Binding(
            "slash", "filter", "Filter", priority=True, tooltip="Filter: show only lines containing a text"
        ),
        Binding("p", "pause", "Pause", tooltip="Pause: hold the view still, count new lines"),
        Binding("f", "follow", "Follow", tooltip="Follow: show new lines as they arrive"),
        Binding("u", "toggle_noise", "Noise", tooltip="Hide or show unclassified lines (nginx chatter)"),
        Binding("y", "copy_line", "Copy", tooltip="Copy the selected line to the clipboard"),
        Binding("escape", "back", "Back", tooltip="Clear the filter or the selection, else back"),
    ]

    def __init__(self, store: Sequence[LogLine] = (), *, cap: int = LOG_CAP) -> None:
        super().__init__()
        self.store = store  # the app's deque: every kept row, newest last
        self.cap = cap
        self.filter_text = ""
        self.hide_noise = False  # `u`: unclassified lines are not shown
        self.paused = False
        self.missed = 0  # lines that arrived while paused
        self.source_status = "waiting for the log source…"
        self._buffer: list[LogLine] = []
        self._status = ""

    def compose(self) -> ComposeResult:
        yield Static(id="log-status")
        yield LogView(max_lines=self.cap, id="log")
        yield Static(id="log-line")
        yield Input(
            placeholder="filter (substring, case-insensitive); Enter keeps it, Esc clears", id="log-filter"
        )
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.rerender()
        self.set_interval(FLUSH_INTERVAL, self.flush)
        self.query_one(LogView).focus()

    @property
    def view(self) -> LogView:
        return self.query_one(LogView)

    def matches(self, line: LogLine) -> bool:
        if self.hide_noise and not line.classified:
            return False
        return not self.filter_text or line.matches(self.filter_text)

    # -- data from the app -------------------------------------------------------

    def append(self, lines: Iterable[LogLine]) -> None:
        """New rows (already in the store); shown at the next flush unless paused."""
        if self.paused:
            self.missed += sum(1 for line in lines if self.matches(line))
            return
        if self.filter_text or self.hide_noise:
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
        view.scroll_end(animate=False, immediate=True, x_axis=False)
        self.show_status()

    def show_status(self) -> None:
        if self.paused:
            state = Content.styled(f"⏸ paused — {self.missed:,} new lines; f to follow", "bold $warning")
        else:
            state = Content.styled("● following", "bold $success")
        parts = [state, Content(f"{len(self.view.lines):,} shown / {len(self.store):,} kept")]
        if self.filter_text:
            parts.append(Content.assemble(("filter ", "$text-muted"), (repr(self.filter_text), "bold")))
        if self.hide_noise:
            parts.append(Content.styled("noise hidden (u)", "bold"))
        parts.append(Content.styled(self.source_status, "$text-muted"))
        status = Content.styled(" · ", "$text-muted").join(parts)
        if status.plain != self._status:  # called 10 times a second: repaint only on change
            self._status = status.plain
            self.query_one("#log-status", Static).update(status)

    # -- the selected row ------------------------------------------------------------

    def on_log_view_cursor_moved(self, event: LogView.CursorMoved) -> None:
        """Selecting a row holds the view still (new lines are counted) and shows the row in full."""
        event.stop()
        line = event.line
        self.set_class(line is not None, "-selecting")
        if line is None:
            return
        if not self.paused:
            self.action_pause()
        self.query_one("#log-line", Static).update(line_panel(line))

    def action_copy_line(self) -> None:
        line = self.view.selected
        if line is None:
            self.notify("Select a line with ↑/↓ first; y copies it.", severity="warning")
            return
        self.app.copy_to_clipboard(line.text)
        self.notify("Log line copied to the clipboard.")

    # -- actions -------------------------------------------------------------------

    def action_filter(self) -> None:
        field = self.query_one("#log-filter", Input)
        if self.focused is field:  # the priority binding sees every `/`: in the field it is text,
            field.post_message(events.Key("slash", "/"))  # queued behind the keys already handed to it
            return
        self.add_class("-filtering")
        self.set_focus(field)  # at once (Widget.focus() waits a turn): the next key of a burst is text

    def action_pause(self) -> None:
        self.paused = True
        self.view.auto_scroll = False
        self.show_status()

    def action_follow(self) -> None:
        self.paused = False
        self.missed = 0
        self.view.auto_scroll = True
        self.rerender()

    def action_toggle_noise(self) -> None:
        self.hide_noise = not self.hide_noise
        self.missed = 0
        self.rerender()

    def action_back(self) -> None:
        """Esc clears the filter (in the filter field) or the selection first; otherwise it leaves."""
        field = self.query_one("#log-filter", Input)
        if field.has_focus:
            field.value = ""
            self.remove_class("-filtering")
            self.view.focus()
            return
        if self.view.cursor is not None:
            self.view.set_cursor(None)
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
