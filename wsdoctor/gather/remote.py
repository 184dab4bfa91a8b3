"""The gatherers that read the proxy host (over SSH, or this machine): its nginx (``ps``, ``nginx -T``,
``-V``, ``-t``), its listening ports and backend processes, its logs and the backend's log, and the live
log tail the TUI follows. Every one of them is handed the run's ``RemoteSession``; none opens or closes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import urlsplit

from wsdoctor.errors import InputError
from wsdoctor.facts import CommandResult, Fact, Facts, Gatherer, LogEvent
from wsdoctor.logtime import Clock, local_clock, merge_logs
from wsdoctor.nginx.effective import parse_duration, scalar
from wsdoctor.nginx.load import LoadError, load_dump
from wsdoctor.nginx.model import Directive
from wsdoctor.remote import host as h
from wsdoctor.remote import logplan as lp
from wsdoctor.remote.errors import ConnectError, RemoteError
from wsdoctor.remote.logs import LogFollower
from wsdoctor.remote.runner import Runner
from wsdoctor.remote.session import RemoteSession
from wsdoctor.routes import corrected_request, route_for

REMOTE_FACTS = (Fact.CONFIG, Fact.VERSION, Fact.LOGS, Fact.COMMANDS)
_T = TypeVar("_T")


# --- the gatherers -------------------------------------------------------------------------------------


@dataclass
class _Handoff:
    """What the host gatherer passes to the logs gatherer once it knows it (set in every case)."""

    ready: asyncio.Event = field(default_factory=asyncio.Event)
    runner: Runner | None = None
    plan: lp.LogPlan | None = None
    clock: Clock | None = None  # the host's clock against ours (None: unknown)
    # `pm2 jlist`, which says whether the app named by --backend-log pm2:NAME exists
    pm2: asyncio.Task[dict[str, CommandResult]] | None = None
    commands: dict[str, asyncio.Task] = field(default_factory=dict)  # still running when the config is in
    nginx: h.NginxProcess | None = None  # the master diagnosed (its pid marks nginx's sockets in ss)
    users: int = 2  # the commands and logs gatherers: the last one done ends the run's remote shell
    lost: list[str] = field(default_factory=list)  # what the run could not read once the connection dropped
    lost_note: int | None = None  # where in the notes the one sentence about it is

    def dropped(self, session: RemoteSession, notes: list[str], what: str) -> None:
        """The connection dropped and cut WHAT short (a read, a command, a tunnel's probe): ONE note says
        so for the whole run (each command's own error repeats the same cause)."""
        if what not in self.lost:
            self.lost.append(what)
        items = self.lost[:-1] and ", ".join(self.lost[:-1]) + " and " + self.lost[-1] or self.lost[0]
        host = self.runner.host if self.runner is not None else session.target.ssh
        sentence = (
            f"the SSH connection to {host} dropped during the run: {items} did not finish, so the findings "
            "use what was gathered before it (re-run when the host is reachable)."
        )
        if self.lost_note is None or self.lost_note >= len(notes):
            self.lost_note = len(notes)
            notes.append(sentence)
        else:
            notes[self.lost_note] = sentence

    def release(self, session: RemoteSession) -> None:
        """One of the two gatherers is done with the run's shell; the last one closes it (unless it is the
        session's own runner, as without SSH)."""
        self.users -= 1
        if self.users == 0 and self.runner is not None and self.runner is not session.runner:
            self.runner.close()


def remote_gatherers(
    session: RemoteSession,
    config_ready: asyncio.Event,
    notes: list[str],
    *,
    probes_done: asyncio.Event,
    since: float | None,
) -> list[Gatherer]:
    """The gatherers for ``--ssh``, on SESSION's connection: the host (config, version), its commands
    (``nginx -t``, ports, backend hints) and its logs — three, so each part shows as soon as it is known.

    Commands run concurrently, each on its own channel of the one connection: ``ps`` and ``ss`` first
    (``ps`` names the master), then ``nginx -T``/``-V``/``-t`` at once, the backend hints once the config
    is in.  ``config_ready`` is set the moment the dump is parsed (the backend probes wait for it to know
    the upstream); the probes through the proxy wait for nothing remote.  The logs are read (SFTP where the
    host has it: no login shell per file) once the probes through the proxy are done (``probes_done``), so
    they hold the lines this run caused; lines from before the run (``since``, our clock, corrected by the
    host's) are left out unless ``since`` is None.  Any SSH connection failure stops the run with its
    sentence (exit 2): a diagnosis without the host it was asked to look at would pass checks it never ran.
    """
    handoff = _Handoff()
    target = session.target

    async def remote_host(facts: Facts) -> None:
        facts.pending |= set(REMOTE_FACTS)
        loop = asyncio.get_running_loop()

        def dropped_while(what: str) -> None:  # (from a tunnel's thread: the note is written by the loop)
            with contextlib.suppress(RuntimeError):  # the run is over: nothing left to tell
                loop.call_soon_threadsafe(handoff.dropped, session, notes, what)

        session.on_drop(dropped_while)  # (this run's: it replaces a previous run's)
        try:
            try:
                runner = await session.call(session.connect, True)
            except ConnectError as exc:
                for name in REMOTE_FACTS:
                    facts.unavailable[name] = str(exc)
                raise InputError(str(exc)) from exc
            if target.ssh:
                facts.ssh_host = runner.host
            handoff.runner = runner
            await _gather_host(runner, session, facts, config_ready, notes, handoff)
        finally:
            facts.pending -= {Fact.CONFIG, Fact.VERSION}
            config_ready.set()
            handoff.ready.set()

    async def remote_commands(facts: Facts) -> None:
        facts.pending.add(Fact.COMMANDS)
        try:
            await handoff.ready.wait()
            await _gather_commands(handoff, session, facts, notes)
        finally:
            facts.pending.discard(Fact.COMMANDS)
            handoff.release(session)

    async def remote_logs(facts: Facts) -> None:
        facts.pending.add(Fact.LOGS)
        try:
            await handoff.ready.wait()
            if handoff.runner is None:  # the host gatherer stopped the run or failed, and said why
                return
            await probes_done.wait()
            await _gather_logs(handoff, session, facts, notes, since)
        finally:
            facts.pending.discard(Fact.LOGS)
            handoff.release(session)

    return [remote_host, remote_commands, remote_logs]


def backend_log_gatherer(
    session: RemoteSession, notes: list[str], *, probes_done: asyncio.Event, since: float | None
) -> Gatherer:
    """``--backend-log`` without ``--ssh``: this machine is the backend host; read it after the probes."""

    async def backend_log(facts: Facts) -> None:
        facts.pending.add(Fact.LOGS)
        try:
            await probes_done.wait()
            runner = await session.call(session.connect)
            events = await _backend_log(session, runner, facts, notes, None)
            facts.logs[:] = merge_logs(facts.logs, events, since=since, clock=local_clock())
        finally:
            facts.pending.discard(Fact.LOGS)

    return backend_log


async def _gather_host(
    runner: Runner,
    session: RemoteSession,
    facts: Facts,
    config_ready: asyncio.Event,
    notes: list[str],
    handoff: _Handoff,
) -> None:
    """ps → nginx -T (the config) → nginx -V (the version, the log plan); the other commands are left
    running in HANDOFF for the commands gatherer.

    Over SSH every command goes through ONE remote shell (one channel, one login shell: its start-up files
    often cost more than the commands), in the order they should run.  The discovery batch (``ps`` with
    the clock, ``ss``, and the only master's ``nginx -T``/``-V``/``-t`` guessed) left with the connection
    (``session.take_discovery``); a guess that is not the master ``find_nginx`` picks is replaced by the
    command itself.  The backend hints (not on the way to the config) start once the dump is in, while it
    is parsed and the backends are probed.  Each result is the command's own (argv, output, exit status),
    as if it had run alone."""
    target = session.target
    port = facts.client.port if facts.client is not None else None
    if target.nginx_version:
        facts.nginx_version, facts.version_source = target.nginx_version, "--nginx-version"
    batch = session.take_discovery() or h.start_discovery(
        runner.shell(), guess=not target.nginx_conf, listen_port=port
    )
    shell = handoff.runner = batch.runner
    ss_task = session.spawn(batch.ss.result)  # beside ps: with several masters it picks the one
    tasks: list[asyncio.Task] = [ss_task]
    try:
        ps, clock = h.split_clock(await session.call(batch.ps.result), batch.before, time.time())
        handoff.clock = session.clock = clock if target.ssh else local_clock()
        masters = h.nginx_masters(ps)
        # ss decides only between several masters (the one listening on the client's port).
        ss = await ss_task if len(masters) > 1 and not target.nginx_conf and port is not None else None
        found = await session.call(
            h.find_nginx, shell, conf=target.nginx_conf, listen_port=port, ss=ss, ps=ps
        )
        if found.note:
            notes.append(found.note)
        proc = found.process or h.NginxProcess(
            pid=None, binary=await session.call(h.nginx_binary, shell, 5.0)
        )
        # Then the three nginx commands (already run, when the batch guessed this master), nginx -T first.
        dump_task = session.spawn(batch.nginx(proc, "-T").result)
        version_task = session.spawn(batch.nginx(proc, "-V").result)
        test_task = session.spawn(batch.nginx(proc, "-t").result)
        tasks += [dump_task, version_task, test_task]
        dump_result = await dump_task
        # The backend hints are not on the way to the config: they start once it is in, beside the logs.
        pm2_task = session.spawn(h.pm2_hint, shell)
        units_task = session.spawn(h.units_hint, shell)
        tasks += [pm2_task, units_task]
        handoff.pm2 = pm2_task
        handoff.commands = {"nginx -t": test_task, "ss -ltnp": ss_task, "pm2": pm2_task, "units": units_task}
        handoff.nginx = found.process
        dump = h.dump_text(dump_result)
        if dump is None:
            facts.commands["nginx -T"] = dump_result
            why = dump_result.error or h.last_line(dump_result.stderr) or "no configuration was printed"
            facts.unavailable[Fact.CONFIG] = f"nginx -T failed on {runner.host} ({why})"
            notes.append(
                "no config, so the nginx logs could not be located: " + facts.unavailable[Fact.CONFIG]
            )
        else:
            try:
                facts.config = await session.call(load_dump, dump, f"from {runner.host}")
                facts.config_source = facts.config.source
            except LoadError as exc:
                facts.unavailable[Fact.CONFIG] = str(exc)
        facts.pending.discard(Fact.CONFIG)
        config_ready.set()

        # The logs to read, as soon as they are known: nginx -V's compiled-in paths matter only for
        # relative paths without -p and for the default logs.
        plan = _log_plan(facts, proc.prefix, None) if facts.config is not None else None
        if plan is not None:
            _publish_plan(plan, session, handoff, notes)
        version_result = await version_task
        if version_result.error and session.dropped:
            handoff.dropped(session, notes, "`nginx -V`")
        version, compiled = h.parse_nginx_v(version_result)
        session.nginx_prefix, session.compiled = proc.prefix, compiled
        facts.commands["nginx -V"] = version_result
        if not target.nginx_version:
            if version:
                facts.nginx_version, facts.version_source = version, f"nginx -V on {runner.host}"
            else:
                facts.unavailable[Fact.VERSION] = (
                    version_result.error or f"nginx -V gave no version on {runner.host}"
                )
        facts.pending.discard(Fact.VERSION)
        if plan is None and facts.config is not None:
            _publish_plan(_log_plan(facts, proc.prefix, compiled), session, handoff, notes)
        handoff.ready.set()  # (no config: no nginx logs, but the backend log is still read)
    except BaseException:
        for task in tasks:  # nothing left running for a run that is over
            task.cancel()
        raise


async def _outcome(task: asyncio.Task[_T]) -> _T | None:
    """TASK's result; None when the host gatherer cancelled it (it failed, and says so itself).  Our own
    cancellation still propagates (the shield keeps the two apart)."""
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        if task.cancelled():
            return None
        raise


async def _gather_commands(
    handoff: _Handoff, session: RemoteSession, facts: Facts, notes: list[str]
) -> None:
    """``nginx -t``, ``ss -ltnp`` (cut to nginx and the upstream: needs the config), the backend hints."""
    tasks = handoff.commands
    if not tasks:  # the host gatherer stopped before starting them, and said why
        return
    try:
        test = await _outcome(tasks["nginx -t"])
        if test is not None:
            facts.commands["nginx -t"] = test
        ss = await _outcome(tasks["ss -ltnp"])
        if ss is not None:
            facts.commands["ss -ltnp"] = _focused_ss(ss, facts, handoff.nginx)
        for name in ("pm2", "units"):
            facts.commands.update(await _outcome(tasks[name]) or {})
    finally:
        for task in tasks.values():
            task.cancel()
    if session.dropped:
        for name in ("nginx -t", "ss -ltnp", "pm2 jlist", "systemctl list-units"):
            result = facts.commands.get(name)
            if result is not None and result.error is not None:
                handoff.dropped(session, notes, f"`{name}`")


def _log_plan(facts: Facts, prefix: str | None, compiled: dict[str, str] | None) -> lp.LogPlan | None:
    """The logs of the location the client's request reaches.  With ``compiled`` None: the plan if nginx's
    compiled-in paths cannot change it (tried with two different made-up ones), else None (ask nginx -V)."""
    assert facts.config is not None
    location, read_timeout = _location_of(facts)

    def plan_with(paths: dict[str, str]) -> lp.LogPlan:
        assert facts.config is not None
        plan = lp.log_sources(
            facts.config, location, prefix=prefix, compiled=paths, read_timeout=read_timeout
        )
        _add_corrected_logs(plan, facts, prefix, paths)
        return plan

    if compiled is not None:
        return plan_with(compiled)
    probes = [
        {"prefix": f"/{tag}/", "error-log-path": f"/{tag}/error.log", "http-log-path": f"/{tag}/access.log"}
        for tag in ("wsdoctor-a", "wsdoctor-b")
    ]
    first, second = plan_with(probes[0]), plan_with(probes[1])
    same = [(x.kind, x.path) for x in first.sources] == [(x.kind, x.path) for x in second.sources]
    return first if same and first.notes == second.notes else None


def _publish_plan(plan: lp.LogPlan, session: RemoteSession, handoff: _Handoff, notes: list[str]) -> None:
    """The logs are known: the logs gatherer may read them (once the probes are done)."""
    session.log_plan = handoff.plan = plan
    for note in plan.notes:
        if note not in notes:
            notes.append(note)
    handoff.ready.set()


def _focused_ss(ss: CommandResult, facts: Facts, proc: h.NginxProcess | None) -> CommandResult:
    """``ss -ltnp`` cut to nginx's sockets and the ports of the upstream the client's request reaches."""
    pids = {proc.pid} if proc is not None and proc.pid is not None else set()
    ports: dict[int, str] = {}
    expected: dict[int, str] = {}
    if facts.client is not None:
        ports[facts.client.port] = "nginx"
    route = None
    if facts.config is not None and facts.client is not None:
        route = route_for(facts)
    servers = list(route.upstream_servers) if route is not None else []
    label = f"upstream {route.upstream_name}" if route is not None and route.upstream_name else "upstream"
    servers += [urlsplit(b).netloc for b in facts.target.backends]
    for server in servers:
        if server.startswith("unix:"):
            continue
        host, _, port_text = server.rpartition(":")
        if not port_text.isdigit():
            continue
        ports[int(port_text)] = label
        if host.strip("[]") in ("127.0.0.1", "localhost", "::1"):
            expected[int(port_text)] = server
    return h.focus_listening(ss, pids=pids, ports=ports, expected=expected)


async def _gather_logs(
    handoff: _Handoff,
    session: RemoteSession,
    facts: Facts,
    notes: list[str],
    since: float | None,
) -> None:
    runner = handoff.runner
    assert runner is not None
    plan = handoff.plan
    tails = [
        session.spawn(lp.tail_log, runner, source) for source in (plan.sources if plan is not None else [])
    ]
    backend = asyncio.create_task(_backend_log(session, runner, facts, notes, handoff.pm2, handoff))
    events: list[LogEvent] = []
    for result, found, sudo in await asyncio.gather(*tails):
        facts.commands[f"tail {result.argv[-1]}"] = result
        session.tail_sudo = session.tail_sudo or sudo
        events.extend(found)
        if result.error and session.dropped:
            handoff.dropped(session, notes, "the nginx logs")
        elif result.error or result.exit_status != 0:
            why = result.error or h.last_line(result.stderr) or f"exit status {result.exit_status}"
            notes.append(f"the nginx log {result.argv[-1]} could not be read on {runner.host}: {why}")
    events.extend(await backend)
    facts.logs[:] = merge_logs(facts.logs, events, since=since, clock=handoff.clock or Clock())


async def _backend_log(
    session: RemoteSession,
    runner: Runner,
    facts: Facts,
    notes: list[str],
    pm2: asyncio.Task[dict[str, CommandResult]] | None,
    handoff: _Handoff | None = None,
) -> list[LogEvent]:
    """``--backend-log``: its auth failures as events, and a note when it cannot be read."""
    target = session.target
    if not target.backend_log:
        return []
    result, events = await session.call(h.backend_auth_logs, runner, target.backend_log)
    facts.commands[f"backend log {target.backend_log}"] = result
    apps = None
    if pm2 is not None and target.backend_log.startswith("pm2:"):
        with contextlib.suppress(Exception):  # the commands gatherer reports its own failures
            hints = await _outcome(pm2)
            apps = h.pm2_apps(hints) if hints is not None else None
    problem = h.backend_log_problem(target.backend_log, result, apps)
    if problem and result.error and handoff is not None and session.dropped:
        handoff.dropped(session, notes, "the backend log")
    elif problem and problem not in notes:
        notes.append(problem)
    return events


def _add_corrected_logs(
    plan: lp.LogPlan, facts: Facts, prefix: str | None, compiled: dict[str, str] | None
) -> None:
    """When the client's request misses the Socket.IO location (its 404s are in PLAN's logs), also follow
    the logs of the location its corrected request reaches: they may be other files (the seed's are)."""
    assert facts.config is not None
    corrected, read_timeout = _corrected_location_of(facts)
    route_location, _ = _location_of(facts)
    if corrected is None or corrected is route_location:
        return
    extra = lp.log_sources(
        facts.config, corrected, prefix=prefix, compiled=compiled, read_timeout=read_timeout
    )
    known = {src.path for src in plan.sources}
    plan.sources += [src for src in extra.sources if src.path not in known]


def _corrected_location_of(facts: Facts) -> tuple[Directive | None, float | None]:
    """The location the client's corrected request reaches (the runbook's namespace trap), if any."""
    if facts.client is None or facts.config is None:
        return None, None
    corrected = corrected_request(facts)
    if corrected is None or corrected.route.location is None:
        return None, None
    location = corrected.route.location
    setting = scalar(location, "proxy_read_timeout", facts.nginx_version)
    value = setting.value[0] if setting.value else None
    return location, parse_duration(value) if value else None


def _location_of(facts: Facts) -> tuple[Directive | None, float | None]:
    """The location the client's request reaches and its effective proxy_read_timeout (seconds)."""
    if facts.client is None or facts.config is None:
        return None, None
    route = route_for(facts)
    location = route.location if route is not None else None
    if location is None:
        return (route.server if route is not None else None), None
    setting = scalar(location, "proxy_read_timeout", facts.nginx_version)
    value = setting.value[0] if setting.value else None
    return location, parse_duration(value) if value else None


# --- live logs for the TUI ------------------------------------------------------------------------------------


async def live_logs(
    session: RemoteSession,
    facts: Facts,
    interval: float = 0.2,
    include_unclassified: bool = True,
    backlog: int = 50,
) -> AsyncIterator[list[LogEvent]]:
    """Batches of LogEvents from a live tail of the logs that apply to the location.

    Usable as the TUI's ``log_source_factory(session, facts)``: every new line comes as an event (the
    unclassified ones with ``kind == check == ""``, for the log view; only classified ones speak for a
    check).  Uses the run's session (so over SSH, the same connection); cancelling the consuming task
    stops every tail on the host.  Raises RemoteError (one sentence) when there is nothing to follow.
    """
    runner = await session.call(session.connect)
    plan = session.log_plan
    if plan is None:
        if facts.config is None:
            raise RemoteError(
                "the nginx logs cannot be located without the config: "
                + (facts.unavailable.get(Fact.CONFIG) or "give --ssh or --nginx-conf")
            )
        location, read_timeout = _location_of(facts)
        plan = lp.log_sources(
            facts.config,
            location,
            prefix=session.nginx_prefix,
            compiled=session.compiled,
            read_timeout=read_timeout,
        )
        _add_corrected_logs(plan, facts, session.nginx_prefix, session.compiled)
        session.log_plan = plan
    if not plan.sources:
        raise RemoteError("no nginx log file to follow: " + ("; ".join(plan.notes) or "logging is off"))
    # The last BACKLOG lines of each log first, so the view opens with context, not an empty screen.
    follower = LogFollower(
        runner,
        plan.sources,
        sudo=session.tail_sudo,
        include_unclassified=include_unclassified,
        backlog=backlog,
    )
    async for batch in follower.batches(interval):
        yield batch
