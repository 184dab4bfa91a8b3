"""Evidence and fixes as styled ``Content``: nginx excerpts, probe transcripts, log lines, diffs.

Every function takes remote text, sanitizes it and redacts secrets first, then adds
styles by position (``Content.stylize``): the text itself is never parsed as markup,
so a ``[bold]`` or ``[@click=…]`` in a log line or a server's answer stays literal.
Styles are theme variables ($error, $success, …) so light and dark themes both read
well; under NO_COLOR the symbols and words (FAIL, ▶, +/-) still carry the meaning.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from textual.content import Content

from wsdoctor.remote.text import sanitize
from wsdoctor.report import Evidence, Finding, Fix, Status, redact

# status → (symbol, word, style); the word is there for NO_COLOR and screen readers.
STATUS_STYLE: dict[Status, tuple[str, str, str]] = {
    Status.FAIL: ("✗", "FAIL", "bold $error"),
    Status.WARN: ("!", "WARN", "bold $warning"),
    Status.PASS: ("✓", "PASS", "$success"),
    Status.SKIP: ("–", "SKIP", "$text-muted"),
}
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
KIND_TITLES = {"config": "Config", "probe": "Probe", "log": "Logs", "command": "Commands"}


# Every pattern report.redact() replaces contains one of these words (JWTs start with "eyJ"): a line with
# none of them skips its regexes. A 10,000 lines/s tail is mostly such lines; plain `in` is ~20x faster
# than one case-insensitive regex.
def _may_hold_secret(text: str, secrets: Sequence[str]) -> bool:
    if "eyJ" in text:
        return True
    for s in secrets:
        if s and s in text:
            return True
    low = text.lower()
    return "token" in low or "authorization" in low or "cookie" in low or "password" in low or "secret" in low


# Bidi overrides and isolates reorder what the engineer reads (Trojan Source); escape sequences and
# control characters are remote/text.py's job.
_BIDI = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def clean(text: str, secrets: Sequence[str] = (), *, multiline: bool = True) -> str:
    """Remote text as it may be shown: escape sequences stripped, tabs expanded, secrets replaced by ***."""
    if not text.isprintable():  # the common case (a plain log line) skips all of this
        if not multiline:
            text = text.replace("\r\n", " ").replace("\n", " ")
        text = sanitize(text, keep_newlines=multiline)
        text = _BIDI.sub("", text)
        if "\t" in text:
            text = text.expandtabs(4)
    return redact(text, secrets) if _may_hold_secret(text, secrets) else text


def status_badge(status: Status | None, spinner_frame: int = 0) -> Content:
    """`✗ FAIL`, `✓ PASS`…; ``None`` is pending, drawn with a spinner frame."""
    if status is None:
        return Content.styled(f"{SPINNER[spinner_frame % len(SPINNER)]} ····", "$accent")
    symbol, word, style = STATUS_STYLE[status]
    return Content.styled(f"{symbol} {word}", style)


# --- nginx configuration ------------------------------------------------------

_WHERE_LINE = re.compile(r"^(?P<file>.*?):(?P<line>\d+)(?:-\d+)?$")
_NGINX_TOKEN = re.compile(
    r"""(?P<comment>\#.*$)
      | (?P<string>"(?:[^"\\]|\\.)*"?|'(?:[^'\\]|\\.)*'?)
      | (?P<var>\$\{?[A-Za-z_][A-Za-z0-9_]*\}?)
      | (?P<brace>[{};])
      | (?P<word>[^\s{};"'\#$]+)""",
    re.VERBOSE,
)


def split_where(where: str) -> tuple[str, int | None]:
    """`/etc/nginx/x.conf:24` → (`/etc/nginx/x.conf`, 24); no line → (where, None)."""
    m = _WHERE_LINE.match(where)
    if m is None:
        return where, None
    return m.group("file"), int(m.group("line"))


def nginx_line(line: str) -> Content:
    """One config line with simple syntax colouring: directive names, variables, strings, comments."""
    content = Content(line)
    expect_directive = True
    for m in _NGINX_TOKEN.finditer(line):
        kind = m.lastgroup
        start, end = m.span()
        if kind == "comment":
            content = content.stylize("italic $text-muted", start, end)
        elif kind == "string":
            content = content.stylize("$success", start, end)
            expect_directive = False
        elif kind == "var":
            content = content.stylize("$warning", start, end)
            expect_directive = False
        elif kind == "brace":
            content = content.stylize("bold", start, end)
            expect_directive = True
        elif kind == "word":
            if expect_directive:
                content = content.stylize("bold $accent", start, end)
            expect_directive = False
    return content


_NUMBERED = re.compile(r"^\s*(?P<n>\d+) \| ?(?P<text>.*)$")
_GAP = re.compile(r"^\s*\| ?…\s*$")


def config_excerpt(evidence: Evidence, secrets: Sequence[str] = ()) -> Content:
    """A config excerpt with its file line numbers and the highlighted lines marked.

    The checks write excerpts as ``  42 | proxy_pass …`` lines (``   | …`` between groups that
    are not adjacent) and put file line numbers in ``highlight``; such a line gets a ``▶`` and a
    background, so it stands out with or without colour. An excerpt without numbers is shown as
    is; if it is one line, it gets the line number of ``where``.
    """
    lines = clean(evidence.text, secrets).splitlines() or [""]
    marked = set(evidence.highlight)
    rows: list[tuple[int | None, str, bool]] = []  # (file line, text, is a gap)
    for line in lines:
        if m := _NUMBERED.match(line):
            rows.append((int(m.group("n")), m.group("text"), False))
        elif _GAP.match(line):
            rows.append((None, "…", True))
        else:
            rows.append((None, line, False))
    if not any(n is not None for n, _, _ in rows) and len(rows) == 1:
        rows = [(split_where(evidence.where)[1], rows[0][1], False)]
    numbers = [n for n, _, _ in rows if n is not None]
    width = len(str(max(numbers))) if numbers else 0
    parts: list[Content] = []
    for number, text, gap in rows:
        hot = number is not None and number in marked
        if width:
            label = f"{number:>{width}}" if number is not None else " " * width
            gutter = Content.styled(
                f"{'▶' if hot else ' '}{label} │ ", "bold $error" if hot else "$text-muted"
            )
        else:
            gutter = Content("")
        if gap:
            parts.append(Content.assemble(gutter, ("…", "$text-muted")))
            continue
        body = nginx_line(text)
        if hot:
            body = body.stylize_before("on $error 15%")
        parts.append(Content.assemble(gutter, body))
    return Content("\n").join(parts)


# --- probe transcripts, logs, commands ---------------------------------------

_STATUS_LINE = re.compile(r"^HTTP/\d(?:\.\d)? (?P<code>\d{3})")
_REQUEST_LINE = re.compile(r"^(GET|POST|PUT|DELETE|HEAD|OPTIONS|PATCH|CONNECT) \S+")
_HEADER = re.compile(r"^(?P<name>[A-Za-z0-9-]+):(?P<value>.*)$")


def _status_style(code: int) -> str:
    if code < 300:
        return "bold $success"
    if code < 400:
        return "bold $warning"
    return "bold $error"


def transcript(evidence: Evidence, secrets: Sequence[str] = ()) -> Content:
    """A probe's request and answer: request and status lines bold, header names muted, body as is."""
    parts: list[Content] = []
    in_body = False
    for line in clean(evidence.text, secrets).splitlines():
        c = Content(line)
        if m := _STATUS_LINE.match(line):
            c = c.stylize(_status_style(int(m.group("code"))))
            in_body = False
        elif _REQUEST_LINE.match(line):
            c = c.stylize("bold $accent")
            in_body = False
        elif line.startswith("(no answer"):
            c = c.stylize("bold $error")
        elif not line:
            in_body = True
        elif not in_body and (h := _HEADER.match(line)):
            c = c.stylize("$text-muted", 0, len(h.group("name")) + 1)
        parts.append(c)
    return Content("\n").join(parts)


_LOG_TIME = re.compile(r"^\S+ \d\d:\d\d:\d\d|^\d+\.\d+\.\d+\.\d+ - \S+ \[[^\]]+\]|^\[[^\]]+\]")
_LOG_LEVEL = re.compile(r"\[(emerg|alert|crit|error|warn|notice|info|debug)\]")


def log_text(text: str, secrets: Sequence[str] = ()) -> Content:
    """Log lines: the timestamp muted, the nginx level coloured; the rest literal."""
    parts: list[Content] = []
    for line in clean(text, secrets).splitlines():
        c = Content(line)
        if m := _LOG_TIME.match(line):
            c = c.stylize("$text-muted", 0, m.end())
        if m := _LOG_LEVEL.search(line):
            level = m.group(1)
            style = "bold $error" if level in ("emerg", "alert", "crit", "error") else "bold $warning"
            c = c.stylize(style, m.start(), m.end())
        parts.append(c)
    return Content("\n").join(parts)


def command_text(evidence: Evidence, secrets: Sequence[str] = ()) -> Content:
    return Content(clean(evidence.text, secrets))


def evidence_body(evidence: Evidence, secrets: Sequence[str] = ()) -> Content:
    if evidence.kind == "config":
        return config_excerpt(evidence, secrets)
    if evidence.kind == "probe":
        return transcript(evidence, secrets)
    if evidence.kind == "log":
        return log_text(evidence.text, secrets)
    return command_text(evidence, secrets)


def group_evidence(evidence: Sequence[Evidence]) -> list[tuple[str, list[Evidence]]]:
    """Evidence grouped by kind, in the order config → probe → log → command (others last)."""
    order = list(KIND_TITLES)
    kinds = sorted(
        {e.kind for e in evidence}, key=lambda k: (order.index(k) if k in order else len(order), k)
    )
    return [(k, [e for e in evidence if e.kind == k]) for k in kinds]


# --- fixes ----------------------------------------------------------------------


def diff_text(diff: str, secrets: Sequence[str] = ()) -> Content:
    """A unified diff: file headers bold, hunks in the accent colour, + green, - red."""
    parts: list[Content] = []
    for line in clean(diff, secrets).splitlines():
        if line.startswith(("+++", "---")):
            style = "bold"
        elif line.startswith("@@"):
            style = "$accent"
        elif line.startswith("+"):
            style = "$success"
        elif line.startswith("-"):
            style = "$error"
        else:
            style = ""
        parts.append(Content.styled(line, style) if style else Content(line))
    return Content("\n").join(parts)


_JS_TOKEN = re.compile(r"(?P<comment>//.*$)|(?P<string>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|`[^`]*`)")


def code_text(code: str, secrets: Sequence[str] = ()) -> Content:
    """Client code (JavaScript): strings and comments coloured."""
    parts: list[Content] = []
    for line in clean(code, secrets).splitlines():
        c = Content(line)
        for m in _JS_TOKEN.finditer(line):
            c = c.stylize("italic $text-muted" if m.lastgroup == "comment" else "$success", *m.span())
        parts.append(c)
    return Content("\n").join(parts)


# --- plain text for the clipboard -------------------------------------------------


def fix_plain(fix: Fix | None, secrets: Sequence[str] = ()) -> str:
    """The fix as an engineer pastes it: the client code, then the diff (``patch -p1`` ready)."""
    if fix is None:
        return ""
    pieces = [p for p in (fix.code, fix.diff) if p]
    return clean("\n".join(p.rstrip("\n") for p in pieces) + "\n", secrets) if pieces else ""


def evidence_plain(finding: Finding, secrets: Sequence[str] = ()) -> str:
    """Every piece of evidence as text: a `[kind] where` line, then the excerpt."""
    blocks = [f"[{e.kind}] {e.where}\n{e.text.rstrip()}" for e in finding.evidence]
    return clean("\n\n".join(blocks) + "\n", secrets) if blocks else ""
