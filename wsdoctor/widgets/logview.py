"""Live nginx/backend log lines: one row per event, tagged with its check, coloured by its kind.

A tail can deliver 10,000 lines a second, so the view is a virtual list that renders
only the visible rows, fed in batches, with a line cap. Each row starts with a
severity symbol (so the meaning survives NO_COLOR and copy-paste) and a short check
tag in the colour of the line's kind; the message gets the rest of the width:

    ✗ upstream 03:12:12 [error] *5517 connect() failed (111: Connection refused) while …   (narrow)
    ✗ upstream  connect-refused    error   2026/11/26 03:12:12 [error] 811#811: *5517 conn…   (wide)

On narrow terminals the nginx timestamp prefixes are shortened to the time of day (the
selected row's panel and copies keep the whole line). The tag columns stay put when
the message scrolls sideways; ←/→ scroll by a page, ↑/↓ move a row cursor.

Lines are sanitized (no escape sequences) and redacted (no tokens) before they are
stored; the view never parses markup.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.cache import LRUCache
from textual.events import Click
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from wsdoctor import logkinds
from wsdoctor.facts import LogEvent
from wsdoctor.widgets.render import clean

LOG_CAP = 10_000  # lines kept for display (the diagnosis keeps every classified event)
WIDE = 120  # from this width the kind and the source get columns of their own

FAIL, WARN, OK, INFO = "✗", "!", "✓", "·"
_UNCLASSIFIED = {"", "other", "unclassified", "info", "none"}
_MARK_STYLE = {FAIL: "bold red", WARN: "bold yellow", OK: "bold green", INFO: "dim"}
TAG = 8  # the check tag's column (check ids are at most 9 long; "buffering" is shortened)
_SHORT_TAG = {"buffering": "buffer"}
# A colour per kind: any kind (today's, or one a classifier adds tomorrow) gets a stable one.
_KIND_COLOURS = ("magenta", "cyan", "bright_red", "bright_blue", "bright_magenta", "green", "yellow", "blue")
NARROW_PREFIX = 2 + TAG + 1  # "✗ " + tag + space
WIDE_PREFIX = 2 + 9 + 1 + 18 + 1 + 7 + 1  # "✗ " + check + kind + source columns

# nginx's own prefixes, shortened to the time of day on narrow terminals.
_ERROR_PREFIX = re.compile(r"^\d{4}/\d\d/\d\d (\d\d:\d\d:\d\d) (\[\w+\]) \d+#\d+: ")
_ACCESS_PREFIX = re.compile(r"^(\S+) - (\S+) \[\d\d/\w+/\d{4}:(\d\d:\d\d:\d\d) [^\]]*\] ")


class LogLine(NamedTuple):
    """One display row: how it was classified and the line itself (sanitized and redacted)."""

    mark: str  # severity symbol: FAIL, WARN, OK or INFO (unclassified)
    check: str  # the check the line speaks for, "" when unclassified
    kind: str  # the classification, "" when unclassified
    source: str  # "error", "access", "backend"
    text: str
    where: str  # file[:line]

    @property
    def classified(self) -> bool:
        return self.mark != INFO

    @property
    def plain(self) -> str:
        """The row as text (copies, filters, tests): symbol, check, kind, source, the line."""
        return f"{self.mark} {self.check or '-':<9} {self.kind or '-':<18} {self.source:<7} {self.text}"

    def matches(self, needle: str) -> bool:
        """NEEDLE (lower case) occurs in the line or in its check, kind or source."""
        return (
            needle in self.text.lower()
            or needle in self.check
            or needle in self.kind
            or needle in self.source
        )


# How bad each classification is, whichever log reported it (wsdoctor.logkinds): the same kind gets the same
# symbol from the error log and the access log (a socketio-404 is one failure however nginx words it).  Kinds
# the classifiers may add tomorrow fall back to the line's own status or level.
KIND_SEVERITY: dict[str, str] = {
    kind: FAIL if k.severity == logkinds.FAIL else WARN for kind, k in logkinds.KINDS.items()
}


def severity(event: LogEvent) -> str:
    """How bad a line is, from its classification (the kind), so both logs agree; else its status or level."""
    kind = (event.kind or "").lower()
    if not event.check and kind in _UNCLASSIFIED:
        return INFO
    if kind in KIND_SEVERITY:
        return KIND_SEVERITY[kind]
    if event.status is not None:
        if event.status >= 500 or event.status == 499:
            return FAIL
        if event.status >= 400:
            return WARN
        return OK
    if event.source == "error" or "[error]" in event.text or "[crit]" in event.text:
        return FAIL
    return WARN


def format_event(event: LogEvent, secrets: Sequence[str] = ()) -> LogLine:
    """The display row for one event (the text cleaned of escape sequences and secrets)."""
    mark = severity(event)
    kind = "" if mark == INFO else (event.kind or "")
    where = f"{event.file}:{event.line_no}" if event.line_no is not None else event.file
    return LogLine(
        mark,
        event.check or "",
        kind,
        (event.source or "")[:7],
        clean(event.text, secrets, multiline=False),
        clean(where, secrets, multiline=False),
    )


def format_events(events: Iterable[LogEvent], secrets: Sequence[str] = ()) -> list[LogLine]:
    return [format_event(e, secrets) for e in events]


def kind_style(kind: str) -> str:
    """The colour of a kind, stable across runs (crc32, not the salted hash())."""
    if not kind:
        return "dim"
    return "bold " + _KIND_COLOURS[zlib.crc32(kind.encode()) % len(_KIND_COLOURS)]


def tag(check: str) -> str:
    short = _SHORT_TAG.get(check, check)
    return short if len(short) <= TAG else short[: TAG - 1] + "…"


def short_text(line: LogLine) -> str:
    """The line with nginx's date and pid prefix (error log) or date (access log) cut to the time of day."""
    text = line.text
    if line.source == "error":
        if m := _ERROR_PREFIX.match(text):
            return f"{m.group(1)} {m.group(2)} {text[m.end() :]}"
    elif line.source == "access" and (m := _ACCESS_PREFIX.match(text)):
        user = "" if m.group(2) == "-" else f" {m.group(2)}"
        return f"{m.group(3)} {m.group(1)}{user} {text[m.end() :]}"
    return text


