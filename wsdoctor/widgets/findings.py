"""The runbook's five issues as the spine, each with its checks, then the checklist: one keyed row per check.

Rows are created once (one per check id, in ``report.GROUPS`` order, whatever that holds) and updated in
place from the board (``widgets/board.py``): no rebuild, no flicker, the selection stays put. A row is
one verdict line at any width: the status, the check, the verdict's title (it carries the figure: the
port, the timeout, the path) and as much of its sentence as fits. The selected row gets a second line:
the fix in one line (or what the check waits for), so the answer is on the first screen at 80×24.

Signs: ✗ fail, ! warn, ✓ pass, – skip, ⠋ pending (with what it waits for), ↻ the last run's verdict
while a re-run decides again, ■ not decided because the run stopped, ↪ judged for the corrected request
(the client's own request misses the location it means; the detail says which).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from textual.containers import VerticalScroll
from textual.content import Content
from textual.events import Click
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Static

from wsdoctor.report import GROUPS, Finding, Status
from wsdoctor.widgets.board import Board, Kind, Shown
from wsdoctor.widgets.keys import DIAGNOSIS, bindings
from wsdoctor.widgets.render import STATUS_STYLE, clean, status_badge

# The corrected-request lead ("For the corrected request {path}… (see client): ") is shortened to this
# marker on a row; the focus line, the detail screen and the report say it in full.
CORRECTED_MARK = "↪ "
STALE_MARK = "↻"
FOCUS_LINES = 2  # the selected row's fix (or state) takes at most this many lines
STOPPED_BADGE = ("■", "STOP")


# An absolute file path with a line number ("/etc/nginx/sites-enabled/api.conf:42"): a one-line rendering
# keeps the file's name and line (the detail screen keeps the whole path).
_FILE_LINE = re.compile(r"(?<![\w.:/])/(?:[\w.@+-]+/)+([\w.@+-]+:\d+(?:-\d+)?)")


def one_line(text: str, secrets: Sequence[str] = ()) -> str:
    """Remote text for a one-line rendering: cleaned, on one line, file paths shortened to name:line."""
    return _FILE_LINE.sub(r"\1", clean(text, secrets, multiline=False))


def row_summary(finding: Finding, secrets: Sequence[str] = ()) -> str:
    """FINDING's summary for a one-line row: the corrected-request lead shortened to a marker, the verdict kept."""
    lead = finding.lead
    return (CORRECTED_MARK if lead else "") + one_line(finding.summary[len(lead) :], secrets)


def badge(row: Shown, frame: int = 0) -> Content:
    """The row's status column: `✗ FAIL`, `↻ FAIL` (the last run's), `⠋ ····`, `■ STOP`."""
    if row.kind is Kind.FRESH:
        return status_badge(row.status)
    if row.kind is Kind.STALE:
        _, word, style = STATUS_STYLE[row.status or Status.SKIP]
        return Content.assemble((STALE_MARK, "bold $text-muted"), " ", (word, style))
    if row.kind is Kind.STOPPED:
        return Content.styled(" ".join(STOPPED_BADGE), "bold $text-muted")
    return status_badge(None, frame)


def verdict_line(row: Shown, secrets: Sequence[str], *, title: bool = True) -> Content:
    """What the row says after its check id: the title (unless its group header already shows it), then the
    sentence; pending rows say what they wait for."""
    if row.finding is None:
        name = Content.styled(clean(row.title, secrets, multiline=False), "$text-muted")
        if row.kind is Kind.STOPPED:  # the reason is the run's, said once above the list
            return name
        return Content.assemble(name, "  ", (row.waiting, "$accent"))
    parts: list[Content] = []
    if title:
        parts.append(Content(clean(row.title, secrets, multiline=False)))
    parts.append(Content.styled(row_summary(row.finding, secrets), "$text-muted"))
    return Content("  ").join(parts)


def focus_line(row: Shown, secrets: Sequence[str], error: str | None = None) -> Content:
    """The selected row's second line: the fix in one line, or why there is no verdict (yet)."""
    if row.kind is Kind.STOPPED:
        return Content.styled(
            "not decided: the run stopped before its facts were in (the reason is above)", "$text-muted"
        )
    if row.kind is Kind.PENDING:
        return Content.assemble(("no verdict yet: ", "bold $accent"), (row.waiting, "$accent"))
    f = row.finding
    assert f is not None
    parts: list[Content] = []
    if row.kind is Kind.STALE:
        parts.append(Content.styled(f"{STALE_MARK} the last run's verdict; re-checking", "bold $text-muted"))
    if f.fix is not None:
        parts.append(Content.assemble(("Fix: ", "bold $success"), one_line(f.fix.summary, secrets)))
    elif f.lead and f.corrected:
        parts.append(
            Content.styled(
                f"{CORRECTED_MARK}judged for the corrected request {clean(f.corrected, secrets, multiline=False)}"
                " (the client's own request misses it: see client)",
                "$text-muted",
            )
        )
    else:
        parts.append(Content.styled(one_line(f.summary, secrets), "$text-muted"))
    return Content(" · ").join(parts)


