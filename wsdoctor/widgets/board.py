"""What each row shows, across runs: the run's state and, per check, a verdict that is never a guess.

The headless diagnosis streams ``Update`` objects in which a check whose facts are still coming is
listed in ``pending``; its provisional finding (built from missing facts: "no nginx config given…")
must never reach the screen. The board keeps, per check:

- a **fresh** verdict: decided by the current run;
- a **stale** verdict: the last run's, kept (marked ↻) while a re-run gathers the facts again;
- **pending**: no verdict yet, with what it waits for ("root@lb1: nginx -T", "holding a tunnel 2.1/6 s");
- **stopped**: the run stopped before deciding it (the reason is the run's).

The run itself is idle (no target), running, stopped (with the reason) or done. Plain Python: the
diagnosis screen, the detail screen, the header and the exit code all read the same board, so the list
and the detail can never disagree.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from wsdoctor.facts import Fact
from wsdoctor.report import CHECK_IDS, Finding, Status
from wsdoctor.target import Target


class RunState(StrEnum):
    IDLE = "idle"  # no target yet
    RUNNING = "running"
    STOPPED = "stopped"  # the run failed; ``Board.error`` says why
    DONE = "done"


class Kind(StrEnum):
    FRESH = "fresh"
    STALE = "stale"
    PENDING = "pending"
    STOPPED = "stopped"


PROBLEMS = (Status.FAIL, Status.WARN)


@dataclass(frozen=True)
class Shown:
    """One check as every screen shows it."""

    check_id: str
    kind: Kind
    finding: Finding | None  # the fresh or stale verdict; None when pending or stopped
    title: str  # the verdict's title, or the check's own name while it has none
    waiting: str = ""  # pending: what it waits for ("waiting for root@lb1: nginx -T")

    @property
    def status(self) -> Status | None:
        return self.finding.status if self.finding is not None else None

    @property
    def problem(self) -> bool:
        return self.status in PROBLEMS


def check_title(check_id: str) -> str:
    """The check's own name ("Backends answer"): what a row says before it has a verdict. Read from the
    check's module once it is loaded (the diagnosis loads them; ``load_checks`` does after the first paint);
    the check's id until then."""
    module = sys.modules.get(f"wsdoctor.checks.{check_id}")
    return str(getattr(module, "TITLE", check_id)) if module is not None else check_id


def check_needs(check_id: str) -> tuple[str, ...]:
    """The facts CHECK_ID waits for (none known until its module is loaded)."""
    module = sys.modules.get(f"wsdoctor.checks.{check_id}")
    return tuple(str(n) for n in getattr(module, "NEEDS", ()))


def load_checks(check_ids: Iterable[str]) -> bool:
    """Import the check modules not loaded yet (their names and NEEDS); whether any was."""
    from wsdoctor import checks  # the check modules load with the diagnosis, after the first paint

    loaded = False
    for cid in check_ids:
        if f"wsdoctor.checks.{cid}" not in sys.modules:
            try:
                checks.module(cid)
                loaded = True
            except ImportError:
                continue
    return loaded


# What gathering each fact means to the engineer, in the order a run gets them. {host}: the proxy host.
_FACT_PHRASES: dict[str, str] = {
    Fact.CONFIG: "{host}: nginx -T",
    Fact.VERSION: "{host}: nginx -v",
    Fact.HANDSHAKE_PROXY: "the handshake through the proxy",
    Fact.TLS: "the TLS handshake",
    Fact.WEBSOCKET: "a WebSocket through the proxy",
    Fact.UPGRADE: "the upgrade through the proxy",
    Fact.CORS: "a handshake with an Origin",
    Fact.CONNECT: "the Socket.IO CONNECT",
    Fact.STICKY: "one polling session over several requests",
    Fact.HANDSHAKE_BACKENDS: "each backend's handshake",
    Fact.HOLD: "the held tunnel",
    Fact.COMMANDS: "{host}: nginx -t, ss, ps",
    Fact.LOGS: "{host}: the logs, read after the probes",
}


def fact_phrase(fact: str, target: Target | None, host: str | None, elapsed: float | None) -> str:
    """What gathering FACT is doing, in a few words."""
    if fact == Fact.HOLD and target is not None and target.hold:
        spent = min(elapsed or 0.0, target.hold)
        return f"the held tunnel ({spent:.1f}/{target.hold:g} s)"
    if fact in (Fact.CONFIG, Fact.VERSION) and target is not None and not target.ssh:
        source = target.nginx_conf or target.nginx_dump
        if fact == Fact.CONFIG and source:
            return f"reading {source}"
        if fact == Fact.VERSION:
            return "nginx -v"
    if fact == Fact.LOGS and target is not None and not target.ssh:
        return "the backend log, read after the probes"
    phrase = _FACT_PHRASES.get(fact, fact)
    return phrase.format(host=host or (target.ssh if target is not None else None) or "the proxy host")


def _ordered(facts: Iterable[str]) -> list[str]:
    order = list(_FACT_PHRASES)
    return sorted(facts, key=lambda f: order.index(f) if f in order else len(order))