class LogView(ScrollView, can_focus=True, inherit_bindings=False):
    """A capped, virtual list of log rows: appending costs O(batch), rendering only the visible rows.

    Textual's ``Log`` measures every new line's cell width in a thread; at 10,000 lines a
    second that alone costs a fifth of a core. Here the width is ``len`` (log lines are
    overwhelmingly ASCII; a wide character only shortens the horizontal scroll range),
    and a row is turned into styled strips only when it scrolls into view.
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
    LogView > .logview--cursor { background: $block-cursor-blurred-background; }
    LogView:focus > .logview--cursor { background: $block-cursor-background 60%; }
    """

    COMPONENT_CLASSES = {"logview--cursor"}

    BINDINGS = [
        Binding("up,k", "cursor(-1)", "Line up", show=False),
        Binding("down,j", "cursor(1)", "Line down", show=False),
        Binding("pageup", "cursor_page(-1)", "Page up", show=False),
        Binding("pagedown", "cursor_page(1)", "Page down", show=False),
        Binding("home", "cursor_home", "First line", show=False),
        Binding("end", "screen.follow", "Follow", show=False),
        Binding("left", "page_sideways(-1)", "Scroll left", show=False),
        Binding("right", "page_sideways(1)", "Scroll right", show=False),
    ]

    class CursorMoved(Message):
        """The row cursor moved (``line`` None: no row selected)."""

        def __init__(self, view: LogView, line: LogLine | None) -> None:
            super().__init__()
            self.view = view
            self.line = line

        @property
        def control(self) -> LogView:
            return self.view

    def __init__(self, *, max_lines: int = LOG_CAP, id: str | None = None) -> None:
        super().__init__(id=id)
        self.max_lines = max_lines
        self.auto_scroll = True
        self._lines: list[LogLine] = []
        self._first = 0  # absolute number of _lines[0] (cache keys and the cursor survive pruning)
        self._width = 0  # the longest message
        self._wide = False
        self.cursor: int | None = None  # absolute number of the selected row
        self._cache: LRUCache[tuple[int, bool], tuple[Strip, Strip]] = LRUCache(1024)

    @property
    def lines(self) -> Sequence[LogLine]:
        return self._lines

    @property
    def prefix_width(self) -> int:
        return WIDE_PREFIX if self._wide else NARROW_PREFIX

    @property
    def selected(self) -> LogLine | None:
        if self.cursor is None:
            return None
        index = self.cursor - self._first
        return self._lines[index] if 0 <= index < len(self._lines) else None

    def write_lines(self, lines: Sequence[LogLine]) -> None:
        """Append LINES (already sanitized), drop the oldest beyond the cap, follow the end if at it."""
        if not lines:
            return
        follow = self.auto_scroll and self.is_vertical_scroll_end and not self.is_vertical_scrollbar_grabbed
        self._lines.extend(lines)
        excess = len(self._lines) - self.max_lines
        if excess > 0:
            del self._lines[:excess]
            self._first += excess
            if self.cursor is not None and self.cursor < self._first:
                self.set_cursor(None)
        self._width = max(self._width, max(len(line.text) for line in lines))
        self._update_virtual_size()
        if follow:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        self.refresh()

    def clear(self) -> None:
        self._first += len(self._lines)
        self._lines.clear()
        self._width = 0
        self.set_cursor(None)
        self.virtual_size = Size(0, 0)
        self.refresh()

    def _update_virtual_size(self) -> None:
        self.virtual_size = Size(self.prefix_width + self._width, len(self._lines))

    def on_resize(self) -> None:
        wide = self.size.width >= WIDE
        if wide != self._wide:
            self._wide = wide
            self._update_virtual_size()
            self.refresh()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._cache.clear()  # a theme change restyles every line

    # -- rendering ------------------------------------------------------------------

    def _strips(self, line: LogLine, base: Style) -> tuple[Strip, Strip]:
        """The row's fixed columns and its message, styled over BASE."""
        console = self.app.console
        if self._wide:
            prefix = Text.assemble(
                (line.mark, _MARK_STYLE[line.mark]),
                " ",
                (f"{line.check or '-':<9} ", "bold"),
                (f"{line.kind or '-':<18} ", kind_style(line.kind)),
                (f"{line.source:<7} ", "dim"),
                end="",
            )
            message = line.text
        else:
            prefix = Text.assemble(
                (line.mark, _MARK_STYLE[line.mark]),
                " ",
                (f"{tag(line.check):<{TAG}} ", kind_style(line.kind)),
                end="",
            )
            message = short_text(line)
        body = Text(message, no_wrap=True, end="", style="dim" if not line.classified else "")
        out = []
        for text in (prefix, body):
            text.stylize_before(base)
            out.append(Strip(text.render(console), text.cell_len))
        return out[0], out[1]

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.scrollable_content_region.width
        style = self.rich_style
        if index >= len(self._lines):
            return Strip.blank(width, style)
        absolute = self._first + index
        line = self._lines[index]
        if absolute == self.cursor:
            style = style + self.get_component_rich_style("logview--cursor")
            prefix, body = self._strips(line, style)
        else:
            key = (absolute, self._wide)
            cached = self._cache.get(key)
            if cached is None:
                cached = self._strips(line, style)
                self._cache[key] = cached
            prefix, body = cached
        columns = min(self.prefix_width, width)
        prefix = prefix.crop_extend(0, columns, style)
        return Strip.join([prefix, body.crop_extend(scroll_x, scroll_x + width - columns, style)])

    # -- the row cursor and sideways paging ---------------------------------------------

    def set_cursor(self, absolute: int | None) -> None:
        """Select a row (absolute number) or none; scrolls it into view and tells the screen."""
        if absolute is not None and self._lines:
            absolute = max(self._first, min(self._first + len(self._lines) - 1, absolute))
        elif absolute is not None:
            absolute = None
        if absolute == self.cursor:
            return
        self.cursor = absolute
        if absolute is not None:
            index = absolute - self._first
            top, height = self.scroll_offset.y, self.scrollable_content_region.height
            if index < top:
                self.scroll_to(y=index, animate=False, immediate=True)
            elif index >= top + height:
                self.scroll_to(y=index - height + 1, animate=False, immediate=True)
        self.refresh()
        self.post_message(self.CursorMoved(self, self.selected))

    def _default_row(self) -> int:
        """Where the cursor starts: the last row on screen."""
        height = self.scrollable_content_region.height
        last = min(len(self._lines), self.scroll_offset.y + height) - 1
        return self._first + max(0, last)

    def action_cursor(self, delta: int) -> None:
        if not self._lines:
            return
        if self.cursor is None:
            self.set_cursor(self._default_row())
        else:
            self.set_cursor(self.cursor + delta)

    def action_cursor_page(self, delta: int) -> None:
        height = max(1, self.scrollable_content_region.height - 1)
        start = self.cursor if self.cursor is not None else self._default_row()
        self.set_cursor(start + delta * height)

    def action_cursor_home(self) -> None:
        self.set_cursor(self._first)

    def action_page_sideways(self, direction: int) -> None:
        """Scroll the message by most of its width (the tag columns stay)."""
        page = max(8, self.scrollable_content_region.width - self.prefix_width - 8)
        self.scroll_to(x=max(0, self.scroll_offset.x + direction * page), animate=False)

    def on_click(self, event: Click) -> None:
        index = self.scroll_offset.y + event.y
        if 0 <= index < len(self._lines):
            self.set_cursor(self._first + index)
