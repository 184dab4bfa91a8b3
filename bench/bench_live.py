"""Live `check` against the healthy lab: total wall ≤ 1.25× the slowest single probe (issue 4).

Everything runs concurrently, so a whole diagnosis should cost about as much as its slowest
probe. Both are measured in this run, in-process (no interpreter start-up in either figure):
each probe alone, then the full diagnosis (config + every probe + checks), medians of N rounds.
"""

from __future__ import annotations

import asyncio
import statistics
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
    t0 = time.perf_counter()
    await Diagnosis(target).run()
    return time.perf_counter() - t0


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    print("== live check against the healthy lab (issue 4) ==")
    with tempfile.TemporaryDirectory() as d:
        lab = Lab.up("healthy", Path(d) / "lab")
        try:
            target = lab_target(lab.info())
            target.ssh = target.identity = target.known_hosts = None
            target.nginx_conf = lab.info()["nginx_conf"]
            asyncio.run(full(target))  # warm-up
            slowest, totals, per = [], [], {}
            for _ in range(rounds):
                singles = asyncio.run(single_probes(target))
                for k, v in singles.items():
                    per.setdefault(k, []).append(v)
                slowest.append(max(singles.values()))
                totals.append(asyncio.run(full(target)))
        finally:
            lab.down()
    for k, v in sorted(per.items(), key=lambda kv: -statistics.median(kv[1])):
        print(f"  probe {k:<10} median {statistics.median(v) * 1000:7.1f} ms")
    s, t = statistics.median(slowest), statistics.median(totals)
    ratio = t / s
    verdict = "ok" if ratio <= 1.25 else "OVER (goal ≤ 1.25×)"
    print(
        f"slowest single probe {s * 1000:.1f} ms; whole diagnosis {t * 1000:.1f} ms; ratio {ratio:.2f}×  {verdict}"
    )


if __name__ == "__main__":
    main()
