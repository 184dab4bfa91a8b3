"""The TUI: a live diagnosis an on-call engineer drives with the keyboard.

The app renders what the headless diagnosis streams (``Diagnosis.updates()``) and
what the log source tails; it holds no check logic. One rule for background work:
the diagnosis and the log tail run as workers (``exit_on_error=False``, one group
each) that never touch widgets; they post typed messages, and failures are shown in
one place (``on_worker_state_changed``) while the app stays up.

Both sources are injectable so tests and screenshots drive the screens with
recorded findings and fake log streams (the defaults are the real ones):

- ``diagnosis_factory(target, session) -> Diagnosis`` (default: ``Diagnosis``);
- ``log_source_factory(session, facts) -> AsyncIterator[list[LogEvent]]``: batches of
  classified lines, cancellable (closing the iterator must stop any remote tail). It
  may raise an exception whose text is one sentence (e.g. why there is no log source);
  that sentence is shown on the logs screen. Default: ``default_log_source`` (the
  live tail over the run's SSH session, or locally).

The app owns the proxy host's ``RemoteSession`` of the current target: one per target,
kept across re-runs (a re-run reconnects only if the connection dropped), closed when
the target changes and when the app exits.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from wsdoctor.diagnose import Diagnosis, Update
from wsdoctor.errors import describe
from wsdoctor.facts import Fact, Facts, LogEvent
from wsdoctor.gather.remote import live_logs
from wsdoctor.remote.errors import HostKeyUnknown
from wsdoctor.remote.session import RemoteSession
from wsdoctor.report import CHECK_IDS, Report, Status
from wsdoctor.screens.commands import WsdoctorCommands
from wsdoctor.screens.detail import DetailScreen
from wsdoctor.screens.diagnosis import DiagnosisScreen
from wsdoctor.screens.help import HelpScreen, binding_rows
from wsdoctor.screens.hostkey import HostKeyScreen
from wsdoctor.screens.logs import LogsScreen
from wsdoctor.screens.target import TargetScreen
from wsdoctor.target import Target
from wsdoctor.widgets.findings import FindingList
from wsdoctor.widgets.logview import LOG_CAP, LogLine, LogView, format_events

LogSourceFactory = Callable[[RemoteSession, Facts], AsyncIterator[list[LogEvent]]]
DiagnosisFactory = Callable[[Target, RemoteSession], Diagnosis]

LOG_APPLY_INTERVAL = 0.5  # classified log lines are handed to the diagnosis at most this often
TICK_INTERVAL = 0.1  # spinner frames and the running clock


class LogSourceUnavailable(Exception):
    """There is nothing to tail; the message says what to give instead."""


async def no_log_source(session: RemoteSession, facts: Facts) -> AsyncIterator[list[LogEvent]]:
    """For targets whose logs are not on a host we can read: says why there are no logs, yields nothing."""
    raise LogSourceUnavailable(
        facts.unavailable.get(Fact.LOGS) or "no log source (give --ssh or a local nginx config)"
    )
    yield []  # pragma: no cover - makes this an async generator


async def default_log_source(session: RemoteSession, facts: Facts) -> AsyncIterator[list[LogEvent]]:
    """The live tail of the logs that serve the Socket.IO location: over the run's SSH session with
    ``--ssh``, on this machine for a local ``--nginx-conf`` (a dump or a copied tree names another
    host's files, so those have no live logs)."""
    target = session.target
    local = bool(target.nginx_conf) and not target.root and not target.nginx_dump
    if not (target.ssh or local):
        async for batch in no_log_source(session, facts):
            yield batch
        return
    async for batch in live_logs(session, facts):
        yield batch


def write_report(report: Report, directory: Path, stamp: str) -> tuple[Path, Path]:
    """Write ``wsdoctor-report-STAMP.md`` and ``.json`` (secrets redacted), never overwriting a file."""
    directory.mkdir(parents=True, exist_ok=True)
    markdown, data = report.to_markdown(), report.to_json()
    for n in range(100):
        base = directory / (f"wsdoctor-report-{stamp}" + (f"-{n}" if n else ""))
        md, js = base.with_suffix(".md"), base.with_suffix(".json")
        if md.exists() or js.exists():
            continue
        with open(md, "x", encoding="utf-8") as f:
            f.write(markdown)
        with open(js, "x", encoding="utf-8") as f:
            f.write(data)
        return md, js
    raise FileExistsError(f"too many reports named wsdoctor-report-{stamp}* in {directory}")


async def _aclose(iterator: object) -> None:
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()


# --- messages (workers → app) --------------------------------------------------------


class DiagnosisUpdated(Message):
    def __init__(self, update: Update, generation: int) -> None:
        super().__init__()
        self.update = update
        self.generation = generation


class LogBatch(Message):
    def __init__(self, events: list[LogEvent], generation: int) -> None:
        super().__init__()
        self.events = events
        self.generation = generation


class LogSourceEnded(Message):
    def __init__(self, generation: int) -> None:
        super().__init__()
        self.generation = generation


# --- the app -------------------------------------------------------------------------


class WsdoctorApp(App[int]):
    """wsdoctor's TUI. ``run()`` returns the exit code: 1 if the last diagnosis had a fail, else 0."""

    TITLE = "wsdoctor"
    COMMANDS = App.COMMANDS | {WsdoctorCommands}
    # r, e and l work on every screen; the diagnosis screen's footer lists them (narrow footers elsewhere).
    BINDINGS = [
        Binding("r", "rerun", "Rerun", show=False),
        Binding("e", "export", "Export", show=False),
        Binding("l", "logs", "Logs", show=False),
        Binding("question_mark", "help", "Help"),
        Binding("t", "toggle_theme", "Theme", show=False),
        Binding("q", "quit", "Quit"),
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
    ]

    def __init__(
        self,
        target: Target | None,
        diagnosis_factory: DiagnosisFactory = Diagnosis,
        log_source_factory: LogSourceFactory | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        export_dir: str | os.PathLike[str] | None = None,
        title_suffix: str = "",
        log_cap: int = LOG_CAP,
    ) -> None:
        super().__init__()
        self.title = "wsdoctor" + title_suffix
        self.target = target if target is not None and not target.is_empty() else None
        self.initial_target = target
        self.diagnosis_factory = diagnosis_factory
        self.log_source_factory: LogSourceFactory = log_source_factory or default_log_source
        self.clock = clock
        self.export_dir = Path(export_dir) if export_dir is not None else None
        self.log_cap = log_cap
        # state of the current run (generation counts runs; stale messages are dropped)
        self.generation = 0
        self.diagnosis: Diagnosis | None = None
        self.last_update: Update | None = None
        self.done_elapsed: float | None = None
        self.started_at: float | None = None
        self.error: str | None = None
        self.secrets: tuple[str, ...] = ()
        self.log_lines: deque[LogLine] = deque(maxlen=log_cap)
        self.log_received = 0  # every line received this session (the deque keeps the last log_cap)
        self.log_status = "no log source yet"
        self._log_started = False
        self._log_worker: Worker | None = None
        self._diagnosis_worker: Worker | None = None
        self._events_for_diagnosis: list[LogEvent] = []
        self.diagnosis_screen: DiagnosisScreen | None = None
        self.logs_screen: LogsScreen | None = None
        self.session: RemoteSession | None = None  # the current target's proxy host (see the module doc)
        self.setup_screen: Screen | None = None  # `wsdoctor setup`: the wizard opens first (see run_setup)

    # -- screens ----------------------------------------------------------------------

    def get_default_screen(self) -> Screen:
        self.diagnosis_screen = DiagnosisScreen()
        return self.diagnosis_screen

    def on_mount(self) -> None:
        self.logs_screen = LogsScreen(self.log_lines, cap=self.log_cap)
        self.install_screen(self.logs_screen, name="logs")
        self.set_interval(TICK_INTERVAL, self._tick)
        self.set_interval(LOG_APPLY_INTERVAL, self._apply_log_events)
        self.render_state()
        if self.setup_screen is not None:
            self.push_screen(self.setup_screen, callback=self._target_chosen)
        elif self.target is None:
            self.push_screen(TargetScreen(self.initial_target), callback=self._target_chosen)
        else:  # paint the (pending) screen first, then pay for the engine's imports and first evaluation
            self.call_after_refresh(self.start, self.target)

    def _target_chosen(self, target: Target | None) -> None:
        if target is not None:
            self.start(target)
        elif self.diagnosis is None:  # cancelled before anything ran: nothing to show
            self.exit(0)

    # -- running ----------------------------------------------------------------------

    def start(self, target: Target) -> None:
        """(Re)start the diagnosis and the log tail for TARGET, cancelling the previous run."""
        self._cancel_run()
        self.generation += 1
        if self.session is not None and self.session.target is not target:
            self._close_session(self.session)  # a new target: the old one's SSH session is done
            self.session = None
        if self.session is None:
            self.session = RemoteSession(target)
        session = self.session
        self.target = target
        self.secrets = tuple(target.secrets())
        self.last_update = None
        self.done_elapsed = None
        self.error = None
        self._log_started = False
        self._events_for_diagnosis.clear()
        self.started_at = self.clock()
        try:
            self.diagnosis = self.diagnosis_factory(target, session)
        except Exception as e:  # noqa: BLE001 - shown as one sentence; the app stays up
            self.diagnosis = None
            self._fail(e)
            return
        self.render_state()
        self._diagnosis_worker = self._run_diagnosis(self.diagnosis, self.generation)

    def _host_key_answered(self, fingerprint: str) -> Callable[[bool | None], None]:
        def answered(trust: bool | None) -> None:
            if trust and self.target is not None:
                self.target.accept_host_key = fingerprint
                self.notify(f"Trusting {fingerprint} for this run; re-running.", markup=False)
                self.start(self.target)
            else:
                self.notify("Host key not trusted: nothing was read from that host.", severity="warning")

        return answered

    def _cancel_run(self) -> None:
        self.workers.cancel_group(self, "diagnosis")
        self.workers.cancel_group(self, "logs")
        self._diagnosis_worker = self._log_worker = None

    @work(exclusive=False, exit_on_error=False, group="diagnosis", name="diagnosis")
    async def _run_diagnosis(self, diagnosis: Diagnosis, generation: int) -> None:
        updates = diagnosis.updates()
        try:
            async for update in updates:
                self.post_message(DiagnosisUpdated(update, generation))
        finally:
            await _aclose(updates)

    @work(exclusive=False, exit_on_error=False, group="logs", name="log tail")
    async def _tail_logs(self, session: RemoteSession, facts: Facts, generation: int) -> None:
        batches = self.log_source_factory(session, facts)
        try:
            async for batch in batches:
                if batch:
                    self.post_message(LogBatch(list(batch), generation))
        finally:
            await _aclose(batches)
        self.post_message(LogSourceEnded(generation))

    def on_diagnosis_updated(self, message: DiagnosisUpdated) -> None:
        if message.generation != self.generation:
            return
        self._accept(message.update)
        facts = message.update.facts
        if not self._log_started and Fact.CONFIG not in facts.pending and self.session is not None:
            # The tail needs the config (which log files serve the Socket.IO location) and the SSH session.
            self._log_started = True
            self.log_status = "waiting for log lines…"
            self._log_worker = self._tail_logs(self.session, facts, self.generation)
            self._show_log_status()

    def _accept(self, update: Update) -> None:
        self.last_update = update
        if update.done and self.done_elapsed is None:
            self.done_elapsed = update.elapsed
        self.render_state()

    def on_log_batch(self, message: LogBatch) -> None:
        if message.generation != self.generation:
            return
        lines = format_events(message.events, self.secrets)
        self.log_lines.extend(lines)
        self.log_received += len(lines)
        if self.logs_screen is not None:
            self.logs_screen.append(lines)
        self._events_for_diagnosis.extend(e for e in message.events if e.check in CHECK_IDS)
        if self.log_status != "live":
            self.log_status = "live"
            self._show_log_status()

    def on_log_source_ended(self, message: LogSourceEnded) -> None:
        if message.generation != self.generation:
            return
        if self.log_status == "live":
            self.log_status = "the log source ended"
        else:
            facts = self.diagnosis.facts if self.diagnosis is not None else None
            reason = facts.unavailable.get(Fact.LOGS) if facts is not None else None
            self.log_status = f"no log lines to follow: {reason or 'no log file serves this location'}"
        self._show_log_status()

    def _apply_log_events(self) -> None:
        """Hand classified lines to the diagnosis in one batch: the checks re-run at most twice a second."""
        if not self._events_for_diagnosis or self.diagnosis is None:
            return
        events, self._events_for_diagnosis = self._events_for_diagnosis, []
        try:
            update = self.diagnosis.add_log_events(events)
        except Exception as e:  # noqa: BLE001 - a check bug must not take the TUI down
            self._fail(e)
            return
        self._accept(update)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if event.state is not WorkerState.ERROR:
            return
        if worker is self._diagnosis_worker:
            self._fail(worker.error)
        elif worker is self._log_worker:
            self.log_status = _sentence(worker.error)
            self._show_log_status()

    def _fail(self, error: BaseException | None) -> None:
        unknown = _unknown_host_key(error)
        if unknown is not None and self.target is not None and not self.target.accept_host_key:
            host, fingerprint = unknown
            self.error = f"the SSH host key of {host} is not trusted yet"
            self.render_state()
            self.push_screen(HostKeyScreen(host, fingerprint), callback=self._host_key_answered(fingerprint))
            return
        self.error = _sentence(error)
        self.notify(
            f"The diagnosis stopped: {self.error}. Press r to re-run.", severity="error", markup=False
        )
        self.render_state()

    # -- rendering --------------------------------------------------------------------

    def elapsed(self) -> float | None:
        if self.done_elapsed is not None:
            return self.done_elapsed
        if self.started_at is None or self.diagnosis is None or self.error:
            return None
        return self.clock() - self.started_at

    def render_state(self) -> None:
        """Show the current state on the diagnosis screen (and the open detail), whatever arrived first."""
        if self.diagnosis_screen is not None and self.diagnosis_screen.is_mounted:
            self.diagnosis_screen.show_update(
                self.last_update,
                secrets=self.secrets,
                elapsed=self.elapsed(),
                ssh=self.target.ssh if self.target else None,
                error=self.error,
            )
        screen = self.screen
        if isinstance(screen, DetailScreen) and self.last_update is not None:
            screen.refresh_finding(self.last_update.findings.get(screen.check_id))

    def _tick(self) -> None:
        """Spinners and the running clock; idle once the diagnosis is done."""
        if self.diagnosis_screen is None or not self.diagnosis_screen.is_mounted:
            return
        running = self.diagnosis is not None and self.done_elapsed is None and not self.error
        if running:
            self.diagnosis_screen.tick(int(self.clock() / TICK_INTERVAL))
            self.diagnosis_screen.show_header(
                self.last_update,
                secrets=self.secrets,
                elapsed=self.elapsed(),
                ssh=self.target.ssh if self.target else None,
                error=self.error,
            )

    def _show_log_status(self) -> None:
        if self.logs_screen is not None:
            self.logs_screen.set_source_status(self.log_status)

    # -- actions ----------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Re-run, export and logs need a target; while the form is open they are hidden."""
        needs_target = action in ("rerun", "export", "logs")
        return not (needs_target and (self.target is None or isinstance(self.screen, TargetScreen)))

    def action_rerun(self) -> None:
        if self.target is not None:
            self.notify("Re-running the diagnosis…")
            self.start(self.target)

    def action_export(self) -> None:
        if self.diagnosis is None:
            self.notify("Nothing to export yet: start a diagnosis first.", severity="warning")
            return
        directory = self.export_dir or Path(os.environ.get("WSDOCTOR_EXPORT_DIR") or os.getcwd())
        try:
            report = self.diagnosis.report()
            md, js = write_report(report, directory, datetime.now().strftime("%Y%m%d-%H%M%S"))
        except OSError as e:
            self.notify(
                f"Could not write the report to {directory}: {e.strerror or e}; "
                "set WSDOCTOR_EXPORT_DIR to a writable directory.",
                severity="error",
                markup=False,
            )
            return
        partial = "" if self.done_elapsed is not None else " (the diagnosis is still running: partial)"
        self.notify(
            f"Report written to {md} and {js.name}{partial}.", title="Exported", markup=False, timeout=10
        )

    def action_logs(self) -> None:
        if isinstance(self.screen, LogsScreen):
            self.pop_screen()
            return
        while isinstance(self.screen, DetailScreen | HelpScreen):
            self.pop_screen()
        self._show_log_status()
        self.push_screen("logs")

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            self.pop_screen()
            return
        sections = [
            ("Everywhere", binding_rows(self.BINDINGS) + [("Ctrl+P", "Command palette: every action")]),
            (
                "Diagnosis",
                binding_rows(FindingList.BINDINGS)
                + binding_rows(b for b in DiagnosisScreen.BINDINGS if b.action == "notes"),
            ),
            ("Finding detail", binding_rows(DetailScreen.BINDINGS)),
            ("Live logs", binding_rows(LogsScreen.BINDINGS) + binding_rows(LogView.BINDINGS)),
            ("Target form", binding_rows(TargetScreen.BINDINGS) + [("Enter", "Start")]),
            ("Unknown SSH host key", binding_rows(HostKeyScreen.BINDINGS)),
        ]
        self.push_screen(HelpScreen(sections))

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.current_theme.dark else "textual-dark"

    def action_edit_target(self) -> None:
        if isinstance(self.screen, TargetScreen):
            return
        self.push_screen(TargetScreen(self.target or self.initial_target), callback=self._target_chosen)

    async def action_quit(self) -> None:
        """Cancel every worker (closing the diagnosis and the log tail), close the SSH session, then exit."""
        self._cancel_run()
        self.workers.cancel_all()
        if self.session is not None:
            try:  # bounded: run_tui closes it again after the app is gone
                await asyncio.wait_for(asyncio.to_thread(self.session.close), 5)
            except TimeoutError:
                pass
        self.exit(self.exit_code())

    def action_apply_fix(self) -> None:
        """``a`` on a finding's detail: its diff, a confirm step, then the apply live (screens/apply.py)."""
        from wsdoctor.screens.apply import open_apply  # the apply pulls in the probes: only when used

        screen = self.screen
        if isinstance(screen, DetailScreen) and self.target is not None:
            findings = self.last_update.findings if self.last_update is not None else {}
            open_apply(self, self.target, screen.finding, findings, self.secrets, lambda: self.start(self.target))

    @work(thread=True, exit_on_error=False, group="cleanup", name="close ssh session")
    def _close_session(self, session: RemoteSession) -> None:
        session.close()

    def exit_code(self) -> int:
        if self.last_update is None:
            return 0
        return 1 if any(f.status is Status.FAIL for f in self.last_update.findings.values()) else 0


def _unknown_host_key(error: BaseException | None) -> tuple[str, str] | None:
    """(host, SHA256 fingerprint) when the run stopped on an unknown SSH host key (raised or chained)."""
    for _ in range(10):  # the gatherer re-raises it as an InputError; follow the chain a little way
        if error is None:
            break
        if isinstance(error, HostKeyUnknown):
            return error.host, error.fingerprint
        error = error.__cause__ or error.__context__
    return None


def _sentence(error: BaseException | None) -> str:
    """One sentence for a failure, never a traceback."""
    if error is None:
        return "unknown error"
    message = describe(error)
    if message is None:
        message = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return message.rstrip(".")


def run_setup(target: Target, preset: dict[str, object], backup_dir: str | None = None) -> int:
    """``wsdoctor setup``: the wizard, then the diagnosis of the new service in the same app."""
    from wsdoctor.screens.setup import SetupScreen  # discovery pulls in the probes: only when used

    app = WsdoctorApp(None, title_suffix=" setup")
    app.setup_screen = SetupScreen(target, preset, backup_dir=backup_dir)
    try:
        result = app.run()
    finally:
        if app.session is not None:
            app.session.close()
    if app.return_code not in (None, 0):
        return app.return_code
    return result if isinstance(result, int) else 0


def run_tui(
    target: Target | None, *, on_exit: Callable[[], object] | None = None, title_suffix: str = ""
) -> int:
    """Open the TUI on TARGET (the target form when None or empty); return the exit code."""
    app = WsdoctorApp(target, title_suffix=title_suffix)
    try:
        result = app.run()
    finally:
        if app.session is not None:
            app.session.close()  # also after a crash: no tail may outlive the TUI
        if on_exit is not None:
            on_exit()
    if app.return_code not in (None, 0):
        return app.return_code
    return result if isinstance(result, int) else 0
