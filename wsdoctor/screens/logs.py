"""Live logs: every log source of the Socket.IO location, merged in time order, filtered as you type.

The app owns the line store (time-ordered, bounded by lines and bytes, filled even while this screen is
hidden); this screen only decides what of it the ``LogView`` shows. New lines are buffered and written in
one batch every 100 ms, so a burst of 10,000 lines a second costs a handful of writes and keys stay
responsive. The status line says whether the view is live, paused, or behind a flood.

Noise (lines no check speaks for: nginx's [notice] chatter, other locations' requests) is muted; ``u``
hides it. ↑/↓ select a row, which pauses the view and shows the row in full under it; Enter opens a
long line whole; ``y`` copies it; ``n``/``N`` jump between ✗ and ! lines.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from textual import events
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Input, Log, Static

from wsdoctor.widgets.keys import LOGS, WHOLE_LINE, bindings
from wsdoctor.widgets.logview import LOG_BYTES, LOG_CAP, LogLine, LogView

FLUSH_INTERVAL = 0.1
_MARK_CONTENT_STYLE = {"✗": "bold $error", "!": "bold $warning", "✓": "bold $success", "·": "$text-muted"}
PANEL_CHARS = 600  # of a long line, shown under the view (Enter shows it whole)


def line_panel(line: LogLine) -> Content:
    """The selected row in full: what it was classified as, where it was read, the line (a long one cut,
    and said so first: the panel is a few lines high)."""
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
        head = Content.styled(f"· noise (no check speaks for it) · {line.source} log", "$text-muted")
    long = line.cut or len(line.text) > PANEL_CHARS
    if long:
        head = Content.assemble(
            head, " · ", (f"{line.size:,} characters: Enter shows the whole line", "bold $accent")
        )
    text = Content(line.text[:PANEL_CHARS] + " …" if long else line.text)
    return Content("\n").join([head, Content.styled(line.where, "$text-muted"), text])


class WholeLineScreen(ModalScreen[None]):
    """One log line, whole, however long: wrapped at the screen's width in a scrollable view."""

    DEFAULT_CSS = """
    WholeLineScreen {
        align: center middle;
        #whole {
            width: 100%;
            height: 100%;
            border: round $primary;
            border-title-style: bold;
            background: $panel;
        }
        #whole Log { background: $panel; }
    }
    """

    BINDINGS = bindings(WHOLE_LINE)

    def __init__(self, line: LogLine, text: str | None) -> None:
        super().__init__()
        self.line = line
        self.text = text

    def compose(self) -> ComposeResult:
        with Vertical(id="whole") as box:
            box.border_title = f"{self.line.source} log · {self.line.where} · {self.line.size:,} characters"
            box.border_subtitle = "y copies it · Esc closes"
            yield Log(id="whole-text", highlight=False)
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        log = self.query_one(Log)
        if self.text is None:
            log.write_line(
                "The whole line is no longer kept (the spool of long lines has started over); its start:"
            )
            log.write_line(self.line.text)
            return
        width = max(20, self.size.width - 6)
        log.write_lines(self.text[i : i + width] for i in range(0, len(self.text), width))
        log.scroll_home(animate=False)

    def action_copy(self) -> None:
        if self.text is None:
            self.notify("The whole line is no longer kept.", severity="warning")
            return
        self.app.copy_to_clipboard(self.text)
        self.notify(f"The whole line copied to the clipboard ({len(self.text):,} characters).")

    def action_close(self) -> None:
        self.dismiss()


