"""The diagnosis header: the chain the engine computed, nginx version, SSH host, elapsed time, totals.

The chain (URL → request → namespace → location → upstream URI) is the one thing an
engineer needs to see to understand a 404: what the client really asks for and where
nginx sends it. All of it may come from remote config, so it is shown as plain text.

The header is laid out for its width, never for a fixed terminal: at most two lines of
chain (cut with "…" when longer; the detail screens hold the rest) and one status line
whose totals shrink to symbols on narrow terminals, so at 80×24 it takes three lines.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from textual.content import Content
from textual.geometry import Size
from textual.widget import Widget

from wsdoctor.report import Status
from wsdoctor.widgets.board import Board, Kind, RunState
from wsdoctor.widgets.render import SPINNER, STATUS_STYLE, clean

CHAIN_LINES = 2  # the chain never takes more than this many lines
WIDE = 120  # from this width the chain shows where a location is defined
_WHERE = re.compile(r"^(?P<value>.*?) \((?P<where>[^()]*:\d+(?:-\d+)?)\)$")


def chain_content(
    chain: Sequence[tuple[str, str]], secrets: Sequence[str] = (), *, wide: bool = True
) -> Content:
    """`key value → key value …`; a value that repeats its key ("location location /x/") says it once.
    Only WIDE shows a location's `(file:line)` (muted) and the request's method and query."""
    if not chain:
        return Content.styled("no target yet", "$text-muted")
    parts: list[Content] = []
    for key, value in chain:
        value = clean(value, secrets, multiline=False)
        if value.startswith(key + " "):
            value = value[len(key) + 1 :]
        if key == "request" and not wide:  # "GET /socket.io/?EIO=4&transport=polling" → "/socket.io/"
            value = value.removeprefix("GET ").split("?", 1)[0]
        where = ""
        if m := _WHERE.match(value):
            value, where = m.group("value"), m.group("where")
        piece = Content.assemble((key + " ", "$text-muted"), (value, "bold"))
        if where and wide:
            piece = Content.assemble(piece, (f" ({where})", "$text-muted"))
        parts.append(piece)
    return Content.styled(" → ", "$accent").join(parts)


def status_lines(
    board: Board,
    *,
    nginx_version: str | None,
    ssh: str | None,
    elapsed: float | None,
    frame: int = 0,
) -> list[Content]:
    """The status line, longest first: the header shows the first that fits its width.

    It says the run's state (running, re-running, stopped, done) and what is running now, then the rows'
    totals by what they show: a stale verdict (↻, the last run's) counts under its status and as stale, so
    the totals always add up to what the list shows."""
    tally = board.totals()
    state = board.state
    nginx = Content.assemble(("nginx ", "$text-muted"), nginx_version or "?")
    host = Content.assemble(("ssh ", "$text-muted"), clean(ssh, multiline=False) if ssh else "—")
    clock = f"{elapsed:.1f} s" if elapsed is not None else ""
    activity = Content("")
    if state is RunState.STOPPED:
        long_state = short_state = Content.styled("■ stopped (see below)", "bold $error")
    elif state is RunState.DONE:
        long_state = Content.styled(f"done in {clock}" if clock else "done", "$success")
        short_state = Content.styled(clock or "done", "$success")
    elif state is RunState.RUNNING:
        word = "re-running" if board.rerunning else "running"
        long_state = Content.styled(f"{word} {clock}".strip(), "$accent")
        short_state = Content.styled(f"{'↻' if board.rerunning else '▶'} {clock}".strip(), "$accent")
        activity = Content.styled(board.activity(), "$accent")
    else:
        long_state = short_state = Content.styled("idle: no target yet", "$text-muted")

    def totals(words: bool) -> Content:
        out = []
        for status in (Status.FAIL, Status.WARN, Status.PASS, Status.SKIP):
            symbol, word, style = STATUS_STYLE[status]
            label = f"{symbol} {tally[status]} {word.lower()}" if words else f"{symbol}{tally[status]}"
            out.append(Content.styled(label, style))
        extra = (
            (Kind.PENDING, SPINNER[frame % len(SPINNER)], "pending", "$accent"),
            (Kind.STALE, "↻", "last run's", "$text-muted"),
            (Kind.STOPPED, "■", "not decided", "$text-muted"),
        )
        for kind, symbol, word, style in extra:
            if tally[kind]:
                out.append(
                    Content.styled(
                        f"{symbol} {tally[kind]} {word}" if words else f"{symbol}{tally[kind]}", style
                    )
                )
        return Content(" ").join(out)

    dot = Content.styled(" · ", "$text-muted")

    def line(*parts: Content) -> Content:
        return dot.join(p for p in parts if p)

    return [
        line(nginx, host, long_state, totals(True), activity),
        line(nginx, host, long_state, totals(True)),
        line(nginx, host, long_state, totals(False), activity),
        line(nginx, host, long_state, totals(False)),
        line(nginx, host, short_state, totals(False)),
        line(Content(nginx_version or "nginx ?"), totals(False), short_state, host),
    ]


def fit(variants: Sequence[Content], width: int) -> Content:
    """The first variant that fits WIDTH cells, else the last one cut with an ellipsis."""
    for content in variants:
        if content.cell_length <= width:
            return content
    return variants[-1].truncate(max(1, width), ellipsis=True)


def header_lines(chain: Sequence[Content], status: Sequence[Content], width: int) -> list[Content]:
    """The header's lines at WIDTH: the chain in at most CHAIN_LINES lines, then one status line.

    ``chain`` holds the wide and the narrow form of the chain."""
    width = max(1, width)
    body = chain[0] if width >= WIDE or len(chain) == 1 else chain[1]
    lines = body.wrap(width)
    if len(lines) > CHAIN_LINES:
        last = lines[CHAIN_LINES - 1].rstrip()
        if last.cell_length >= width:
            last = last.truncate(width - 1)
        lines = [*lines[: CHAIN_LINES - 1], Content.assemble(last, ("…", "$text-muted"))]
    return [*lines, fit(status, width)]


class ChainHeader(Widget):
    """The chain (at most two lines) over one status line, laid out for the current width."""

    DEFAULT_CSS = """
    ChainHeader {
        background: $boost;
        padding: 0 1;
        height: auto;
        border-bottom: solid $primary;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._chain: tuple[Content, ...] = (Content(""),)
        self._status: tuple[Content, ...] = (Content(""),)
        self._last: tuple[object, ...] | None = None

    def show(self, chain: Sequence[Content], status: Sequence[Content]) -> None:
        """New header data (the chain's wide and narrow forms, the status variants); repaints only on change."""
        key = tuple((c.plain, tuple(c.spans)) for c in (*chain, *status))  # Content == compares text only
        if key == self._last:
            return
        old_chain = tuple(c.plain for c in self._chain)
        self._last = key
        self._chain, self._status = tuple(chain), tuple(status)
        self.refresh(layout=old_chain != tuple(c.plain for c in self._chain))

    @property
    def lines(self) -> list[Content]:
        return header_lines(self._chain, self._status, self.content_size.width)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(header_lines(self._chain, self._status, width))

    def render(self) -> Content:
        return Content("\n").join(self.lines)
