"""Live log lines from every source, merged in time order, each tagged with its check and coloured by its kind.

A tail can deliver 10,000 lines a second and a hostile log can hold megabyte lines, so:

- a line is stored cut to ``LINE_CHARS`` characters (with a marker saying how much more there is); the
  whole line goes to a bounded spool on disk (``LogSpool``) and is read back on demand (Enter, ``y``);
- the store and the view are bounded by lines *and* by bytes (``LOG_CAP``, ``LOG_BYTES``);
- lines are ordered by their own timestamp (nginx's error and access logs, backend logs with ISO times),
  so an error-log line and the access-log line of the same request sit together, whichever log was read
  first; a line without a time takes the time of the line before it in the same file;
- the view is a virtual list that renders only the visible rows.

Each row starts with a severity symbol (the meaning survives NO_COLOR and copy-paste) and a short check tag
in the colour of the line's kind; the message gets the rest of the width, its timestamp cut to the time of
day and, for an access line, the status code first, so it is never the part cut off at the right:

    ✗ upstream 03:12:12 [error] *5517 connect() failed (111: Connection refused) while …   (narrow)
    ✗ client   03:12:09 404 GET /socket.io/?EIO=4&transport=polling HTTP/1.1 · 203.0.113.7 153 …
    ✗ upstream  connect-refused    error   03:12:12 [error] *5517 connect() failed (111: Co…   (wide)

Lines are sanitized (no escape sequences) and redacted (no tokens) before they are stored; the view never
parses markup.
"""

from __future__ import annotations

import bisect
import itertools
import re
import tempfile
import threading
import time
import zlib
from collections.abc import Iterable, Sequence
from operator import attrgetter
from typing import NamedTuple

from rich.style import Style
from rich.text import Text
from textual.cache import LRUCache
from textual.events import Click
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from wsdoctor import logkinds
from wsdoctor.facts import LogEvent
from wsdoctor.logtime import log_epoch
from wsdoctor.widgets.keys import LOGS, bindings
from wsdoctor.widgets.render import clean

LOG_CAP = 10_000  # lines kept for display (the diagnosis keeps every classified event)
LOG_BYTES = 16 * 1024 * 1024  # characters kept for display, all lines together
LINE_CHARS = 2_000  # characters of one line kept for display; the rest is in the spool
_MARGIN = 4_096  # cleaned with the kept part, so a token across the cut is redacted whole
SPOOL_BYTES = 64 * 1024 * 1024  # whole long lines kept on disk; the oldest are forgotten beyond this
WIDE = 120  # from this width the kind and the source get columns of their own

FAIL, WARN, OK, INFO = "✗", "!", "✓", "·"
_UNCLASSIFIED = {"", "other", "unclassified", "info", "none"}
TAG = 8  # the check tag's column (check ids are at most 9 long; "buffering" is shortened)
_SHORT_TAG = {"buffering": "buffer"}
NARROW_PREFIX = 2 + TAG + 1  # "✗ " + tag + space
WIDE_PREFIX = 2 + 9 + 1 + 18 + 1 + 7 + 1  # "✗ " + check + kind + source columns

# The timestamps the logs carry: nginx's error log, its access log ($time_local), ISO 8601 (backends, journald).
_ERROR_STAMP = re.compile(r"^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) ")
_ACCESS_STAMP = re.compile(r"\[(\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4})\]")
_ISO_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?)")
# nginx's own prefixes, shortened to the time of day.
_ERROR_PREFIX = re.compile(r"^\d{4}/\d\d/\d\d (\d\d:\d\d:\d\d) (\[\w+\]) \d+#\d+: ")
_ACCESS_LINE = re.compile(
    r'^(\S+) - (\S+) \[\d\d/\w+/\d{4}:(\d\d:\d\d:\d\d) [^\]]*\] "((?:[^"\\]|\\.)*)" (\d{3}) ?(.*)$'
)
_ISO_PREFIX = re.compile(r"^\d{4}-\d\d-\d\d[T ](\d\d:\d\d:\d\d)(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)? ?")