class FindingRow(Widget):
    """One check: a verdict line, and under it (when selected) the fix or what it waits for."""

    DEFAULT_CSS = """
    FindingRow {
        height: 1;
        padding: 0 1 0 2;
        text-wrap: nowrap;
        &.-selected {
            height: auto;
            background: $block-cursor-blurred-background;
        }
    }
    FindingList:focus FindingRow.-selected {
        background: $block-cursor-background;
        color: $block-cursor-foreground;
    }
    """

    spinner_frame: reactive[int] = reactive(0)

    class Clicked(Message):
        def __init__(self, check_id: str) -> None:
            super().__init__()
            self.check_id = check_id

    def __init__(self, check_id: str) -> None:
        super().__init__(id=f"row-{check_id}")
        self.check_id = check_id
        self.shown = Shown(check_id, Kind.PENDING, None, check_id, "starting…")
        self.hide_title = False  # the group header shows this row's title already
        self.secrets: tuple[str, ...] = ()
        self.error: str | None = None

    @property
    def finding(self) -> Finding | None:
        return self.shown.finding

    @property
    def pending(self) -> bool:
        return self.shown.kind is Kind.PENDING

    @property
    def status(self) -> Status | None:
        """The status the row shows (fresh or the last run's); None while it has none."""
        return self.shown.status

    def set_shown(self, shown: Shown, secrets: tuple[str, ...], error: str | None, hide_title: bool) -> bool:
        """Apply new data; repaint only when something visible changed. Returns whether it did."""
        key = (shown, secrets, error, hide_title)
        if key == (self.shown, self.secrets, self.error, self.hide_title):
            return False
        self.shown, self.secrets, self.error, self.hide_title = shown, secrets, error, hide_title
        self.refresh(layout=self.has_class("-selected"))  # the focus line may wrap differently
        return True

    def lines(self, width: int) -> list[Content]:
        """The row at WIDTH: its verdict line cut with "…", and when selected the focus line, wrapped to at
        most FOCUS_LINES lines."""
        row = self.shown
        first = Content.assemble(
            badge(row, self.spinner_frame),
            "  ",
            (f"{self.check_id:<10}", "bold"),
            verdict_line(row, self.secrets, title=not self.hide_title),
        )
        out = [first.truncate(width, ellipsis=True) if first.cell_length > width else first]
        if self.has_class("-selected"):
            wrapped = focus_line(row, self.secrets, self.error).wrap(max(10, width - 2))
            if len(wrapped) > FOCUS_LINES:
                last = wrapped[FOCUS_LINES - 1].rstrip()
                wrapped = [
                    *wrapped[: FOCUS_LINES - 1],
                    Content.assemble(last.truncate(max(1, width - 3)), "…"),
                ]
            out += [Content.assemble("└ " if i == 0 else "  ", line) for i, line in enumerate(wrapped)]
        return out

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self.lines(width))

    def render(self) -> Content:
        return Content("\n").join(self.lines(self.content_size.width or 80))

    def watch_spinner_frame(self) -> None:
        if self.pending:
            self.refresh()

    def on_click(self, event: Click) -> None:
        event.stop()
        self.post_message(self.Clicked(self.check_id))


