"""Fixtures for the nginx engine tests: the seed fixtures, and a real nginx with an echo backend."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.nginx.realnginx import NGINX, EchoServer, RealNginx, free_port
from wsdoctor.nginx.load import load_dump, load_file
from wsdoctor.nginx.model import Config

# The runbook's config as `nginx -T` output and as a tree, kept in the repository so a fresh clone
# anywhere runs these tests.
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SEED_DUMP = FIXTURES / "seed-nginx-T.txt"
SEED_TREE = FIXTURES / "seed-tree"


@pytest.fixture(scope="session")
def seed_tree() -> Config:
    return load_file(str(SEED_TREE / "etc/nginx/nginx.conf"), root=str(SEED_TREE))


@pytest.fixture(scope="session")
def seed_dump() -> Config:
    return load_dump(SEED_DUMP.read_text(), str(SEED_DUMP))


@pytest.fixture(scope="session")
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def real_nginx(tmp_path_factory: pytest.TempPathFactory, echo: EchoServer) -> Iterator[RealNginx]:
    """One real nginx for the whole session (reloaded per generated config), stopped at the end."""
    if not os.access(NGINX, os.X_OK):
        pytest.skip(f"{NGINX} is not installed; the differential test needs a real nginx")
    base = tmp_path_factory.mktemp("real-nginx")
    ports = [free_port(), free_port()]
    while ports[1] == ports[0]:
        ports[1] = free_port()
    ng = RealNginx(base, echo.port, ports)
    try:
        ng.start("")
        yield ng
    finally:
        ng.stop()