class LogLine(NamedTuple):
    """One display row: when it was written, how it was classified and the line itself (sanitized,
    redacted, cut to LINE_CHARS). Rows compare by (when, seq) first: a list of them sorts in time order
    with no key function (``seq`` is unique, so the comparison never goes further)."""

    when: float  # seconds since the epoch (the line's own time, or the time of the line before it)
    seq: int  # arrival order: ties in time keep it
    mark: str  # severity symbol: FAIL, WARN, OK or INFO (unclassified)
    check: str  # the check the line speaks for, "" when unclassified
    kind: str  # the classification, "" when unclassified
    source: str  # "error", "access", "backend"
    text: str
    where: str  # file[:line]
    size: int = 0  # the whole line's length in characters (more than len(text) when it was cut)
    spool: tuple[int, int, int] | None = None  # where the whole line is in the spool

    @property
    def key(self) -> tuple[float, int]:
        return (self.when, self.seq)

    @property
    def cut(self) -> bool:
        return self.size > len(self.text)

    @property
    def classified(self) -> bool:
        return self.mark != INFO

    @property
    def problem(self) -> bool:
        return self.mark in (FAIL, WARN)

    @property
    def display(self) -> str:
        """The kept text, with a marker when the line was cut."""
        if not self.cut:
            return self.text
        return f"{self.text} …[+{self.size - len(self.text):,} characters: Enter shows the whole line]"

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


class LogSpool:
    """The whole text of long lines, in a temporary file (gone when closed), at most ``limit`` bytes.

    When full it starts over: the lines spooled before say their whole text is no longer kept."""

    def __init__(self, limit: int = SPOOL_BYTES) -> None:
        self.limit = limit
        self._file = None
        self._round = 0
        self._size = 0
        self._lock = threading.Lock()  # written from a worker thread, read on the event loop

    def put(self, text: str) -> tuple[int, int, int]:
        data = text.encode("utf-8", "replace")
        with self._lock:
            return self._put(data)

    def _put(self, data: bytes) -> tuple[int, int, int]:
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="wsdoctor-logs-")  # noqa: SIM115 - open until close()
        if self._size + len(data) > self.limit:
            self._file.seek(0)
            self._file.truncate()
            self._size = 0
            self._round += 1
        self._file.seek(self._size)
        self._file.write(data[: self.limit])
        ref = (self._round, self._size, min(len(data), self.limit))
        self._size += ref[2]
        return ref

    def get(self, ref: tuple[int, int, int]) -> str | None:
        """The text put at REF, or None when the spool has started over since."""
        round_, offset, length = ref
        with self._lock:
            if self._file is None or round_ != self._round:
                return None
            self._file.seek(offset)
            data = self._file.read(length)
        return data.decode("utf-8", "replace")

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


class Incoming(NamedTuple):
    """A line as it arrives: its event (text cut when it was long) and where its whole text was spooled."""

    event: LogEvent
    size: int
    spool: tuple[int, int, int] | None


def receive(event: LogEvent, spool: LogSpool | None) -> Incoming:
    """Spool a long line's whole text at once (unless SPOOL is None: then only its start is kept) and keep
    only what can be shown: memory stays bounded however long the lines a log (or an attacker writing to
    it) produces."""
    size = len(event.text)
    if size <= LINE_CHARS:
        return Incoming(event, size, None)
    ref = spool.put(event.text) if spool is not None else None
    event = LogEvent(**{**event.__dict__, "text": event.text[: LINE_CHARS + _MARGIN]})
    return Incoming(event, size, ref)


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


def line_stamps(event: LogEvent) -> list[str]:
    """The line's timestamp as written: the one its classifier read, then the one at the line's start
    (error log, ISO) or in its brackets (access log)."""
    out = [event.time] if event.time else []
    text = event.text
    if (
        (m := _ERROR_STAMP.match(text))
        or (m := _ISO_STAMP.match(text))
        or (m := _ACCESS_STAMP.search(text, 0, 200))
    ):
        out.append(m.group(1))
    return out


# Arrival numbers, unique in the process: rows of several runs (and formatters) never tie.
_ARRIVALS = itertools.count(1)


