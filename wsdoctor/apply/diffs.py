"""Unified diffs: read the ones the checks propose, apply them to the bytes on the host, render new ones.

Why our own applier instead of ``patch``: the proxy host may have no ``patch`` at all, and a fix must be
applied to the exact bytes nginx reads (line endings, no final newline) or refused in one sentence. A hunk
applies where its context and removed lines match the file exactly (compared without the line ending, so a
CRLF file still matches a diff made from its text); it may have moved by some lines (an earlier hunk of
another fix added lines above it), never with fuzz. A hunk that matches nowhere means the file changed since
the diagnosis: the caller refuses.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
NO_NEWLINE = "\\ No newline at end of file"


class DiffError(ValueError):
    """A diff that cannot be read or applied; the message is one sentence."""


@dataclass
class Hunk:
    old_start: int  # 1-based
    old_len: int
    new_start: int
    new_len: int
    lines: list[tuple[str, str, bool]] = field(default_factory=list)  # (" "|"-"|"+", text, ends with newline)

    @property
    def header(self) -> str:
        return f"@@ -{self.old_start},{self.old_len} +{self.new_start},{self.new_len} @@"

    def old(self) -> list[tuple[str, bool]]:
        return [(t, nl) for tag, t, nl in self.lines if tag in " -"]

    def new(self) -> list[tuple[str, bool]]:
        return [(t, nl) for tag, t, nl in self.lines if tag in " +"]


@dataclass
class FilePatch:
    path: str  # the real path on the host ("/etc/nginx/sites-enabled/x")
    hunks: list[Hunk] = field(default_factory=list)


def host_path(header: str) -> str:
    """``a/etc/nginx/x`` (a diff header made for ``patch -p1`` from /) → ``/etc/nginx/x``."""
    name = header.split("\t", 1)[0].strip()
    if name.startswith(("a/", "b/")):
        name = name[2:]
    return "/" + name.lstrip("/")


def parse(diff: str) -> list[FilePatch]:
    """The files and hunks of a unified diff (several files, ``\\ No newline at end of file`` markers)."""
    out: list[FilePatch] = []
    lines = diff.splitlines()
    i = 0
    current: FilePatch | None = None
    while i < len(lines):
        line = lines[i]
        if line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            new = lines[i + 1][4:]
            old = line[4:]
            name = new if not new.startswith("/dev/null") else old
            current = FilePatch(host_path(name))
            out.append(current)
            i += 2
            continue
        m = _HUNK.match(line)
        if m:
            if current is None:
                raise DiffError("the diff has a hunk before any '--- a/FILE' header; it cannot be applied")
            hunk = Hunk(
                int(m.group(1)),
                int(m.group(2)) if m.group(2) is not None else 1,
                int(m.group(3)),
                int(m.group(4)) if m.group(4) is not None else 1,
            )
            i += 1
            old_seen = new_seen = 0
            while i < len(lines) and (old_seen < hunk.old_len or new_seen < hunk.new_len):
                body = lines[i]
                if body == NO_NEWLINE:
                    _mark_no_newline(hunk)
                    i += 1
                    continue
                tag, text = (body[:1], body[1:]) if body else (" ", "")
                if tag not in " -+":
                    raise DiffError(f"the diff's hunk {hunk.header} is cut short; it cannot be applied")
                hunk.lines.append((tag, text, True))
                old_seen += tag in " -"
                new_seen += tag in " +"
                i += 1
            if i < len(lines) and lines[i] == NO_NEWLINE:
                _mark_no_newline(hunk)
                i += 1
            current.hunks.append(hunk)
            continue
        i += 1
    return out


def _mark_no_newline(hunk: Hunk) -> None:
    if hunk.lines:
        tag, text, _ = hunk.lines[-1]
        hunk.lines[-1] = (tag, text, False)


def _split(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def _bare(line: str) -> str:
    return line.rstrip("\r\n")


def _matches(lines: list[str], at: int, old: list[tuple[str, bool]]) -> bool:
    if at < 0 or at + len(old) > len(lines):
        return False
    return all(_bare(lines[at + k]) == text for k, (text, _nl) in enumerate(old))


@dataclass
class _Edit:
    start: int  # original line index where the change begins
    end: int  # original line index after the last removed line (== start: a pure insertion)
    new: list[tuple[str, bool]]  # the lines put there, with "ends with newline"
    owner: str  # which fix it belongs to, for a conflict's sentence


def _edits(lines: list[str], patch: FilePatch, owner: str) -> list[_Edit]:
    """PATCH's hunks as edits of the ORIGINAL lines: each hunk is found where its context and removed lines
    match (it may have moved, never changed), and only its changed runs become edits."""
    out: list[_Edit] = []
    offset = 0
    for hunk in patch.hunks:
        old = hunk.old()
        want = max(0, hunk.old_start - 1 + offset) if hunk.old_len else max(0, hunk.old_start + offset)
        at = _find(lines, want, old)
        if at is None:
            first = next((t for t, _ in old if t.strip()), old[0][0] if old else "")
            raise DiffError(
                f"{patch.path} changed since the diagnosis: hunk {hunk.header} (near `{first.strip()[:60]}`) "
                "no longer matches it"
            )
        offset = at - (hunk.old_start - 1) if hunk.old_len else at - hunk.old_start
        i = at
        run: _Edit | None = None
        for tag, text, nl in hunk.lines:
            if tag == " ":
                if run is not None:
                    out.append(run)
                    run = None
                i += 1
                continue
            if run is None:
                run = _Edit(i, i, [], owner)
            if tag == "-":
                i += 1
                run.end = i
            else:
                run.new.append((text, nl))
        if run is not None:
            out.append(run)
    return out


def _merge(text: str, path: str, edits: list[_Edit]) -> str:
    """TEXT with EDITS applied; DiffError when two fixes change the same lines."""
    lines = _split(text)
    edits = sorted(edits, key=lambda e: (e.start, e.end > e.start))  # insertions before replacements
    for a, b in zip(edits, edits[1:], strict=False):
        if b.start < a.end or (a.start == b.start and a.end > a.start and b.end > b.start):
            if a.owner == b.owner:
                raise DiffError(f"the diff for {path} changes line {b.start + 1} twice; it cannot be applied")
            raise DiffError(
                f"the fixes of {a.owner} and {b.owner} change the same lines of {path} "
                f"(line {b.start + 1}); apply them one at a time"
            )
    out: list[str] = []
    pos = 0
    for e in edits:
        out += lines[pos : e.start]
        eol = _eol_near(lines, e.start)
        out += [t + (eol if nl else "") for t, nl in e.new]
        pos = max(pos, e.end)
    out += lines[pos:]
    for k in range(len(out) - 1):
        if not out[k].endswith("\n"):  # only the file's last line may lack its newline
            out[k] += _eol_near(lines, 0)
    return "".join(out)


def apply_text(text: str, patch: FilePatch, owner: str = "the fix") -> str:
    """TEXT with PATCH's hunks applied; DiffError (one sentence) when a hunk matches nowhere."""
    return _merge(text, patch.path, _edits(_split(text), patch, owner))


