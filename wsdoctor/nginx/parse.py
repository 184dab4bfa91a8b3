"""A fast parser with crossplane's exact semantics (``crossplane.parse(single=True, comments=True,
check_ctx=False, check_args=False)``).

Why not crossplane itself: its lexer walks the text one character at a time through three stacked generators,
which is 85% of its run time; wsdoctor's performance bar (a whole ``check --offline`` within 1.25× of a bare
``crossplane.parse``) leaves no room for that. This module produces the same tokens and the same statement
tree, quirks included (a token cut by EOF is dropped, a quote inside a token is literal, ``\\"`` inside quotes
becomes ``"`` while other escapes keep their backslash, ``${…}`` is one token, a ``}`` that ends a directive's
arguments ends that directive, unbalanced braces or a directive cut by EOF lose the whole file, parentheses
of ``if`` are stripped), by matching runs of ordinary characters with regular expressions.
tests/nginx/test_parse.py holds it to crossplane on generated inputs. Files using crossplane's lexer plugins
(``*_by_lua_block``) are left to crossplane (``needs_crossplane``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from wsdoctor.nginx.model import Directive

# A statement: (directive, args, line, block or None). Comments are ("#", [text], line, None).
Stmt = tuple[str, list[str], int, "list[Stmt] | None"]

_WS = re.compile(r"\s+")
# A run of token units (a character or an escape) that cannot start anything else once a token has begun: a
# quote or "#" inside a token is literal; "$" is left out so that "${" is seen.
_RUN = re.compile(r"(?:[^\s{};\\$]|\\[\s\S])++")
_COMMENT_BODY = re.compile(r"[^\\\n]*+(?:\\[^\n][^\\\n]*+)*+")
_QUOTED = {
    '"': re.compile(r'([^"\\]*+(?:\\.[^"\\]*+)*+)"', re.DOTALL),
    "'": re.compile(r"([^'\\]*+(?:\\.[^'\\]*+)*+)'", re.DOTALL),
}
_LUA_MARK = "_by_lua_block"


class ParseError(Exception):
    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


def needs_crossplane(text: str) -> bool:
    """Files with ``*_by_lua_block`` need crossplane's Lua lexer plugin."""
    return _LUA_MARK in text


# One token per match, leading whitespace included: a comment (with its terminating newline), a quoted string,
# a brace or semicolon, or a bare token (a quote or "#" inside it is literal; an escape is two characters).
_FAST = re.compile(
    r"""\s*+(?:
      (\#[^\\\n]*+(?:\\[^\n][^\\\n]*+)*+)(?:\n|\\\n)
    | "([^"\\]*+(?:\\[\s\S][^"\\]*+)*+)"
    | '([^'\\]*+(?:\\[\s\S][^'\\]*+)*+)'
    | ([{};])
    | ((?:[^\s"'{};\#\\]|\\[\s\S])[^\s{};\\]*+(?:\\[\s\S][^\s{};\\]*+)*+)(?=[\s{};])
    )""",
    re.VERBOSE,
)


def tokenize(text: str) -> list[tuple[str, int, bool]]:
    """crossplane's ``_lex_file_object``: (token, line, quoted) triples.

    A regular expression takes one whole token per step; ``${…}`` (whose closing character crossplane
    appends whatever it is) goes through the character-level port instead.
    """
    return list(_tokens(text))


def _tokens(text: str) -> Iterator[tuple[str, int, bool]]:
    return iter(_tokenize_slow(text)) if "${" in text else _tokenize_fast(text)


def _tokenize_fast(text: str) -> Iterator[tuple[str, int, bool]]:
    count = text.count
    line = 1
    pos = 0
    for m in _FAST.finditer(text):
        if m.start() != pos:
            # Nothing matched at pos: what follows is cut by EOF (a bare token, an unclosed quote or comment,
            # a trailing backslash), where crossplane stops too.
            break
        idx = m.lastindex
        start = m.start(idx)  # type: ignore[arg-type]
        line += count("\n", pos, start)
        pos = m.end()
        if idx == 4:
            yield m.group(4), line, False
            continue
        tok = m.group(idx)  # type: ignore[arg-type]
        if idx == 5:
            # an escaped newline as the first unit counts for the token's own line, as in crossplane
            yield tok, (line + 1 if tok.startswith("\\\n") else line), False
        elif idx == 1:
            yield tok, line, False
        else:
            quote = '"' if idx == 2 else "'"
            yield (_unescape(tok, quote) if "\\" in tok else tok), line, True
        line += count("\n", start, pos)