class LogFormatter:
    """LogEvents → display rows: the mark, the text cleaned and cut, the line's time, an arrival number.

    ``utc_offset`` is the proxy host's (error-log times carry no zone); until it is known, the zone of
    the access log's ``$time_local`` is used, else this machine's."""

    def __init__(self, secrets: Sequence[str] = (), utc_offset: int | None = None) -> None:
        self.secrets = tuple(secrets)
        self.utc_offset = utc_offset
        self._last: dict[str, float] = {}  # file → the time of its last line
        self._newest = 0.0
        self._stamps: dict[str, float | None] = {}  # a second's lines share their stamp: parse it once

    def _epoch(self, stamp: str) -> float | None:
        cached = self._stamps.get(stamp, False)
        if cached is not False:
            return cached  # type: ignore[return-value]
        offset = self.utc_offset
        if offset is None:
            offset = time.localtime().tm_gmtoff
        when = log_epoch(stamp, offset)
        if len(self._stamps) > 256:
            self._stamps.clear()
        self._stamps[stamp] = when
        return when

    def format(self, item: Incoming | LogEvent) -> LogLine:
        if isinstance(item, LogEvent):
            item = Incoming(item, len(item.text), None)
        event = item.event
        mark = severity(event)
        kind = "" if mark == INFO else (event.kind or "")
        when = None
        for stamp in line_stamps(event):
            when = self._epoch(stamp)
            if when is not None:
                break
        if when is None:
            when = self._last.get(event.file, self._newest)
        else:
            self._last[event.file] = when
            self._newest = max(self._newest, when)
        text = event.text
        long = item.size > LINE_CHARS  # its start was kept; the whole is in the spool, if it still fits
        if long:
            text = clean(text[: LINE_CHARS + _MARGIN], self.secrets, multiline=False)[:LINE_CHARS]
        else:
            text = clean(text, self.secrets, multiline=False)
        where = f"{event.file}:{event.line_no}" if event.line_no is not None else event.file
        return LogLine(
            when,
            next(_ARRIVALS),
            mark,
            event.check or "",
            kind,
            (event.source or "")[:7],
            text,
            clean(where, self.secrets, multiline=False),
            item.size if long else len(text),
            item.spool,
        )

    def format_all(self, items: Iterable[Incoming | LogEvent]) -> list[LogLine]:
        return [self.format(i) for i in items]


def format_event(event: LogEvent, secrets: Sequence[str] = ()) -> LogLine:
    """The display row for one event (tests and one-off uses; a tail keeps one LogFormatter)."""
    return LogFormatter(secrets).format(event)


def format_events(events: Iterable[LogEvent], secrets: Sequence[str] = ()) -> list[LogLine]:
    return LogFormatter(secrets).format_all(events)


def whole_text(line: LogLine, spool: LogSpool | None, secrets: Sequence[str] = ()) -> str | None:
    """The whole line (cleaned and redacted), or None when its long text is no longer in the spool."""
    if not line.cut:
        return line.text
    if spool is None or line.spool is None:
        return None
    text = spool.get(line.spool)
    return None if text is None else clean(text, secrets, multiline=False)


_TEXT = attrgetter("text")


class SortedLines:
    """Rows in time order, bounded by lines and by characters: appending in order is O(batch), a late
    line is merged in at its time (the work is the rows after it, usually the last second's)."""

    def __init__(self, max_lines: int = LOG_CAP, max_bytes: int = LOG_BYTES) -> None:
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self.lines: list[LogLine] = []
        self.bytes = 0

    def __len__(self) -> int:
        return len(self.lines)

    def __iter__(self):
        return iter(self.lines)

    def __getitem__(self, index):
        return self.lines[index]

    def add(self, new: Sequence[LogLine]) -> tuple[int, int]:
        """Add NEW; returns (the index of the first row that moved or was added, rows dropped at the front)."""
        if not new:
            return len(self.lines), 0
        new = sorted(new)  # by (when, seq): see LogLine
        lines = self.lines
        if not lines or new[0] > lines[-1]:
            start = len(lines)
            lines.extend(new)
        else:  # two sorted runs: Timsort merges them in linear time, in C
            start = bisect.bisect_right(lines, new[0])
            tail = lines[start:]
            tail.extend(new)
            tail.sort()
            lines[start:] = tail
        self.bytes += sum(map(len, map(_TEXT, new)))
        drop = max(0, len(lines) - self.max_lines)
        dropped = sum(map(len, map(_TEXT, lines[:drop])))
        while self.bytes - dropped > self.max_bytes and drop < len(lines) - 1:
            dropped += len(lines[drop].text)
            drop += 1
        if drop:
            del lines[:drop]
            self.bytes -= dropped
        return max(0, start - drop), drop

    def clear(self) -> None:
        self.lines.clear()
        self.bytes = 0

    def index(self, key: tuple[float, int]) -> int | None:
        """The index of the row with KEY, or None when it is gone."""
        i = bisect.bisect_left(self.lines, key, key=attrgetter("when", "seq"))
        return i if i < len(self.lines) and self.lines[i].key == key else None


