"""The fast parser must be crossplane: same tokens, same statement tree, same errors, on any input."""

from __future__ import annotations

import os
import tempfile

import crossplane
from crossplane.lexer import _balance_braces, _lex_file_object
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from wsdoctor.nginx.parse import (
    _tokenize_fast,
    _tokenize_slow,
    from_crossplane,
    parse_text,
    token_spans,
    tokenize,
)

# Fragments that exercise every lexer state: quotes, escapes, ${…}, comments, braces, odd whitespace.
FRAGMENTS = [
    " ",
    "  ",
    "\n",
    "\t",
    "\r\n",
    "\x0c",
    "\u00a0",
    ";",
    "{",
    "}",
    "#",
    "# c\n",
    '"',
    "'",
    "\\",
    '\\"',
    "\\'",
    "\\\n",
    "\\\\",
    "$",
    "${",
    "}",
    "a",
    "bc",
    "server",
    "location",
    "if",
    "(",
    ")",
    "$x",
    "~*",
    "=",
    "é",
    "/a/",
    '"q r"',
    "'s;t'",
    '"\\"x"',
    "#x{",
    "a#b",
    "${v}",
    "${v w}",
    "a'b",
    'a"b',
    "\\{",
    "\\;",
    "include",
]
TEXT = st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join)

# Realistic statements: balanced, mostly valid configs.
WORD = st.sampled_from(
    ["a", "b1", "$host", "~*", "^/x", "/p/", '"two words"', "'q'", "${x}", "(", ")", "=", "#c"]
)


@st.composite
def config_text(draw: st.DrawFn, depth: int = 0) -> str:
    out = []
    for _ in range(draw(st.integers(0, 4))):
        name = draw(st.sampled_from(["listen", "if", "location", "proxy_pass", "# note", "set", "map"]))
        if name.startswith("#"):
            out.append(name + "\n")
            continue
        args = " ".join(draw(st.lists(WORD, max_size=3)))
        if depth < 2 and draw(st.booleans()):
            out.append(f"{name} {args} {{\n{draw(config_text(depth + 1))}}}\n")
        else:
            out.append(f"{name} {args};\n")
    return "".join(out)


def _crossplane_tokens(text: str) -> tuple[list, str | None]:
    import io

    toks = []
    try:
        for t in _balance_braces(_lex_file_object(io.StringIO(text))):
            toks.append(t)
    except Exception as e:  # noqa: BLE001 - the reference's error is part of what is compared
        return toks, str(e)
    return toks, None


def _crossplane_parse(text: str) -> tuple[list, list]:
    fd, path = tempfile.mkstemp(suffix=".conf")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        payload = crossplane.parse(path, single=True, comments=True, check_ctx=False, check_args=False)
    finally:
        os.unlink(path)
    cfg = payload["config"][0]
    return from_crossplane(cfg["parsed"]), cfg["errors"]


SETTINGS = settings(
    max_examples=int(os.environ.get("WSDOCTOR_PARSE_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)


@SETTINGS
@given(TEXT)
@example('a "b\\"c" d;\n')
@example("x ${a b} c;")
@example("# trailing comment without newline")
@example("a b }")
@example("if ($a = b) { return 200; }\n")
def test_tokens_equal_crossplane_lexer(text: str) -> None:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    ref, err = _crossplane_tokens(text)
    if err is None:
        assert _tokenize_slow(text) == ref
        if "${" not in text:
            assert list(_tokenize_fast(text)) == ref


@SETTINGS
@given(st.one_of(TEXT, config_text()))
@example("http { server { listen 80 } }\n")
@example("a;\n}\n")
@example("a {\n")
@example("a b")
def test_statements_equal_crossplane_parse(text: str) -> None:
    ref_stmts, ref_errors = _crossplane_parse(text)
    # crossplane reads with universal newlines (a lone CR is a newline to it, not to nginx): compare on LF text
    stmts, errors = parse_text(text.replace("\r\n", "\n").replace("\r", "\n"))
    assert stmts == ref_stmts
    # crossplane's errors (unbalanced braces, EOF inside a directive) are ours too, same line
    assert bool(ref_errors) == any(
        "unexpected end of file" in e.message or e.message == 'unexpected "}"' for e in errors
    )
    for ref, ours in zip(ref_errors, errors, strict=False):
        if ref["error"]:
            assert ours.message in ref["error"] and ours.line == ref["line"]


@SETTINGS
@given(st.one_of(TEXT, config_text()))
@example('a "b\\"c" d;\n# c\n')
@example("x ${a b} 'q' c;")
@example("a\\\nb;")
def test_token_spans_point_at_each_token(text: str) -> None:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    spans = token_spans(text)
    assert [s[:3] for s in spans] == tokenize(text)
    last = 0
    for tok, _line, quoted, start, end in spans:
        assert last <= start < end <= len(text)
        last = end
        raw = text[start:end]
        if quoted:
            assert raw[0] == raw[-1] and raw[0] in "\"'" and len(raw) >= 2
        else:
            assert raw == tok
