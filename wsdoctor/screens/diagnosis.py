"""The main screen: the chain header and the runbook-ordered findings, updated in place as facts arrive.

It only renders what the app hands it (``Update`` objects from the headless
diagnosis): no check logic here. Enter on a row opens the detail screen.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.binding import Binding
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Footer, Static

from wsdoctor.diagnose import Update
from wsdoctor.report import CHECK_IDS
from wsdoctor.screens.detail import DetailScreen
from wsdoctor.screens.notes import NotesScreen
from wsdoctor.widgets.chain import ChainHeader, chain_content, status_lines
from wsdoctor.widgets.findings import FindingList, FindingPreview
from wsdoctor.widgets.render import clean


class NotesBar(Static):
    """Gatherer notes ("the access log format lacks $upstream_status…") under the list, one line each;
    ``n`` shows them in full."""

    DEFAULT_CSS = """
    NotesBar {
        height: auto;
        max-height: 3;
        padding: 0 1;
        color: $warning;
        text-wrap: nowrap;
        text-overflow: ellipsis;
        &.-empty { display: none; }
    }
    DiagnosisScreen.-compact NotesBar { max-height: 1; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id, classes="-empty")
        self.notes: tuple[str, ...] = ()

    def show(self, notes: Sequence[str]) -> None:
        notes = tuple(notes)
        if notes != self.notes:
            self.notes = notes
            self.lay_out()
            self.screen.refresh_bindings()  # `n Notes` shows in the footer only when there are notes

    def lay_out(self) -> None:
        """One line per note, as many as the screen allows (1 under 34 lines, else 3)."""
        self.set_class(not self.notes, "-empty")
        room = 1 if self.screen.has_class("-compact") else 3
        lines = [f"! {n}" for n in self.notes]
        if len(lines) > room == 1:
            lines = [f"! {len(self.notes)} notes (n shows them all): {self.notes[0]}"]
        elif len(lines) > room:
            lines = [*lines[: room - 1], f"! +{len(self.notes) - room + 1} more notes: n shows them all"]
        self.update(Content("\n".join(lines)))


class DiagnosisScreen(Screen):
    """Header (chain, nginx, SSH, elapsed, totals) over the list of findings, notes under it."""

    # The app's run-wide keys work everywhere; the footer lists them here, where they matter.
    BINDINGS = [
        Binding("r", "app.rerun", "Rerun"),
        Binding("e", "app.export", "Export"),
        Binding("l", "app.logs", "Logs"),
        Binding("n", "notes", "Notes"),
    ]

    DEFAULT_CSS = """
    DiagnosisScreen {
        layout: vertical;
    }
    """

    _frame = 0  # the spinners' frame, advanced by the app's tick

    def compose(self) -> ComposeResult:
        yield ChainHeader(id="chain")
        yield FindingList(id="findings")
        yield FindingPreview(id="preview")
        yield NotesBar(id="notes")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(FindingList).focus()
        render_state = getattr(self.app, "render_state", None)
        if render_state is not None:  # updates may have arrived before this screen was mounted
            self.call_after_refresh(render_state)

    def on_resize(self) -> None:
        # Under 34 lines: no blank line between issues and no preview, so all 17 rows fit under the header.
        compact = self.size.height < 34
        self.set_class(compact, "-compact")
        self.findings.set_class(compact, "-compact")
        self.query_one(FindingPreview).set_class(compact, "-hidden")
        self.query_one(NotesBar).lay_out()

    @property
    def findings(self) -> FindingList:
        return self.query_one(FindingList)

    def show_update(
        self,
        update: Update | None,
        *,
        secrets: Sequence[str],
        elapsed: float | None,
        ssh: str | None,
        error: str | None,
    ) -> None:
        """Render one update: rows in place (inside one batch), then the header."""
        secrets = tuple(secrets)
        self._secrets = secrets
        with self.app.batch_update():
            if update is not None:
                self.findings.show(update.findings, update.pending, secrets)
            else:  # a new run: nothing decided yet, whatever the last run said
                self.findings.reset()
            self.show_header(update, secrets=secrets, elapsed=elapsed, ssh=ssh, error=error)
            self.show_preview()

    def show_header(
        self,
        update: Update | None,
        *,
        secrets: Sequence[str],
        elapsed: float | None,
        ssh: str | None,
        error: str | None,
    ) -> None:
        facts = update.facts if update is not None else None
        chain = update.chain if update is not None else []
        status = status_lines(
            nginx_version=facts.nginx_version if facts is not None else None,
            ssh=ssh or (facts.ssh_host if facts is not None else None),
            elapsed=elapsed,
            done=bool(update and update.done),
            findings=list(update.findings.values()) if update is not None else [],
            running=update is not None and not update.done,
            error=error,
            pending=update.pending if update is not None else frozenset(),
            expected=len(CHECK_IDS),
            frame=self._frame,
        )
        self.query_one(ChainHeader).show(
            (chain_content(chain, secrets, wide=True), chain_content(chain, secrets, wide=False)), status
        )
        notes = [clean(n, secrets, multiline=False) for n in update.notes] if update is not None else []
        self.query_one(NotesBar).show(notes)

    def show_preview(self) -> None:
        row = self.findings.rows.get(self.findings.selected or "")
        preview = self.query_one(FindingPreview)
        if row is None:
            preview.show(None, True)
        else:
            preview.show(row.finding, row.pending, getattr(self, "_secrets", ()))

    def on_finding_list_highlighted(self, event: FindingList.Highlighted) -> None:
        event.stop()
        self.show_preview()

    def tick(self, frame: int) -> None:
        """Advance the spinners of pending rows (and of the header's pending count)."""
        self._frame = frame
        self.findings.tick(frame)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """``n`` is offered only when there are notes to read."""
        if action == "notes":
            return bool(self.query_one(NotesBar).notes)
        return True

    def action_notes(self) -> None:
        notes = self.query_one(NotesBar).notes
        if notes:
            self.app.push_screen(NotesScreen(notes))

    def action_open_selected(self) -> None:
        self.findings.action_open()

    def on_finding_list_opened(self, event: FindingList.Opened) -> None:
        event.stop()
        row = self.findings.rows.get(event.check_id)
        if row is None or row.finding is None:
            self.notify(
                "No finding yet for this check: its facts are still being gathered.", severity="warning"
            )
            return
        self.app.push_screen(DetailScreen(row.finding, secrets=getattr(self.app, "secrets", ())))
