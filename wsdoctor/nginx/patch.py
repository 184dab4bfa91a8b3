"""Fixes as unified diffs against the real nginx files, ready for ``patch -p1`` from ``/`` (or a copied tree).

A fix an on-call engineer can trust must touch the file nginx really reads, inside the block the fix names, keep
the file's indentation and comments, and change nothing else. So edits are placed by the statement tree, not by
lines: the statements around an edit are read again with their offsets (the parser's own tokens; only the
smallest enclosing block that has its lines to itself, so a big file is not read whole), a directive is found
by its line, name and arguments under its enclosing blocks, and an insertion goes between two statements of
the intended block, whatever the layout (one-line blocks, several statements per line, comments
between statements, a ``}`` sharing a line, CRLF, tabs). Where a block sits on one line, the line is split at
the statements of that block and the blocks around it, so the new statement gets a line of its own at the
block's indentation.

Edits are recorded against the *original* text (offsets and line numbers every Directive carries), so several
checks' edits to one file never shift each other, and rendered with ``difflib.unified_diff`` under ``a/PATH`` /
``b/PATH`` headers built from the real path (``/etc/nginx/sites-enabled/x`` → ``a/etc/nginx/sites-enabled/x``).
"""

from __future__ import annotations

import difflib
import re
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from wsdoctor.nginx.parse import _prepare_if_args, iter_token_spans, token_spans

if TYPE_CHECKING:
    from wsdoctor.nginx.model import Config, Directive


class _HasFiles(Protocol):
    files: dict[str, str]


INDENT = "    "


