"""Root fixtures shared by every test package: the local lab (real nginx, backends, sshd on loopback).

    def test_sticky(lab_factory):
        lab = lab_factory("no-sticky")          # started once per session, torn down at the end
        info = lab.info()                       # url, path, token, ca_file, backends, ssh, pids, …

    @pytest.mark.parametrize("lab", ["seed"], indirect=True)
    def test_seed(lab): ...                     # same labs, through the `lab` fixture (default: healthy)

Shared labs must not be changed by a test (stopping a backend, killing a process): a test that does
takes its own with ``lab_factory.fresh(scenario)``, which is also torn down at session end.
Options (``ping_interval``, ``ping_timeout``, ``ssh``) make a separate shared lab per combination.

At session end every lab is stopped and the session asserts that no process it started survived:
none of the recorded pids (nor their children) and nothing whose command line names the session's
temporary directory.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from wsdoctor.lab import SCENARIOS, Lab, LabError
from wsdoctor.lab import procs as lab_procs

#: Every lab scenario name, for parametrizing tests in any package (``from tests.conftest import …``).
LAB_SCENARIOS: tuple[str, ...] = tuple(SCENARIOS)
BROKEN_SCENARIOS: tuple[str, ...] = tuple(s for s in SCENARIOS if s != "healthy")


class LabFactory:
    """Starts labs on demand, one per (scenario, options) for the whole session, each in its own dir."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self._shared: dict[tuple[str, tuple[tuple[str, Any], ...]], Lab] = {}
        self._all: list[Lab] = []
        self.pids: set[int] = set()  # every pid any lab of this session started (and their children)
        self._count = 0

    def _new_dir(self, scenario: str) -> Path:
        self._count += 1
        path = self.base / f"{self._count:02d}-{scenario}"
        path.mkdir(parents=True, exist_ok=False)
        return path

    def _start(self, scenario: str, directory: Path, options: dict[str, Any]) -> Lab:
        lab = Lab.up(scenario, directory, **options)
        self._all.append(lab)
        self.remember(lab)
        return lab

    def remember(self, lab: Lab) -> None:
        """Record LAB's pids and their children (nginx workers, sshd sessions) for the leak check.

        A lab a test started itself (``Lab.up`` directly) is also stopped at session end, in case the
        test failed before its own ``down``.
        """
        if all(known.directory != lab.directory for known in self._all):
            self._all.append(lab)
        pids = lab.all_pids()
        self.pids.update(pids)
        self.pids.update(lab_procs.descendants_of(list(pids)))

    def __call__(self, scenario: str = "healthy", **options: Any) -> Lab:
        """The session's shared lab for SCENARIO (+ OPTIONS), started on first use.

        A shared lab found degraded (a process crashed) is started again in the same directory.
        """
        key = (scenario, tuple(sorted(options.items())))
        lab = self._shared.get(key)
        if lab is not None and lab.status()["state"] != "up":
            self.remember(lab)
            lab = self._start(scenario, lab.directory, options)
            self._shared[key] = lab
        if lab is None:
            lab = self._start(scenario, self._new_dir(scenario), options)
            self._shared[key] = lab
        return lab

    def fresh(self, scenario: str = "healthy", **options: Any) -> Lab:
        """A lab of the test's own (it may stop or kill its processes); still torn down at session end."""
        return self._start(scenario, self._new_dir(scenario), options)

    def close(self) -> None:
        """Stop every lab of the session, all at once (each down waits for its processes to exit)."""
        labs: dict[Path, Lab] = {}
        for lab in self._all:
            self.remember(lab)
            try:  # the state on disk is the truth (a later `up` in the same directory replaced it)
                labs[lab.directory] = Lab.load(lab.directory)
            except LabError:
                labs[lab.directory] = lab
        for lab in labs.values():
            self.remember(lab)
        with ThreadPoolExecutor(max_workers=32) as pool:  # each down mostly waits for its processes to exit
            list(pool.map(Lab.down, labs.values()))


def _survivors(pids: set[int], marker: str) -> list[str]:
    """Processes still alive that the session started: recorded pids, or a command line naming MARKER."""
    found: list[str] = []
    for pid in sorted(pids):
        if lab_procs.alive(pid):
            found.append(f"{pid}: {lab_procs.cmdline(pid) or '?'}")
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and int(entry.name) not in pids and int(entry.name) != os.getpid():
            line = lab_procs.cmdline(int(entry.name))
            if marker in line and lab_procs.alive(int(entry.name)):
                found.append(f"{entry.name}: {line}")
    return found


@pytest.fixture(scope="session")
def _lab_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("labs")


@pytest.fixture(scope="session", autouse=True)
def _no_process_survives(tmp_path_factory: pytest.TempPathFactory) -> Iterator[set[int]]:
    """Set up first, torn down last: the session's final check that no lab (or sshd) process survived.

    Also points WSDOCTOR_LAB_DIR at a temporary directory, so no test touches a user's real lab.
    """
    base = tmp_path_factory.getbasetemp()
    old = os.environ.get("WSDOCTOR_LAB_DIR")
    os.environ["WSDOCTOR_LAB_DIR"] = str(tmp_path_factory.mktemp("default-lab"))
    extra: set[int] = set()
    yield extra
    if old is None:
        os.environ.pop("WSDOCTOR_LAB_DIR", None)
    else:
        os.environ["WSDOCTOR_LAB_DIR"] = old
    marker = f"{base}/"
    deadline = time.monotonic() + 5.0  # sshd sessions end a moment after their client closed
    left = _survivors(extra, marker)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = _survivors(extra, marker)
    assert not left, "processes started by the tests survived the session:\n" + "\n".join(left)


@pytest.fixture(scope="session")
def lab_factory(_lab_root: Path, _no_process_survives: set[int]) -> Iterator[LabFactory]:
    """Start labs by scenario name: ``lab_factory("no-sticky")``; see the module docstring."""
    factory = LabFactory(_lab_root)
    try:
        yield factory
    finally:
        factory.close()
        _no_process_survives.update(factory.pids)


@pytest.fixture
def lab(request: pytest.FixtureRequest, lab_factory: LabFactory) -> Lab:
    """The shared lab of the scenario given by indirect parametrization (default: healthy)."""
    return lab_factory(getattr(request, "param", "healthy"))
