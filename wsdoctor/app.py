"""The TUI: a live diagnosis an on-call engineer drives with the keyboard.

The app renders what the headless diagnosis streams (``Diagnosis.updates()``) and what the log sources
tail; it holds no check logic. One rule for background work: the diagnosis and the log tail run as
workers (``exit_on_error=False``, one group each) that never touch widgets; they post typed messages, and
failures are shown in one place (``on_worker_state_changed``) while the app stays up.

What every screen shows comes from one board (``widgets/board.py``): the run's state (running, stopped
with its reason, done) and, per check, a fresh verdict, the last run's (stale, during a re-run), or none
yet with what it waits for. The list, the detail, the header, the export and the exit code read it, so
they cannot disagree.

Both sources are injectable so tests and screenshots drive the screens with recorded findings and fake
log streams (the defaults are the real ones):

- ``diagnosis_factory(target, session) -> Diagnosis`` (default: ``Diagnosis``);
- ``log_source_factory(session, facts) -> AsyncIterator[list[LogEvent]]``: batches of classified lines,
  cancellable (closing the iterator must stop any remote tail). It may raise an exception whose text is
  one sentence (e.g. why there is no log source); that sentence is shown on the logs screen. Default:
  ``default_log_source`` (the live tail of nginx's logs over the run's SSH session, or locally, and the
  ``--backend-log``).

Log lines first go to an inbox that the app drains in slices, so a flood never queues thousands of
messages in front of a key press; the logs screen says "behind" while the inbox holds lines for more
than a moment, and how many it had to skip.

The app owns the proxy host's ``RemoteSession`` of the current target: one per target, kept across
re-runs (a re-run reconnects only if the connection dropped), closed when the target changes and when
the app exits.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.content import Content
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.worker import Worker, WorkerState

from wsdoctor.diagnose import Diagnosis, Update
from wsdoctor.errors import describe
from wsdoctor.facts import Fact, Facts, LogEvent
from wsdoctor.gather.remote import live_logs
from wsdoctor.remote import host as remote_host
from wsdoctor.remote.errors import HostKeyUnknown
from wsdoctor.remote.session import RemoteSession
from wsdoctor.report import CHECK_IDS, Finding, Report, Status
from wsdoctor.screens.commands import WsdoctorCommands
from wsdoctor.screens.detail import DetailScreen
from wsdoctor.screens.diagnosis import DiagnosisScreen
from wsdoctor.screens.help import HelpScreen
from wsdoctor.screens.hostkey import HostKeyScreen
from wsdoctor.screens.logs import LogsScreen
from wsdoctor.screens.target import TargetScreen
from wsdoctor.target import Target
from wsdoctor.widgets.board import Board, Kind, RunState, load_checks
from wsdoctor.widgets.keys import APP, bindings, key_name
from wsdoctor.widgets.logview import (
    LINE_CHARS,
    LOG_BYTES,
    LOG_CAP,
    Incoming,
    LogFormatter,
    LogLine,
    LogSpool,
    SortedLines,
    receive,
    whole_text,
)
from wsdoctor.widgets.theme import DARK_NAME, LIGHT_NAME, THEMES

LogSourceFactory = Callable[[RemoteSession, Facts], AsyncIterator[list[LogEvent]]]
DiagnosisFactory = Callable[[Target, RemoteSession], Diagnosis]

LOG_APPLY_INTERVAL = 0.5  # classified log lines are handed to the diagnosis at most this often
TICK_INTERVAL = 0.1  # spinners and the running clock
LOG_SLICE = 5_000  # lines formatted per turn of the event loop: keys get in between
INBOX_LINES = 50_000  # lines waiting beyond this: the oldest noise is skipped (the view keeps 10,000 anyway)
BEHIND_AFTER = 1.0  # seconds a line may wait before the logs screen says it is behind
EVIDENCE_CHARS = 16_384  # of a classified line handed to the diagnosis as evidence
EVIDENCE_PER_CHECK = 100  # classified lines per check handed to the diagnosis at a time (its newest ones)
BACKEND_POLL = 2.0  # seconds between reads of the --backend-log (pm2 and journald cannot be tailed alike)


class LogSourceUnavailable(Exception):
    """There is nothing to tail; the message says what to give instead."""


async def no_log_source(session: RemoteSession, facts: Facts) -> AsyncIterator[list[LogEvent]]:
    """For targets whose logs are not on a host we can read: says why there are no logs, yields nothing."""
    raise LogSourceUnavailable(
        facts.unavailable.get(Fact.LOGS) or "no log source (give --ssh or a local nginx config)"
    )
    yield []  # pragma: no cover - makes this an async generator


async def backend_log_lines(
    session: RemoteSession, interval: float = BACKEND_POLL
) -> AsyncIterator[list[LogEvent]]:
    """The ``--backend-log``'s authentication lines as they appear: its last lines are read every INTERVAL
    seconds (a file, ``pm2:NAME`` or ``journald:UNIT``, with the same reader the diagnosis uses) and the
    lines not seen before are yielded."""
    spec = session.target.backend_log
    if not spec:
        return
    seen: set[str] = set()
    while True:
        runner = await session.call(session.connect)
        _, events = await session.call(remote_host.backend_auth_logs, runner, spec)
        fresh = [e for e in events if e.text not in seen]
        seen.update(e.text for e in fresh)
        if len(seen) > 10_000:
            seen = {e.text for e in events}
        if fresh:
            yield fresh
        await asyncio.sleep(interval)


async def merged(*sources: AsyncIterator[list[LogEvent]]) -> AsyncIterator[list[LogEvent]]:
    """Batches from several sources as they come; ends when all have ended; closing it closes them all.
    A source that fails makes the whole stop with its error, after the others are closed."""
    queue: asyncio.Queue[tuple[int, list[LogEvent] | BaseException | None]] = asyncio.Queue(maxsize=64)

    async def pump(i: int, source: AsyncIterator[list[LogEvent]]) -> None:
        try:
            async for batch in source:
                await queue.put((i, batch))
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - handed to the consumer, which shows it
            await queue.put((i, e))
            return
        finally:
            await _aclose(source)
        await queue.put((i, None))

    tasks = [asyncio.create_task(pump(i, s)) for i, s in enumerate(sources)]
    alive = len(tasks)
    try:
        while alive:
            _, item = await queue.get()
            if item is None:
                alive -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def default_log_source(session: RemoteSession, facts: Facts) -> AsyncIterator[list[LogEvent]]:
    """The live tail of the logs that serve the Socket.IO location: over the run's SSH session with
    ``--ssh``, on this machine for a local ``--nginx-conf`` (a dump or a copied tree names another
    host's files, so those have no live logs); and the ``--backend-log``'s authentication lines."""
    target = session.target
    local = bool(target.nginx_conf) and not target.root and not target.nginx_dump
    sources: list[AsyncIterator[list[LogEvent]]] = []
    if target.ssh or local:
        sources.append(live_logs(session, facts))
    if target.backend_log:
        sources.append(backend_log_lines(session))
    if not sources:
        async for batch in no_log_source(session, facts):
            yield batch
        return
    stream = sources[0] if len(sources) == 1 else merged(*sources)
    try:
        async for batch in stream:
            yield batch
    finally:
        await _aclose(stream)


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


class LogsArrived(Message):
    """The log inbox has lines (posted once until the app has drained it)."""

    def __init__(self, generation: int) -> None:
        super().__init__()
        self.generation = generation


class LogSourceEnded(Message):
    def __init__(self, generation: int) -> None:
        super().__init__()
        self.generation = generation


# --- the app -------------------------------------------------------------------------


class WsdoctorApp(App[int]):
    """wsdoctor's TUI. ``run()`` returns the exit code: 1 if a row shows a failure, else 0."""

    TITLE = "wsdoctor"
    # A border's title is text: it reads in the text colours, not in the border's.
    CSS = """
    #help, #notes-box, #whole, #hostkey, #confirm {
        border-title-color: $text;
        border-subtitle-color: $text-muted;
    }
    Toast { background: $panel; }
    """
    COMMANDS = {WsdoctorCommands}  # the vocabulary's actions only: no second "Keys", no theme picker
    BINDINGS = bindings(APP)

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
        log_bytes: int = LOG_BYTES,
    ) -> None:
        super().__init__()
        for theme in THEMES:
            self.register_theme(theme)
        self.theme = DARK_NAME
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
        self.board = Board()
        self.diagnosis: Diagnosis | None = None
        self.last_update: Update | None = None  # the current run's latest (None until it reports)
        self.shown_update: Update | None = None  # the latest of any run: chain, notes, nginx version
        self.done_elapsed: float | None = None
        self.started_at: float | None = None
        self.secrets: tuple[str, ...] = ()
        # the logs (see the module docstring)
        self.log_spool = LogSpool()
        self.log_lines = SortedLines(log_cap, log_bytes)
        self.log_inbox: deque[Incoming] = deque()
        self.log_received = 0  # every line received this session (the store keeps the last log_cap)
        self.log_skipped = 0  # lines dropped from the inbox to keep up (a flood)
        self.log_behind = 0.0  # seconds the oldest waiting line has waited, at the last drain
        self.log_status = "no log source yet"
        self._log_bytes = log_bytes
        self._formatter = LogFormatter()
        self._inbox_posted = False
        self._arrivals: deque[list[float]] = (
            deque()
        )  # [lines still in the inbox, when they arrived] per batch
        self._skipped_at: float | None = None
        self._seeded: set[tuple[str, str]] = set()  # lines shown from the run's gathered logs
        self._echoes: Counter[tuple[str, str]] = Counter()  # seeded lines the live tail may deliver again
        self._live: set[tuple[str, str]] = set()  # classified live lines handed to the diagnosis
        self._log_started = False
        self._log_worker: Worker | None = None
        self._diagnosis_worker: Worker | None = None
        self._events_for_diagnosis: list[LogEvent] = []
        self.diagnosis_screen: DiagnosisScreen | None = None
        self.logs_screen: LogsScreen | None = None
        self.session: RemoteSession | None = None  # the current target's proxy host (see the module doc)
        self.setup_screen: Screen | None = None  # `wsdoctor setup`: the wizard opens first (see run_setup)
        self._checks_loaded = False

    # -- keys and themes ----------------------------------------------------------------

    def get_key_display(self, binding: Binding) -> str:
        """Keys as the help and the palette name them: Enter, Esc, Ctrl+P (never ⏎ or ^p)."""
        return binding.key_display or key_name(binding.key)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Re-run, export and logs need a target; while the form is open they are hidden."""
        needs_target = action in ("rerun", "export", "logs")
        return not (needs_target and (self.target is None or isinstance(self.screen, TargetScreen)))

    # -- screens ----------------------------------------------------------------------

    def get_default_screen(self) -> Screen:
        self.diagnosis_screen = DiagnosisScreen()
        return self.diagnosis_screen

    def on_mount(self) -> None:
        self.logs_screen = LogsScreen(
            self.log_lines, cap=self.log_cap, max_bytes=self._log_bytes, whole=self.whole_line
        )
        self.install_screen(self.logs_screen, name="logs")
        self.set_interval(TICK_INTERVAL, self._tick)
        self.set_interval(LOG_APPLY_INTERVAL, self._apply_log_events)
        self.set_interval(0.5, self._recheck_log_status)
        self.render_state()
        if self.setup_screen is not None:
            self.push_screen(self.setup_screen, callback=self._target_chosen)
        elif self.target is None:
            self.push_screen(TargetScreen(self.initial_target), callback=self._target_chosen)
        else:  # paint the (pending) screen first, then pay for the engine's imports and first evaluation
            self.call_after_refresh(self.start, self.target)

    def on_unmount(self) -> None:
        self.log_spool.close()

    def _target_chosen(self, target: Target | None) -> None:
        if target is not None:
            self.start(target)
        elif self.diagnosis is None and not self.board.started:  # cancelled before anything ran
            self.exit(0)

    # -- running ----------------------------------------------------------------------

    def start(self, target: Target) -> None:
        """(Re)start the diagnosis and the log tail for TARGET, cancelling the previous run. The same
        target's last verdicts stay on screen (stale) until the new run decides again."""
        self._cancel_run()
        self.generation += 1
        same = target is self.board.target
        if self.session is not None and self.session.target is not target:
            self._close_session(self.session)  # a new target: the old one's SSH session is done
            self.session = None
        if self.session is None:
            self.session = RemoteSession(target)
        session = self.session
        self.target = target
        self.secrets = tuple(target.secrets())
        self.board.start(target, keep=same)
        self.last_update = None
        if not same:
            self.shown_update = None
            self.log_lines.clear()
            self._seeded.clear()
            self._echoes.clear()
            self._live.clear()
            if self.logs_screen is not None and self.logs_screen.is_mounted:
                self.logs_screen.rerender()
        self.done_elapsed = None
        self._log_started = False
        self._events_for_diagnosis.clear()
        self.log_inbox.clear()
        self._arrivals.clear()
        self._formatter = LogFormatter(self.secrets)
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
                from wsdoctor.remote.ssh.config import (
                    own_known_hosts,  # paramiko: loaded by the connect already
                )

                self.target.accept_host_key = fingerprint
                self.notify(
                    f"Trusting {fingerprint}; it is remembered in {own_known_hosts()} once the connection "
                    "is made. Running again.",
                    markup=False,
                    timeout=8,
                )
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
                if not batch or generation != self.generation:
                    continue
                if any(len(e.text) > LINE_CHARS for e in batch):  # long lines: spool them off the event loop
                    items = await asyncio.to_thread(self._spool, batch)
                else:
                    items = [Incoming(e, len(e.text), None) for e in batch]
                if generation == self.generation:
                    self._receive(items, generation)
        finally:
            await _aclose(batches)
        self.post_message(LogSourceEnded(generation))

    def on_diagnosis_updated(self, message: DiagnosisUpdated) -> None:
        if message.generation != self.generation:
            return
        update = message.update
        self.last_update = self.shown_update = update
        facts = update.facts
        self.board.accept(
            update.findings,
            update.pending,
            done=update.done,
            facts_pending=facts.pending,
            host=facts.ssh_host,
        )
        if update.done and self.done_elapsed is None:
            self.done_elapsed = update.elapsed
        self.render_state()
        if not self._checks_loaded:  # the pending rows' names and what they wait for, after this paint
            self._checks_loaded = True
            self.call_after_refresh(self._load_checks)
        if Fact.LOGS not in facts.pending and facts.logs:
            self._seed_logs(facts.logs)
        if not self._log_started and Fact.CONFIG not in facts.pending and self.session is not None:
            # The tail needs the config (which log files serve the Socket.IO location) and the SSH session.
            self._log_started = True
            self.log_status = "waiting for log lines…"
            self._log_worker = self._tail_logs(self.session, facts, self.generation)
            self._show_log_status()

    def _load_checks(self) -> None:
        if load_checks(self.board.check_ids):
            self.render_state()

    # -- logs ---------------------------------------------------------------------------

    def _spool(self, batch: list[LogEvent]) -> list[Incoming]:
        """Spool the whole text of long lines (in a thread: it writes to disk), the newest first and no more
        than the spool holds: older ones would be overwritten before anyone could ask for them."""
        spool, budget = self.log_spool, self.log_spool.limit
        items: list[Incoming] = []
        for event in reversed(batch):
            item = receive(event, spool if budget >= len(event.text) else None)
            budget -= len(event.text) if item.spool is not None else 0
            items.append(item)
        items.reverse()
        return items

    def _receive(self, items: list[Incoming], generation: int) -> None:
        """Lines from the log source: into the inbox, which the app drains a slice at a time."""
        self.log_inbox.extend(items)
        self._arrivals.append([len(items), time.monotonic()])
        excess = len(self.log_inbox) - INBOX_LINES
        if excess > 0:  # a flood: skip the oldest noise (classified lines are evidence and stay)
            kept = [i for i in self.log_inbox if i.event.check]
            noise = [i for i in self.log_inbox if not i.event.check]
            skipped = min(excess, len(noise))
            self.log_inbox = deque(kept + noise[skipped:])
            self._take_arrivals(skipped)
            self.log_skipped += skipped
            self._skipped_at = time.monotonic()
        if not self._inbox_posted:
            self._inbox_posted = True
            self.post_message(LogsArrived(generation))
        self._update_log_status()  # a flood says "behind" as soon as it piles up, not at the next drain

    def on_logs_arrived(self, message: LogsArrived) -> None:
        if message.generation == self.generation:
            self._drain()
        else:
            self._inbox_posted = False

    def _drain(self) -> None:
        """Format and show at most LOG_SLICE lines; the rest after the next frame is painted, so the keys
        and the screen (which says how far behind the view is) get their turn during a flood."""
        self._inbox_posted = False
        self.log_behind = self._waited()  # how long the lines shown now have waited
        items = [self.log_inbox.popleft() for _ in range(min(LOG_SLICE, len(self.log_inbox)))]
        self._take_arrivals(len(items))
        if self.log_inbox:
            self._inbox_posted = True
            generation = self.generation
            self.call_after_refresh(lambda: self._drain() if generation == self.generation else None)
        if self._echoes:  # the tail's first lines may be ones the run gathered and the screen shows already
            items = [i for i in items if not self._echo(i.event)]
        lines = self._formatter.format_all(items)
        self._show_lines(lines)
        evidence = [_evidence(i.event) for i in items if i.event.check in CHECK_IDS]
        self._live.update((e.source, e.text) for e in evidence)
        self._events_for_diagnosis.extend(evidence)
        self.log_received += len(items)
        self._update_log_status()

    def _show_lines(self, lines: list[LogLine]) -> None:
        if not lines:
            return
        self.log_lines.add(lines)
        if self.logs_screen is not None:
            self.logs_screen.append(lines)

    def _seed_logs(self, events: list[LogEvent]) -> None:
        """The lines the run gathered (nginx's and the backend's, the ones the detail cites) on the logs
        screen too, once each, merged by time with the live tail (which may have shown some already)."""
        new = [
            e
            for e in events
            if (e.source, e.text) not in self._seeded and (e.source, e.text) not in self._live
        ]
        if not new:
            return
        self._seeded.update((e.source, e.text) for e in new)
        self._echoes.update((e.source, e.text) for e in new)
        shown = {(line.source, line.text) for line in self.log_lines}
        lines = [line for line in self._formatter.format_all(new) if (line.source, line.text) not in shown]
        self._show_lines(lines)

    def _echo(self, event: LogEvent) -> bool:
        """Whether EVENT repeats a seeded line (each seeded line absorbs one repeat: the same request twice
        in a second writes the same line twice, and both are shown)."""
        key = (event.source, event.text)
        if self._echoes[key] <= 0:
            return False
        self._echoes[key] -= 1
        if not self._echoes[key]:
            del self._echoes[key]
        return True

    def whole_line(self, line: LogLine) -> str | None:
        return whole_text(line, self.log_spool, self.secrets)

    def _take_arrivals(self, count: int) -> None:
        """COUNT lines left the inbox (shown or skipped), oldest first."""
        while count and self._arrivals:
            taken = min(count, int(self._arrivals[0][0]))
            self._arrivals[0][0] -= taken
            count -= taken
            if not self._arrivals[0][0]:
                self._arrivals.popleft()

    def _lag(self) -> float:
        """How late the view is: the oldest waiting line's wait (0 once everything received is shown)."""
        if not self.log_inbox:
            return 0.0
        return max(self._waited(), self.log_behind)

    def _waited(self) -> float:
        """How long the oldest line in the inbox has waited (0 when it is empty)."""
        return time.monotonic() - self._arrivals[0][1] if self._arrivals else 0.0

    def _update_log_status(self) -> None:
        """ "live" only while every line received is shown within a moment; else "behind", with how far."""
        lag = self._lag()
        recent_skip = self._skipped_at is not None and time.monotonic() - self._skipped_at < 5
        if lag > BEHIND_AFTER or len(self.log_inbox) > LOG_SLICE or recent_skip:
            status = "behind"
        else:
            status = "live"
        if status != self.log_status or status == "behind":
            self.log_status = status
            self._show_log_status()

    def _recheck_log_status(self) -> None:
        """Nothing arrives after a flood: "behind" must still turn back into "live"."""
        if self.log_status == "behind":
            self._update_log_status()

    def log_status_content(self) -> Content:
        status = self.log_status
        if status == "live":
            return Content.styled("live", "bold $success")
        if status == "behind":
            waiting = len(self.log_inbox)
            parts = [f"behind: {waiting:,} lines waiting, {self._lag():.1f} s late"]
            if self.log_skipped:
                parts.append(f"{self.log_skipped:,} lines of noise skipped to keep up")
            return Content.styled(", ".join(parts), "bold $warning")
        return Content.styled(status, "$text-muted")

    def on_log_source_ended(self, message: LogSourceEnded) -> None:
        if message.generation != self.generation:
            return
        if self.log_status in ("live", "behind"):
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
        events, self._events_for_diagnosis = _newest_per_check(self._events_for_diagnosis), []
        try:
            update = self.diagnosis.add_log_events(events)
        except Exception as e:  # noqa: BLE001 - a check bug must not take the TUI down
            self._fail(e)
            return
        self.on_diagnosis_updated(DiagnosisUpdated(update, self.generation))

    def _show_log_status(self) -> None:
        if self.logs_screen is not None:
            self.logs_screen.set_source_status(self.log_status_content())

    # -- failures -----------------------------------------------------------------------

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
            self.board.stop(f"the SSH host key of {host} is not trusted yet")
            self.render_state()
            self.push_screen(HostKeyScreen(host, fingerprint), callback=self._host_key_answered(fingerprint))
            return
        self.board.stop(_sentence(error))
        if not isinstance(self.screen, DiagnosisScreen):  # the diagnosis screen shows the reason itself
            self.notify(
                f"The diagnosis stopped: {self.board.error}.", severity="error", markup=False, timeout=10
            )
        self.render_state()

    @property
    def error(self) -> str | None:
        return self.board.error

    # -- rendering --------------------------------------------------------------------

    def elapsed(self) -> float | None:
        if self.done_elapsed is not None:
            return self.done_elapsed
        if self.started_at is None or self.diagnosis is None or self.board.error:
            return None
        return self.clock() - self.started_at

    def render_state(self) -> None:
        """Show the board on the diagnosis screen and on any open detail, whatever arrived first."""
        self.board.elapsed = self.elapsed()
        update = self.shown_update
        screen = self.diagnosis_screen
        if screen is not None and screen.is_mounted:
            screen.show(
                self.board,
                chain=update.chain if update is not None else [],
                notes=update.notes if update is not None else [],
                nginx_version=update.facts.nginx_version if update is not None else None,
                secrets=self.secrets,
                elapsed=self.board.elapsed,
                ssh=self.target.ssh if self.target else None,
            )
        for open_screen in self.screen_stack:
            if isinstance(open_screen, DetailScreen):
                open_screen.refresh_shown(self.board.shown(open_screen.check_id), self.board.error)

    def _tick(self) -> None:
        """Spinners, the running clock and time-based progress ("the held tunnel 2.1/6 s"); idle once done."""
        screen = self.diagnosis_screen
        if screen is None or not screen.is_mounted or self.board.state is not RunState.RUNNING:
            return
        self.board.elapsed = self.elapsed()
        screen.tick(int(self.clock() / TICK_INTERVAL))
        update = self.shown_update
        screen.findings.show(self.board, self.secrets)
        screen.show_header(
            self.board,
            nginx_version=update.facts.nginx_version if update is not None else None,
            elapsed=self.board.elapsed,
            ssh=self.target.ssh if self.target else None,
        )

    def select_check(self, check_id: str) -> None:
        """Select CHECK_ID in the list (the detail screen moved to it)."""
        if self.diagnosis_screen is not None and check_id in self.diagnosis_screen.findings.rows:
            self.diagnosis_screen.findings.user_moved = True
            self.diagnosis_screen.findings.selected = check_id

    # -- actions ----------------------------------------------------------------------

    def action_rerun(self) -> None:
        if self.target is not None:
            self.start(self.target)

    def report(self) -> Report:
        """The report of what the screen shows: a check this run has not decided says so (a skip with the
        reason), never a verdict built from missing facts."""
        if self.diagnosis is None:
            raise RuntimeError("no diagnosis")
        report = self.diagnosis.report()
        findings: list[Finding] = []
        for f in report.findings:
            shown = self.board.shown(f.id)
            if shown.kind is Kind.FRESH:
                findings.append(f)
                continue
            why = (
                f"not decided: the run stopped ({self.board.error})"
                if shown.kind is Kind.STOPPED or self.board.error
                else f"not decided yet: the export was made while the run was {shown.waiting or 'deciding'}"
            )
            findings.append(Finding(id=f.id, status=Status.SKIP, title=f.title, summary=why))
        return dataclasses.replace(report, findings=findings)

    def action_export(self) -> None:
        if self.diagnosis is None:
            self.notify("Nothing to export yet: start a diagnosis first.", severity="warning")
            return
        directory = self.export_dir or Path(os.environ.get("WSDOCTOR_EXPORT_DIR") or os.getcwd())
        try:
            md, js = write_report(self.report(), directory, datetime.now().strftime("%Y%m%d-%H%M%S"))
        except OSError as e:
            self.notify(
                f"Could not write the report to {directory}: {e.strerror or e}; "
                "set WSDOCTOR_EXPORT_DIR to a writable directory.",
                severity="error",
                markup=False,
            )
            return
        partial = "" if self.board.state is RunState.DONE else " (the run had not finished: partial)"
        self.notify(
            f"Report written to {md} and {js.name}{partial}.", title="Exported", markup=False, timeout=10
        )

    def action_logs(self) -> None:
        """Open the logs over whatever is open (Esc comes back to it); ``l`` on the logs closes them."""
        if isinstance(self.screen, LogsScreen):
            self.pop_screen()
            return
        while isinstance(self.screen, ModalScreen):
            self.pop_screen()
        self._show_log_status()
        self.push_screen("logs")

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            self.pop_screen()
            return
        self.push_screen(HelpScreen(self))

    def action_toggle_theme(self) -> None:
        self.theme = LIGHT_NAME if self.theme == DARK_NAME else DARK_NAME

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

    def apply_fix(self, finding: Finding | None) -> None:
        """``a`` on a finding's detail: its diff, a confirm step, then the apply live (screens/apply.py)."""
        from wsdoctor.screens.apply import open_apply  # the apply pulls in the probes: only when used

        if finding is None or self.target is None:
            return
        findings = self.last_update.findings if self.last_update is not None else {}
        target = self.target
        open_apply(self, target, finding, findings, self.secrets, lambda: self.start(target))

    @work(thread=True, exit_on_error=False, group="cleanup", name="close ssh session")
    def _close_session(self, session: RemoteSession) -> None:
        session.close()

    def exit_code(self) -> int:
        """1 when a row shows a failure (fresh or the last run's), as the screen says; else 0."""
        return self.board.exit_code()


def _newest_per_check(events: list[LogEvent]) -> list[LogEvent]:
    """The newest EVIDENCE_PER_CHECK lines of each check: a flood of the same failure does not make the
    checks re-sort tens of thousands of lines twice a second (they cite the last few)."""
    kept: dict[str, int] = {}
    out: list[LogEvent] = []
    for event in reversed(events):
        if kept.get(event.check, 0) < EVIDENCE_PER_CHECK:
            kept[event.check] = kept.get(event.check, 0) + 1
            out.append(event)
    out.reverse()
    return out


def _evidence(event: LogEvent) -> LogEvent:
    """A classified line as the diagnosis keeps it: a hostile megabyte line is cut to EVIDENCE_CHARS."""
    if len(event.text) <= EVIDENCE_CHARS:
        return event
    return dataclasses.replace(event, text=event.text[:EVIDENCE_CHARS] + " …")


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
