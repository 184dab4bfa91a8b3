"""Apply a finding's fix from the TUI: the diff, a confirm step, then each step of the apply as it happens.

The apply itself is the headless transaction (wsdoctor.apply): preflight, lock, backup, atomic write,
``nginx -t``, reload, verify, and restore on any failure. It runs in a thread worker on a connection of its own
(the diagnosis keeps its session); a reporter posts each step back as a message, so the screen shows it the
moment it finishes. Everything shown came from the host (paths, nginx's messages): it goes in as Content,
never markup.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import Worker, WorkerState

from wsdoctor.apply.command import ApplyError, ApplyRequest, execute
from wsdoctor.apply.transaction import Outcome, Reporter, Step
from wsdoctor.errors import describe
from wsdoctor.report import Finding
from wsdoctor.target import Target
from wsdoctor.widgets.render import clean, diff_text

Executor = Callable[[ApplyRequest, Reporter], Outcome]

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


class StepStarted(Message):
    def __init__(self, step: str, what: str) -> None:
        super().__init__()
        self.step, self.what = step, what


class StepFinished(Message):
    def __init__(self, step: Step) -> None:
        super().__init__()
        self.step = step


class ApplyNote(Message):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class ApplyDone(Message):
    def __init__(self, outcome: Outcome) -> None:
        super().__init__()
        self.outcome = outcome


class PostingReporter:
    """The transaction's reporter inside a worker thread: every event becomes a message to WIDGET."""

    def __init__(self, widget: StepLog) -> None:
        self.widget = widget

    def note(self, text: str) -> None:
        self.widget.post_message(ApplyNote(text))

    def started(self, step: str, what: str) -> None:
        self.widget.post_message(StepStarted(step, what))

    def finished(self, step: Step) -> None:
        self.widget.post_message(StepFinished(step))

    def show_diff(self, diff: str) -> None:
        pass


