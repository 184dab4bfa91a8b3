"""One remote session per run: the SSH connection, the gatherer that fills Facts from the proxy host,
port forwards for the backend probes, and the live log source for the TUI.

Why a session object: the issue asks for ONE SSH connection per run, but three parts need it at different
times — the gatherer (``nginx -T``, logs), the backend probes (``direct-tcpip`` forwards, so what is
tested is what nginx reaches) and the TUI's live tail.  ``session_for(target)`` hands all of them the
same connection; ``close_session(target)`` (and, as a safety net, interpreter exit) closes it and every
tail and forward on it.  Without ``--ssh`` the same code runs on this machine through a LocalRunner.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

from wsdoctor.facts import Facts, LogEvent
from wsdoctor.remote import gather as g
from wsdoctor.remote.errors import ConnectError, HostKeyChanged, HostKeyUnknown
from wsdoctor.remote.logs import LogFollower
from wsdoctor.remote.runner import LocalRunner, Runner

if TYPE_CHECKING:
    from wsdoctor.nginx.model import Directive
    from wsdoctor.target import Target

REMOTE_FACTS = ("config", "version", "logs", "commands")


class RemoteSession:
    """The proxy host of one run (SSH when ``target.ssh``, else this machine), connected on first use."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._runner: Runner | None = None
        self._lock = threading.Lock()
        self._forwards: dict[tuple[str, int], tuple[str, int]] = {}
        self.log_plan: g.LogPlan | None = None
        self.nginx_prefix: str | None = None  # the running master's -p, for relative log paths
        self.compiled: dict[str, str] = {}  # nginx -V's --prefix / --error-log-path / --http-log-path
        self.tail_sudo = False
        self.error: str | None = None

    def connect(self) -> Runner:
        """The runner, connecting once (blocking; run it in a thread).  Raises ConnectError."""
        with self._lock:
            if self._runner is None:
                if self.target.ssh:
                    from wsdoctor.remote.ssh import SshRunner

                    try:
                        self._runner = SshRunner.from_target(self.target)
                    except ConnectError as exc:
                        self.error = str(exc)
                        raise
                else:
                    self._runner = LocalRunner()
            return self._runner

    @property
    def runner(self) -> Runner | None:
        return self._runner

    def forward(self, host: str, port: int) -> tuple[str, int]:
        """Where to dial on this machine to reach ``host:port`` as the proxy host does (cached).

        Raises ForwardError when the proxy host cannot reach it (the backend is down from there).
        """
        runner = self.connect()
        key = (host, port)
        with self._lock:
            if key in self._forwards:
                return self._forwards[key]
        address = runner.forward(host, port, timeout=max(3.0, self.target.timeout))
        with self._lock:
            self._forwards.setdefault(key, address)
            return self._forwards[key]

    def close(self) -> None:
        with self._lock:
            runner, self._runner = self._runner, None
            self._forwards.clear()
        if runner is not None:
            runner.close()


_SESSIONS: dict[int, RemoteSession] = {}
_SESSIONS_LOCK = threading.Lock()


def session_for(target: Target) -> RemoteSession:
    """The session of this target object (one per run: the gatherer, probes and TUI share it)."""
    with _SESSIONS_LOCK:
        session = _SESSIONS.get(id(target))
        if session is None or session.target is not target:
            session = RemoteSession(target)
            _SESSIONS[id(target)] = session
        return session


def close_session(target: Target) -> None:
    """Close the run's connection and everything on it (tails, forwards); safe if none was opened."""
    with _SESSIONS_LOCK:
        session = _SESSIONS.pop(id(target), None)
    if session is not None:
        session.close()


@atexit.register
def _close_all() -> None:  # a safety net: no remote tail may outlive wsdoctor
    with _SESSIONS_LOCK:
        sessions = list(_SESSIONS.values())
        _SESSIONS.clear()
    for session in sessions:
        with contextlib.suppress(Exception):
            session.close()


# --- the gatherer --------------------------------------------------------------------------------------


def remote_gatherer(
    target: Target, config_ready: asyncio.Event, notes: list[str]
) -> Callable[[Facts], Awaitable[None]]:
    """The gatherer for ``--ssh``: config (``nginx -T``), version, ``nginx -t``, ports, backend hints, logs.

    ``config_ready`` is set as soon as the config is known (the probes wait for it to find the backends);
    logs follow.  Host key problems stop the run (exit 2, the sentence names the fingerprint); any other
    connection failure makes the remote facts unavailable with the reason, and the run goes on.
    """

    async def remote_host(facts: Facts) -> None:
        from wsdoctor.diagnose import InputError

        facts.pending |= set(REMOTE_FACTS)
        session = session_for(target)
        try:
            try:
                runner = await asyncio.to_thread(session.connect)
            except (HostKeyUnknown, HostKeyChanged) as exc:
                raise InputError(str(exc)) from None
            except ConnectError as exc:
                for name in REMOTE_FACTS:
                    facts.unavailable[name] = str(exc)
                notes.append(str(exc))
                return
            if target.ssh:
                facts.ssh_host = runner.host
            await _gather(runner, session, target, facts, config_ready, notes)
        finally:
            facts.pending -= set(REMOTE_FACTS)
            config_ready.set()

    return remote_host


