"""One finding in full: summary, evidence grouped by kind, the fix as a coloured diff; copy keys.

Everything shown here came from the network or the proxy host (config excerpts,
server answers, log lines), so it goes in as sanitized, redacted ``Content``: never
markup. The finding is re-rendered if a later update changes it (a log line that
lands as new evidence while the engineer is reading).
"""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Static

from wsdoctor.report import Finding
from wsdoctor.widgets.render import (
    KIND_TITLES,
    clean,
    code_text,
    diff_text,
    evidence_body,
    evidence_plain,
    fix_plain,
    group_evidence,
    status_badge,
)


class DetailScreen(Screen):
    """Detail of one finding; ``c`` copies the fix, ``y`` the evidence, Esc goes back."""

    DEFAULT_CSS = """
    DetailScreen {
        #detail-title {
            background: $boost;
            padding: 0 1;
            border-bottom: solid $primary 50%;
            height: auto;
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

    BINDINGS = [
        Binding("f", "show_fix", "Fix"),
        Binding("c", "copy_fix", "Copy fix"),
        Binding("y", "copy_evidence", "Copy evidence"),
        Binding("a", "app.apply_fix", "Apply", show=False, tooltip="Apply the fix's diff on the proxy host"),
        Binding("escape,backspace", "back", "Back"),
    ]

    def __init__(self, finding: Finding, secrets: Sequence[str] = ()) -> None:
        super().__init__()
        self.finding = finding
        self.secrets = tuple(secrets)
        self._shown: dict | None = None
        self._next_body: list[Widget] | None = None  # the newest rendering, not mounted yet
        self._swapping = False

    @property
    def check_id(self) -> str:
        return self.finding.id

    def compose(self) -> ComposeResult:
        yield Static(id="detail-title")
        yield VerticalScroll(id="detail-body")
        yield Footer()

    def on_mount(self) -> None:
        self._render_finding()
        self.query_one("#detail-body").focus()

    def refresh_finding(self, finding: Finding | None) -> None:
        """A newer version of this finding arrived: re-render only if it changed."""
        if finding is None:
            return
        self.finding = finding
        if self.is_mounted and finding.to_json() != self._shown:
            self._render_finding()

    def _render_finding(self) -> None:
        f = self.finding
        self._shown = f.to_json()
        s = self.secrets
        self.query_one("#detail-title", Static).update(
            Content.assemble(
                status_badge(f.status),
                "  ",
                (f.id, "bold"),
                " — ",
                (clean(f.title, s, multiline=False), "bold"),
            )
        )
        body = self.query_one("#detail-body", VerticalScroll)
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
        first = not body.children
        self._next_body = widgets
        if first:  # nothing to replace: mount at once, so the screen's first frame has the finding
            self._next_body = None
            body.mount_all(widgets)
        elif not self._swapping:
            self._swapping = True
            self.run_worker(self._swap_body(), group="detail-body", exit_on_error=False)

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

    def action_show_fix(self) -> None:
        """Evidence can be long: bring the fix to the top of the pane."""
        body = self.query_one("#detail-body", VerticalScroll)
        body.scroll_to_widget(self.query_one("#fix"), animate=False, top=True)

    def action_copy_fix(self) -> None:
        text = fix_plain(self.finding.fix, self.secrets)
        if not text:
            self.notify("This finding has no fix to copy.", severity="warning")
            return
        self.app.copy_to_clipboard(text)
        self.notify(f"Fix copied to the clipboard ({len(text.splitlines())} lines).")

    def action_copy_evidence(self) -> None:
        text = evidence_plain(self.finding, self.secrets)
        if not text:
            self.notify("This finding has no evidence to copy.", severity="warning")
            return
        self.app.copy_to_clipboard(text)
        self.notify(f"Evidence copied to the clipboard ({len(self.finding.evidence)} items).")

    def action_back(self) -> None:
        self.dismiss()
