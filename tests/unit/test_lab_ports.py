"""A stopped backend's port must stay dead for the lab's life: no later bind(0) may be handed it."""

from __future__ import annotations

import socket
from pathlib import Path

from wsdoctor.lab.procs import port_open, quiet_port


def test_quiet_port_is_free_and_below_the_ephemeral_range() -> None:
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = {quiet_port() for _ in range(20)}
    assert all(1024 <= p < low for p in ports)
    assert not any(port_open(p) for p in ports)
    handed = set()
    for _ in range(200):  # what other processes asking the kernel for a free port get
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            handed.add(s.getsockname()[1])
    assert not handed & ports
