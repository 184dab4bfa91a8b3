"""Fixtures for the remote tests: a real OpenSSH sshd on loopback (one per session), wsdoctor's own
known_hosts and $HOME in temporary directories, a fake ``sudo`` that wants a password.

The sshd's sessions get ``PATH=<fakebin>:…`` (``SetEnv``), so ``sudo -n`` over SSH hits the fake sudo;
nothing else in fakebin shadows a real tool.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from wsdoctor.lab.sshd import Sshd, start_sshd
from wsdoctor.remote.ssh import SshRunner

FAKE_SUDO = "#!/bin/sh\necho 'sudo: a password is required' >&2\nexit 1\n"
STD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@pytest.fixture(scope="session")
def fakebin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fakebin")
    sudo = path / "sudo"
    sudo.write_text(FAKE_SUDO)
    sudo.chmod(0o755)
    return path


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory, fakebin: Path) -> Iterator[Sshd]:
    """The session's sshd (state dir under the session's tmp base, so the leak check covers it)."""
    server = start_sshd(tmp_path_factory.mktemp("sshd"), extra_config=f"SetEnv PATH={fakebin}:{STD_PATH}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fresh_sshd(tmp_path: Path) -> Iterator[Sshd]:
    """An sshd of the test's own (for tests that kill its connections)."""
    server = start_sshd(tmp_path / "sshd")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """wsdoctor's own known_hosts goes to a temp dir; no agent unless a test starts one."""
    state = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return state


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty $HOME (no ~/.ssh keys or config) for resolution tests."""
    path = tmp_path / "home"
    (path / ".ssh").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(path))
    return path


@pytest.fixture(scope="session")
def session_runner(sshd: Sshd) -> Iterator[SshRunner]:
    """One connection shared by the read-only tests (like a run: many commands, one connection)."""
    runner = SshRunner.connect(
        sshd.destination, identity=str(sshd.client_key), known_hosts=str(sshd.known_hosts)
    )
    try:
        yield runner
    finally:
        runner.close()
