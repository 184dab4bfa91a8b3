"""Fixes as unified diffs against the real nginx files, ready for ``patch -p1`` from ``/`` (or a copied tree).

A fix an on-call engineer can trust must touch the file nginx really reads, at the line the evidence shows,
keep the file's indentation and comments, and change nothing else. Edits are recorded against the *original*
line numbers (the ones every Directive carries), so several checks' edits to one file never shift each other,
and rendered with ``difflib.unified_diff`` under ``a/PATH`` / ``b/PATH`` headers built from the real path
(``/etc/nginx/sites-enabled/x`` → ``a/etc/nginx/sites-enabled/x``).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from wsdoctor.nginx.model import Config, Directive


class _HasFiles(Protocol):
    files: dict[str, str]


INDENT = "    "


@dataclass
class _FileEdits:
    lines: list[str]  # original lines with their endings
    before: dict[int, list[str]] = field(default_factory=dict)  # 0-based index -> lines inserted before it
    after: dict[int, list[str]] = field(default_factory=dict)  # 0-based index -> lines inserted after it
    replace: dict[int, list[str]] = field(default_factory=dict)  # 0-based index -> replacement ([] deletes)
    append: list[str] = field(default_factory=list)  # lines added at the end of the file

    def current(self, i: int) -> str:
        """Line i as edited so far (a replacement's first line), for edits that work inside a line."""
        r = self.replace.get(i)
        if r is None:
            return self.lines[i]
        return r[0] if r else ""

    def render(self) -> list[str]:
        out: list[str] = []
        for i, line in enumerate(self.lines):
            out += self.before.get(i, [])
            out += self.replace.get(i, [line])
            out += self.after.get(i, [])
        if self.append:
            if out and not out[-1].endswith("\n"):
                out[-1] += "\n"
            out += self.append
        return out


def _eol(line: str) -> str:
    return "\r\n" if line.endswith("\r\n") else "\n"


def _strip_eol(line: str) -> str:
    return line.rstrip("\r\n")


def indent_of(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def diff_header_path(path: str) -> str:
    """The path in a/… b/… headers: the real path without its leading slash (patch -p1 from / applies it)."""
    return path.lstrip("/")


class Patch:
    """Edits to one configuration's files; ``diff()`` renders them as one unified diff."""

    def __init__(self, config: Config | _HasFiles | Mapping[str, str]) -> None:
        files = config if isinstance(config, Mapping) else config.files
        self._texts: dict[str, str] = dict(files)
        self._edits: dict[str, _FileEdits] = {}
        self._display = getattr(config, "display_path", None)
        self.notes: list[str] = []

    # -- low-level edits (1-based original line numbers) --------------------

    def _file(self, file: str) -> _FileEdits:
        fe = self._edits.get(file)
        if fe is None:
            if file not in self._texts:
                raise KeyError(f"{file} was not read with the configuration; cannot build a diff for it")
            fe = _FileEdits(lines=self._texts[file].splitlines(keepends=True))
            self._edits[file] = fe
        return fe

    def line_text(self, file: str, line: int) -> str:
        fe = self._file(file)
        return _strip_eol(fe.lines[line - 1]) if 0 < line <= len(fe.lines) else ""

    def _check(self, fe: _FileEdits, file: str, line: int) -> int:
        if not 0 < line <= len(fe.lines):
            raise IndexError(f"{file} has no line {line}")
        return line - 1

    def _with_eol(self, fe: _FileEdits, i: int, new: Iterable[str]) -> list[str]:
        eol = _eol(fe.lines[i]) if fe.lines else "\n"
        return [_strip_eol(n) + eol for n in new]

    def insert_before(self, file: str, line: int, new: Iterable[str]) -> None:
        fe = self._file(file)
        i = self._check(fe, file, line)
        fe.before.setdefault(i, []).extend(self._with_eol(fe, i, new))

    def insert_after(self, file: str, line: int, new: Iterable[str]) -> None:
        fe = self._file(file)
        i = self._check(fe, file, line)
        if not fe.lines[i].endswith("\n"):  # inserting after a last line without newline
            fe.replace[i] = [fe.current(i) + "\n"] + fe.replace.get(i, [fe.lines[i]])[1:]
        fe.after.setdefault(i, []).extend(self._with_eol(fe, i, new))

    def replace_line(self, file: str, line: int, new: Iterable[str]) -> None:
        fe = self._file(file)
        i = self._check(fe, file, line)
        keep_eol = fe.lines[i].endswith("\n")
        repl = self._with_eol(fe, i, new)
        if repl and not keep_eol:
            repl[-1] = _strip_eol(repl[-1])
        fe.replace[i] = repl

    def delete_line(self, file: str, line: int) -> None:
        self.replace_line(file, line, [])

    def append_to_file(self, file: str, new: Iterable[str]) -> None:
        fe = self._file(file)
        fe.append.extend(_strip_eol(n) + "\n" for n in new)

    # -- statement-level edits ---------------------------------------------

    def statement_span(self, d: Directive) -> tuple[int, int, int, int]:
        """(first line, start column, last line, end column after ';' or '{') of directive D's statement."""
        fe = self._file(d.file)
        i = self._check(fe, d.file, d.line)
        text = _strip_eol(fe.current(i))
        col = _find_statement(text, d.name, d.args)
        if col < 0:
            raise ValueError(f"cannot find {d.name!r} at {d.file}:{d.line}")
        for j, c, ch in _code_chars(fe, i, col + len(d.name), current_first=True):
            if ch in ";{":
                return i + 1, col, j + 1, c + 1
        raise ValueError(f"the statement {d.name!r} at {d.file}:{d.line} has no end")

    def replace_statement(self, d: Directive, statement: str) -> None:
        """Replace D's ``name args;`` by STATEMENT, keeping what surrounds it on its lines (indent, neighbours).

        A trailing ``# comment`` goes with the statement it described: kept, it would contradict the new one
        (``proxy_pass http://up/chat/;  # BROKEN: no URI part``).
        """
        first, col, last, end = self.statement_span(d)
        fe = self._file(d.file)
        head = _strip_eol(fe.current(first - 1))[:col]
        tail = _drop_comment(_strip_eol(fe.current(last - 1) if last == first else fe.lines[last - 1])[end:])
        self.replace_line(d.file, first, [head + statement + tail])
        for n in range(first + 1, last + 1):
            self.delete_line(d.file, n)

    def delete_statement(self, d: Directive) -> None:
        """Remove D; a line left holding only whitespace (or only D's trailing comment) goes too."""
        first, col, last, end = self.statement_span(d)
        fe = self._file(d.file)
        head = _strip_eol(fe.current(first - 1))[:col]
        tail = _strip_eol(fe.current(last - 1) if last == first else fe.lines[last - 1])[end:]
        if head.strip() or tail.strip() and not tail.strip().startswith("#"):
            self.replace_line(d.file, first, [head.rstrip() + (" " + tail.strip() if tail.strip() else "")])
        else:
            self.delete_line(d.file, first)
        for n in range(first + 1, last + 1):
            self.delete_line(d.file, n)

    def comment_out(self, d: Directive, why: str = "") -> None:
        """Turn D's line(s) into comments, saying why: safer than deleting for a shared config.

        The statement's own trailing ``# comment`` is dropped (the reason given replaces it): a line reading
        ``# include cors.conf;  # CORS for the API  # wsdoctor: …`` says two things at once.
        """
        first, _col, last, end = self.statement_span(d)
        fe = self._file(d.file)
        for n in range(first, last + 1):
            text = _strip_eol(fe.current(n - 1))
            if n == last:
                text = text[:end] + _drop_comment(text[end:])
            ind = indent_of(text)
            new = f"{ind}# {text[len(ind) :]}"
            if n == first and why:
                new += f"  # wsdoctor: {why}"
            self.replace_line(d.file, n, [new])

    # -- block-level edits -------------------------------------------------

    def block_end_line(self, block: Directive) -> int:
        """The line of the ``}`` that closes BLOCK (in BLOCK's own file)."""
        fe = self._file(block.file)
        _first, _col, last, end = self.statement_span(block)
        depth = 1
        for j, _c, ch in _code_chars(fe, last - 1, end, current_first=False):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    return j + 1
        raise ValueError(f"the block {block.name!r} at {block.file}:{block.line} is not closed")

    def child_indent(self, block: Directive) -> str:
        """The indentation of BLOCK's children in its file (its first child's, else BLOCK's + 4 spaces)."""
        for child in block.block or ():
            if child.file == block.file and child.name != "#":
                return indent_of(self.line_text(child.file, child.line))
        return indent_of(self.line_text(block.file, block.line)) + INDENT

    def insert_in_block(
        self,
        block: Directive,
        statements: Iterable[str],
        after: Directive | None = None,
        at_end: bool = False,
    ) -> None:
        """Add STATEMENTS inside BLOCK: after directive AFTER, else at the end of the block, else at its start."""
        lines = list(statements)
        ind = self.child_indent(block)
        new = [ind + s if s else "" for s in lines]
        if after is not None and after.file == block.file:
            _f, _c, last, _e = self.statement_span(after)
            self.insert_after(block.file, last, new)
        elif at_end:
            self.insert_before(block.file, self.block_end_line(block), new)
        else:
            _f, _c, last, _e = self.statement_span(block)
            self.insert_after(block.file, last, new)

    def set_directive(
        self,
        block: Directive,
        name: str,
        args: str,
        existing: Directive | None = None,
        anchor: Directive | None = None,
    ) -> None:
        """Make ``name args;`` hold in BLOCK: rewrite EXISTING (a directive in BLOCK) or add it after ANCHOR."""
        statement = f"{name} {args};" if args else f"{name};"
        if existing is not None:
            self.replace_statement(existing, statement)
        else:
            self.insert_in_block(block, [statement], after=anchor)

    # -- output ------------------------------------------------------------

    def changed_files(self) -> list[str]:
        return [f for f, fe in self._edits.items() if fe.render() != fe.lines]

    def new_text(self, file: str) -> str:
        fe = self._edits.get(file)
        return "".join(fe.render()) if fe else self._texts[file]

    def apply(self) -> dict[str, str]:
        """path -> new text, for every file this patch changes."""
        return {f: self.new_text(f) for f in self.changed_files()}

    def diff(self, context: int = 3) -> str:
        out: list[str] = []
        for f in sorted(self.changed_files()):
            fe = self._edits[f]
            name = diff_header_path(self._display(f) if callable(self._display) else f)
            for line in difflib.unified_diff(fe.lines, fe.render(), f"a/{name}", f"b/{name}", n=context):
                if line.endswith("\n"):
                    out.append(line)
                else:
                    out.append(line + "\n\\ No newline at end of file\n")
        return "".join(out)

    def __bool__(self) -> bool:
        return bool(self.changed_files())


def _drop_comment(tail: str) -> str:
    """What follows a statement on its line, without a trailing ``# comment`` (and the blanks before it)."""
    if tail.strip().startswith("#"):
        return ""
    return tail


def _find_word(text: str, word: str, start: int = 0) -> int:
    """Column of WORD as a whole token in TEXT from START (not inside a comment), or -1."""
    while True:
        col = text.find(word, start)
        if col < 0:
            return -1
        hash_at = text.find("#")
        if 0 <= hash_at < col:
            return -1
        before = text[col - 1] if col > 0 else " "
        after = text[col + len(word)] if col + len(word) < len(text) else " "
        if (before.isspace() or before in ";{}") and (after.isspace() or after in ";{"):
            return col
        start = col + 1


def _find_statement(text: str, name: str, args: list[str]) -> int:
    """Column of the statement NAME whose first argument is ARGS[0] (two on one line: the right one)."""
    first = _find_word(text, name)
    col = first
    while col >= 0 and args:
        rest = text[col + len(name) :].lstrip()
        token = rest.split(None, 1)[0].rstrip(";{") if rest.split() else ""
        if token.strip("\"'") == args[0]:
            return col
        col = _find_word(text, name, col + 1)
    return first


def _code_chars(
    fe: _FileEdits, first: int, col: int, *, current_first: bool
) -> Iterator[tuple[int, int, str]]:
    """(line index, column, character) of every character outside quotes and comments, from FIRST:COL on.

    The first line is read as edited so far when CURRENT_FIRST (a statement being replaced), else as loaded.
    """
    j, c = first, col
    quote: str | None = None
    while j < len(fe.lines):
        line = _strip_eol(fe.current(j)) if (j == first and current_first) else _strip_eol(fe.lines[j])
        while c < len(line):
            ch = line[c]
            if quote:
                if ch == "\\":
                    c += 1
                elif ch == quote:
                    quote = None
            elif ch in "\"'":
                quote = ch
            elif ch == "#":
                break
            else:
                yield j, c, ch
            c += 1
        j, c = j + 1, 0
