"""The diagnosis: run every gatherer concurrently, re-run the checks as facts arrive, stream updates.

Facts in, findings out. The CLI consumes the final update; the TUI renders every
update live. Gatherers are coroutines that fill ``Facts``; each names the facts it
will produce up front (``Facts.pending``) so checks that wait on them show as
pending instead of guessing. Nothing here imports Textual.

Who owns what: the caller of a run (``run_headless`` here, the TUI for its runs) creates the run's
``RemoteSession`` and closes it; the Diagnosis only uses it (the gatherers, the backend probes, the host's
clock for live log lines). asyncio and the session's module are imported where a run needs them: the
offline path (``run_offline``, what scripts call most) runs without an event loop and pays for neither.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from wsdoctor import checks
from wsdoctor.errors import InputError
from wsdoctor.facts import Facts, Gatherer, LogEvent
from wsdoctor.gather.local import gather_offline, offline_without_loop
from wsdoctor.logtime import drop_before, local_clock, merge_logs
from wsdoctor.report import CHECK_IDS, Finding, Report
from wsdoctor.routes import route_for
from wsdoctor.target import Target

if TYPE_CHECKING:
    from wsdoctor.remote.session import RemoteSession

__all__ = ["Diagnosis", "Update", "chain_of", "local_files", "run_headless", "target_summary"]


@dataclass
class Update:
    findings: dict[str, Finding]
    pending: frozenset[str]  # check ids whose facts are still being gathered
    facts: Facts
    chain: list[
        tuple[str, str]
    ]  # ("url", …), ("request", …), ("namespace", …), ("location", …), ("upstream", …)
    elapsed: float
    done: bool
    notes: list[str] = field(default_factory=list)  # gatherer problems worth a line in the header


def chain_of(facts: Facts) -> list[tuple[str, str]]:
    """URL → request → namespace → location → upstream URI, as far as the engine computed it."""
    out: list[tuple[str, str]] = []
    t = facts.target
    if t.url:
        out.append(("url", t.url))
    c = facts.client
    if c is not None:
        out.append(("request", f"GET {c.request_path}?{c.query}"))
        out.append(("namespace", c.namespace))
    route = route_for(facts)
    if route is not None:
        loc = getattr(route, "location_label", None)
        if loc:
            out.append(("location", loc))
        up = getattr(route, "upstream_uri", None)
        if up:
            out.append(("upstream", f"{getattr(route, 'upstream_target', '') or ''}{up}"))
    return out


def target_summary(facts: Facts) -> dict:
    """The report's ``target``: what was diagnosed, and where each input came from — the nginx version and
    its source (``nginx -v here``, ``nginx -V on HOST``, ``--nginx-version`` or ``unknown``), and the files
    read from this machine rather than from the target."""
    d: dict = {}
    t = facts.target
    if t.url:
        d["url"] = t.url
    for key, value in chain_of(facts):
        if key == "upstream":
            d["upstream_uri"] = value
        elif key != "url":
            d[key] = value
    if facts.config_source:
        d["nginx"] = facts.config_source
    if facts.nginx_version:
        d["nginx_version"] = facts.nginx_version
    if facts.nginx_version or facts.config is not None:
        d["nginx_version_source"] = (facts.version_source or "unknown") if facts.nginx_version else "unknown"
    local = local_files(facts)
    if local:
        d["local_files"] = local
    if t.ssh:
        d["ssh"] = t.ssh
    d["transports"] = list(t.transports)
    if t.backends:
        d["backends"] = list(t.backends)
    return d


def local_files(facts: Facts) -> list[str]:
    """The files of the config that were read from this machine's own filesystem although they stand for the
    target's: with ``--nginx-conf`` and no ``--root``, every file outside the main file's directory (an
    absolute include such as ``/etc/nginx/proxy_params`` is read from here, whatever the target has there).
    A dump, an SSH run and a ``--root`` tree read nothing from here."""
    t, config = facts.target, facts.config
    if config is None or not t.nginx_conf or t.nginx_dump or t.ssh or config.fs_root is not None:
        return []
    home = os.path.dirname(config.main_file).rstrip("/") + "/"
    return [f for f in config.files if f != config.main_file and not f.startswith(home)]


class Diagnosis:
    """One run of every gatherer and check for a target."""

    def __init__(
        self,
        target: Target,
        session: RemoteSession | None = None,
        *,
        gatherers: Iterable[Gatherer] | None = None,
        logs_after: float | None = None,
    ) -> None:
        self.target = target
        # A hard cut for log lines (our clock, a whole second): what was written before it (before a reload,
        # say) is not this run's evidence, not even a recent upstream error.
        self.logs_after = logs_after
        self.session = session  # the run's proxy host, owned by the caller (None: the run reads no host)
        self.facts = Facts(target=target)
        self._gatherers = list(gatherers) if gatherers is not None else None
        self._started = time.monotonic()
        self.findings: dict[str, Finding] = {}
        self.notes: list[str] = []
        # When the probes of this run started (our clock); None without probes (--offline, no --url): then
        # every log line is history worth showing.
        self.since: float | None = None

    # -- evaluation --------------------------------------------------------

    def evaluate(self, done: bool = False) -> Update:
        if self.logs_after is not None and self.facts.logs:
            clock = self.session.host_clock() if self.session is not None else local_clock()
            self.facts.logs[:] = drop_before(self.facts.logs, self.logs_after, clock)
        self.findings = checks.run_all(self.facts)
        pending = frozenset(cid for cid in CHECK_IDS if not done and checks.is_pending(cid, self.facts))
        return Update(
            findings=dict(self.findings),
            pending=pending,
            facts=self.facts,
            chain=chain_of(self.facts),
            elapsed=time.monotonic() - self._started,
            done=done,
            notes=list(self.notes),
        )

    def add_log_events(self, events: Iterable[LogEvent]) -> Update:
        """Lines from a live tail: they become evidence at once (a line already known is not added twice).

        The tail opens with the last lines of each log for context; like the gathered lines, only those
        written since this run started (when it probed) speak for a check: older ones describe a past
        state, such as the one before a fix.
        """
        clock = self.session.host_clock() if self.session is not None else local_clock()
        self.facts.logs[:] = merge_logs(self.facts.logs, events, since=self.since, clock=clock)
        return self.evaluate(done=not self.facts.pending)

    def report(self) -> Report:
        if not self.findings:
            self.findings = checks.run_all(self.facts)
        return Report(
            target=target_summary(self.facts),
            findings=list(self.findings.values()),
            secrets=self.target.secrets(),
            notes=list(dict.fromkeys(self.notes)),  # what the run could not read or wants said, once each
        )

    # -- running -----------------------------------------------------------

    def _plan(self) -> list[Gatherer]:
        from wsdoctor.gather.plan import plan, probes_sent  # asyncio: only for a run with gatherers

        if self._gatherers is not None:
            return self._gatherers
        self.since = time.time() if probes_sent(self.target) else None
        return plan(self.target, self.facts, self.notes, self.session, since=self.since)

    # asyncio is imported where it is used: `check --offline` runs without an event loop (run_offline).

    def run_offline(self) -> Update:
        """An offline run on this machine's files only: synchronous, no event loop, no threads."""
        gather_offline(self.target, self.facts)
        return self.evaluate(done=True)

    async def updates(self) -> AsyncIterator[Update]:
        """Yield an update at once, then one each time a gatherer finishes, then the final one."""
        import asyncio

        gatherers = self._plan()
        yield self.evaluate()
        tasks = [asyncio.create_task(self._guard(g)) for g in gatherers]
        try:
            for fut in asyncio.as_completed(tasks):
                await fut
                yield self.evaluate(done=False)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        yield self.evaluate(done=True)

    async def _guard(self, gatherer: Gatherer) -> None:
        import asyncio

        try:
            await gatherer(self.facts)
        except InputError:
            raise
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - a gatherer bug is reported, the run goes on
            name = getattr(gatherer, "__name__", "gatherer")
            self.notes.append(f"{name} failed: {type(e).__name__}: {e}")

    async def run(self) -> Update:
        """Gather everything, then evaluate once (the CLI needs no intermediate updates)."""
        import asyncio

        gatherers = self._plan()
        tasks = [asyncio.create_task(self._guard(g)) for g in gatherers]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return self.evaluate(done=True)


def run_headless(target: Target) -> Report:
    """One whole diagnosis for the CLI (`check`, `demo --text`): no event loop at all when only this machine's
    files are read, else every gatherer at once on a session this function opens and closes however the run
    ends."""
    if offline_without_loop(target):
        diagnosis = Diagnosis(target)
        diagnosis.run_offline()  # a script's `check --offline` does not pay for asyncio
        return diagnosis.report()
    import asyncio

    from wsdoctor.remote.session import RemoteSession

    with RemoteSession(target) as session:
        diagnosis = Diagnosis(target, session)
        asyncio.run(diagnosis.run())
    return diagnosis.report()