def _find(lines: list[str], want: int, old: list[tuple[str, bool]]) -> int | None:
    """Where OLD matches, nearest to line index WANT first (a hunk may have moved, never changed)."""
    if not old:
        return min(want, len(lines))
    for delta in range(0, len(lines) + 1):
        for at in (want - delta, want + delta) if delta else (want,):
            if _matches(lines, at, old):
                return at
    return None


def _eol_near(lines: list[str], at: int) -> str:
    for k in (at, at - 1, at + 1, 0):
        if 0 <= k < len(lines) and lines[k].endswith("\n"):
            return "\r\n" if lines[k].endswith("\r\n") else "\n"
    return "\n"


def apply_diffs(texts: dict[str, str], diffs: list[tuple[str, str]]) -> dict[str, str]:
    """{path: new text} for every file the DIFFS ([(owner, diff)]) touch, all made against TEXTS: each
    fix's hunks are located in the current text, and fixes that change different lines of a file merge."""
    edits: dict[str, list[_Edit]] = {}
    for owner, diff in diffs:
        patches = parse(diff)
        if not patches:
            raise DiffError(f"the fix of {owner} holds no diff to apply")
        for patch in patches:
            current = texts.get(patch.path)
            if current is None:
                raise DiffError(
                    f"the fix of {owner} changes {patch.path}, which nginx does not read on this host"
                )
            try:
                edits.setdefault(patch.path, []).extend(_edits(_split(current), patch, owner))
            except DiffError as e:
                raise DiffError(f"the fix of {owner} does not apply: {e}") from None
    return {path: _merge(texts[path], path, found) for path, found in edits.items()}


def apply_diff(texts: dict[str, str], diff: str) -> dict[str, str]:
    """{path: new text} for every file DIFF touches, applied to TEXTS ({path: current text})."""
    out: dict[str, str] = {}
    patches = parse(diff)
    if not patches:
        raise DiffError("the fix holds no diff to apply")
    for patch in patches:
        current = out.get(patch.path, texts.get(patch.path))
        if current is None:
            raise DiffError(f"the diff changes {patch.path}, which nginx does not read on this host")
        out[patch.path] = apply_text(current, patch)
    return out


def unified(path: str, old: str | None, new: str | None, context: int = 3) -> str:
    """A unified diff of one file, headers ``a/PATH`` ``b/PATH`` (``/dev/null`` for a missing side)."""
    name = path.lstrip("/")
    a = _split(old) if old is not None else []
    b = _split(new) if new is not None else []
    out: list[str] = []
    for line in difflib.unified_diff(
        a,
        b,
        f"a/{name}" if old is not None else "/dev/null",
        f"b/{name}" if new is not None else "/dev/null",
        n=context,
    ):
        if line.endswith("\n"):
            out.append(line.replace("\r\n", "\n"))
        else:
            out.append(line + "\n" + NO_NEWLINE + "\n")
    return "".join(out)