class LogsScreen(Screen):
    """``/`` filter, ``p`` pause and follow, ``u`` noise, ↑/↓ select, Enter the whole line, Esc back."""

    DEFAULT_CSS = """
    LogsScreen {
        #log-status {
            background: $panel;
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
            background: $panel;
            &:focus { background: $wsdoctor-selected; }
        }
        &.-filtering #log-filter { display: block; }
        #log-line {
            display: none;
            height: auto;
            max-height: 8;
            padding: 0 1;
            background: $panel;
            border-top: solid $primary;
        }
        &.-selecting #log-line { display: block; }
    }
    """

    BINDINGS = bindings(LOGS, but=("cursor", "cursor_page", "cursor_home", "page_sideways"))

    def __init__(
        self,
        store: Sequence[LogLine] = (),
        *,
        cap: int = LOG_CAP,
        max_bytes: int = LOG_BYTES,
        whole: Callable[[LogLine], str | None] | None = None,
    ) -> None:
        super().__init__()
        self.store = store  # the app's time-ordered rows, newest last
        self.cap = cap
        self.max_bytes = max_bytes
        self.whole = whole or (lambda line: line.text if not line.cut else None)
        self.filter_text = ""
        self.hide_noise = False  # `u`: unclassified lines are not shown
        self.paused = False
        self.missed = 0  # lines that arrived while paused
        self.source_status = Content.styled("waiting for the log source…", "$text-muted")
        self._buffer: list[LogLine] = []
        self._status = ""

    def compose(self) -> ComposeResult:
        yield Static(id="log-status")
        yield LogView(max_lines=self.cap, max_bytes=self.max_bytes, id="log")
        yield Static(id="log-line")
        yield Input(
            placeholder="filter (substring, case-insensitive); Enter keeps it, Esc clears", id="log-filter"
        )
        yield Footer(compact=True, show_command_palette=False)

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

    def set_source_status(self, status: Content | str) -> None:
        self.source_status = status if isinstance(status, Content) else Content.styled(status, "$text-muted")
        if self.is_mounted and self.query(LogView):
            self.show_status()

    def flush(self) -> None:
        if not self.is_mounted or not self.query(LogView):  # the app is closing
            return
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
            state = Content.styled(f"⏸ paused: {self.missed:,} new lines · p follows", "bold $warning")
        else:
            state = Content.styled("● following", "bold $success")
        parts = [state, Content(f"{len(self.view.lines):,} shown / {len(self.store):,} kept")]
        if self.filter_text:
            parts.append(Content.assemble(("filter ", "$text-muted"), (repr(self.filter_text), "bold")))
        if self.hide_noise:
            parts.append(Content.styled("noise hidden (u)", "bold"))
        parts.append(self.source_status)
        status = Content.styled(" · ", "$text-muted").join(parts)
        if status.markup != self._status:  # called 10 times a second: repaint only on change
            self._status = status.markup
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
            self._pause()
        self.query_one("#log-line", Static).update(line_panel(line))

    def action_copy_line(self) -> None:
        line = self.view.selected
        if line is None:
            self.notify("Select a line with ↑/↓ first; y copies it.", severity="warning")
            return
        text = self.whole(line)
        if text is None:
            self.notify("The whole line is no longer kept; its first part was copied.", severity="warning")
            text = line.text
        self.app.copy_to_clipboard(text)
        self.notify(f"Log line copied to the clipboard ({len(text):,} characters).")

    def action_whole_line(self) -> None:
        line = self.view.selected
        if line is None:
            self.notify("Select a line with ↑/↓ first; Enter shows it whole.", severity="warning")
            return
        self.app.push_screen(WholeLineScreen(line, self.whole(line)))

    def action_next_problem(self) -> None:
        self._problem(1)

    def action_previous_problem(self) -> None:
        self._problem(-1)

    def _problem(self, direction: int) -> None:
        if not self.view.next_problem(direction):
            where = "after" if direction > 0 else "before"
            self.notify(f"No ✗ or ! line {where} this one.", timeout=3)

    # -- actions -------------------------------------------------------------------

    def action_filter(self) -> None:
        field = self.query_one("#log-filter", Input)
        if self.focused is field:  # the priority binding sees every `/`: in the field it is text,
            field.post_message(events.Key("slash", "/"))  # queued behind the keys already handed to it
            return
        self.add_class("-filtering")
        self.set_focus(field)  # at once (Widget.focus() waits a turn): the next key of a burst is text

    def _pause(self) -> None:
        self.paused = True
        self.view.auto_scroll = False
        self.show_status()

    def action_pause(self) -> None:
        """``p`` pauses, ``p`` again follows."""
        if self.paused:
            self.action_follow()
        else:
            self._pause()

    def action_follow(self) -> None:
        self.paused = False
        self.missed = 0
        self.view.auto_scroll = True
        self.view.set_cursor(None)
        self.rerender()

    def action_toggle_noise(self) -> None:
        self.hide_noise = not self.hide_noise
        self.missed = 0
        self.rerender()

    def action_back(self) -> None:
        """Esc clears the filter (typed or kept), then the selection; otherwise it goes back."""
        field = self.query_one("#log-filter", Input)
        if field.has_focus or self.filter_text:
            field.value = ""
            self.filter_text = ""
            self.remove_class("-filtering")
            self.view.focus()
            self.rerender()
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
