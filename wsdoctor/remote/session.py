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
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

from wsdoctor.logtime import Clock, local_clock
from wsdoctor.remote.errors import ConnectError
from wsdoctor.remote.runner import LocalRunner, Runner

if TYPE_CHECKING:
    from wsdoctor.remote.logplan import LogPlan
    from wsdoctor.target import Target

_T = TypeVar("_T")
POOL_THREADS = 24


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

    # -- lifetime -------------------------------------------------------------------------------------

    def __enter__(self) -> RemoteSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection and everything on it (tails, forwards); safe to call twice."""
        with self._lock:
            runner, self._runner = self._runner, None
            self._forwards.clear()
            self._closed = True
        if runner is not None:
            runner.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- the connection -------------------------------------------------------------------------------

    def connect(self, fresh: bool = False) -> Runner:
        """The runner, connecting once (blocking; run it with ``call``).  Raises ConnectError.

        A failed connection is not retried within the run: the gatherer has already stopped the run with
        its sentence, and a backend probe must not wait for a second refusal (or a second timeout).  The
        gatherer of a new run (the TUI's re-run) passes ``fresh``: try again, and replace a dropped one.
        """
        with self._lock:
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

                    try:
                        self._runner = SshRunner.from_target(self.target)
                    except ConnectError as exc:
                        self.error, self._failure = str(exc), exc
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
