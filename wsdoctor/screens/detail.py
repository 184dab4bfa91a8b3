"""One check in full: its state, the summary, evidence grouped by kind, the fix as a coloured diff; copy keys.

It shows exactly what the check's row shows (the board's ``Shown``): a fresh verdict; the last run's (↻,
said so) while a re-run decides again; or, with no verdict yet, what the check waits for, and never a
finding built from facts that are still missing. Everything shown came from the network or the proxy host
(config excerpts, server answers, log lines), so it goes in as sanitized, redacted ``Content``: never
markup. The check is re-rendered when a later update changes it (a log line that lands as new evidence).
"""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Static

from wsdoctor.report import Finding
from wsdoctor.widgets.board import Kind, Shown
from wsdoctor.widgets.findings import STALE_MARK, badge
from wsdoctor.widgets.keys import DETAIL, bindings, has_action
from wsdoctor.widgets.render import (
    KIND_TITLES,
    clean,
    code_text,
    diff_text,
    evidence_body,
    evidence_plain,
    fix_plain,
    group_evidence,
)


def fix_text(finding: Finding, secrets: Sequence[str] = ()) -> str:
    """What ``c`` copies: the client code and the diff, or, for a fix that is a sentence, the sentence."""
    text = fix_plain(finding.fix, secrets)
    if text or finding.fix is None:
        return text
    return clean(finding.fix.summary, secrets) + "\n"


def copy_fix(screen: Screen, finding: Finding, secrets: Sequence[str]) -> None:
    """Copy FINDING's fix to the clipboard and say what was copied."""
    text = fix_text(finding, secrets)
    if not text:
        screen.notify("No fix: nothing to change for this check.", severity="warning")
        return
    screen.app.copy_to_clipboard(text)
    fix = finding.fix
    what = "Fix" if fix is not None and (fix.diff or fix.code) else "The fix's sentence"
    screen.notify(f"{what} copied to the clipboard ({len(text.splitlines())} lines).")