def _tokenize_slow(text: str, spans: list[tuple[int, int]] | None = None) -> list[tuple[str, int, bool]]:
    """The character-level port of crossplane's lexer, for the inputs the fast path leaves.

    With SPANS, the (start, end) offsets of each token are appended to it (a quoted token's include its quotes).
    """
    out: list[tuple[str, int, bool]] = []
    append = out.append
    span = spans.append if spans is not None else None
    n = len(text)
    i = 0
    line = 1
    counted = 0  # newlines are counted in text[:counted]
    token = ""
    token_line = 0
    token_start = 0
    count = text.count

    while i < n:
        c = text[i]
        if c.isspace():
            if token:
                append((token, token_line, False))
                if span:
                    span((token_start, i))
                token = ""
            m = _WS.match(text, i)
            i = m.end()  # type: ignore[union-attr]
            if i >= n:
                break
            c = text[i]
        # a unit: one character, or a backslash and the next one
        if c == "\\":
            if i + 1 >= n:
                break  # crossplane stops at a trailing backslash
            unit = text[i : i + 2]
        else:
            unit = c
        if not token and unit == "#":
            m = _COMMENT_BODY.match(text, i)
            j = m.end()  # type: ignore[union-attr]
            if j >= n:
                break  # a comment cut by EOF is never yielded
            line += count("\n", counted, i)
            counted = i
            if text[j] != "\n" and j + 1 >= n:  # "\\\n" ends the comment too (and is dropped)
                break
            append((text[i:j], line, False))
            if span:
                span((i, j))
            i = j + (1 if text[j] == "\n" else 2)
            continue
        if not token:
            end = i + len(unit)  # an escaped newline counts for its own unit, as in crossplane
            line += count("\n", counted, end)
            counted = end
            token_line = line
            token_start = i
        if token and token[-1] == "$" and unit == "{":
            # ${…}: everything up to the closing brace (or whitespace) is one token
            stop = False
            while token[-1] != "}" and not unit.isspace():
                token += unit
                i += len(unit)
                if i >= n:
                    stop = True
                    break
                c = text[i]
                if c == "\\":
                    if i + 1 >= n:
                        stop = True
                        break
                    unit = text[i : i + 2]
                else:
                    unit = c
            if stop:
                break
            # crossplane quirk: the unit that ended the run (even whitespace) is handled below, i.e. appended
        if unit == '"' or unit == "'":
            if token:
                token += unit
                i += 1
                continue
            m = _QUOTED[unit].match(text, i + 1)
            if m is None:
                break  # an unclosed quote runs into EOF: crossplane stops
            body = m.group(1)
            if "\\" in body:
                body = _unescape(body, unit)
            append((body, token_line, True))
            if span:
                span((i, m.end()))
            i = m.end()
            continue
        if unit in ("{", "}", ";"):
            if token:
                append((token, token_line, False))
                if span:
                    span((token_start, i))
                token = ""
            line += count("\n", counted, i)
            counted = i
            append((unit, line, False))
            if span:
                span((i, i + 1))
            i += 1
            continue
        if unit != "$":
            m = _RUN.match(text, i)
            if m is not None:
                token += m.group()
                i = m.end()
                continue
        token += unit
        i += len(unit)
    return out


def token_spans(text: str) -> list[tuple[str, int, bool, int, int]]:
    """The tokens of TEXT as (token, line, quoted, start, end): crossplane's tokens with their offsets in TEXT
    (a quoted token's span includes its quotes, a comment's ends before its newline).

    For the rare callers that must point into the text (the fix diffs, the "not an nginx config" verdict);
    the parser itself does without.
    """
    if "${" in text:
        spans: list[tuple[int, int]] = []
        toks = _tokenize_slow(text, spans)
        return [(t, ln, q, a, b) for (t, ln, q), (a, b) in zip(toks, spans, strict=True)]
    return list(iter_token_spans(text))


def iter_token_spans(text: str, pos: int = 0, line: int = 1) -> Iterator[tuple[str, int, bool, int, int]]:
    """``token_spans`` lazily, from offset POS (which must start a line, numbered LINE, outside any token) on.

    TEXT must not hold ``${`` (crossplane's ``${…}`` tokens need the character-level lexer).
    """
    count = text.count
    for m in _FAST.finditer(text, pos):
        if m.start() != pos:
            return
        idx = m.lastindex
        start, end = m.start(idx), m.end(idx)  # type: ignore[arg-type]
        line += count("\n", pos, start)
        pos = m.end()
        tok = m.group(idx)  # type: ignore[arg-type]
        if idx == 2 or idx == 3:
            quote = '"' if idx == 2 else "'"
            yield (_unescape(tok, quote) if "\\" in tok else tok), line, True, start - 1, end + 1
        elif idx == 5 and tok.startswith("\\\n"):
            yield tok, line + 1, False, start, end
        else:
            yield tok, line, False, start, end
        line += count("\n", start, pos)


def _unescape(body: str, quote: str) -> str:
    """crossplane's escapes inside quotes: ``\\`` + QUOTE becomes QUOTE, every other escape keeps its backslash.

    Every QUOTE inside a matched body is escaped (an unescaped one would have ended it), so replacing each
    backslash-quote pair is the same as reading the escapes left to right, without a list per character.
    """
    return body.replace("\\" + quote, quote)


