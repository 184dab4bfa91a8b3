"""The runbook's five issues as the spine, each with its checks, then the checklist: one keyed row per check.

Rows are created once (one per check id, in ``report.GROUPS`` order) and updated in
place when an update changes them: no rebuild, no flicker, the selection stays put.
A row renders itself at its own width, so 80 columns and 250 columns both read well.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.events import Click
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Static

from wsdoctor.report import GROUPS, Finding, Status
from wsdoctor.widgets.render import STATUS_STYLE, clean, status_badge

# A finding judged for the corrected request opens with a lead ("For the corrected request {path}… (see
# client): "), which at 80 columns leaves no room for the verdict; the row shows a marker instead (the detail
# screen, the summary panel and the report keep the whole sentence).
CORRECTED_MARK = "↪ "


def row_summary(finding: Finding, secrets: Sequence[str] = ()) -> str:
    """FINDING's summary for a one-line row: the corrected-request lead shortened to a marker, the verdict kept."""
    lead = finding.lead
    return (CORRECTED_MARK if lead else "") + clean(finding.summary[len(lead) :], secrets, multiline=False)


@dataclass(frozen=True)
class RowState:
    """What a row shows; rows compare states to skip redundant repaints."""

    status: Status | None  # None: pending (facts still being gathered)
    title: str
    summary: str


class FindingRow(Widget):
    """One check: status (spinner while pending), id, title, one-line summary."""

    DEFAULT_CSS = """
    FindingRow {
        height: 1;
        padding: 0 1 0 2;
        text-wrap: nowrap;
        text-overflow: ellipsis;
        &.-selected { background: $block-cursor-blurred-background; }
    }
    FindingList:focus FindingRow.-selected {
        background: $block-cursor-background;
        color: $block-cursor-foreground;
        text-style: $block-cursor-text-style;
    }
    """

    spinner_frame: reactive[int] = reactive(0)

    class Clicked(Message):
        def __init__(self, check_id: str) -> None:
            super().__init__()
            self.check_id = check_id

    def __init__(self, check_id: str, title: str = "") -> None:
        super().__init__(id=f"row-{check_id}")
        self.check_id = check_id
        self.state = RowState(None, title or check_id, "waiting for facts…")
        self.finding: Finding | None = None

    def set_state(self, finding: Finding | None, pending: bool, secrets: tuple[str, ...] = ()) -> bool:
        """Apply new data; repaint only when something visible changed. Returns whether it did."""
        self.finding = finding
        if finding is None:
            state = RowState(None, self.state.title, "waiting for facts…")
        else:
            summary = row_summary(finding, secrets)
            state = RowState(
                None if pending else finding.status, clean(finding.title, secrets, multiline=False), summary
            )
            if pending:  # the check's verdict so far would mislead: its facts are still coming
                state = RowState(None, state.title, "gathering facts…")
        if state == self.state:
            return False
        self.state = state
        self.refresh()
        return True

    @property
    def pending(self) -> bool:
        return self.state.status is None

    def render(self) -> Content:
        width = self.content_size.width or 100
        parent = self.parent
        title_width = parent.title_width if isinstance(parent, FindingList) else title_column(width, [])
        title = self.state.title
        if len(title) > title_width - 1:
            title = title[: title_width - 2] + "…"
        summary_style = "$text-muted" if self.state.status in (None, Status.SKIP) else ""
        return Content.assemble(
            status_badge(self.state.status, self.spinner_frame),
            "  ",
            (f"{self.check_id:<10}", "bold"),
            (f"{title:<{title_width}}", ""),
            (self.state.summary, summary_style),
        )

    def watch_spinner_frame(self) -> None:
        if self.pending:
            self.refresh()

    def on_click(self, event: Click) -> None:
        event.stop()
        self.post_message(self.Clicked(self.check_id))


def title_column(width: int, titles: Sequence[str]) -> int:
    """The title column's width for rows WIDTH cells wide: about 20 at 80 columns, growing with the width
    (40% of what follows the status and the id) but never wider than the longest title needs."""
    rest = max(0, width - ROW_PREFIX)
    grown = max(20, int(rest * 0.4))
    longest = max((len(t) for t in titles), default=0) + 2
    return max(20, min(grown, longest)) if titles else max(20, min(grown, 30))


ROW_PREFIX = 6 + 2 + 10  # badge, gap, check id


