"""Run every benchmark: `./run bench` (each prints ratios against a baseline measured in the same run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = ["bench_offline.py", "bench_live.py", "bench_logs.py", "bench_remote.py", "bench_tui.py"]


def main() -> int:
    failed = []
    for name in BENCHES:
        path = HERE / name
        if not path.exists():
            continue
        print(f"\n### {name}", flush=True)
        rc = subprocess.call([sys.executable, str(path), *sys.argv[1:]])
        if rc != 0:
            failed.append(name)
    if failed:
        print(f"\nbenchmarks that could not run: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
