"""Rendering helpers without a terminal: cleaning remote text, excerpts, transcripts, diffs, log lines."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from wsdoctor.facts import LogEvent
from wsdoctor.remote.text import sanitize
from wsdoctor.report import Evidence, Fix, redact
from wsdoctor.widgets.logview import FAIL, INFO, OK, WARN, format_event, severity
from wsdoctor.widgets.render import (
    clean,
    config_excerpt,
    diff_text,
    fix_plain,
    group_evidence,
    nginx_line,
    transcript,
)

from .recorded import STICKY, TOKEN

SECRETS = (TOKEN, "hunter2-secret")
_pieces = st.sampled_from(
    [
        "GET /socket.io/?EIO=4 ",
        "Authorization: Bearer abc.def ",
        "Cookie: io=1; a=b\n",
        '{"token":"xyz"} ',
        "?token=qq&x=1 ",
        TOKEN,
        "hunter2-secret",
        "\x1b[2J",
        "\x1b]0;title\x07",
        "\t",
        "\r\n",
        "\u202e",
        "[bold red]x[/]",
        "é日本",
        "plain words ",
    ]
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_pieces, max_size=8).map("".join), st.booleans())
def test_clean_equals_full_sanitize_and_redact(text, multiline):
    """The fast paths of clean() (printable lines, no secret-like words) change nothing."""
    expected = text.replace("\r\n", " ").replace("\n", " ") if not multiline else text
    expected = sanitize(expected, keep_newlines=multiline)
    for ch in "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069":
        expected = expected.replace(ch, "")
    expected = redact(expected.expandtabs(4), SECRETS)
    assert clean(text, SECRETS, multiline=multiline) == expected
    out = clean(text, SECRETS, multiline=multiline)
    assert TOKEN not in out and "hunter2-secret" not in out and "\x1b" not in out


def test_config_excerpt_reads_the_checks_numbered_lines_and_marks_highlights():
    ev = Evidence(
        "config",
        "/etc/nginx/sites-enabled/api:18",
        " 9 | server {\n   | …\n18 |     proxy_pass http://up/chat; # [b]x[/b]\n19 | }",
        highlight=(18,),
    )
    lines = config_excerpt(ev).plain.splitlines()
    assert lines == [
        "  9 │ server {",
        "    │ …",
        "▶18 │     proxy_pass http://up/chat; # [b]x[/b]",
        " 19 │ }",
    ]


def test_config_excerpt_without_numbers_uses_where_for_a_single_line():
    ev = Evidence("config", "/etc/nginx/conf.d/up.conf:4", "ip_hash;", highlight=(4,))
    assert config_excerpt(ev).plain == "▶4 │ ip_hash;"
    multi = Evidence("config", "dump.txt", "a;\nb;")
    assert config_excerpt(multi).plain == "a;\nb;"


def test_nginx_colouring_is_by_position_not_markup():
    c = nginx_line('    proxy_set_header Connection "upgrade"; # [red]x[/red] $var')
    assert c.plain == '    proxy_set_header Connection "upgrade"; # [red]x[/red] $var'
    styles = {c.plain[s.start : s.end]: str(s.style) for s in c.spans}
    assert "$accent" in styles["proxy_set_header"]
    assert styles['"upgrade"'] == "$success"
    assert "$text-muted" in styles["# [red]x[/red] $var"]  # a comment, variables and all


def test_transcript_redacts_and_styles_the_status_line():
    c = transcript(STICKY.evidence[1], SECRETS)
    assert TOKEN not in c.plain and "Authorization: Bearer ***" in c.plain
    status = next(s for s in c.spans if c.plain[s.start : s.end] == "HTTP/1.1 400 Bad Request")
    assert "$error" in str(status.style)


def test_diff_and_fix_text():
    diff = STICKY.fix.diff
    c = diff_text(diff)
    added = next(s for s in c.spans if c.plain[s.start : s.end] == "+    ip_hash;")
    assert added.style == "$success"
    assert fix_plain(Fix("s", diff=diff, code="io('x')")).startswith(
        "io('x')\n--- a/etc/nginx/conf.d/upstream.conf"
    )
    assert fix_plain(None) == "" and fix_plain(Fix("summary only")) == ""


def test_evidence_grouped_config_probe_log_command():
    evs = [
        Evidence("log", "l", ""),
        Evidence("command", "c", ""),
        Evidence("probe", "p", ""),
        Evidence("config", "f", ""),
    ]
    assert [k for k, _ in group_evidence(evs)] == ["config", "probe", "log", "command"]


def _event(**kw) -> LogEvent:
    base = dict(source="access", file="a.log", line_no=1, text="x", kind="k", check="route")
    return LogEvent(**{**base, **kw})


def test_log_severity_and_format():
    assert severity(_event(status=502)) == FAIL
    assert severity(_event(status=404)) == WARN
    assert severity(_event(status=101)) == OK
    assert severity(_event(source="error", status=None)) == FAIL
    assert severity(_event(kind="", check="")) == INFO
    line = format_event(
        _event(text=f"GET /?token={TOKEN} \x1b[31mred", check="auth", kind="bad-token"), SECRETS
    )
    assert line.plain.startswith("! auth      bad-token          access  GET /?token=***")
    assert "\x1b" not in line.text and TOKEN not in line.plain
