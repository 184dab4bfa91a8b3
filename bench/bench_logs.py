"""Log classification and remote round trips (issue 5).

1. Classify 1,000,000 nginx error-log lines: whole-process time of ``python -m wsdoctor.remote.logs FILE``
   against ``grep -cE`` with the same patterns over the same file (goal ≤ 3×).  The file is generated in a
   temp dir (a realistic mix: refusals, timeouts, upgraded-connection drops, 404s from files, and the
   keepalive/notice noise that makes up most of a real log).  grep is timed in the C locale (its fastest;
   the UTF-8 locale figure is printed too) and both must count the same lines.
2. A full remote ``check`` (config, commands, logs and every probe) against the healthy lab over SSH to
   the lab's own sshd: the SSH connections and round trips it made, from the runner's counters.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import PY, row  # noqa: E402
from wsdoctor.remote.logs import grep_pattern  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LINES = 1_000_000
_TAIL = (
    ', client: 10.0.{a}.{b}, server: api.x-or.cloud, request: "GET /dev/aiwm/chat/socket.io/?EIO=4&transport={t}'
    '&t={c} HTTP/1.1", upstream: "http://172.16.2.100:335{u}/chat/socket.io/?EIO=4&transport={t}&t={c}", '
    'host: "api.x-or.cloud"'
)
TEMPLATES: list[tuple[int, str]] = [
    (10, "[error] {p}#{p}: *{c} connect() failed (111: Connection refused) while connecting to upstream" + _TAIL),
    (4, "[error] {p}#{p}: *{c} no live upstreams while connecting to upstream" + _TAIL),
    (4, "[info] {p}#{p}: *{c} upstream timed out (110: Connection timed out) while proxying upgraded connection"
     + _TAIL),
    (3, "[error] {p}#{p}: *{c} upstream timed out (110: Connection timed out) while reading response header from "
     "upstream" + _TAIL),
    (2, "[error] {p}#{p}: *{c} upstream prematurely closed connection while reading response header from upstream"
     + _TAIL),
    (1, "[error] {p}#{p}: *{c} no resolver defined to resolve chat.internal, client: 10.0.{a}.{b}, server: x, "
     'request: "GET /dev/aiwm/chat/socket.io/?EIO=4 HTTP/1.1", host: "api.x-or.cloud"'),
    (2, '[error] {p}#{p}: *{c} open() "/usr/share/nginx/html/socket.io/index.html" failed (2: No such file or '
     'directory), client: 10.0.{a}.{b}, server: x, request: "GET /socket.io/?EIO=4&transport=polling&t={c} '
     'HTTP/1.1", host: "api.x-or.cloud"'),
    (30, "[info] {p}#{p}: *{c} client 10.0.{a}.{b} closed keepalive connection"),
    (15, "[info] {p}#{p}: *{c} client closed connection while waiting for request, client: 10.0.{a}.{b}, "
     "server: 0.0.0.0:443"),
    (10, "[warn] {p}#{p}: *{c} an upstream response is buffered to a temporary file /var/cache/nginx/proxy_temp/1/"
     "00/{c} while reading upstream, client: 10.0.{a}.{b}, server: api.x-or.cloud, request: \"GET /api/export "
     'HTTP/1.1", upstream: "http://172.16.2.100:8080/api/export", host: "api.x-or.cloud"'),
    (9, "[info] {p}#{p}: *{c} epoll_wait() reported that client prematurely closed connection, so upstream "
     "connection is closed too while sending request to upstream, client: 10.0.{a}.{b}, server: api.x-or.cloud, "
     'request: "POST /api/msg HTTP/1.1", upstream: "http://172.16.2.100:8080/api/msg", host: "api.x-or.cloud"'),
    (10, "[notice] {p}#{p}: signal process started"),
]  # fmt: skip


def generate(path: Path, lines: int = LINES) -> None:
    rng = random.Random(5)
    picks = rng.choices(range(len(TEMPLATES)), weights=[w for w, _ in TEMPLATES], k=lines)
    with path.open("w") as out:
        buf = []
        for i, k in enumerate(picks):
            s = i // 50
            stamp = f"2026/05/01 {s // 3600 % 24:02d}:{s // 60 % 60:02d}:{s % 60:02d} "
            text = TEMPLATES[k][1].format(
                p=1200 + i % 4, c=1000 + i, a=i % 200, b=i % 250, u=i % 3, t=("polling", "websocket")[i % 2]
            )
            buf.append(stamp + text + "\n")
            if len(buf) >= 10_000:
                out.writelines(buf)
                buf.clear()
        out.writelines(buf)


def timed(argv: list[str], repeat: int, env: dict[str, str] | None = None) -> float:
    """Median wall time of a whole process whose stdout goes to a real file.

    Not /dev/null: GNU grep notices a /dev/null stdout and stops at the first match, which is no baseline.
    """
    walls = []
    with tempfile.TemporaryFile() as out:
        for i in range(repeat + 1):  # the first run warms the page cache and is dropped
            out.seek(0)
            t0 = time.perf_counter()
            subprocess.run(argv, stdout=out, stderr=subprocess.DEVNULL, env={**os.environ, **(env or {})},
                           cwd=ROOT, check=True, timeout=300)  # fmt: skip
            if i:
                walls.append(time.perf_counter() - t0)
    return statistics.median(walls)


def classify_bench(directory: Path, repeat: int) -> bool:
    path = directory / "error.log"
    t0 = time.perf_counter()
    generate(path)
    size = path.stat().st_size
    print(f"generated {LINES:,} lines ({size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f} s")
    grep = shutil.which("grep")
    if grep is None:
        print("grep is not installed: no baseline")
        return False
    pattern = grep_pattern()
    c_env = {"LC_ALL": "C"}
    grep_count = int(subprocess.run([grep, "-cE", pattern, str(path)], capture_output=True, text=True,
                                    env={**os.environ, **c_env}).stdout)  # fmt: skip
    ours_out = subprocess.run([PY, "-m", "wsdoctor.remote.logs", str(path), "0"], capture_output=True, text=True,
                              cwd=ROOT).stdout  # fmt: skip
    ours_count = int(ours_out.split(" classified")[0].rsplit(" ", 1)[1])
    print(f"classified lines: wsdoctor {ours_count:,}, grep -c {grep_count:,}"
          + ("" if ours_count == grep_count else "  MISMATCH"))  # fmt: skip
    grep_c = timed([grep, "-cE", pattern, str(path)], repeat, env=c_env)
    grep_utf8 = timed([grep, "-cE", pattern, str(path)], repeat, env={"LC_ALL": "C.UTF-8"})
    ours = timed([PY, "-m", "wsdoctor.remote.logs", str(path), "5"], repeat)
    print(row("classify 1M error-log lines vs grep -cE (C locale)", ours, grep_c, goal=3.0))
    print(row("classify 1M error-log lines vs grep -cE (C.UTF-8 locale)", ours, grep_utf8, goal=3.0))
    return ours_count == grep_count


def remote_bench() -> None:
    from wsdoctor.demo import lab_target
    from wsdoctor.diagnose import Diagnosis
    from wsdoctor.lab import Lab
    from wsdoctor.remote.session import RemoteSession

    with tempfile.TemporaryDirectory() as d:
        os.environ["XDG_STATE_HOME"] = str(Path(d) / "state")
        lab = Lab.up("healthy", Path(d) / "lab")
        try:
            target = lab_target(lab.info(), broken_client=False)
            with RemoteSession(target) as session:
                t0 = time.perf_counter()
                update = asyncio.run(Diagnosis(target, session).run())
                wall = time.perf_counter() - t0
                runner = session.runner
                stats = runner.stats() if runner is not None else {}
            logs = len(update.facts.logs)
            print(f"full remote check of the healthy lab over SSH ({target.ssh}): {wall:.2f} s, "
                  f"{len(update.facts.commands)} commands kept as evidence, {logs} log events")  # fmt: skip
            print(f"SSH connections: {stats.get('connections', 0)}   channels: {stats.get('channels', 0)}   "
                  f"round trips: {stats.get('round_trips', 0)}   commands: {stats.get('commands', 0)}")  # fmt: skip
            print("(round trips = requests the client waited for: channel opens, exec and pty requests; "
                  "key exchange and authentication not counted)")  # fmt: skip
        finally:
            lab.down()


def main() -> None:
    repeat = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    print("== log classification (issue 5) ==")
    with tempfile.TemporaryDirectory() as d:
        same = classify_bench(Path(d), repeat)
    print("\n== one SSH connection per run (issue 5) ==")
    remote_bench()
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
