"""A whole remote ``check`` over a slow link, against OpenSSH's ``ssh HOST true`` over the same link.

The healthy lab's sshd is put behind ``relay.py`` adding a 100 ms round trip (a laptop on a VPN to another
region).  Both sides are whole processes, timed the same way, back to back in each of ROUNDS rounds after a warm-up
(medians, and the median of the per-round ratios: a shared machine's load then weighs on both alike):

- baseline: ``ssh -i KEY -o UserKnownHostsFile=KH -p RELAY root@127.0.0.1 true`` (connect, key exchange,
  authentication, one command);
- wsdoctor: ``wsdoctor check --ssh root@127.0.0.1:RELAY …`` with the lab's options (config, commands,
  logs, backend probes through port forwards, the probes through nginx).

Goal: ratio ≤ 1.5×.  Then one run in this process prints where its time went, phase by phase: the SSH
requests the run waited for (channel opens, exec and subsystem requests, SFTP reads, forwarded exchanges)
and each phase's span on the clock in round trips of the link (what latency costs it).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import PY, ROOT, installed_env, row  # noqa: E402

RTT_MS = 100.0
GOAL = 1.5


def _relay(target_port: int) -> tuple[subprocess.Popen[str], int]:
    relay = subprocess.Popen(
        [PY, str(Path(__file__).with_name("relay.py")), "0", str(target_port), str(RTT_MS / 2)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert relay.stdout is not None
    line = relay.stdout.readline().split()
    if line[:1] != ["ready"] or len(line) != 2:
        relay.kill()
        raise SystemExit(f"the latency relay did not start ({' '.join(line)})")
    return relay, int(line[1])


def _once(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd="/tmp", capture_output=True, timeout=120)
    wall = time.perf_counter() - t0
    if done.returncode not in (0, 1):
        tail = (done.stderr or done.stdout).decode(errors="replace")[-1500:]
        raise SystemExit(f"benchmark command failed ({done.returncode}): {shlex.join(argv)}\n{tail}")
    return wall


def _paired(baseline: list[str], ours: list[str], env: dict[str, str], rounds: int) -> tuple[float, float, float]:
    """Medians of both and the median of the per-round ratios, the two run back to back in each round (so
    both see the same load on a shared machine); one warm-up round first."""
    _once(baseline, env), _once(ours, env)
    base, mine = [], []
    for _ in range(rounds):
        base.append(_once(baseline, env))
        mine.append(_once(ours, env))
    ratios = [m / b for m, b in zip(mine, base, strict=True)]
    return statistics.median(base), statistics.median(mine), statistics.median(ratios)


class _HandshakeTimes(logging.Handler):
    """When paramiko's transport finished its key exchange and its authentication (from its own log)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.kex_done: float | None = None
        self.auth_done: float | None = None

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if self.kex_done is None and text.startswith("Switch to new keys"):
            self.kex_done = time.monotonic()
        elif self.auth_done is None and "Authentication (" in text and "successful" in text:
            self.auth_done = time.monotonic()


def phases(target) -> None:
    """One run in this process: the SSH requests waited for and the span of each phase, in round trips."""
    from wsdoctor.diagnose import Diagnosis
    from wsdoctor.remote.session import RemoteSession

    times = _HandshakeTimes()
    logger = logging.getLogger("paramiko.transport")
    logger.addHandler(times)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        t0 = time.monotonic()
        with RemoteSession(target) as session:
            asyncio.run(Diagnosis(target, session).run())
            ended = time.monotonic()
            runner = session.runner
            spans = runner.timeline() if runner is not None and hasattr(runner, "timeline") else {}
            stats = runner.stats() if runner is not None else {}
        closed = time.monotonic()
    finally:
        logger.removeHandler(times)
        logger.setLevel(old_level)
    rtt = RTT_MS / 1000
    print(f"one run in this process: {(ended - t0) * 1000:.0f} ms to the verdict, "
          f"{(closed - ended) * 1000:.0f} ms to close the connection politely")  # fmt: skip
    print(f"  {'phase':<12} {'requests':>8}  {'from':>7}  {'to':>7}  {'span':>7}  round trips of the link")
    rows: list[tuple[str, int, float, float]] = []
    if times.kex_done is not None:
        rows.append(("connect", 0, t0, times.kex_done))
        if times.auth_done is not None:
            rows.append(("auth", 0, times.kex_done, times.auth_done))
    for name, (count, start, end) in spans.items():
        rows.append((name, count, start, end))
    rows.append(("close", 0, ended, closed))
    for name, count, start, end in rows:
        print(f"  {name:<12} {count or '':>8}  {(start - t0) * 1000:5.0f}ms  {(end - t0) * 1000:5.0f}ms  "
              f"{(end - start) * 1000:5.0f}ms  {(end - start) / rtt:5.1f}")  # fmt: skip
    print(f"  totals: {stats}")
    print("(requests: SSH requests the run waited an answer for; round trips: the phase's span on the clock "
          f"divided by the link's {RTT_MS:g} ms — phases overlap, so spans do not add up)")  # fmt: skip


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 9
    from wsdoctor.demo import lab_target
    from wsdoctor.lab import Lab

    print(f"== a remote check over a {RTT_MS:g} ms round-trip link vs ssh HOST true ==")
    with tempfile.TemporaryDirectory() as d:
        env = {**installed_env(), "XDG_STATE_HOME": str(Path(d) / "state")}
        os.environ["XDG_STATE_HOME"] = env["XDG_STATE_HOME"]
        lab = Lab.up("healthy", Path(d) / "lab")
        relay = None
        try:
            info = lab.info()
            ssh = info["ssh"]
            relay, port = _relay(int(ssh["port"]))
            # The host key as seen through the relay's port (known_hosts names [host]:port).
            key_line = Path(ssh["known_hosts"]).read_text().split(None, 1)[1]
            known = Path(d) / "known_hosts"
            known.write_text(f"[127.0.0.1]:{port} {key_line}")
            baseline = [
                "ssh", "-i", ssh["key"], "-o", f"UserKnownHostsFile={known}", "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=yes", "-p", str(port), f"{ssh['user']}@127.0.0.1", "true",
            ]  # fmt: skip
            check = shlex.split(info["ssh_check_command"])
            check[0:1] = [PY, "-m", "wsdoctor"]
            check[check.index("--ssh") + 1] = f"{ssh['user']}@127.0.0.1:{port}"
            check[check.index("--known-hosts") + 1] = str(known)
            check.append("--brief")
            env["WSDOCTOR_LAB_TOKEN"] = info["token"]
            os.environ["WSDOCTOR_LAB_TOKEN"] = info["token"]
            ssh_true, ours, ratio = _paired(baseline, check, env, rounds)
            print(row(f"wsdoctor check over SSH vs ssh true ({RTT_MS:g} ms RTT)", ours, ssh_true, goal=GOAL))
            verdict = "ok" if ratio <= GOAL else f"OVER (goal ≤ {GOAL}×)"
            print(f"{'median of the per-round ratios (the two back to back)':<58} {ratio:5.2f}×  {verdict}")
            target = lab_target(info, broken_client=False)
            target.ssh = f"{ssh['user']}@127.0.0.1:{port}"
            target.known_hosts = str(known)
            target.backend_log = info.get("backend_log")
            phases(target)
        finally:
            if relay is not None:
                relay.terminate()
                relay.wait(5)
            lab.down()


if __name__ == "__main__":
    os.chdir(ROOT)
    main()