class Board:
    """The state of every row (see the module docstring); fed by the app, read by the screens."""

    def __init__(self, check_ids: Iterable[str] = CHECK_IDS) -> None:
        self.check_ids: list[str] = list(check_ids)
        self.verdicts: dict[str, Finding] = {}
        self.fresh: set[str] = set()
        self.pending: frozenset[str] = frozenset(self.check_ids)  # checks the current run has not decided
        self.facts_pending: frozenset[str] = frozenset()  # facts still being gathered (a live view)
        self.target: Target | None = None
        self.host: str | None = None
        self.started = False  # a run has been started (else: idle)
        self.updated = False  # the current run has reported at least once
        self.done = False
        self.error: str | None = None
        self.elapsed: float | None = None

    # -- fed by the app ------------------------------------------------------------------------

    def start(self, target: Target, *, keep: bool) -> None:
        """A run starts. KEEP: the same target re-run, so the last verdicts stay (stale) until replaced."""
        if not keep:
            self.verdicts.clear()
        self.fresh.clear()
        self.pending = frozenset(self.check_ids)
        self.facts_pending = frozenset()
        self.target = target
        self.host = target.ssh
        self.started, self.updated, self.done = True, False, False
        self.error = None
        self.elapsed = None

    def accept(
        self,
        findings: Mapping[str, Finding],
        pending: frozenset[str],
        *,
        done: bool,
        facts_pending: Iterable[str] = (),
        host: str | None = None,
    ) -> None:
        """An update of the current run: decided checks become fresh; pending ones keep what they had."""
        for cid, finding in findings.items():
            if cid not in self.check_ids:  # a check this build does not list: shown at the end
                self.check_ids.append(cid)
            if done or cid not in pending:
                self.verdicts[cid] = finding
                self.fresh.add(cid)
        self.pending = (
            frozenset() if done else frozenset(c for c in self.check_ids if c in pending or c not in findings)
        )
        self.facts_pending = frozenset() if done else frozenset(str(f) for f in facts_pending)
        if host:
            self.host = host
        self.updated = True
        self.done = done

    def stop(self, error: str) -> None:
        self.error = error

    # -- read by the screens -------------------------------------------------------------------

    @property
    def state(self) -> RunState:
        if not self.started:
            return RunState.IDLE
        if self.error:
            return RunState.STOPPED
        return RunState.DONE if self.done else RunState.RUNNING

    @property
    def rerunning(self) -> bool:
        return self.state is RunState.RUNNING and any(c not in self.fresh for c in self.verdicts)

    def shown(self, check_id: str) -> Shown:
        if check_id in self.fresh:
            f = self.verdicts[check_id]
            return Shown(check_id, Kind.FRESH, f, f.title)
        if check_id in self.verdicts:
            f = self.verdicts[check_id]
            kind = Kind.STALE
            return Shown(
                check_id, kind, f, f.title, self.waiting(check_id) if self.state is RunState.RUNNING else ""
            )
        title = check_title(check_id)
        if self.state is RunState.STOPPED:
            return Shown(check_id, Kind.STOPPED, None, title)
        return Shown(check_id, Kind.PENDING, None, title, self.waiting(check_id))

    def rows(self) -> list[Shown]:
        return [self.shown(c) for c in self.check_ids]

    def waiting(self, check_id: str) -> str:
        """What a pending check waits for, in the engineer's words."""
        if not self.started:
            return "no target yet"
        if not self.updated:
            return "starting…"
        facts = [f for f in check_needs(check_id) if f in self.facts_pending]
        if not facts:
            return "being decided…"
        phrases = [fact_phrase(f, self.target, self.host, self.elapsed) for f in _ordered(facts)]
        return "waiting for " + ", ".join(phrases)

    def activity(self, limit: int = 2) -> str:
        """What the run is doing now (the header's progress text), or ""."""
        if self.state is not RunState.RUNNING:
            return ""
        if not self.updated:
            return "starting…"
        facts = _ordered(self.facts_pending)
        if not facts:
            return "deciding…"
        phrases = [fact_phrase(f, self.target, self.host, self.elapsed) for f in facts[:limit]]
        more = f" +{len(facts) - limit} more" if len(facts) > limit else ""
        return "waiting for " + "; ".join(phrases) + more

    def totals(self) -> dict[Status | str, int]:
        """Rows by what they show: each status (fresh or stale), and how many are stale, pending, stopped."""
        out: dict[Status | str, int] = {s: 0 for s in Status}
        out.update({Kind.STALE: 0, Kind.PENDING: 0, Kind.STOPPED: 0})
        for row in self.rows():
            if row.finding is not None:
                out[row.finding.status] += 1
            if row.kind is not Kind.FRESH:
                out[row.kind] += 1
        return out

    def exit_code(self) -> int:
        """1 when a row shows a failure (fresh or the last run's), as the screen says; else 0."""
        return 1 if any(r.status is Status.FAIL for r in self.rows()) else 0

    def problems(self) -> list[str]:
        """The checks that show a failure or a warning, in list order."""
        return [r.check_id for r in self.rows() if r.problem]