def verdict(group: str, statuses: Sequence[Status | None]) -> tuple[str, str] | None:
    """What a runbook issue's header says about it, from what its checks decided (None: still pending).

    A failure says "happening here" at once; otherwise nothing is claimed while a check is pending.
    "not happening" needs at least one check that passed, and says how many were not checked; a group
    whose checks were all skipped is "not checked", never "not happening"."""
    decided = [s for s in statuses if s is not None]
    fails = decided.count(Status.FAIL)
    warns = decided.count(Status.WARN)
    passes = decided.count(Status.PASS)
    skips = decided.count(Status.SKIP)
    checklist = group == "Checklist"
    if fails:
        symbol, _, style = STATUS_STYLE[Status.FAIL]
        return f"{symbol} {fails} failing" if checklist else f"{symbol} happening here", style
    if len(decided) < len(statuses):
        return None
    unchecked = f" ({skips} not checked)" if skips else ""
    if warns:
        symbol, _, style = STATUS_STYLE[Status.WARN]
        word = f"{warns} to review" if checklist else "suspicious"
        return f"{symbol} {word}{unchecked}", style
    if passes:
        symbol, _, style = STATUS_STYLE[Status.PASS]
        word = f"{passes} passing" if checklist else "not happening"
        return f"{symbol} {word}{unchecked}", style
    if skips:
        symbol, _, style = STATUS_STYLE[Status.SKIP]
        return f"{symbol} not checked", style
    return None


class GroupHeader(Widget):
    """A runbook issue ("404 Not Found"): its name and a verdict that reflects what its checks did."""

    DEFAULT_CSS = """
    GroupHeader {
        height: 1;
        padding: 0 1;
        text-style: bold;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    def __init__(self, index: int, name: str, check_ids: tuple[str, ...]) -> None:
        super().__init__(id=f"group-{index}")
        self.group_name = name
        self.check_ids = check_ids
        self.verdict: tuple[str, str] | None = None

    def set_statuses(self, statuses: Sequence[Status | None]) -> None:
        """The statuses of this issue's rows (None: pending); repaints only when the verdict changes."""
        new = verdict(self.group_name, statuses)
        if new != self.verdict:
            self.verdict = new
            self.refresh()

    def render(self) -> Content:
        if self.verdict is None:
            return Content.styled(self.group_name, "bold")
        text, style = self.verdict
        return Content.assemble((self.group_name, "bold"), "  ", (text, style))


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

    BINDINGS = [
        Binding("down,j", "move(1)", "Down", show=False),
        Binding("up,k", "move(-1)", "Up", show=False),
        Binding("home", "jump(0)", "First", show=False),
        Binding("end", "jump(-1)", "Last", show=False),
        Binding("enter", "open", "Detail"),
    ]

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
        self.title_width = 20  # the rows' title column, from the list's width and the longest title

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

    def show(
        self, findings: dict[str, Finding], pending: frozenset[str], secrets: tuple[str, ...] = ()
    ) -> None:
        """Update every row in place from one diagnosis update."""
        for cid, finding in findings.items():
            row = self.rows.get(cid)
            if row is None:  # a check this build of the TUI does not know: list it at the end
                row = FindingRow(cid)
                self.rows[cid] = row
                self.mount(row)
            row.set_state(finding, cid in pending, secrets)
        for cid, row in self.rows.items():
            if cid not in findings:
                row.set_state(None, True, secrets)
        self._update_groups()
        self._update_title_width()
        if not self.user_moved:
            self.selected = self.first_interesting()

    def reset(self) -> None:
        """A new run started: every row waits for its facts again (titles stay), verdicts are cleared."""
        for row in self.rows.values():
            row.set_state(None, True)
        self._update_groups()

    def _update_groups(self) -> None:
        for header in self.groups:
            header.set_statuses([self.rows[c].state.status for c in header.check_ids if c in self.rows])

    def _update_title_width(self) -> None:
        width = title_column(
            self.scrollable_content_region.width - 3, [r.state.title for r in self.rows.values()]
        )
        if width != self.title_width:
            self.title_width = width
            for row in self.rows.values():
                row.refresh()

    def on_resize(self) -> None:
        self._update_title_width()

    def first_interesting(self) -> str | None:
        """The first failing check, else the first warning, else the first row."""
        order = list(self.rows)
        for status in (Status.FAIL, Status.WARN):
            for cid in order:
                if self.rows[cid].state.status is status:
                    return cid
        return order[0] if order else None

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
        border-top: solid $primary 50%;
        &.-hidden { display: none; }
    }
    """

    def show(self, finding: Finding | None, pending: bool, secrets: tuple[str, ...] = ()) -> None:
        if finding is None:
            self.update(Content.styled("Select a check to see its finding.", "$text-muted"))
            return
        head = Content.assemble(
            status_badge(None if pending else finding.status),
            "  ",
            (finding.id, "bold"),
            " — ",
            (clean(finding.title, secrets, multiline=False), "bold"),
        )
        parts = [head, Content(clean(finding.summary, secrets, multiline=False))]
        if pending:
            parts[1] = Content.styled("Its facts are still being gathered.", "$text-muted")
        elif finding.fix is not None:
            parts.append(
                Content.assemble(
                    ("Fix: ", "bold $accent"), clean(finding.fix.summary, secrets, multiline=False)
                )
            )
        parts.append(Content.styled("Enter: evidence and fix", "$text-muted"))
        self.update(Content("\n").join(parts))
