"""The main screen: the chain header, a stopped run's reason, and the runbook-ordered verdicts, updated in place.

It renders the board the app keeps (``widgets/board.py``): no check logic here. The first failing check is
selected when the run reports it (unless the engineer has moved), and its fix is on the line under it, so
at 80×24 the answer needs no key press; Enter opens the detail, ``n``/``N`` go from problem to problem.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Footer, Static

from wsdoctor.screens.detail import DetailScreen, copy_fix
from wsdoctor.screens.notes import NotesScreen
from wsdoctor.widgets.board import Board, RunState
from wsdoctor.widgets.chain import ChainHeader, chain_content, status_lines
from wsdoctor.widgets.findings import FindingList, FindingPreview
from wsdoctor.widgets.keys import DIAGNOSIS, bindings
from wsdoctor.widgets.render import clean

TIGHT_HEIGHT = 24  # terminal lines at which the notes bar gives its line to the checks


class NotesBar(Static):
    """Gatherer notes ("the access log format lacks $upstream_status…") under the list, one line each;
    ``i`` shows them in full."""

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
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id, classes="-empty")
        self.notes: tuple[str, ...] = ()

    def show(self, notes: Sequence[str]) -> None:
        notes = tuple(notes)
        if notes != self.notes:
            self.notes = notes
            self.lay_out()
            refresh = getattr(self.screen, "refresh_keys", None)
            if refresh is not None:  # `i Notes` shows in the footer only when there are notes
                refresh()

    def lay_out(self) -> None:
        """One line per note, as many as the screen allows (1 under 34 lines, else 3; none at 24 lines and
        less, where every check and the selected fix need the room: the footer's `i Notes` says there are
        some)."""
        self.set_class(not self.notes or self.screen.size.height <= TIGHT_HEIGHT, "-empty")
        room = 1 if self.screen.has_class("-compact") else 3
        lines = [f"! {n}" for n in self.notes]
        if len(lines) > room:
            more = len(self.notes) - room + 1
            lines = [
                *lines[: room - 1],
                f"! {more} {'notes' if more > 1 else 'note'} from gathering: i shows them",
            ]
        self.update(Content("\n".join(lines)))


class StopBanner(Static):
    """A stopped run's reason, whole, with what to do next; shown until dismissed (Esc) or the next run."""

    DEFAULT_CSS = """
    StopBanner {
        height: auto;
        padding: 0 1;
        border-left: thick $error;
        background: $panel;
        &.-hidden { display: none; }
    }
    """

    def show(self, error: str | None) -> None:
        self.set_class(error is None, "-hidden")
        if error is None:
            return
        self.update(
            Content.assemble(
                ("The run stopped: ", "bold $error"),
                (clean(error, multiline=False).rstrip(" .") + ".", "bold"),
                "\n",
                ("r", "bold $accent"),
                " runs it again · ",
                ("o", "bold $accent"),
                " changes the target · ",
                ("Esc", "bold $accent"),
                " hides this",
            )
        )


