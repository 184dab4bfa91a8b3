"""Live `check` against the healthy lab: total wall ≤ 1.25× the slowest single probe.

Everything runs concurrently, so a whole diagnosis should cost about as much as its slowest
probe. Both are measured in this run, in-process (no interpreter start-up in either figure):
each probe alone, then the full diagnosis (config + every probe + checks), medians of N rounds.

Twice: on bare loopback (no latency: the probes are CPU-bound on one event loop, so the whole
costs about the sum of its parts on this machine), and through a relay process that adds a
realistic 20 ms round trip between wsdoctor and nginx (what concurrency is for).
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wsdoctor import probes  # noqa: E402
from wsdoctor.demo import lab_target  # noqa: E402
from wsdoctor.diagnose import Diagnosis  # noqa: E402
from wsdoctor.lab import Lab  # noqa: E402
from wsdoctor.probes import ProbeContext  # noqa: E402
from wsdoctor.remote.session import RemoteSession  # noqa: E402
from wsdoctor.wire.client import client_request  # noqa: E402


async def single_probes(target) -> dict[str, float]:
    c = client_request(target.url, target.path, target.transports)
    ctx = ProbeContext.from_target(target).prepare()
    poll, ws = c.url_for("polling"), c.url_for("websocket")
    calls = {
        "handshake": lambda: probes.handshake(poll, ctx=ctx),
        "websocket": lambda: probes.websocket(ws, ctx=ctx),
        "upgrade": lambda: probes.upgrade(poll, ctx=ctx),
        "connect": lambda: probes.connect(ws, ctx=ctx, namespace=c.namespace, transport="websocket"),
        "sticky": lambda: probes.sticky(poll, ctx=ctx, namespace=c.namespace),
        "tls": lambda: probes.tls(c.host, c.port, ctx=ctx),
        "cors": lambda: probes.cors(poll, origin=f"https://{c.netloc}", ctx=ctx),
    }
    out = {}
    for name, call in calls.items():
        t0 = time.perf_counter()
        await call()
        out[name] = time.perf_counter() - t0
    return out


async def full(target) -> float:
    with RemoteSession(target) as session:
        t0 = time.perf_counter()
        await Diagnosis(target, session).run()
        return time.perf_counter() - t0


def measure(target, rounds: int, label: str) -> None:
    asyncio.run(full(target))  # warm-up
    slowest, totals, per = [], [], {}
    for _ in range(rounds):
        singles = asyncio.run(single_probes(target))
        for k, v in singles.items():
            per.setdefault(k, []).append(v)
        slowest.append(max(singles.values()))
        totals.append(asyncio.run(full(target)))
    print(f"-- {label}")
    for k, v in sorted(per.items(), key=lambda kv: -statistics.median(kv[1])):
        print(f"  probe {k:<10} median {statistics.median(v) * 1000:7.1f} ms")
    s, t = statistics.median(slowest), statistics.median(totals)
    ratio = t / s
    verdict = "ok" if ratio <= 1.25 else "OVER (goal ≤ 1.25×)"
    print(
        f"  slowest single probe {s * 1000:.1f} ms; whole diagnosis {t * 1000:.1f} ms; ratio {ratio:.2f}×  {verdict}"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    print("== live check against the healthy lab ==")
    with tempfile.TemporaryDirectory() as d:
        lab = Lab.up("healthy", Path(d) / "lab")
        relay = None
        try:
            info = lab.info()
            target = lab_target(info)
            target.ssh = target.identity = target.known_hosts = None
            target.nginx_conf = info["nginx_conf"]
            measure(target, rounds, "loopback, no latency (CPU-bound: one event loop)")
            public = int(info["url"].rsplit(":", 1)[1])
            port = free_port()
            relay = subprocess.Popen(
                [sys.executable, str(Path(__file__).with_name("relay.py")), str(port), str(public), "10"],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert relay.stdout is not None and relay.stdout.readline().strip() == "ready"
            # Through the relay the public URL's port is the relay's, so server selection would look for a
            # server listening there: the probes are what this measures (the config analysis is the same).
            target.url = info["url"].rsplit(":", 1)[0] + f":{port}"
            target.nginx_conf = None
            target.backends = list(info["backends"])
            measure(target, rounds, "through a relay adding a 20 ms round trip (a real network)")
        finally:
            if relay is not None:
                relay.terminate()
                relay.wait(5)
            lab.down()


if __name__ == "__main__":
    main()
