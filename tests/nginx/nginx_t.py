"""`nginx -t` on files written by a test: the real verdict (and nginx's first complaint) beside wsdoctor's."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.nginx.realnginx import NGINX

_EMERG = re.compile(r"\[emerg\] (.*?)(?: in (\S+?):(\d+))?$", re.MULTILINE)


@dataclass
class Verdict:
    ok: bool
    stderr: str
    message: str = ""  # nginx's first [emerg], without " in FILE:LINE"
    file: str | None = None
    line: int | None = None


def nginx_t(main: Path) -> Verdict:
    """Run the real ``nginx -t`` on MAIN under a private prefix (never the system's service)."""
    if not os.access(NGINX, os.X_OK):
        pytest.skip(f"{NGINX} is not installed; the test needs the real nginx -t")
    prefix = main.parent / ".nginx-t"
    (prefix / "logs").mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [NGINX, "-t", "-q", "-p", str(prefix), "-e", str(prefix / "logs" / "error.log"), "-c", str(main)],
        capture_output=True,
        text=True,
        encoding="latin-1",  # lossless: nginx quotes the bytes of the file
        timeout=20,
    )
    m = _EMERG.search(proc.stderr)
    if m is None:
        return Verdict(proc.returncode == 0, proc.stderr)
    return Verdict(
        proc.returncode == 0, proc.stderr, m.group(1), m.group(2), int(m.group(3)) if m.group(3) else None
    )