class StepLog(Vertical):
    """The steps of an apply, each a line: ✓/✗ (a spinner while it runs), its name and what happened."""

    DEFAULT_CSS = """
    StepLog { height: auto; }
    StepLog > .step { height: auto; }
    StepLog > .note { color: $text-muted; height: auto; }
    StepLog > .summary { margin: 1 0 0 0; text-style: bold; height: auto; }
    StepLog > .summary.-ok { color: $success; }
    StepLog > .summary.-bad { color: $error; }
    """

    def __init__(self, secrets: Sequence[str] = (), **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.secrets = tuple(secrets)
        self.steps: list[Step] = []
        self.outcome: Outcome | None = None
        self._current: Static | None = None
        self._current_text = ""
        self._frame = 0

    def on_mount(self) -> None:
        self.set_interval(0.1, self._spin)

    def reset(self) -> None:
        self.steps.clear()
        self.outcome = None
        self._current = None
        self.remove_children()

    def _line(self, mark: Content, step: str, detail: str) -> Content:
        return Content.assemble(mark, " ", (f"{step:<9}", "bold"), " ", clean(detail, self.secrets))

    def _add(self, widget: Static) -> None:
        """Mount a line and keep it in view (the newest step is what the engineer watches)."""
        self.mount(widget)
        self.call_after_refresh(widget.scroll_visible, animate=False)

    def add_note(self, text: str) -> None:
        self._add(Static(Content(clean(text, self.secrets)), classes="note"))

    def start(self, step: str, what: str) -> None:
        self._current_text = f"{step}|{what}"
        self._current = Static(self._line(Content(SPINNER[0]), step, what + "…"), classes="step")
        self._add(self._current)

    def finish(self, step: Step) -> None:
        self.steps.append(step)
        mark = Content.styled("✓", "bold $success") if step.ok else Content.styled("✗", "bold $error")
        line = self._line(mark, step.step, step.detail)
        if self._current is not None and self._current_text.startswith(step.step + "|"):
            self._current.update(line)
        else:
            self._add(Static(line, classes="step"))
        self._current = None

    def done(self, outcome: Outcome) -> None:
        self.outcome = outcome
        if self._current is not None:
            self._current.remove()
            self._current = None
        ok = outcome.exit_code() == 0
        text = outcome.summary or ("Applied." if outcome.applied else "Not applied.")
        self._add(Static(Content(clean(text, self.secrets)), classes="summary " + ("-ok" if ok else "-bad")))

    def failed(self, sentence: str) -> None:
        if self._current is not None:
            self._current.remove()
            self._current = None
        self._add(Static(Content(clean(sentence, self.secrets)), classes="summary -bad"))

    def _spin(self) -> None:
        if self._current is None:
            return
        self._frame += 1
        step, _, what = self._current_text.partition("|")
        self._current.update(self._line(Content(SPINNER[self._frame % len(SPINNER)]), step, what + "…"))

    # the reporter's messages
    @on(StepStarted)
    def _started(self, message: StepStarted) -> None:
        self.start(message.step, message.what)

    @on(StepFinished)
    def _finished(self, message: StepFinished) -> None:
        self.finish(message.step)

    @on(ApplyNote)
    def _note(self, message: ApplyNote) -> None:
        self.add_note(message.text)


def run_apply_worker(host: Screen, log: StepLog, request: ApplyRequest, executor: Executor) -> Worker:
    """Run REQUEST in a thread worker of HOST, reporting into LOG; ApplyDone is posted to HOST at the end."""

    def work_() -> Outcome:
        outcome = executor(request, PostingReporter(log))
        host.post_message(ApplyDone(outcome))
        return outcome

    return host.run_worker(work_, thread=True, exit_on_error=False, group="apply", name="apply")


def failure_sentence(error: BaseException | None) -> str:
    if isinstance(error, ApplyError):
        return str(error).rstrip(".") + "."
    message = describe(error) if error is not None else None
    return (message or f"the apply stopped: {type(error).__name__}: {error}").rstrip(".") + "."


class ApplyScreen(Screen[bool]):
    """One fix: its diff, ``y`` to apply it (Esc cancels), then the steps live. Dismisses with True when the
    change was applied and verified (the app then re-runs the diagnosis)."""

    DEFAULT_CSS = """
    ApplyScreen {
        #apply-title { background: $boost; padding: 0 1; border-bottom: solid $primary 50%; height: auto; }
        #apply-body { padding: 0 1; }
        .section { margin: 1 0 0 0; text-style: bold; color: $accent; }
        .code { background: $surface; padding: 0 1; width: 100%; }
        #apply-prompt { margin: 1 0 0 0; height: auto; }
    }
    """

    BINDINGS = [
        Binding("y", "confirm", "Apply"),
        Binding("escape,n", "back", "Cancel"),
    ]

    def __init__(
        self,
        request: ApplyRequest,
        *,
        title: str,
        diff: str,
        secrets: Sequence[str] = (),
        executor: Executor = execute,
    ) -> None:
        super().__init__()
        self.request = request
        self.heading = title
        self.diff = diff
        self.secrets = tuple(secrets)
        self.executor = executor
        self.state = "confirm"  # confirm → running → done
        self.outcome: Outcome | None = None

    @property
    def where(self) -> str:
        t = self.request.target
        return t.ssh or "this machine"

    def compose(self) -> ComposeResult:
        yield Static(Content.assemble((clean(self.heading, self.secrets), "bold")), id="apply-title")
        with VerticalScroll(id="apply-body"):
            yield Static("The change (unified diff against the files nginx reads)", classes="section")
            yield Static(diff_text(self.diff, self.secrets), classes="code")
            yield Static(
                Content.assemble(
                    ("Apply it on ", ""),
                    (clean(self.where, self.secrets), "bold"),
                    "? It is backed up first, tested with nginx -t, reloaded and verified live; "
                    "any failure puts the old files back. ",
                    ("y", "bold reverse"),
                    " apply   ",
                    ("Esc", "bold reverse"),
                    " cancel",
                ),
                id="apply-prompt",
            )
            yield Static("Steps", classes="section")
            yield StepLog(self.secrets, id="apply-steps")
        yield Footer()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "confirm":
            return self.state == "confirm"
        return True

    def action_confirm(self) -> None:
        if self.state != "confirm":
            return
        self.state = "running"
        self.query_one("#apply-prompt", Static).update(
            Content.assemble(("Applying on ", ""), (clean(self.where, self.secrets), "bold"), "…")
        )
        self.refresh_bindings()
        run_apply_worker(self, self.query_one(StepLog), self.request, self.executor)

    def on_apply_done(self, message: ApplyDone) -> None:
        self.state = "done"
        self.outcome = message.outcome
        self.query_one(StepLog).done(message.outcome)
        self.query_one("#apply-prompt", Static).update(
            Content("Esc goes back (the diagnosis re-runs if it changed).")
        )
        self.refresh_bindings()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "apply" and event.state is WorkerState.ERROR:
            self.state = "done"
            self.query_one(StepLog).failed(failure_sentence(event.worker.error))
            self.query_one("#apply-prompt", Static).update(Content("Esc goes back."))
            self.refresh_bindings()

    def action_back(self) -> None:
        if self.state == "running":
            self.notify(
                "The apply is running; it ends applied or rolled back in a moment.", severity="warning"
            )
            return
        self.dismiss(bool(self.outcome and self.outcome.applied))


def open_apply(
    app: App[object],
    target: Target,
    finding: Finding,
    findings: Mapping[str, Finding],
    secrets: Sequence[str],
    on_applied: Callable[[], object],
) -> None:
    """Push the ApplyScreen for FINDING's fix (a notification instead when there is nothing to apply)."""
    if finding.fix is None or not finding.fix.diff.strip():
        app.notify("This finding proposes no change to the nginx files to apply.", severity="warning")
        return
    request = ApplyRequest(target=target, fix=[finding.id], yes=True, before=dict(findings))
    try:
        request.validate()
    except ApplyError as e:
        app.notify(f"Cannot apply from here: {e}.", severity="warning", markup=False)
        return
    where = target.ssh or "this machine"
    screen = ApplyScreen(
        request, title=f"Apply the fix of {finding.id} on {where}", diff=finding.fix.diff, secrets=secrets
    )

    def done(applied: bool | None) -> None:
        if applied:
            on_applied()

    app.push_screen(screen, callback=done)