def group_verdict(
    name: str, rows: Sequence[Shown], secrets: Sequence[str] = ()
) -> tuple[Content, str | None]:
    """What a runbook issue's header says, from what its rows show, and the check whose title it carries.

    A failure or a warning is said in the check's own words, which hold the measured figure ("Backend down:
    127.0.0.1:3352", "proxy_read_timeout 3 s is shorter than the server's ping"), never as the issue's name
    ("502 happening here" when nginx fails over, "drops after 60 s" for a 3 s drop). Nothing is claimed while
    a check is pending; "not happening" needs a check that passed; a group whose checks were all skipped is
    "not checked". The checklist counts instead."""
    checklist = name == "Checklist"
    decided = [r for r in rows if r.finding is not None]
    stale = any(r.kind is Kind.STALE for r in decided)
    mark = f"{STALE_MARK} " if stale else ""
    if checklist:
        if all(r.kind is Kind.STOPPED for r in rows):
            return Content(""), None
        parts = []
        for status, word in ((Status.FAIL, "failing"), (Status.WARN, "to review"), (Status.PASS, "passing")):
            n = sum(1 for r in decided if r.status is status)
            if n:
                symbol, _, style = STATUS_STYLE[status]
                parts.append(Content.styled(f"{symbol} {n} {word}", style))
        skipped = sum(1 for r in decided if r.status is Status.SKIP)
        if skipped:
            parts.append(Content.styled(f"– {skipped} not checked", "$text-muted"))
        if len(decided) < len(rows):
            parts.append(Content.styled(f"{len(rows) - len(decided)} not decided", "$text-muted"))
        body = Content(" · ").join(parts) if parts else Content("")
        return Content.assemble((mark, "$text-muted"), body), None
    for status in (Status.FAIL, Status.WARN):
        worst = next((r for r in decided if r.status is status), None)
        if worst is not None:
            symbol, _, style = STATUS_STYLE[status]
            prefix = f"{symbol} " if status is Status.FAIL else f"{symbol} suspicious: "
            title = clean(worst.title, secrets, multiline=False)
            return Content.assemble((mark, "$text-muted"), (prefix + title, style)), worst.check_id
    if len(decided) < len(rows):
        if all(r.kind is Kind.STOPPED for r in rows):
            return Content(""), None
        if any(r.kind is Kind.STOPPED for r in rows):
            return Content.styled("■ not decided", "$text-muted"), None
        return Content.styled("checking…", "$accent"), None
    passes = sum(1 for r in decided if r.status is Status.PASS)
    skips = len(decided) - passes
    if passes:
        symbol, _, style = STATUS_STYLE[Status.PASS]
        unchecked = f" ({skips} not checked)" if skips else ""
        return Content.assemble((mark, "$text-muted"), (f"{symbol} not happening{unchecked}", style)), None
    return Content.assemble((mark, "$text-muted"), ("– not checked", "$text-muted")), None