class DiagnosisScreen(Screen):
    """Header (chain, nginx, SSH, state, totals) over the list of verdicts; notes and a stopped run's reason."""

    BINDINGS = bindings(DIAGNOSIS, but=("move", "jump", "open"))

    DEFAULT_CSS = """
    DiagnosisScreen {
        layout: vertical;
        &.-compact ChainHeader { border-bottom: none; }
        &.-compact NotesBar { max-height: 1; }
    }
    """

    _frame = 0  # the spinners' frame, advanced by the app's tick

    def __init__(self) -> None:
        super().__init__()
        self._secrets: tuple[str, ...] = ()
        self._board: Board | None = None
        self._dismissed: str | None = None  # the stop reason the engineer has hidden

    def compose(self) -> ComposeResult:
        yield ChainHeader(id="chain")
        yield StopBanner(id="stopped", classes="-hidden")
        yield FindingList(id="findings")
        yield FindingPreview(id="preview")
        yield NotesBar(id="notes")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one(FindingList).focus()
        render_state = getattr(self.app, "render_state", None)
        if render_state is not None:  # updates may have arrived before this screen was mounted
            self.call_after_refresh(render_state)

    def on_resize(self) -> None:
        # Under 34 lines: no blank line between issues and no preview (the focus line carries the fix).
        compact = self.size.height < 34
        self.set_class(compact, "-compact")
        self.findings.set_class(compact, "-compact")
        self.query_one(FindingPreview).set_class(compact, "-hidden")
        self.query_one(NotesBar).lay_out()

    @property
    def findings(self) -> FindingList:
        return self.query_one(FindingList)

    def show(
        self,
        board: Board,
        *,
        chain: Sequence[tuple[str, str]],
        notes: Sequence[str],
        nginx_version: str | None,
        secrets: Sequence[str],
        elapsed: float | None,
        ssh: str | None,
    ) -> None:
        """Render the board: rows in place (inside one batch), then the header, the notes and the banner."""
        self._secrets = tuple(secrets)
        self._board = board
        with self.app.batch_update():
            self.findings.show(board, self._secrets)
            self.show_header(board, chain=chain, nginx_version=nginx_version, elapsed=elapsed, ssh=ssh)
            self.query_one(NotesBar).show([clean(n, self._secrets, multiline=False) for n in notes])
            error = board.error if board.state is RunState.STOPPED else None
            if error is None:
                self._dismissed = None
            self.query_one(StopBanner).show(error if error != self._dismissed else None)
            self.show_preview()
        self.refresh_keys()

    def show_header(
        self,
        board: Board,
        *,
        chain: Sequence[tuple[str, str]] | None = None,
        nginx_version: str | None,
        elapsed: float | None,
        ssh: str | None,
    ) -> None:
        header = self.query_one(ChainHeader)
        if chain is not None:
            self._chain = (
                chain_content(chain, self._secrets, wide=True),
                chain_content(chain, self._secrets, wide=False),
            )
        status = status_lines(board, nginx_version=nginx_version, ssh=ssh, elapsed=elapsed, frame=self._frame)
        header.show(getattr(self, "_chain", (Content(""),)), status)

    def show_preview(self) -> None:
        preview = self.query_one(FindingPreview)
        row = self.findings.rows.get(self.findings.selected or "")
        preview.show(row.shown if row is not None else None, self._secrets)

    def on_finding_list_highlighted(self, event: FindingList.Highlighted) -> None:
        event.stop()
        self.show_preview()
        self.refresh_keys()  # `c Copy fix` is offered only on a row that has a fix

    def tick(self, frame: int) -> None:
        """Advance the spinners of pending rows (and of the header's pending count)."""
        self._frame = frame
        self.findings.tick(frame)

    # -- actions ---------------------------------------------------------------------

    def _offered(self) -> tuple[bool, ...]:
        return tuple(bool(self.check_action(a, ())) for a in ("notes", "dismiss", "next_problem", "copy_fix"))

    def refresh_keys(self) -> None:
        """Repaint the footer when the keys it offers changed (not on every update of a run)."""
        offered = self._offered()
        if offered != getattr(self, "_keys_offered", None):
            self._keys_offered = offered
            self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """``i`` is offered only when there are notes, Esc only while a stopped run's reason shows."""
        if action == "notes":
            return bool(self.query_one(NotesBar).notes)
        if action == "dismiss":
            return not self.query_one(StopBanner).has_class("-hidden")
        if action in ("next_problem", "previous_problem"):
            return any(row.shown.problem for row in self.findings.rows.values())
        if action in ("copy_fix", "show_fix"):
            shown = self._selected_shown()
            return shown is not None and shown.finding is not None and shown.finding.fix is not None
        return True

    def action_notes(self) -> None:
        notes = self.query_one(NotesBar).notes
        if notes:
            self.app.push_screen(NotesScreen(notes))

    def action_dismiss(self) -> None:
        if self._board is not None:
            self._dismissed = self._board.error
        self.query_one(StopBanner).show(None)
        self.refresh_keys()

    def action_open(self) -> None:
        self.findings.action_open()

    def action_next_problem(self) -> None:
        self._problem(1)

    def action_previous_problem(self) -> None:
        self._problem(-1)

    def _problem(self, direction: int) -> None:
        if self.findings.next_problem(direction) is None:
            self.notify("No check fails or warns.", timeout=3)

    def _selected_shown(self):
        row = self.findings.rows.get(self.findings.selected or "")
        return row.shown if row is not None else None

    def action_show_fix(self) -> None:
        self._open(self.findings.selected, at_fix=True)

    def action_copy_fix(self) -> None:
        shown = self._selected_shown()
        if shown is None or shown.finding is None:
            self.notify("This check has no verdict yet: nothing to copy.", severity="warning")
            return
        copy_fix(self, shown.finding, self._secrets)

    def on_finding_list_opened(self, event: FindingList.Opened) -> None:
        event.stop()
        self._open(event.check_id)

    def _open(self, check_id: str | None, *, at_fix: bool = False) -> None:
        row = self.findings.rows.get(check_id or "")
        if row is None:
            return
        self.app.push_screen(DetailScreen(row.shown, secrets=self._secrets, error=row.error, at_fix=at_fix))
