"""Shared helpers for the benchmarks: time whole processes, take the median, print ratios.

Machines are noisy: every figure is a ratio against a baseline measured in the same run.
"""

from __future__ import annotations

import functools
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


@functools.cache
def installed_env() -> dict[str, str]:
    """The environment of an installed wsdoctor: byte-code compiled once, as pip does for a normal install.

    This machine sets PYTHONDONTWRITEBYTECODE, which makes an editable checkout recompile every module on
    every start while the baseline's packages (crossplane) were byte-compiled by pip: not a fair race.
    """
    import compileall

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    compileall.compile_dir(str(ROOT / "wsdoctor"), quiet=1)
    return env


def run_once(argv: Sequence[str], env: dict[str, str] | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one whole process (os.wait4 gives the child's own peak)."""
    full_env = {**installed_env(), **(env or {})}  # byte-compiled once per benchmark process
    t0 = time.perf_counter()
    with open(os.devnull, "wb") as null, tempfile_err() as err:
        p = subprocess.Popen(
            list(argv), stdout=null, stderr=err, stdin=subprocess.DEVNULL, env=full_env, cwd=ROOT
        )
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        if p.returncode not in (0, 1):
            err.seek(0)
            tail = err.read()[-2000:].decode(errors="replace")
            raise SystemExit(f"benchmark command failed ({p.returncode}): {' '.join(argv)}\n{tail}")
    return wall, usage.ru_maxrss


def tempfile_err():
    import tempfile

    return tempfile.TemporaryFile()


def measure(argv: Sequence[str], repeat: int = 5, **kw) -> tuple[float, int]:
    """Median wall time and max peak RSS over REPEAT runs (one warm-up run first)."""
    run_once(argv, **kw)
    walls, rss = [], []
    for _ in range(repeat):
        w, r = run_once(argv, **kw)
        walls.append(w)
        rss.append(r)
    return statistics.median(walls), max(rss)


def row(name: str, value: float, baseline: float, goal: float | None = None, unit: str = "s") -> str:
    ratio = value / baseline if baseline else float("inf")
    verdict = "" if goal is None else ("  ok" if ratio <= goal else f"  OVER (goal ≤ {goal}×)")
    return f"{name:<58} {value:9.3f} {unit}  baseline {baseline:9.3f} {unit}  ratio {ratio:5.2f}×{verdict}"