def indent_of(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def diff_header_path(path: str) -> str:
    """The path in a/… b/… headers: the real path without its leading slash (patch -p1 from / applies it)."""
    return path.lstrip("/")


def _split_lines(text: str) -> list[str]:
    """TEXT's lines with their endings, split at LF only (as nginx and patch(1) count lines)."""
    parts = text.split("\n")
    out = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        out.append(parts[-1])
    return out


# --- the statement tree with offsets ------------------------------------------------------------------------


@dataclass(eq=False)
class _Node:
    """A statement of one file: ``name args… ;`` or ``name args… { … }`` (or a comment), with offsets."""

    name: str
    args: list[str]
    line: int
    start: int  # the name's first character
    head_end: int  # after the ";" or "{" (or the "}" that ended the arguments)
    end: int  # after the ";" or the closing "}"
    parent: _Node | None
    block: list[_Node] | None = None
    close: int = -1  # the closing "}" of a block
    top: bool = False  # read alone (a window): it has its lines to itself, the blocks around it are not read

    @property
    def is_comment(self) -> bool:
        return self.name == "#"


def _statements(toks: Iterator[tuple[str, int, bool, int, int]], one: bool = False) -> list[_Node]:
    """The statements of TOKS as the parser builds them (same tokens, same tree), with their offsets.

    With ONE, only the first statement (and the comments among its arguments) is read. An unclosed block or
    a statement cut by the end raises ValueError.
    """

    def block(parent: _Node | None) -> tuple[list[_Node], int]:
        nodes: list[_Node] = []
        for tok, line, quoted, start, end in toks:
            if tok == "}" and not quoted:
                return nodes, start
            if tok[:1] == "#" and not quoted:
                nodes.append(_Node("#", [tok[1:]], line, start, end, end, parent))
                continue
            args: list[str] = []
            comments: list[tuple[str, int, int]] = []
            for t, _ln, q, s, e in toks:
                if not q and t in ("{", ";", "}"):
                    break
                if not q and t[:1] == "#":
                    comments.append((t, s, e))
                else:
                    args.append(t)
            else:
                raise ValueError("the file ends inside a statement")
            if tok == "if":
                _prepare_if_args(args)
            node = _Node(tok, args, line, start, e, e, parent)
            nodes.append(node)
            if t == "{":
                node.block, node.close = block(node)
                node.end = node.close + 1
            # comments met among the arguments follow the statement, on its line (as the parser has them)
            nodes.extend(_Node("#", [c[1:]], line, cs, ce, ce, parent) for c, cs, ce in comments)
            if one and parent is None:
                return nodes, -1
        if parent is not None:
            raise ValueError("a block is not closed")
        return nodes, -1

    return block(None)[0]


def _indent_step(text: str) -> str:
    """The file's indentation step, as its lines show it (the commonest deepening), else four spaces or a tab."""
    steps: dict[str, int] = {}
    prev = None
    end = 0
    for _ in range(3000):  # the first lines are enough
        end = text.find("\n", end) + 1
        if not end:
            end = len(text)
            break
    for line in text[:end].split("\n"):
        body = line.lstrip(" \t")
        if not body.strip() or body.startswith("#"):
            continue
        ind = line[: len(line) - len(body)]
        if prev is not None and len(ind) > len(prev) and ind.startswith(prev):
            step = ind[len(prev) :]
            steps[step] = steps.get(step, 0) + 1
        prev = ind
    if steps:
        return max(steps, key=lambda k: steps[k])
    return "\t" if "\n\t" in text else INDENT


def _same(nd: _Node, d: Directive) -> bool:
    """Whether ND is the statement of D, children in D's file included (a window read at the right place)."""
    if (nd.line, nd.name, nd.args) != (d.line, d.name, d.args):
        return False
    if d.block is None:
        return nd.block is None
    kids = [c for c in d.block if c.file == d.file]
    return nd.block is not None and len(kids) == len(nd.block) and all(map(_same, nd.block, kids))


@dataclass
class _Op:
    start: int
    end: int
    text: str
    rank: int  # order at one offset: text ending what precedes, gap rewrites, lines inserted before, the rest
    seq: int


@dataclass
class _Gap:
    """The whitespace between two elements of a block (statements, its braces): where insertions go."""

    start: int
    end: int
    next_indent: str  # the indentation of what follows, should the gap be split into lines
    items: list[str] = field(default_factory=list)  # lines inserted (already indented)
    broken: bool = False  # the elements it separates go on separate lines
    dropped: _Gap | None = None  # the element after this gap is deleted: this gap and that one are one


class _File:
    """One file being edited: its original text, its statement tree, the edits so far."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.eol = "\r\n" if "\r\n" in text else "\n"
        self.starts = [0]
        at = text.find("\n")
        while at >= 0:
            self.starts.append(at + 1)
            at = text.find("\n", at + 1)
        if self.starts[-1] == len(text) and len(self.starts) > 1:
            self.starts.pop()  # no line after a final newline
        self.ops: list[_Op] = []
        self.gaps: dict[int, _Gap] = {}
        self._tree: list[_Node] | None = None
        self._windows: dict[tuple[int, str, tuple[str, ...]], _Node | None] = {}
        self._unit: str | None = None
        self._rendered: tuple[tuple[tuple[int, int, str], ...], str] | None = None
        # the parser reads CRLF as LF: statements are read from that text, their offsets mapped back
        self.norm = text.replace("\r\n", "\n") if "\r\n" in text else text
        self._crs: list[int] = []  # where each removed CR was, in the text as read
        at = text.find("\r\n")
        while at >= 0:
            self._crs.append(at - len(self._crs))
            at = text.find("\r\n", at + 2)

    # lines (1-based numbers, offsets into the original text)

    def nlines(self) -> int:
        return len(self.starts) if self.text else 0

    def line_start(self, line: int) -> int:
        return self.starts[line - 1]

    def line_end(self, line: int) -> int:
        """After the line's ending (its LF), or the end of the text."""
        return self.starts[line] if line < len(self.starts) else len(self.text)

    def content_end(self, line: int) -> int:
        """Before the line's ending (CR LF or LF)."""
        end = self.line_end(line)
        if end > self.starts[line - 1] and self.text[end - 1] == "\n":
            end -= 1
            if end > self.starts[line - 1] and self.text[end - 1] == "\r":
                end -= 1
        return end

    def line_of(self, offset: int) -> int:
        return bisect_right(self.starts, offset)

    def content(self, line: int) -> str:
        return self.text[self.line_start(line) : self.content_end(line)]

    # the statements

    def tree(self) -> list[_Node]:
        """The whole file's statements."""
        if self._tree is None:
            self._tree = self._mapped(_statements(iter(token_spans(self.norm))))
        return self._tree

    def window(self, d: Directive) -> _Node | None:
        """D's statement read alone, when it has its lines to itself (nothing else starts before it on its first
        line or follows it on its last, a comment aside) and reads back as D: a big file is not read whole
        for one fix. None otherwise."""
        key = (d.line, d.name, tuple(d.args))
        if key not in self._windows:
            self._windows[key] = self._read_window(d)
        return self._windows[key]

    def _read_window(self, d: Directive) -> _Node | None:
        if d.line > self.nlines() or "${" in self.norm:
            return None
        start = self.line_start(d.line)
        if not self.text[start : self.content_end(d.line)].lstrip(" \t").startswith(d.name):
            return None
        norm_start = start - bisect_right(self._crs, start - 1) if self._crs else start
        try:
            nodes = _statements(iter_token_spans(self.norm, norm_start, d.line), one=True)
        except ValueError:
            return None
        if not nodes or not _same(nodes[0], d):
            return None
        nd = self._mapped(nodes[:1])[0]
        last = self.line_of(nd.end - 1)
        tail = self.text[nd.end : self.content_end(last)].strip()
        if tail and not tail.startswith("#"):
            return None
        nd.top = True
        return nd

    def _mapped(self, nodes: list[_Node]) -> list[_Node]:
        if self._crs:
            self._shift(nodes)
        return nodes

    def _orig(self, offset: int) -> int:
        return offset + bisect_right(self._crs, offset - 1)

    def _shift(self, nodes: list[_Node]) -> None:
        for nd in nodes:
            nd.start, nd.head_end, nd.end = self._orig(nd.start), self._orig(nd.head_end), self._orig(nd.end)
            if nd.block is not None:
                nd.close = self._orig(nd.close)
                self._shift(nd.block)

    def children(self, owner: _Node | None) -> list[_Node]:
        return self.tree() if owner is None else owner.block or []

    # indentation

    def starts_line(self, offset: int) -> bool:
        return not self.text[self.line_start(self.line_of(offset)) : offset].strip()

    def unit(self) -> str:
        """The file's indentation step (a tab, two or four spaces)."""
        if self._unit is None:
            self._unit = _indent_step(self.text)
        return self._unit

    def _indent_at(self, offset: int) -> str:
        return self.text[self.line_start(self.line_of(offset)) : offset]

    def indent(self, node: _Node | None) -> str:
        """Where NODE's line starts (its own indentation, or its block's children's when it starts mid-line)."""
        if node is None:
            return ""
        if self.starts_line(node.start):
            return self._indent_at(node.start)
        return self.child_indent(node.parent)

    def child_indent(self, owner: _Node | None) -> str:
        """The indentation of OWNER's children (the file's top level for None)."""
        kids = self.children(owner)
        for c in kids:
            if self.starts_line(c.start) and not c.is_comment:
                return self._indent_at(c.start)
        for c in kids:
            if self.starts_line(c.start):
                return self._indent_at(c.start)
        return "" if owner is None else self.indent(owner) + self.unit()

    # gaps

    def gap(self, owner: _Node | None, index: int) -> _Gap:
        """The gap before child INDEX of OWNER (after the last child for INDEX == len, before its "}")."""
        kids = self.children(owner)
        if index > 0:
            start = kids[index - 1].end
        else:
            start = owner.head_end if owner is not None else 0
        if index < len(kids):
            end, nxt = kids[index].start, self.child_indent(owner)
        else:
            end = owner.close if owner is not None else len(self.text)
            nxt = self.indent(owner)
        g = self.gaps.get(start)
        if g is None:
            g = self.gaps[start] = _Gap(start, end, nxt)
        return g

    def split_line(self, owner: _Node | None, line: int) -> None:
        """Put each element of OWNER and of the blocks around it that share LINE on a line of its own.

        A comment stays on the line of what precedes it (it describes that); blocks nested in OWNER, or beside
        it, keep their own layout; a statement read alone (``top``) shares no line with the blocks around it.
        """
        while True:
            kids = self.children(owner)
            for index in range(len(kids) + 1):
                if index < len(kids) and kids[index].is_comment:
                    continue
                if owner is None and index == 0:
                    continue
                g = self.gap(owner, index)
                if "\n" not in self.text[g.start : g.end] and self.line_of(g.start) == line:
                    if owner is None and index == len(kids):
                        continue  # the end of the file
                    g.broken = True
            if owner is None or owner.top:
                return
            owner = owner.parent

    def insert(self, owner: _Node | None, index: int, lines: list[str]) -> None:
        g = self.gap(owner, index)
        g.items.extend(lines)
        if "\n" not in self.text[g.start : g.end]:
            self.split_line(owner, self.line_of(g.start))

    def render_gap(self, group: list[_Gap]) -> _Op | None:
        """The edit of a gap (or of gaps made one by the deletion of the elements between them)."""
        g, last = group[0], group[-1]
        items = [it for x in group for it in x.items]
        broken = any(x.broken for x in group)
        parts = [self.text[x.start : x.end] for x in group]
        eol = self.eol
        if len(group) == 1:
            ws = parts[0]
        elif any("\n" in x for x in parts):
            # the line breaks stay, the spaces left at the end of a line go, the indentation is the last one's
            holder = max(i for i, x in enumerate(parts) if "\n" in x)
            ws = eol * "".join(parts).count("\n") + parts[holder].rsplit("\n", 1)[1]
        else:
            ws = parts[0] or parts[-1]  # one space between the neighbours, not two
        if "\n" in ws:
            k = ws.index("\n") + 1
            lines = "".join(it + eol for it in items)
            if len(group) == 1:  # the lines go in after the gap's first line break, nothing else moves
                return _Op(g.start + k, g.start + k, lines, 1, 0) if items else None
            return _Op(g.start, last.end, ws[:k] + lines + ws[k:], 1, 0)
        if not items and not broken:
            return None if len(group) == 1 else _Op(g.start, last.end, ws, 1, 0)
        if last.end == len(self.text):  # after the file's last statement, no newline
            return _Op(g.start, last.end, "".join(eol + it for it in items) + eol, 1, 0)
        return _Op(g.start, last.end, "".join(eol + it for it in items) + eol + last.next_indent, 1, 0)

    def edits(self) -> list[_Op]:
        ops = list(self.ops)
        later = {x.dropped.start for x in self.gaps.values() if x.dropped is not None}
        for g in self.gaps.values():
            if g.start in later:
                continue  # rendered with the gap before the deleted element
            group = [g]
            while (nxt := group[-1].dropped) is not None:
                group.append(nxt)
            op = self.render_gap(group)
            if op is not None:
                ops.append(op)
        ops.sort(key=lambda o: (o.start, o.end != o.start, o.rank, o.seq))
        return ops

    def render(self) -> str:
        """The new text (the original when nothing changes); ValueError when two edits overlap."""
        ops = self.edits()
        key = tuple((o.start, o.end, o.text) for o in ops)
        if self._rendered is not None and self._rendered[0] == key:
            return self._rendered[1]
        out: list[str] = []
        pos = 0
        for op in ops:
            if op.start < pos:
                raise ValueError("two edits of this fix overlap")
            out.append(self.text[pos : op.start])
            out.append(op.text)
            pos = op.end
        out.append(self.text[pos:])
        new = "".join(out)
        self._rendered = (key, new)
        return new

    def diff(self, old_name: str, new_name: str, context: int) -> list[str]:
        """The unified diff of this file's edits, computed on the lines around them only (a big file is not
        split whole), its hunk headers numbered as in the whole file."""
        new = self.render()
        ops = self.edits()
        if new == self.text or not ops:
            return []
        first = max(1, self.line_of(ops[0].start) - context)
        last = min(self.nlines(), self.line_of(max(o.end for o in ops)) + context)
        lo, hi = self.line_start(first), self.line_end(last)
        old_lines = _split_lines(self.text[lo:hi])
        new_lines = _split_lines(new[lo : len(new) - (len(self.text) - hi)])
        out = []
        for line in difflib.unified_diff(old_lines, new_lines, old_name, new_name, n=context):
            if line.startswith("@@"):
                line = _HUNK.sub(lambda m: _shift_hunk(m, first - 1), line)
            out.append(line)
        return out


_HUNK = re.compile(r"^@@ -(\d+)((?:,\d+)?) \+(\d+)((?:,\d+)?) @@")


def _shift_hunk(m: re.Match[str], by: int) -> str:
    return f"@@ -{int(m.group(1)) + by}{m.group(2)} +{int(m.group(3)) + by}{m.group(4)} @@"


def _inside(d: Directive | None, block: Directive) -> Directive | None:
    """D when it is BLOCK's descendant in BLOCK's own file, else None."""
    x = d
    while x is not None and x.file == block.file:
        if x.parent is block:
            return d
        x = x.parent
    return None


def _match(nodes: list[_Node], d: Directive, siblings: list[Directive] | None) -> _Node:
    """The statement of D among NODES (by line, name and arguments; the k-th of identical twins on a line)."""
    key = (d.line, d.name, d.args)
    same = [c for c in nodes if (c.line, c.name, c.args) == key]
    if not same:
        raise ValueError(f"cannot find {d.name!r} at {d.where}")
    if len(same) == 1 or not siblings:
        return same[0]
    twins = [x for x in siblings if x.file == d.file and (x.line, x.name, x.args) == key]
    k = next((i for i, x in enumerate(twins) if x is d), 0)
    return same[min(k, len(same) - 1)]


class Patch:
    """Edits to one configuration's files; ``diff()`` renders them as one unified diff."""

    def __init__(self, config: Config | _HasFiles | Mapping[str, str]) -> None:
        files = config if isinstance(config, Mapping) else config.files
        self._texts: dict[str, str] = dict(files)
        self._edits: dict[str, _File] = {}
        self._display = getattr(config, "display_path", None)
        self._root: list[Directive] | None = getattr(config, "root", None)
        self._seq = 0
        self.notes: list[str] = []

    # -- files and lines ---------------------------------------------------

    def _file(self, file: str) -> _File:
        fe = self._edits.get(file)
        if fe is None:
            if file not in self._texts:
                raise KeyError(f"{file} was not read with the configuration; cannot build a diff for it")
            fe = self._edits[file] = _File(self._texts[file])
        return fe

    def _op(self, fe: _File, start: int, end: int, text: str, rank: int = 3) -> None:
        self._seq += 1
        fe.ops.append(_Op(start, end, text, rank, self._seq))

    def _check(self, fe: _File, file: str, line: int) -> None:
        if not 0 < line <= fe.nlines():
            raise IndexError(f"{file} has no line {line}")

    def line_text(self, file: str, line: int) -> str:
        fe = self._file(file)
        return fe.content(line) if 0 < line <= fe.nlines() else ""

    # -- low-level edits (1-based original line numbers) --------------------

    def insert_before(self, file: str, line: int, new: Iterable[str]) -> None:
        fe = self._file(file)
        self._check(fe, file, line)
        self._op(
            fe, fe.line_start(line), fe.line_start(line), "".join(_strip_eol(n) + fe.eol for n in new), 2
        )

    def insert_after(self, file: str, line: int, new: Iterable[str]) -> None:
        fe = self._file(file)
        self._check(fe, file, line)
        at = fe.line_end(line)
        text = "".join(_strip_eol(n) + fe.eol for n in new)
        if fe.content_end(line) == at:  # a last line without a newline
            text = fe.eol + text
        self._op(fe, at, at, text, 0)

    def replace_line(self, file: str, line: int, new: Iterable[str]) -> None:
        fe = self._file(file)
        self._check(fe, file, line)
        new = [_strip_eol(n) for n in new]
        if new:
            self._op(fe, fe.line_start(line), fe.content_end(line), fe.eol.join(new))
        else:
            self._op(fe, fe.line_start(line), fe.line_end(line), "")

    def delete_line(self, file: str, line: int) -> None:
        self.replace_line(file, line, [])

    def append_to_file(self, file: str, new: Iterable[str]) -> None:
        fe = self._file(file)
        end = len(fe.text)
        text = "".join(_strip_eol(n) + "\n" for n in new)
        if fe.text and not fe.text.endswith("\n"):
            text = "\n" + text
        self._op(fe, end, end, text, 4)

    # -- finding a directive's statement -------------------------------------

    def _node(self, d: Directive) -> _Node:
        """The statement of directive D, read with its enclosing block (siblings, trailing comment)."""
        up = d.parent if d.parent is not None and d.parent.file == d.file else None
        return self._locate(d, up)

    def _locate(self, d: Directive, scope: Directive | None) -> _Node:
        """D's statement, from the smallest statement around SCOPE (D or an ancestor in D's file) that can be
        read alone, else from the whole file."""
        fe = self._file(d.file)
        while scope is not None and scope.file == d.file:
            nd = fe.window(scope)
            if nd is not None:
                return self._descend(scope, nd, d)
            scope = scope.parent
        top = d
        while top.parent is not None and top.parent.file == d.file:
            top = top.parent
        siblings = top.parent.block if top.parent is not None else self._root
        return self._descend(None, None, d, _match(fe.tree(), top, siblings))

    def _descend(
        self, top: Directive | None, nd: _Node | None, d: Directive, start: _Node | None = None
    ) -> _Node:
        """D's statement below TOP (whose statement is ND), following D's enclosing blocks down; with START,
        the statement of D's outermost block in its file, TOP being None."""
        chain: list[Directive] = []
        x: Directive | None = d
        while x is not top:
            if x is None:
                raise ValueError(f"{d.name!r} at {d.where} is not inside the block given")
            chain.append(x)
            x = x.parent if x.parent is not None and x.parent.file == d.file else None
        chain.reverse()
        if start is not None:
            nd, chain = start, chain[1:]
        for x in chain:
            if nd is None or nd.block is None:
                raise ValueError(f"cannot find {d.name!r} at {d.where}")
            nd = _match(nd.block, x, x.parent.block if x.parent is not None else None)
        if nd is None:
            raise ValueError(f"cannot find {d.name!r} at {d.where}")
        return nd

    def statement_span(self, d: Directive) -> tuple[int, int, int, int]:
        """(first line, start column, last line, end column after ';' or '{') of directive D's statement."""
        fe = self._file(d.file)
        nd = self._node(d)
        first, last = fe.line_of(nd.start), fe.line_of(nd.head_end - 1)
        return first, nd.start - fe.line_start(first), last, nd.head_end - fe.line_start(last)

    def _trailing_comment(self, fe: _File, nd: _Node, after: int) -> _Node | None:
        """The comment that follows ND on the line where it ends (at offset AFTER: its ";" or "{"), if any."""
        if nd.block is not None and after == nd.head_end:
            nxt = nd.block[0] if nd.block else None
        else:
            siblings = fe.children(nd.parent)
            index = siblings.index(nd) + 1
            nxt = siblings[index] if index < len(siblings) else None
        if (
            nxt is not None
            and nxt.is_comment
            and fe.line_of(nxt.start) == fe.line_of(after)
            and not fe.text[after : nxt.start].strip()
        ):
            return nxt
        return None

    # -- statement-level edits ---------------------------------------------

    def replace_statement(self, d: Directive, statement: str) -> None:
        """Replace D's ``name args;`` (or ``name args {``) by STATEMENT, keeping what surrounds it.

        A trailing ``# comment`` goes with the statement it described: kept, it would contradict the new one
        (``proxy_pass http://up/chat/;  # BROKEN: no URI part``).
        """
        fe = self._file(d.file)
        nd = self._node(d)
        end = nd.head_end
        comment = self._trailing_comment(fe, nd, end)
        if comment is not None:
            end = comment.end
        self._op(fe, nd.start, end, statement)

    def delete_statement(self, d: Directive) -> None:
        """Remove D (a block with its body); a line left holding only whitespace (or only D's trailing comment)
        goes too. Beside other statements on a line, D goes with the space around it."""
        fe = self._file(d.file)
        nd = self._node(d)
        first, last = fe.line_of(nd.start), fe.line_of(nd.end - 1)
        before = fe.text[fe.line_start(first) : nd.start]
        after = fe.text[nd.end : fe.content_end(last)]
        if not before.strip() and (not after.strip() or after.lstrip().startswith("#")):
            self._op(fe, fe.line_start(first), fe.line_end(last), "")
            return
        index = fe.children(nd.parent).index(nd)
        # the gaps before and after D become one: other edits there (insertions, split lines) still apply
        fe.gap(nd.parent, index).dropped = fe.gap(nd.parent, index + 1)

    def comment_out(self, d: Directive, why: str = "") -> None:
        """Turn D into a comment on a line of its own, saying why: safer than deleting for a shared config.

        The statement's own trailing ``# comment`` is dropped (the reason given replaces it): a line reading
        ``# include cors.conf;  # CORS for the API  # wsdoctor: …`` says two things at once.
        """
        fe = self._file(d.file)
        nd = self._node(d)
        first, last = fe.line_of(nd.start), fe.line_of(nd.head_end - 1)
        before = fe.text[fe.line_start(first) : nd.start]
        comment = self._trailing_comment(fe, nd, nd.head_end)
        after = fe.text[(comment.end if comment else nd.head_end) : fe.content_end(last)]
        if before.strip() or after.strip():
            fe.split_line(nd.parent, first)
            if last != first:
                fe.split_line(nd.parent, last)
        self._op(fe, nd.start, nd.start, "# ")
        for n in range(first + 1, last + 1):
            text = fe.content(n)
            if text.strip():
                at = fe.line_start(n) + len(indent_of(text))
                self._op(fe, at, at, "# ")
        note = f"  # wsdoctor: {why}" if why else ""
        if last == first:
            self._op(fe, nd.head_end, comment.end if comment else nd.head_end, note, 0)
        else:
            if note:
                self._op(fe, fe.content_end(first), fe.content_end(first), note, 0)
            if comment is not None:
                self._op(fe, nd.head_end, comment.end, "")

    # -- block-level edits -------------------------------------------------

    def block_end_line(self, block: Directive) -> int:
        """The line of the ``}`` that closes BLOCK (in BLOCK's own file)."""
        fe = self._file(block.file)
        nd = self._locate(block, block)
        if nd.block is None:
            raise ValueError(f"{block.name!r} at {block.where} is not a block")
        return fe.line_of(nd.close)

    def child_indent(self, block: Directive) -> str:
        """The indentation of BLOCK's children in its file (its first child's that starts a line, else BLOCK's
        own plus one step of the file's indentation)."""
        fe = self._file(block.file)
        return fe.child_indent(self._locate(block, block))

    def insert_in_block(
        self,
        block: Directive,
        statements: Iterable[str],
        after: Directive | None = None,
        at_end: bool = False,
        before: Directive | None = None,
    ) -> None:
        """Add STATEMENTS inside BLOCK: after directive AFTER, else before directive BEFORE, else at the end of
        the block (AT_END), else at its start.

        Each statement goes on a line of its own at the block's indentation (an element may be several lines,
        e.g. a whole ``location … { … }``, given as its lines, indented by steps of four spaces inside, which
        become the file's own step: a tab, two spaces). A comment on the line where AFTER ends stays
        with AFTER. An anchor in another file (an included one) is not used: the block's own file is edited.
        """
        fe = self._file(block.file)
        owner = self._locate(block, block)
        if owner.block is None:
            raise ValueError(f"{block.name!r} at {block.where} is not a block")
        kids = owner.block
        index = 0
        anchor = after if after is not None and after.file == block.file else None
        held = _inside(before, block) if anchor is None and before is not None else None
        if anchor is not None and _inside(anchor, block) is None:
            anchor, at_end = None, True  # an anchor elsewhere cannot place the statements in BLOCK
        if held is not None:
            index = kids.index(self._child_holding(owner, self._descend(block, owner, held)))
        elif anchor is not None:
            index = kids.index(self._child_holding(owner, self._descend(block, owner, anchor))) + 1
        elif at_end:
            index = len(kids)
        if not at_end or anchor is not None:
            # a comment on the line where the previous element ends stays with it
            prev_end = kids[index - 1].end if index > 0 else owner.head_end
            while (
                index < len(kids)
                and kids[index].is_comment
                and fe.line_of(kids[index].start) == fe.line_of(prev_end)
                and held is None
            ):
                prev_end = kids[index].end
                index += 1
        ind, unit = fe.child_indent(owner), fe.unit()
        fe.insert(owner, index, [ind + _reindent(s, unit) if s else "" for s in statements])

    def _child_holding(self, owner: _Node, nd: _Node) -> _Node:
        """The child of OWNER that is ND or holds it; ValueError when ND is not inside OWNER."""
        while nd.parent is not owner:
            if nd.parent is None:
                raise ValueError("the anchor is not inside the block")
            nd = nd.parent
        return nd

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
        return [f for f, fe in self._edits.items() if fe.render() != fe.text]

    def new_text(self, file: str) -> str:
        fe = self._edits.get(file)
        return fe.render() if fe else self._texts[file]

    def apply(self) -> dict[str, str]:
        """path -> new text, for every file this patch changes."""
        return {f: self.new_text(f) for f in self.changed_files()}

    def diff(self, context: int = 3) -> str:
        out: list[str] = []
        for f in sorted(self.changed_files()):
            name = diff_header_path(self._display(f) if callable(self._display) else f)
            for line in self._edits[f].diff(f"a/{name}", f"b/{name}", context):
                if line.endswith("\n"):
                    out.append(line)
                else:
                    out.append(line + "\n\\ No newline at end of file\n")
        return "".join(out)

    def __bool__(self) -> bool:
        return bool(self.changed_files())


def _reindent(line: str, unit: str) -> str:
    """LINE with its leading steps of four spaces (the callers' relative indentation) in the file's step."""
    n = 0
    while line.startswith(INDENT, n * len(INDENT)):
        n += 1
    return unit * n + line[n * len(INDENT) :] if n and unit != INDENT else line


def _strip_eol(line: str) -> str:
    return line.rstrip("\r\n")