class GroupHeader(Widget):
    """A runbook issue ("502 Bad Gateway") and what its checks found."""

    DEFAULT_CSS = """
    GroupHeader {
        height: 1;
        padding: 0 1;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    def __init__(self, index: int, name: str, check_ids: tuple[str, ...]) -> None:
        super().__init__(id=f"group-{index}")
        self.group_name = name
        self.check_ids = check_ids
        self.verdict = Content("")
        self.titled: str | None = None  # the check whose title the header carries

    def set_rows(self, rows: Sequence[Shown], secrets: Sequence[str] = ()) -> None:
        verdict, titled = group_verdict(self.group_name, rows, secrets)
        if (verdict.plain, verdict.spans, titled) != (self.verdict.plain, self.verdict.spans, self.titled):
            self.verdict, self.titled = verdict, titled
            self.refresh()

    def render(self) -> Content:
        if not self.verdict.plain:
            return Content.styled(self.group_name, "bold")
        return Content.assemble((self.group_name, "bold"), "  ", self.verdict)


class FindingList(VerticalScroll, can_focus=True):
    """The keyboard-driven list of rows: ↑/↓ (j/k) move, Enter opens, Home/End jump."""

    DEFAULT_CSS = """
    FindingList {
        height: 1fr;
        scrollbar-size-vertical: 1;
        GroupHeader { margin-top: 1; }
        GroupHeader:first-of-type { margin-top: 0; }
        &.-compact GroupHeader { margin-top: 0; }
    }
    """

    BINDINGS = bindings(DIAGNOSIS, only=("move", "jump", "open"))

    selected: reactive[str | None] = reactive(None)

    class Highlighted(Message):
        """The selection moved (by key, click or a new first failure)."""

        def __init__(self, check_id: str | None) -> None:
            super().__init__()
            self.check_id = check_id

    class Opened(Message):
        """Enter (or a click on the selected row): show this finding's detail."""

        def __init__(self, check_id: str) -> None:
            super().__init__()
            self.check_id = check_id

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.rows: dict[str, FindingRow] = {}
        self.groups: list[GroupHeader] = []
        self.user_moved = False  # once the engineer navigates, updates stop moving the selection

    def compose(self):
        for index, (name, ids) in enumerate(GROUPS):
            header = GroupHeader(index, name, ids)
            self.groups.append(header)
            yield header
            for cid in ids:
                row = FindingRow(cid)
                self.rows[cid] = row
                yield row

    # -- data ----------------------------------------------------------------

    def show(self, board: Board, secrets: tuple[str, ...] = ()) -> None:
        """Update every row and group header in place from the board."""
        for cid in board.check_ids:
            if cid not in self.rows:  # a check this build of the TUI does not know: list it at the end
                row = FindingRow(cid)
                self.rows[cid] = row
                self.mount(row)
        shown = {cid: board.shown(cid) for cid in self.rows}
        titled: set[str] = set()
        for header in self.groups:
            header.set_rows([shown[c] for c in header.check_ids if c in shown], secrets)
            if header.titled:
                titled.add(header.titled)
        for cid, row in self.rows.items():
            row.set_shown(shown[cid], secrets, board.error, cid in titled)
        if not self.user_moved:
            self.selected = self.first_interesting()

    def first_interesting(self) -> str | None:
        """The first failing check, else the first warning, else the first row."""
        for status in (Status.FAIL, Status.WARN):
            for cid, row in self.rows.items():
                if row.status is status:
                    return cid
        return next(iter(self.rows), None)

    def tick(self, frame: int) -> bool:
        """Advance the spinner of pending rows; returns whether any row is still pending."""
        pending = False
        for row in self.rows.values():
            if row.pending:
                row.spinner_frame = frame
                pending = True
        return pending

    # -- selection -------------------------------------------------------------

    def watch_selected(self, old: str | None, new: str | None) -> None:
        if old in self.rows:
            self.rows[old].remove_class("-selected")
        if new in self.rows:
            row = self.rows[new]
            row.add_class("-selected")
            if self.is_mounted:
                self.call_after_refresh(self.scroll_to_widget, row, animate=False)
        self.post_message(self.Highlighted(new))

    def action_move(self, delta: int) -> None:
        order = list(self.rows)
        if not order:
            return
        index = order.index(self.selected) if self.selected in self.rows else -delta
        self.user_moved = True
        self.selected = order[max(0, min(len(order) - 1, index + delta))]

    def action_jump(self, index: int) -> None:
        order = list(self.rows)
        if order:
            self.user_moved = True
            self.selected = order[index]

    def next_problem(self, direction: int) -> str | None:
        """Select the next (or previous) row that shows a failure or a warning, wrapping around; its id."""
        order = list(self.rows)
        problems = [c for c in order if self.rows[c].shown.problem]
        if not problems:
            return None
        here = order.index(self.selected) if self.selected in self.rows else -1
        ahead = [c for c in problems if (order.index(c) - here) * direction > 0]
        if direction > 0:
            target = ahead[0] if ahead else problems[0]
        else:
            target = ahead[-1] if ahead else problems[-1]
        self.user_moved = True
        self.selected = target
        return target

    def action_open(self) -> None:
        if self.selected is not None:
            self.post_message(self.Opened(self.selected))

    def on_finding_row_clicked(self, event: FindingRow.Clicked) -> None:
        event.stop()
        self.focus()
        if self.selected == event.check_id:
            self.post_message(self.Opened(event.check_id))
        else:
            self.user_moved = True
            self.selected = event.check_id


class FindingPreview(Static):
    """Under the list on tall terminals: the selected finding's whole summary and its fix, unabridged."""

    DEFAULT_CSS = """
    FindingPreview {
        height: auto;
        max-height: 8;
        padding: 0 1;
        border-top: solid $primary;
        &.-hidden { display: none; }
    }
    """

    def show(self, row: Shown | None, secrets: tuple[str, ...] = ()) -> None:
        if row is None:
            self.update(Content.styled("Select a check to see its finding.", "$text-muted"))
            return
        head = Content.assemble(
            badge(row),
            "  ",
            (row.check_id, "bold"),
            " — ",
            (clean(row.title, secrets, multiline=False), "bold"),
        )
        finding = row.finding
        if finding is None:
            why = row.waiting if row.kind is Kind.PENDING else "not decided: the run stopped"
            parts = [head, Content.styled(why, "$text-muted")]
        else:
            parts = [head]
            if row.kind is Kind.STALE:
                parts.append(
                    Content.styled(
                        f"{STALE_MARK} the last run's verdict, shown until this run decides", "$text-muted"
                    )
                )
            parts.append(Content(clean(finding.summary, secrets, multiline=False)))
            if finding.fix is not None:
                parts.append(
                    Content.assemble(
                        ("Fix: ", "bold $success"), clean(finding.fix.summary, secrets, multiline=False)
                    )
                )
        self.update(Content("\n").join(parts))
