"""The proxy host of one run: its connection, port forwards, and what the run learnt about it.

Who owns it: whoever runs a diagnosis — ``diagnose.run_headless`` for the CLI, the TUI for its runs —
creates a ``RemoteSession`` and closes it (``with RemoteSession(target) as session:``), and passes it down
to everything that needs the host: the remote gatherers (``nginx -T``, logs), the backend probes (their
``direct-tcpip`` forwards, so what is tested is what nginx reaches) and the TUI's live tail. So the run
holds ONE SSH connection, and every signature that touches the host names the session it uses. Without
``--ssh`` the same session runs on this machine through a LocalRunner (``--backend-log`` is read here then).

Remote calls block (paramiko, subprocess): each runs in a thread of the session's own pool (``call``).
asyncio's default pool has cpu+4 threads (6 on 2 cores): the commands of a run, the backend forwards and
the config parse would queue behind each other there, which is exactly the serial wait this concurrency
removes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

from wsdoctor.logtime import Clock, local_clock
from wsdoctor.remote.errors import ConnectError
from wsdoctor.remote.host import Discovery, start_discovery
from wsdoctor.remote.runner import LocalRunner, Runner
from wsdoctor.remote.ssh.config import DEFAULT_TIMEOUT, SshSpec, dial, resolve
from wsdoctor.wire.client import client_request

if TYPE_CHECKING:
    from wsdoctor.remote.logplan import LogPlan
    from wsdoctor.target import Target

_T = TypeVar("_T")
POOL_THREADS = 24
DISCOVERY_FRESH = 20.0  # seconds a discovery sent on connecting still describes the host


def client_port(target: Target) -> int | None:
    """The port the client connects to: with several nginx masters on the host, the one listening there."""
    if not target.url:
        return None
    try:
        return client_request(target.url, target.path, target.transports, target.raw).port
    except ValueError:
        return None


class RemoteSession:
    """The proxy host of one run (SSH when ``target.ssh``, else this machine), connected on first use."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._runner: Runner | None = None
        self._lock = threading.Lock()
        self._forwards: dict[tuple[str, int], tuple[str, int]] = {}
        self._pool = ThreadPoolExecutor(max_workers=POOL_THREADS, thread_name_prefix="wsdoctor-remote")
        self._closed = False
        self.log_plan: LogPlan | None = None
        self.nginx_prefix: str | None = None  # the running master's -p, for relative log paths
        self.compiled: dict[str, str] = {}  # nginx -V's --prefix / --error-log-path / --http-log-path
        self.tail_sudo = False
        self.clock: Clock | None = None  # the host's clock against ours, from the run's `date`
        self.error: str | None = None
        self._failure: ConnectError | None = None
        self._early: Future[None] | None = None  # the connection started by ``start``
        self._discovery: Discovery | None = None  # the first batch of commands, sent on connecting
        self._drop_listener: Callable[[str], None] | None = None

    # -- lifetime -------------------------------------------------------------------------------------

    def __enter__(self) -> RemoteSession:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection and everything on it (tails, forwards); safe to call twice."""
        with self._lock:
            runner, self._runner = self._runner, None
            self._forwards.clear()
            self._closed = True
            self._discovery = None  # (its shell is the runner's: closed with it)
        if runner is not None:
            runner.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- the connection -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start connecting now, in the background (with ``--ssh``): the TCP and SSH handshakes, which wait
        on the network, overlap whatever the run does before it needs the host (loading the probes, parsing
        options).  Entering the session (``with``) calls it.  The run's first ``connect`` waits for this
        attempt and gets its runner or its failure (it does not try a second time)."""
        if not self.target.ssh:
            return
        with self._lock:
            if self._closed or self._early is not None or self._runner is not None:
                return
            self._early = self._pool.submit(self._connect_early)
        # paramiko loads here (the measured boundary, a quarter of a second of CPU) while the pool thread
        # resolves the destination and opens the TCP connection: the network waits overlap the load.
        import wsdoctor.remote.ssh.runner  # noqa: F401

    def _connect_early(self) -> None:
        target = self.target
        assert target.ssh
        dialed: tuple[SshSpec, socket.socket | OSError | None] | None = None
        with contextlib.suppress(ConnectError):  # (a bad destination: connect says it)
            spec = resolve(
                target.ssh,
                config_file=target.ssh_config,
                identity=target.identity,
                known_hosts=target.known_hosts,
            )
            dialed = (spec, dial(spec, max(DEFAULT_TIMEOUT, target.timeout)))
        with contextlib.suppress(ConnectError):
            self.connect(dialed=dialed)

    def connect(
        self,
        fresh: bool = False,
        dialed: tuple[SshSpec, socket.socket | OSError | None] | None = None,
    ) -> Runner:
        """The runner, connecting once (blocking; run it with ``call``).  Raises ConnectError.

        A failed connection is not retried within the run: the gatherer has already stopped the run with
        its sentence, and a backend probe must not wait for a second refusal (or a second timeout).  The
        gatherer of a new run (the TUI's re-run) passes ``fresh``: try again, and replace a dropped one.
        """
        early = self._early
        if early is not None and fresh:
            with contextlib.suppress(Exception):  # this run's own attempt, started early: wait for it,
                early.result()  # and do not repeat it (its runner or its failure is this run's)
            fresh = False
            self._early = None
        with self._lock:
            if dialed is not None and isinstance(dialed[1], socket.socket) and (
                self._closed or self._runner is not None or self._failure is not None
            ):
                dialed[1].close()  # not needed after all: nothing left open
            if self._closed:
                raise ConnectError("the run is over: its connection to the proxy host was closed.")
            if fresh:
                self._failure = None
                if self._runner is not None and not getattr(self._runner, "connected", True):
                    stale, self._runner = self._runner, None
                    self._forwards.clear()
                    with contextlib.suppress(Exception):
                        stale.close()
            if self._runner is None:
                if self._failure is not None:
                    raise self._failure
                if self.target.ssh:
                    from wsdoctor.remote.ssh import SshRunner  # paramiko: only when there is a host to reach

                    spec, sock = dialed if dialed is not None else (None, None)
                    try:
                        runner = SshRunner.from_target(self.target, spec=spec, dialed=sock)
                    except ConnectError as exc:
                        self.error, self._failure = str(exc), exc
                        raise
                    runner.prepare()  # the discovery shell and the SFTP channel, opening side by side
                    runner.on_drop = self._dropped_while
                    self._runner = runner
                    # The discovery goes with the connection: its requests travel with the shell's start.
                    self._discovery = start_discovery(
                        runner.shell(), guess=not self.target.nginx_conf, listen_port=client_port(self.target)
                    )
                else:
                    self._runner = LocalRunner()
            return self._runner

    def take_discovery(self) -> Discovery | None:
        """The discovery batch sent when the connection was made, for the run that needs it first (None
        when there is none, or it is too old to describe the host now: its shell is closed then)."""
        with self._lock:
            found, self._discovery = self._discovery, None
        if found is not None and time.monotonic() - found.started > DISCOVERY_FRESH:
            found.runner.close()
            return None
        return found

    def on_drop(self, listener: Callable[[str], None] | None) -> None:
        """The current run's LISTENER(what), called when the connection drops while WHAT is under way (from
        any thread); it replaces the previous run's."""
        self._drop_listener = listener

    def _dropped_while(self, what: str) -> None:
        listener = self._drop_listener
        if listener is not None:
            with contextlib.suppress(Exception):
                listener(what)

    @property
    def dropped(self) -> bool:
        """The SSH connection of this run dropped (the host or the network ended it, not us)."""
        runner = self._runner
        return runner is not None and not self._closed and not getattr(runner, "connected", True)

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

    def host_clock(self) -> Clock:
        """The proxy host's clock as this run measured it (this machine's without --ssh; no skew before
        it was read)."""
        if not self.target.ssh:
            return local_clock()
        return self.clock or Clock(0.0, None)

    # -- blocking calls, off the event loop -------------------------------------------------------------

    async def call(self, fn: Callable[..., _T], *args: object, **kwargs: object) -> _T:
        """Run a blocking remote call in the session's pool (cancelling the await leaves it to its own
        timeout)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    def spawn(self, fn: Callable[..., _T], *args: object) -> asyncio.Task[_T]:
        """Start a blocking remote call now, in its own thread (each takes its own SSH channel)."""
        return asyncio.create_task(self.call(fn, *args))
