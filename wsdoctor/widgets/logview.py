"""Live nginx/backend log lines: one text line per event, tagged with its check, coloured by its class.

A tail can deliver 10,000 lines a second, so the view is a virtual list that renders
only the visible lines, fed in batches, with a line cap.
Each line starts with a severity symbol that the highlighter turns into a colour,
so the meaning survives NO_COLOR and copy-paste:

    ✗ upstream  connect-refused    error  2024/05/01 03:12:09 [error] 811#811: *5 connect() failed …

Lines are sanitized (no escape sequences) and redacted (no tokens) before they are
stored; the view never parses markup.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.highlighter import Highlighter
from rich.text import Text
from textual.cache import LRUCache
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from wsdoctor.facts import LogEvent
from wsdoctor.widgets.render import clean

LOG_CAP = 10_000  # lines kept for display (the diagnosis keeps every classified event)

FAIL, WARN, OK, INFO = "✗", "!", "✓", "·"
_UNCLASSIFIED = {"", "other", "unclassified", "info", "none"}
_LINE_STYLE = {FAIL: "red", WARN: "yellow", OK: "green", INFO: "dim"}
TAG_END = 12  # "✗ " + 9-character check tag + space


def severity(event: LogEvent) -> str:
    """How bad a line is, from its classification: error-log errors and 5xx fail, 4xx warn, 101/2xx pass."""
    if not event.check and (event.kind or "").lower() in _UNCLASSIFIED:
        return INFO
    if event.status is not None:
        if event.status >= 500 or event.status == 499:
            return FAIL
        if event.status >= 400:
            return WARN
        return OK
    if event.source == "error" or "[error]" in event.text or "[crit]" in event.text:
        return FAIL
    return WARN


def format_event(event: LogEvent, secrets: Sequence[str] = ()) -> str:
    """The display line for one event: symbol, check tag, classification, source, the line itself."""
    tag = (event.check or "-")[:9]
    kind = (event.kind or "-")[:18]
    source = (event.source or "")[:7]
    return f"{severity(event)} {tag:<9} {kind:<18} {source:<7} {clean(event.text, secrets, multiline=False)}"


def format_events(events: Iterable[LogEvent], secrets: Sequence[str] = ()) -> list[str]:
    return [format_event(e, secrets) for e in events]


class LogLineHighlighter(Highlighter):
    """Colour a formatted line from its leading symbol: the whole line by severity, the tag in bold."""

    def highlight(self, text: Text) -> None:
        style = _LINE_STYLE.get(text.plain[:1])
        if style:
            text.stylize(style)
        text.stylize("bold", 2, TAG_END)


class LogView(ScrollView, can_focus=True):
    """A capped, virtual list of plain-text lines: appending costs O(batch), rendering only the visible rows.

    Textual's ``Log`` measures every new line's cell width in a thread; at 10,000 lines a
    second that alone costs a fifth of a core. Here the width is ``len`` (log lines are
    overwhelmingly ASCII; a wide character only shortens the horizontal scroll range),
    and a line is turned into a styled strip only when it scrolls into view.
    """

    DEFAULT_CSS = """
    LogView {
        background: $surface;
        color: $text;
        overflow: scroll;
        height: 1fr;
        scrollbar-size-vertical: 1;
        &:focus { background-tint: $foreground 5%; }
    }
    """

    def __init__(self, *, max_lines: int = LOG_CAP, id: str | None = None) -> None:
        super().__init__(id=id)
        self.max_lines = max_lines
        self.auto_scroll = True
        self.highlighter = LogLineHighlighter()
        self._lines: list[str] = []
        self._first = 0  # absolute number of _lines[0] (cache keys survive pruning)
        self._width = 0
        self._cache: LRUCache[int, Strip] = LRUCache(1024)

    @property
    def lines(self) -> Sequence[str]:
        return self._lines

    def write_lines(self, lines: Sequence[str]) -> None:
        """Append LINES (already sanitized), drop the oldest beyond the cap, follow the end if at it."""
        if not lines:
            return
        follow = self.auto_scroll and self.is_vertical_scroll_end and not self.is_vertical_scrollbar_grabbed
        self._lines.extend(lines)
        excess = len(self._lines) - self.max_lines
        if excess > 0:
            del self._lines[:excess]
            self._first += excess
        self._width = max(self._width, max(map(len, lines)))
        self.virtual_size = Size(self._width, len(self._lines))
        if follow:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        self.refresh()

    def clear(self) -> None:
        self._first += len(self._lines)
        self._lines.clear()
        self._width = 0
        self.virtual_size = Size(0, 0)
        self.refresh()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._cache.clear()  # a theme change restyles every line

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.scrollable_content_region.width
        style = self.rich_style
        if index >= len(self._lines):
            return Strip.blank(width, style)
        key = self._first + index
        strip = self._cache.get(key)
        if strip is None:
            text = Text(self._lines[index], no_wrap=True, end="")
            text.stylize(style)
            self.highlighter.highlight(text)
            strip = Strip(text.render(self.app.console), text.cell_len)
            self._cache[key] = strip
        return strip.crop_extend(scroll_x, scroll_x + width, style)
