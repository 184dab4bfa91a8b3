"""The main screen: the chain header and the runbook-ordered findings, updated in place as facts arrive.

It only renders what the app hands it (``Update`` objects from the headless
diagnosis): no check logic here. Enter on a row opens the detail screen.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Footer

from wsdoctor.diagnose import Update
from wsdoctor.screens.detail import DetailScreen
from wsdoctor.widgets.chain import ChainHeader, chain_content, status_line
from wsdoctor.widgets.findings import FindingList, FindingPreview
from wsdoctor.widgets.render import clean


class DiagnosisScreen(Screen):
    """Header (chain, nginx, SSH, elapsed, totals) over the list of findings."""

    DEFAULT_CSS = """
    DiagnosisScreen {
        layout: vertical;
    }
    """

    def compose(self) -> ComposeResult:
        yield ChainHeader(id="chain")
        yield FindingList(id="findings")
        yield FindingPreview(id="preview")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(FindingList).focus()
        render_state = getattr(self.app, "render_state", None)
        if render_state is not None:  # updates may have arrived before this screen was mounted
            self.call_after_refresh(render_state)

    def on_resize(self) -> None:
        # Under 34 lines: no blank line between issues and no preview, so all 17 rows fit under the header.
        compact = self.size.height < 34
        self.findings.set_class(compact, "-compact")
        self.query_one(FindingPreview).set_class(compact, "-hidden")

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
        chain = chain_content(update.chain if update is not None else [], secrets)
        status = status_line(
            nginx_version=facts.nginx_version if facts is not None else None,
            ssh=ssh or (facts.ssh_host if facts is not None else None),
            elapsed=elapsed,
            done=bool(update and update.done),
            findings=list(update.findings.values()) if update is not None else [],
            running=update is not None and not update.done,
            error=error,
        )
        notes = None
        if update is not None and update.notes:
            first = clean(update.notes[0], secrets, multiline=False)
            more = f" (+{len(update.notes) - 1} more)" if len(update.notes) > 1 else ""
            notes = Content.styled(f"! {first}{more}", "$warning")
        self.query_one(ChainHeader).show(chain, status, notes)

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
        """Advance the spinners of pending rows."""
        self.findings.tick(frame)

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