async def _gather(
    runner: Runner,
    session: RemoteSession,
    target: Target,
    facts: Facts,
    config_ready: asyncio.Event,
    notes: list[str],
) -> None:
    port = facts.client.port if facts.client is not None else None
    # Everything that does not depend on the config starts at once; one SSH connection carries it all.
    hints_task = asyncio.create_task(asyncio.to_thread(g.backend_hints, runner))
    backend_task = (
        asyncio.create_task(asyncio.to_thread(g.backend_auth_logs, runner, target.backend_log))
        if target.backend_log
        else None
    )
    ss, ps = await asyncio.gather(
        asyncio.to_thread(g.listening_ports, runner), asyncio.to_thread(g.process_list, runner)
    )
    facts.commands["ss -ltnp"] = ss
    found = await asyncio.to_thread(
        g.find_nginx, runner, conf=target.nginx_conf, listen_port=port, ss=ss, ps=ps
    )
    if found.note:
        notes.append(found.note)
    proc = found.process or g.NginxProcess(
        pid=None, binary=await asyncio.to_thread(g.nginx_binary, runner, 5.0)
    )
    version_result, dump_result, test_result = await asyncio.gather(
        asyncio.to_thread(g.nginx_version, runner, proc),
        asyncio.to_thread(g.nginx_dump, runner, proc),
        asyncio.to_thread(g.nginx_test, runner, proc),
    )
    version, compiled = g.parse_nginx_v(version_result)
    session.nginx_prefix, session.compiled = proc.prefix, compiled
    facts.commands["nginx -V"] = version_result
    facts.commands["nginx -t"] = test_result
    if target.nginx_version:
        facts.nginx_version, facts.version_source = target.nginx_version, "--nginx-version"
    elif version:
        facts.nginx_version, facts.version_source = version, f"nginx -V on {runner.host}"
    else:
        facts.unavailable["version"] = version_result.error or f"nginx -V gave no version on {runner.host}"

    dump = g.dump_text(dump_result)
    if dump is None:
        facts.commands["nginx -T"] = dump_result
        why = dump_result.error or _last_line(dump_result.stderr) or "no configuration was printed"
        facts.unavailable["config"] = f"nginx -T failed on {runner.host} ({why})"
    else:
        from wsdoctor.nginx.load import LoadError, load_dump

        try:
            facts.config = await asyncio.to_thread(load_dump, dump, f"from {runner.host}")
            facts.config_source = facts.config.source
        except LoadError as exc:
            facts.unavailable["config"] = str(exc)
    facts.pending -= {"config", "version"}
    config_ready.set()

    # Logs: from the config, at the location the client's request reaches.
    tails: list[asyncio.Task[tuple]] = []
    if facts.config is not None:
        location, read_timeout = _location_of(facts)
        plan = g.log_sources(
            facts.config, location, prefix=proc.prefix, compiled=compiled, read_timeout=read_timeout
        )
        session.log_plan = plan
        for note in plan.notes:
            if note not in notes:
                notes.append(note)
        tails = [
            asyncio.create_task(asyncio.to_thread(g.tail_log, runner, source)) for source in plan.sources
        ]
    elif "config" in facts.unavailable:
        notes.append("no config, so the nginx logs could not be located: " + facts.unavailable["config"])

    for source_result in await asyncio.gather(*tails):
        result, events, sudo = source_result
        facts.commands[f"tail {result.argv[-1]}"] = result
        session.tail_sudo = session.tail_sudo or sudo
        facts.logs.extend(events)
        if result.error or result.exit_status != 0:
            notes.append(result.error or f"could not read {result.argv[-1]}: {_last_line(result.stderr)}")
    for name, result in (await hints_task).items():
        facts.commands[name] = result
    if backend_task is not None:
        result, events = await backend_task
        facts.commands[f"backend log {target.backend_log}"] = result
        facts.logs.extend(events)
        if result.error or result.exit_status != 0:
            notes.append(result.error or f"backend log {target.backend_log}: {_last_line(result.stderr)}")


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _location_of(facts: Facts) -> tuple[Directive | None, float | None]:
    """The location the client's request reaches and its effective proxy_read_timeout (seconds)."""
    if facts.client is None or facts.config is None:
        return None, None
    from wsdoctor.nginx.effective import parse_duration, scalar
    from wsdoctor.nginx.routing import route_for

    route = route_for(facts)
    location = route.location if route is not None else None
    if location is None:
        return (route.server if route is not None else None), None
    setting = scalar(location, "proxy_read_timeout", facts.nginx_version)
    value = setting.value[0] if setting.value else None
    return location, parse_duration(value) if value else None


# --- live logs for the TUI ------------------------------------------------------------------------------------


async def live_logs(
    target: Target,
    facts: Facts,
    interval: float = 0.2,
    include_unclassified: bool = True,
    backlog: int = 50,
) -> AsyncIterator[list[LogEvent]]:
    """Batches of LogEvents from a live tail of the logs that apply to the location.

    Usable as the TUI's ``log_source_factory(target, facts)``: every new line comes as an event (the
    unclassified ones with ``kind == check == ""``, for the log view; only classified ones speak for a
    check).  Uses the run's session (so over SSH, the same connection); cancelling the consuming task
    stops every tail on the host.  Raises RemoteError (one sentence) when there is nothing to follow.
    """
    from wsdoctor.remote.errors import RemoteError

    session = session_for(target)
    runner = await asyncio.to_thread(session.connect)
    plan = session.log_plan
    if plan is None:
        if facts.config is None:
            raise RemoteError(
                "the nginx logs cannot be located without the config: "
                + (facts.unavailable.get("config") or "give --ssh or --nginx-conf")
            )
        location, read_timeout = _location_of(facts)
        plan = g.log_sources(
            facts.config,
            location,
            prefix=session.nginx_prefix,
            compiled=session.compiled,
            read_timeout=read_timeout,
        )
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
