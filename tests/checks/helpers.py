"""Build Facts by hand for the checks: a fixture config, a client, a version, and probe facts."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from wsdoctor import checks
from wsdoctor.facts import PROBE_FACTS, Exchange, Facts
from wsdoctor.nginx.load import load_dump, load_file
from wsdoctor.report import Finding
from wsdoctor.target import Target
from wsdoctor.wire.client import client_request

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SEED = FIXTURES / "seed"
SEED_DUMP = SEED / "seed-nginx-T.txt"
SEED_TREE = SEED / "seed-tree"
RUNBOOK_URL = "wss://api.x-or.cloud/dev/aiwm/chat"


def case_dirs() -> list[tuple[str, str]]:
    out = []
    for check_dir in sorted(FIXTURES.iterdir()):
        if not check_dir.is_dir() or check_dir.name == "seed":
            continue
        for case in sorted(check_dir.iterdir()):
            if (case / "case.json").exists():
                out.append((check_dir.name, case.name))
    return out


def case_data(check: str, case: str) -> dict[str, Any]:
    return json.loads((FIXTURES / check / case / "case.json").read_text())


def make_facts(
    *,
    url: str | None = "wss://ws.example.com",
    path: str | None = None,
    transports: tuple[str, ...] | list[str] = ("polling", "websocket"),
    version: str | None = "1.22.1",
    root: Path | None = None,
    dump: Path | None = None,
    offline: bool = True,
    token: str | None = None,
    auth_header: bool = False,
    raw: bool = False,
) -> Facts:
    """Facts as the gatherers would leave them: config loaded, client parsed, probes unavailable offline."""
    target = Target(
        url=url,
        path=path,
        transports=tuple(transports),
        offline=offline,
        token=token,
        auth_header=auth_header,
    )
    facts = Facts(target=target)
    if url:
        facts.client = client_request(url, path, tuple(transports), raw)
    if root is not None:
        facts.config = load_file(str(root / "etc/nginx/nginx.conf"), root=str(root))
    elif dump is not None:
        facts.config = load_dump(dump.read_text(), str(dump))
    else:
        facts.unavailable["config"] = "no nginx config given (use --nginx-conf, --nginx-dump or --ssh)"
    if facts.config is not None:
        facts.config_source = facts.config.source
    facts.nginx_version = version
    if version is None:
        facts.unavailable["version"] = "nginx version unknown (give --nginx-version X.Y.Z)"
    if offline:
        for name in PROBE_FACTS:
            facts.unavailable[name] = "--offline: no probes were sent"
    return facts


def case_facts(check: str, case: str, root: Path | None = None, **override: Any) -> Facts:
    data = case_data(check, case)
    kw = {
        "url": data.get("url"),
        "path": data.get("path"),
        "transports": tuple(data.get("transports") or ("polling", "websocket")),
        "version": data.get("version"),
        "root": root or FIXTURES / check / case,
    }
    kw.update(override)
    return make_facts(**kw)


def run(facts: Facts) -> dict[str, Finding]:
    return checks.run_all(facts)


def apply_diff(tree: Path, diff: str, tmp: Path) -> Path:
    """Copy TREE to TMP/tree and apply DIFF there with `patch -p1`, as an engineer would from /."""
    dest = tmp / "tree"
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(tree, dest, ignore=shutil.ignore_patterns("case.json"))
    proc = subprocess.run(
        ["patch", "-p1", "--batch", "--forward", "-d", str(dest)],
        input=diff,
        text=True,
        capture_output=True,
        timeout=20,
    )
    assert proc.returncode == 0, f"patch failed:\n{proc.stdout}\n{proc.stderr}\n{diff}"
    return dest


_IO = re.compile(r"io\('([^']*)'(?:, \{(.*?)\})?\)", re.S)
_PATH = re.compile(r"path: '([^']*)'")
_TRANSPORTS = re.compile(r"transports: \[([^\]]*)\]")


def parse_client_code(code: str) -> tuple[str, str | None, tuple[str, ...]]:
    """(url, path, transports) of the io(...) call in a client fix, to re-run the check with it."""
    m = _IO.search(code)
    assert m, code
    opts = m.group(2) or ""
    p = _PATH.search(opts)
    t = _TRANSPORTS.search(opts)
    transports = tuple(x.strip().strip("'") for x in t.group(1).split(",")) if t else ("polling", "websocket")
    return m.group(1), p.group(1) if p else None, transports


def exchange(
    url: str,
    status: int | None,
    body: bytes = b"",
    answered_by: str = "nobody",
    headers: list[tuple[str, str]] | None = None,
    method: str = "GET",
    error: str | None = None,
    stage: str | None = None,
    request_headers: list[tuple[str, str]] | None = None,
) -> Exchange:
    return Exchange(
        method=method,
        url=url,
        request_headers=request_headers or [],
        status=status,
        reason={
            200: "OK",
            101: "Switching Protocols",
            400: "Bad Request",
            404: "Not Found",
            502: "Bad Gateway",
        }.get(status or 0, ""),
        headers=headers or [],
        body=body,
        answered_by=answered_by,
        error=error,
        stage=stage,
    )