def kind_style(kind: str) -> str:
    """The theme variable of a kind's colour, stable across runs (crc32, not the salted hash())."""
    if not kind:
        return "$text-muted"
    return f"wsdoctor-kind-{zlib.crc32(kind.encode()) % 6}"


def tag(check: str) -> str:
    short = _SHORT_TAG.get(check, check)
    return short if len(short) <= TAG else short[: TAG - 1] + "…"


def short_text(line: LogLine) -> str:
    """The line from its time of day on: nginx's date and pid prefix cut (error log); the time, the status
    and the request first (access log); the date cut (ISO stamps)."""
    text = line.display
    if line.source == "error":
        if m := _ERROR_PREFIX.match(text):
            return f"{m.group(1)} {m.group(2)} {text[m.end() :]}"
    elif line.source == "access":
        if m := _ACCESS_LINE.match(text):
            client, user, clock, request, status, rest = m.groups()
            who = client if user == "-" else f"{client} {user}"
            return f"{clock} {status} {request} · {who} {rest}".rstrip()
    elif m := _ISO_PREFIX.match(text):
        return f"{m.group(1)} {text[m.end() :]}"
    return text


class LogView(ScrollView, can_focus=True, inherit_bindings=False):
    """A bounded, time-ordered, virtual list of log rows: rendering only the visible rows.

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
    }
    LogView > .logview--cursor { background: $wsdoctor-selected; }
    """

    COMPONENT_CLASSES = {"logview--cursor"}

    BINDINGS = bindings(LOGS, only=("cursor", "cursor_page", "cursor_home", "page_sideways"))

    class CursorMoved(Message):
        """The row cursor moved (``line`` None: no row selected)."""

        def __init__(self, view: LogView, line: LogLine | None) -> None:
            super().__init__()
            self.view = view
            self.line = line

        @property
        def control(self) -> LogView:
            return self.view

    def __init__(
        self, *, max_lines: int = LOG_CAP, max_bytes: int = LOG_BYTES, id: str | None = None
    ) -> None:
        super().__init__(id=id)
        self.auto_scroll = True
        self._rows = SortedLines(max_lines, max_bytes)
        self._width = 0  # the longest message
        self._wide = False
        self._cursor: tuple[float, int] | None = None  # the selected row's key
        self._cache: LRUCache[tuple[int, bool], tuple[Strip, Strip]] = LRUCache(1024)
        self._styles: dict[str, Style] = {}

    @property
    def lines(self) -> Sequence[LogLine]:
        return self._rows.lines

    @property
    def max_lines(self) -> int:
        return self._rows.max_lines

    @property
    def prefix_width(self) -> int:
        return WIDE_PREFIX if self._wide else NARROW_PREFIX

    @property
    def cursor(self) -> int | None:
        """The selected row's index, or None."""
        return None if self._cursor is None else self._rows.index(self._cursor)

    @property
    def selected(self) -> LogLine | None:
        index = self.cursor
        return self._rows[index] if index is not None else None

    def write_lines(self, lines: Sequence[LogLine]) -> None:
        """Merge LINES (already sanitized) in time order, drop the oldest beyond the bounds, follow the end."""
        if not lines:
            return
        follow = self.auto_scroll and self.is_vertical_scroll_end and not self.is_vertical_scrollbar_grabbed
        start, dropped = self._rows.add(lines)
        if start < len(self._rows) - len(lines) or dropped:
            self._cache.clear()  # rows moved: the cache is keyed by arrival number, but a cursor row moved too
        if self._cursor is not None and self.cursor is None:
            self.set_cursor(None)
        self._width = max(self._width, max(map(len, map(_TEXT, lines))) + 60)
        self._update_virtual_size()
        if follow:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        self.refresh()

    def clear(self) -> None:
        self._rows.clear()
        self._width = 0
        self.set_cursor(None)
        self._cache.clear()
        self.virtual_size = Size(0, 0)
        self.refresh()

    def _update_virtual_size(self) -> None:
        self.virtual_size = Size(self.prefix_width + self._width, len(self._rows))

    def on_resize(self) -> None:
        wide = self.size.width >= WIDE
        if wide != self._wide:
            self._wide = wide
            self._update_virtual_size()
            self.refresh()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._cache.clear()  # a theme change restyles every line
        self._styles.clear()

    # -- rendering ------------------------------------------------------------------

    def _style(self, spec: str) -> Style:
        """A theme colour (``$error``, ``wsdoctor-kind-3``) as a Rich style, bold optional."""
        style = self._styles.get(spec)
        if style is None:
            bold = spec.startswith("bold ")
            name = spec.removeprefix("bold ").lstrip("$")
            colour = self.app.theme_variables.get(name)
            style = Style(color=colour, bold=bold) if colour else Style(bold=bold)
            self._styles[spec] = style
        return style

    def _strips(self, line: LogLine, base: Style) -> tuple[Strip, Strip]:
        """The row's fixed columns and its message, styled over BASE."""
        console = self.app.console
        mark_style = self._style(
            {FAIL: "bold $error", WARN: "bold $warning", OK: "bold $success"}.get(line.mark, "$text-muted")
        )
        kind = self._style(kind_style(line.kind))
        muted = self._style("$text-muted")
        if self._wide:
            prefix = Text.assemble(
                (line.mark, mark_style),
                " ",
                (f"{line.check or '-':<9} ", Style(bold=True)),
                (f"{line.kind or '-':<18} ", kind),
                (f"{line.source:<7} ", muted),
                end="",
            )
        else:
            prefix = Text.assemble((line.mark, mark_style), " ", (f"{tag(line.check):<{TAG}} ", kind), end="")
        body = Text(short_text(line), no_wrap=True, end="", style=muted if not line.classified else "")
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
        if index >= len(self._rows):
            return Strip.blank(width, style)
        line = self._rows[index]
        if line.key == self._cursor:
            style = style + self.get_component_rich_style("logview--cursor")
            prefix, body = self._strips(line, style)
        else:
            cache_key = (line.seq, self._wide)
            cached = self._cache.get(cache_key)
            if cached is None:
                cached = self._strips(line, style)
                self._cache[cache_key] = cached
            prefix, body = cached
        columns = min(self.prefix_width, width)
        prefix = prefix.crop_extend(0, columns, style)
        return Strip.join([prefix, body.crop_extend(scroll_x, scroll_x + width - columns, style)])

    # -- the row cursor and sideways paging ---------------------------------------------

    def set_cursor(self, index: int | None) -> None:
        """Select a row (by index) or none; scrolls it into view and tells the screen."""
        if index is not None and len(self._rows):
            index = max(0, min(len(self._rows) - 1, index))
            key: tuple[float, int] | None = self._rows[index].key
        else:
            index, key = None, None
        if key == self._cursor:
            return
        self._cursor = key
        if index is not None:
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
        last = min(len(self._rows), self.scroll_offset.y + height) - 1
        return max(0, last)

    def action_cursor(self, delta: int) -> None:
        if not len(self._rows):
            return
        index = self.cursor
        self.set_cursor(self._default_row() if index is None else index + delta)

    def action_cursor_page(self, delta: int) -> None:
        height = max(1, self.scrollable_content_region.height - 1)
        index = self.cursor
        start = index if index is not None else self._default_row()
        self.set_cursor(start + delta * height)

    def action_cursor_home(self) -> None:
        self.set_cursor(0)

    def next_problem(self, direction: int) -> bool:
        """Select the next (previous) ✗ or ! row from the cursor (or from the end); whether there was one."""
        rows = self._rows
        index = self.cursor
        if index is None:
            index = len(rows) if direction < 0 else self._default_row()
        steps = range(index + 1, len(rows)) if direction > 0 else range(index - 1, -1, -1)
        for i in steps:
            if rows[i].problem:
                self.set_cursor(i)
                return True
        return False

    def action_page_sideways(self, direction: int) -> None:
        """Scroll the message by most of its width (the tag columns stay)."""
        page = max(8, self.scrollable_content_region.width - self.prefix_width - 8)
        self.scroll_to(x=max(0, self.scroll_offset.x + direction * page), animate=False)

    def on_click(self, event: Click) -> None:
        index = self.scroll_offset.y + event.y
        if 0 <= index < len(self._rows):
            self.set_cursor(index)