class DetailScreen(Screen):
    """Detail of one check; ``c`` copies the fix, ``y`` the evidence, ``n``/``N`` move between problems."""

    DEFAULT_CSS = """
    DetailScreen {
        #detail-title {
            background: $panel;
            padding: 0 1;
            border-bottom: solid $primary;
            height: auto;
        }
        #detail-state {
            padding: 0 1;
            border-left: thick $accent;
            background: $panel;
            height: auto;
            &.-hidden { display: none; }
        }
        #detail-body {
            padding: 0 1;
            scrollbar-size-vertical: 1;
        }
        .summary { margin: 1 0 0 0; }
        .section { margin: 1 0 0 0; text-style: bold; color: $accent; }
        .kind { margin: 1 0 0 0; text-style: bold underline; }
        .kind.-first { margin: 0; }
        .where { color: $text-muted; }
        .where.-next { margin: 1 0 0 0; }
        .code {
            background: $surface;
            padding: 0 1;
            width: 100%;
        }
        .none { color: $text-muted; }
    }
    """

    BINDINGS = bindings(DETAIL)

    def __init__(
        self,
        shown: Shown,
        secrets: Sequence[str] = (),
        *,
        error: str | None = None,
        at_fix: bool = False,
    ) -> None:
        super().__init__()
        self.shown = shown
        self.secrets = tuple(secrets)
        self.error = error
        self.at_fix = at_fix
        self._key: tuple[object, ...] | None = None
        self._next_body: list[Widget] | None = None  # the newest rendering, not mounted yet
        self._swapping = False

    @property
    def check_id(self) -> str:
        return self.shown.check_id

    @property
    def finding(self) -> Finding | None:
        return self.shown.finding

    def compose(self) -> ComposeResult:
        yield Static(id="detail-title")
        yield Static(id="detail-state", classes="-hidden")
        yield VerticalScroll(id="detail-body")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self._show()
        self.query_one("#detail-body").focus()
        if self.at_fix:
            self.call_after_refresh(self._scroll_to_fix)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """A key whose action this screen does not have (yet) is not offered."""
        return has_action(self, action)

    def refresh_shown(self, shown: Shown, error: str | None = None) -> None:
        """A newer state of this check arrived: re-render only if it changed."""
        if shown.check_id != self.check_id:
            return
        self.shown, self.error = shown, error
        if self.is_mounted:
            self._show()

    def _show(self) -> None:
        row, s = self.shown, self.secrets
        f = row.finding
        key = (row.kind, row.waiting, self.error, f.to_json() if f is not None else None)
        if key == self._key:
            return
        self._key = key
        self.query_one("#detail-title", Static).update(
            Content.assemble(
                badge(row),
                "  ",
                (row.check_id, "bold"),
                " — ",
                (clean(row.title, s, multiline=False), "bold"),
            )
        )
        state = self.query_one("#detail-state", Static)
        note = self._state_note()
        state.set_class(note is None, "-hidden")
        if note is not None:
            state.update(note)
        widgets = self._body()
        body = self.query_one("#detail-body", VerticalScroll)
        first = not body.children
        self._next_body = widgets
        if first:  # nothing to replace: mount at once, so the screen's first frame has the finding
            self._next_body = None
            body.mount_all(widgets)
        elif not self._swapping:
            self._swapping = True
            self.run_worker(self._swap_body(), group="detail-body", exit_on_error=False)

    def _state_note(self) -> Content | None:
        row = self.shown
        if row.kind is Kind.STALE:
            waiting = f" ({row.waiting})" if row.waiting else ""
            return Content.assemble(
                (f"{STALE_MARK} The last run's verdict: ", "bold"),
                f"this run has not decided this check yet{waiting}; it is replaced when it has.",
            )
        if row.kind is Kind.PENDING:
            return Content.assemble(
                ("No verdict yet: ", "bold $accent"),
                f"{row.waiting}. The check decides once these facts are in; nothing is guessed before.",
            )
        if row.kind is Kind.STOPPED:
            return Content.assemble(
                ("Not decided: ", "bold $error"),
                f"the run stopped ({clean(self.error or 'see the list', multiline=False)}). r runs it again.",
            )
        return None

    def _body(self) -> list[Widget]:
        f, s = self.shown.finding, self.secrets
        if f is None:
            return [Static(Content("No evidence yet."), classes="none summary")]
        widgets: list[Widget] = [Static(Content(clean(f.summary, s)), classes="summary")]
        widgets.append(Static("Evidence", classes="section"))
        if not f.evidence:
            widgets.append(Static(Content("No evidence recorded for this check."), classes="none"))
        for g, (kind, items) in enumerate(group_evidence(f.evidence)):
            title = KIND_TITLES.get(kind, kind.title())
            widgets.append(Static(Content(title), classes="kind -first" if g == 0 else "kind"))
            for i, ev in enumerate(items):
                where = Content(clean(ev.where, s, multiline=False))
                widgets.append(Static(where, classes="where -next" if i else "where"))
                widgets.append(Static(evidence_body(ev, s), classes="code"))
        widgets.append(Static("Fix", classes="section", id="fix"))
        fix = f.fix
        if fix is None:
            widgets.append(Static(Content("No fix: nothing to change for this check."), classes="none"))
        else:
            widgets.append(Static(Content(clean(fix.summary, s))))
            if fix.code:
                widgets.append(Static(Content("Client code"), classes="where"))
                widgets.append(Static(code_text(fix.code, s), classes="code"))
            if fix.diff:
                widgets.append(Static(Content("Diff (patch -p1 from /)"), classes="where"))
                widgets.append(Static(diff_text(fix.diff, s), classes="code"))
        return widgets

    async def _swap_body(self) -> None:
        """Replace the body with the newest rendering once the old one is really gone.

        ``remove_children`` completes asynchronously; mounting before it did would briefly hold two
        copies (and two ``#fix`` headings: a DuplicateIds crash when log lines land while reading)."""
        body = self.query_one("#detail-body", VerticalScroll)
        try:
            while self._next_body is not None:
                widgets, self._next_body = self._next_body, None
                with self.app.batch_update():
                    await body.remove_children()
                    await body.mount_all(widgets)
        finally:
            self._swapping = False

    # -- actions -------------------------------------------------------------

    def _fix_heading(self) -> Widget | None:
        found = self.query("#fix")
        return found.first() if found else None

    def _scroll_to_fix(self) -> None:
        heading = self._fix_heading()
        if heading is not None:
            body = self.query_one("#detail-body", VerticalScroll)
            body.scroll_to_widget(heading, animate=False, top=True)

    def action_show_fix(self) -> None:
        """Evidence can be long: bring the fix to the top of the pane, or say where it is."""
        heading = self._fix_heading()
        if heading is None:
            self.notify("No verdict yet, so no fix.", severity="warning")
            return
        body = self.query_one("#detail-body", VerticalScroll)
        top = heading.virtual_region.y - body.scroll_offset.y
        if 0 <= top < body.scrollable_content_region.height:
            self.notify("The fix is on screen, under “Fix”; c copies it.", timeout=3)
            return
        body.scroll_to_widget(heading, animate=False, top=True)

    def action_copy_fix(self) -> None:
        if self.finding is None:
            self.notify("No verdict yet: nothing to copy.", severity="warning")
            return
        copy_fix(self, self.finding, self.secrets)

    def action_apply(self) -> None:
        self.app.apply_fix(self.finding)  # type: ignore[attr-defined]

    def action_copy_evidence(self) -> None:
        text = evidence_plain(self.finding, self.secrets) if self.finding is not None else ""
        if not text:
            self.notify("This check has no evidence to copy.", severity="warning")
            return
        self.app.copy_to_clipboard(text)
        self.notify(f"Evidence copied to the clipboard ({len(self.finding.evidence)} items).")

    def action_next_problem(self) -> None:
        self._problem(1)

    def action_previous_problem(self) -> None:
        self._problem(-1)

    def _problem(self, direction: int) -> None:
        """Show the next (previous) failing or suspicious check in place, and select it in the list."""
        board = getattr(self.app, "board", None)
        problems = board.problems() if board is not None else []
        if not problems or problems == [self.check_id]:
            self.notify("No other check fails or warns.", timeout=3)
            return
        order = board.check_ids
        here = order.index(self.check_id) if self.check_id in order else -1
        ahead = [c for c in problems if (order.index(c) - here) * direction > 0]
        target = (
            (ahead[0] if ahead else problems[0]) if direction > 0 else (ahead[-1] if ahead else problems[-1])
        )
        self.shown, self._key = board.shown(target), None
        self.query_one("#detail-body", VerticalScroll).scroll_home(animate=False)
        self._show()
        select = getattr(self.app, "select_check", None)
        if select is not None:
            select(target)

    def action_back(self) -> None:
        self.dismiss()
