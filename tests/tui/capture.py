"""Record real runs against the lab for the TUI's scenario tests and screenshots.

``python -m tests.tui.capture [SCENARIO …]`` brings each lab scenario up (real nginx, Node backends,
sshd on loopback), runs the real ``Diagnosis`` over SSH as the TUI does, and writes every update of the
run (findings with their evidence and fixes, pending checks, chain, notes, gathered log lines) to
``tests/tui/scenarios/SCENARIO.json``; ``failed-start`` records a run against an SSH port nothing listens
on. The lab's token is replaced by ``***`` and its temporary ports stay as they were seen.

The recordings are replayed by ``tests/tui/recorded.py`` (``scenario_factory``), so the screens of six real
incidents are tested and photographed without a network.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import socket
import sys
from pathlib import Path

from wsdoctor.demo import lab_target
from wsdoctor.diagnose import Diagnosis, Update
from wsdoctor.lab import Lab
from wsdoctor.remote.session import RemoteSession
from wsdoctor.target import Target

HERE = Path(__file__).resolve().parent / "scenarios"
SCENARIOS = ("seed", "no-rewrite", "backend-down", "short-timeout", "no-sticky", "bad-auth")


def _finding(f) -> dict:
    d = dataclasses.asdict(f)
    d["status"] = f.status.value
    for e in d["evidence"]:
        e["highlight"] = list(e["highlight"])
    return d


def _update(u: Update) -> dict:
    return {
        "findings": [_finding(f) for f in u.findings.values()],
        "pending": sorted(u.pending),
        "chain": [list(c) for c in u.chain],
        "elapsed": round(u.elapsed, 2),
        "done": u.done,
        "notes": list(u.notes),
        "nginx_version": u.facts.nginx_version,
        "ssh_host": u.facts.ssh_host,
        "facts_pending": sorted(str(p) for p in u.facts.pending),
    }


def _target(t: Target) -> dict:
    d = t.public()
    d.pop("token", None)
    return d


async def record(target: Target) -> dict:
    updates: list[dict] = []
    error = None
    with RemoteSession(target) as session:
        diagnosis = Diagnosis(target, session)
        try:
            async for u in diagnosis.updates():
                updates.append(_update(u))
        except Exception as e:  # noqa: BLE001 - a failed start is what some recordings are about
            error = {"type": type(e).__name__, "message": str(e)}
        logs = [dataclasses.asdict(e) for e in diagnosis.facts.logs]
    return {"target": _target(target), "updates": updates, "error": error, "logs": logs}


def _scrub(data: dict, secrets: list[str]) -> dict:
    text = json.dumps(data, indent=1, ensure_ascii=False)
    for s in secrets:
        text = text.replace(s, "***")
    return json.loads(text)


def capture(name: str, base: Path) -> Path:
    if name == "failed-start":
        with socket.socket() as s:  # a port nothing listens on: the SSH connect is refused
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        target = Target(url="wss://127.0.0.1:9/dev/aiwm/chat", ssh=f"root@127.0.0.1:{port}", timeout=3.0)
        data = asyncio.run(record(target))
        secrets: list[str] = []
    else:
        lab = Lab.up(name, base / name)
        try:
            info = lab.info()
            target = lab_target(info)
            target.backend_log = lab.state.get("backend_log")
            data = asyncio.run(record(target))
            data["lab"] = {k: info[k] for k in ("scenario", "broken", "symptom")}
            secrets = [info["token"]] if info.get("token") else []
        finally:
            lab.down()
    out = HERE / f"{name}.json"
    out.write_text(json.dumps(_scrub(data, secrets), indent=1, ensure_ascii=False) + "\n")
    return out


# Where the labs run while recording: their paths appear in the evidence, so a short, stable one.
LAB_BASE = Path("/tmp/lab")


def main(argv: list[str]) -> int:
    names = argv or [*SCENARIOS, "failed-start"]
    HERE.mkdir(exist_ok=True)
    LAB_BASE.mkdir(exist_ok=True)
    try:
        for name in names:
            print(capture(name, LAB_BASE))
    finally:
        shutil.rmtree(LAB_BASE, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
