"""Arguments that cannot work are refused before anything runs: exit 2, one sentence, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--nginx-version", "banana"], "--nginx-version"),
        (["--accept-host-key", "garbage"], "--accept-host-key"),
        (["--backend", "notaurl"], "--backend"),
        (["--identity", "/nonexistent/key"], "--identity"),
        (["--ssh-config", "/nonexistent/cfg"], "--ssh-config"),
        (["--ca-file", "/"], "is a directory"),
        (["--nginx-dump", "/"], "is a directory"),
        (["--timeout", "0"], "--timeout"),
        (["--hold", "-1"], "--hold"),
        (["--root", "/tmp"], "--root goes with --nginx-conf"),
        (["--client-version", "5"], "--client-version takes 2, 3 or 4"),
        (["--client-version", "two"], "--client-version"),
    ],
)
def test_refused_arguments(args: list[str], needle: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "wsdoctor", "check", "--url", "wss://example.invalid", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert out.returncode == 2, out
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], out.stderr
    assert not out.stdout


def test_text_evidence_is_clipped_with_a_marker() -> None:
    from wsdoctor.report import TEXT_EVIDENCE_LINES, Evidence, Finding, Report, Status

    text = "\n".join(f"line {i}" for i in range(TEXT_EVIDENCE_LINES + 7))
    r = Report(
        target={}, findings=[Finding("cors", Status.FAIL, "t", "s", [Evidence("probe", "GET x", text)])]
    )
    out = r.to_text()
    assert f"line {TEXT_EVIDENCE_LINES - 1}" in out
    assert f"line {TEXT_EVIDENCE_LINES}\n" not in out
    assert "… 7 more lines (--format json has all)" in out
    assert f"line {TEXT_EVIDENCE_LINES + 6}" in r.to_json()


def test_brief_is_one_line_per_check_and_notes_are_shown() -> None:
    from wsdoctor.report import CHECK_IDS, Finding, Report, Status

    r = Report(
        target={"url": "wss://x"},
        findings=[Finding(c, Status.PASS, "title", "summary") for c in CHECK_IDS],
        notes=["the access log format lacks $request_time", "the access log format lacks $request_time"],
    )
    brief = r.to_text(verbose=False)
    assert sum(1 for line in brief.splitlines() if line.startswith("  PASS")) == len(CHECK_IDS)
    assert "summary" in brief and "title" not in brief
    assert brief.count("note: the access log format lacks $request_time") == 1
    assert "note**: the access log format" in r.to_markdown()
    import json

    assert json.loads(r.to_json())["target"]["notes"] == ["the access log format lacks $request_time"]