def shown(text: str) -> str:
    """TEXT with control characters and stray bytes (a file that is not UTF-8) escaped, for messages."""
    if text.isprintable():
        return text
    out = []
    for c in text:
        if "\udc80" <= c <= "\udcff":  # a byte that was not UTF-8 (read with surrogateescape)
            out.append(f"\\x{ord(c) - 0xDC00:02x}")
        elif not c.isprintable():
            out.append(f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return "".join(out)


class _Eof(Exception):
    pass


def _balanced(
    tokens: list[tuple[str, int, bool]] | Iterator[tuple[str, int, bool]],
) -> Iterator[tuple[str, int, bool]]:
    """crossplane's ``_balance_braces``: the tokens, raising at the first unmatched brace as it is reached."""
    depth = 0
    ln = None
    for tok, ln, quoted in tokens:
        if not quoted:
            if tok == "}":
                depth -= 1
                if depth < 0:
                    raise ParseError('unexpected "}"', ln)
            elif tok == "{":
                depth += 1
        yield tok, ln, quoted
    if depth > 0:
        raise ParseError('unexpected end of file, expecting "}"', ln)


def parse_directives(
    text: str,
    file: str,
    parent: Directive | None = None,
    on_include: Callable[[Directive], list[Directive]] | None = None,
) -> tuple[list[Directive], list[ParseError]]:
    """The directives of one file (crossplane's statement tree, as model Directives) and its errors.

    ON_INCLUDE, called for each ``include`` as it is met, returns the directives to insert after it (the
    loader's include expansion), so the model is built in this one pass. As in crossplane, an unbalanced brace
    or a directive cut by EOF loses the whole file. Beyond crossplane, what nginx refuses while reading is also
    reported, as nginx reports it (the tree stays crossplane's): a ``}`` that ends a directive's arguments
    (``listen 80 }``), a ``{`` or ``;`` where a directive name belongs, a name holding control bytes.
    """
    if "\r" in text:  # CRLF files: nginx counts lines by LF, crossplane reads with universal newlines
        text = text.replace("\r\n", "\n")
    notes: list[ParseError] = []
    stream = _balanced(_tokens(text))
    nxt = stream.__next__

    def block(up: Directive | None) -> list[Directive]:
        parsed: list[Directive] = []
        append = parsed.append
        for tok, ln, quoted in stream:
            if tok == "}" and not quoted:
                break
            if tok[:1] == "#" and not quoted:
                append(Directive("#", [tok[1:]], file, ln, None, up))
                continue
            args: list[str] = []
            comments: list[str] | None = None
            try:
                t, _, q = nxt()
                while q or t not in ("{", ";", "}"):
                    if not q and t[:1] == "#":
                        if comments is None:
                            comments = []
                        comments.append(t[1:])
                    else:
                        args.append(t)
                    t, _, q = nxt()
            except StopIteration:
                raise _Eof from None
            if tok == "if":
                _prepare_if_args(args)
            refused = not quoted and (tok == "{" or tok == ";")
            if refused:
                notes.append(ParseError(f'unexpected "{tok}"', ln))
            elif not tok.isprintable():
                refused = True
                notes.append(ParseError(f'unknown directive "{shown(tok)}"', ln))
            d = Directive(tok, args, file, ln, None, up)
            append(d)
            if t == "{" and not q:
                d.block = block(d)
            elif t == "}" and not q and not refused:
                notes.append(ParseError(f'unexpected "}}" (directive "{tok}" is not terminated by ";")', ln))
            elif tok == "include" and on_include is not None and args:
                parsed.extend(on_include(d))
            if comments:
                for c in comments:
                    append(Directive("#", [c], file, ln, None, up))
        return parsed

    try:
        out = block(parent)
    except ParseError as e:
        return [], [e]
    except _Eof:
        last = text.count("\n") + (0 if text.endswith("\n") else 1)
        return [], [ParseError('unexpected end of file, expecting ";" or "}"', max(1, last))]
    return out, notes


def parse_text(text: str) -> tuple[list[Stmt], list[ParseError]]:
    """The statements of one file as (directive, args, line, block) tuples, and its errors (for tests)."""
    directives, errors = parse_directives(text, "")
    return [_stmt(d) for d in directives], errors


def _stmt(d: Directive) -> Stmt:
    return (d.name, d.args, d.line, [_stmt(c) for c in d.block] if d.block is not None else None)


def _prepare_if_args(args: list[str]) -> None:
    """crossplane's ``_prepare_if_args``: strip the parentheses around an ``if`` condition."""
    if args and args[0].startswith("(") and args[-1].endswith(")"):
        args[0] = args[0][1:].lstrip()
        args[-1] = args[-1][:-1].rstrip()
        start = int(not args[0])
        end = len(args) - int(not args[-1])
        args[:] = args[start:end]


def from_crossplane(parsed: list[dict[str, Any]]) -> list[Stmt]:
    """crossplane's statement dicts as Stmt tuples (for files crossplane parses: Lua blocks)."""
    out: list[Stmt] = []
    for s in parsed:
        if s["directive"] == "#" and "comment" in s:
            out.append(("#", [s["comment"]], s["line"], None))
            continue
        block = s.get("block")
        out.append(
            (s["directive"], s["args"], s["line"], from_crossplane(block) if block is not None else None)
        )
    return out
