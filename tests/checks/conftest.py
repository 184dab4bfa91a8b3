"""Every finding a check builds in these tests is held to the house wording: no nested parentheses, no
"file(s)"-style plurals, no "1 files"."""

from __future__ import annotations

import re

import pytest

from wsdoctor.checks import _util

_BAD_PLURAL = re.compile(
    r"\w\(s\)|\b1 (?:file|server|backend|line|day|item|request|tunnel|failure|problem|value)s\b"
)


def wording_problem(text: str) -> str | None:
    """Why TEXT breaks the house wording, or None."""
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
            if depth > 1:
                return "nested parentheses"
        elif ch == ")":
            depth = max(0, depth - 1)
    m = _BAD_PLURAL.search(text)
    return f"plural {m.group(0)!r}" if m else None


@pytest.fixture(autouse=True)
def _house_wording(monkeypatch: pytest.MonkeyPatch) -> None:
    real = _util.finding

    def checked(cid, status, title, summary, evidence=None, fix=None, corrected=None):
        for label, text in (("title", title), ("summary", summary), ("fix", fix.summary if fix else "")):
            why = wording_problem(text)
            assert why is None, f"{cid} {label}: {why}: {text}"
        return real(cid, status, title, summary, evidence, fix, corrected)

    monkeypatch.setattr(_util, "finding", checked)
