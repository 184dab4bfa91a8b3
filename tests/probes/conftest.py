"""Fixtures of the probe tests: real python-socketio backends (threads, session-wide) and certificates."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.probes.certs import Certs
from tests.probes.servers import SocketIOBackend


@pytest.fixture(scope="session")
def backends() -> Iterator[dict[str, SocketIOBackend]]:
    started: dict[str, SocketIOBackend] = {}
    try:
        for name, kwargs in (("b1", {}), ("b2", {}), ("fast", {"ping_interval": 0.3, "ping_timeout": 2})):
            started[name] = SocketIOBackend(name, **kwargs).start()
        yield started
    finally:
        for b in started.values():
            b.stop()


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return Certs(Path(tmp_path_factory.mktemp("certs")))
