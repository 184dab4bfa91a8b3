"""Log classification: every error-log message of KNOWLEDGE.md §2, access logs parsed with the declared
log_format, the fast whole-file scan agreeing with the per-line classifier (and with grep)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsdoctor.remote.logs import (
    COMBINED,
    AccessFormat,
    classify_access_line,
    classify_error_line,
    format_advice,
    grep_pattern,
    scan_error_log,
)
from wsdoctor.remote.text import sanitize

T = "2026/05/01 12:00:00"
TAIL = (
    ', client: 10.0.0.7, server: api.x-or.cloud, request: "GET /dev/aiwm/chat/socket.io/?EIO=4&transport=polling '
    'HTTP/1.1", upstream: "http://172.16.2.100:3350/chat/socket.io/?EIO=4&transport=polling", host: "api.x-or.cloud"'
)

# (line, kind, check) — the messages of KNOWLEDGE.md's error-log table, as nginx 1.22 writes them
ERROR_LINES = [
    (f"{T} [error] 11#11: *5 connect() failed (111: Connection refused) while connecting to upstream{TAIL}",
     "connect-refused", "upstream"),
    (f"{T} [error] 11#11: *5 connect() to 172.16.2.100:3350 failed (111: Connection refused) while connecting to "
     f"upstream{TAIL}", "connect-refused", "upstream"),
    (f"{T} [error] 11#11: *5 connect() failed (113: No route to host) while connecting to upstream{TAIL}",
     "connect-failed", "upstream"),
    (f"{T} [error] 11#11: *5 no live upstreams while connecting to upstream{TAIL}", "no-live-upstreams", "upstream"),
    (f"{T} [error] 11#11: *5 upstream prematurely closed connection while reading response header from upstream"
     f"{TAIL}", "premature-close", "upstream"),
    (f"{T} [error] 11#11: *5 upstream timed out (110: Connection timed out) while connecting to upstream{TAIL}",
     "connect-timeout", "upstream"),
    (f"{T} [error] 11#11: *5 upstream timed out (110: Connection timed out) while reading response header from "
     f"upstream{TAIL}", "read-timeout", "timeout"),
    (f"{T} [info] 11#11: *5 upstream timed out (110: Connection timed out) while proxying upgraded connection{TAIL}",
     "upgraded-timeout", "timeout"),
    (f"{T} [info] 11#11: *5 client timed out (110: Connection timed out) while proxying upgraded connection{TAIL}",
     "upgraded-timeout", "timeout"),
    (f"{T} [error] 11#11: *5 recv() failed (104: Connection reset by peer) while proxying upgraded connection{TAIL}",
     "upgraded-closed", "timeout"),
    (f"{T} [error] 11#11: *5 no resolver defined to resolve chat.internal, client: 10.0.0.7, server: x, "
     'request: "GET /socket.io/?EIO=4 HTTP/1.1", host: "x"', "no-resolver", "upstream"),
    (f'{T} [error] 11#11: *5 open() "/usr/share/nginx/html/socket.io/index.html" failed (2: No such file or '
     'directory), client: 10.0.0.7, server: x, request: "GET /socket.io/?EIO=4&transport=polling HTTP/1.1", '
     'host: "x"', "socketio-404", "client"),
    (f'{T} [error] 11#11: *5 open() "/usr/share/nginx/html/dev/aiwm/chat/socket.io/index.html" failed (2: No such '
     'file or directory), client: 10.0.0.7, server: x, request: "GET /dev/aiwm/chat/socket.io/?EIO=4 HTTP/1.1", '
     'host: "x"', "socketio-404", "route"),
    # GET /socket.io/ (a directory) goes through the index module, which says "is not found" [seen, 1.22]
    (f'{T} [error] 11#11: *6 "/usr/share/nginx/html/socket.io/index.html" is not found (2: No such file or '
     'directory), client: 10.0.0.7, server: x, request: "GET /socket.io/?EIO=4&transport=polling HTTP/1.1", '
     'host: "x"', "socketio-404", "client"),
]  # fmt: skip

BENIGN = [
    f"{T} [notice] 11#11: signal process started",
    f"{T} [info] 11#11: *9 client 10.0.0.7 closed keepalive connection",
    f"{T} [info] 11#11: *9 epoll_wait() reported that client prematurely closed connection, so upstream connection "
    "is closed too while sending request to upstream, client: 1.2.3.4",
    # the words inside the request (attacker-controlled), not as nginx's message: must not count
    f'{T} [error] 11#11: *9 open() "/srv/x" failed (13: Permission denied), client: 1.2.3.4, server: x, '
    'request: "GET /a: no live upstreams: connect() failed (111: HTTP/1.1", host: "x"',
    f'{T} [error] 11#11: *9 open() "/usr/share/nginx/html/favicon.ico" failed (2: No such file or directory)',
]


@pytest.mark.parametrize(("line", "kind", "check"), ERROR_LINES)
def test_error_line_classified(line: str, kind: str, check: str) -> None:
    event = classify_error_line(line, "/var/log/nginx/error.log", 42)
    assert event is not None
    assert (event.kind, event.check, event.source) == (kind, check, "error")
    assert (event.file, event.line_no, event.time) == ("/var/log/nginx/error.log", 42, T)
    assert event.request and event.request.startswith("GET /")


def test_error_line_fields() -> None:
    event = classify_error_line(ERROR_LINES[0][0])
    assert event is not None
    assert event.upstream == "http://172.16.2.100:3350/chat/socket.io/?EIO=4&transport=polling"
    assert event.request == "GET /dev/aiwm/chat/socket.io/?EIO=4&transport=polling HTTP/1.1"


@pytest.mark.parametrize("line", BENIGN)
def test_benign_lines_say_nothing(line: str) -> None:
    assert classify_error_line(line) is None


def test_escape_sequences_are_stripped_from_evidence() -> None:
    line = ERROR_LINES[0][0].replace("client: 10.0.0.7", "client: \x1b]0;owned\x07\x1b[2J10.0.0.7\x00")
    event = classify_error_line(line)
    assert event is not None and "\x1b" not in event.text and "\x00" not in event.text
    assert "client: 10.0.0.7" in event.text


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_sanitize_leaves_no_control_characters(text: str) -> None:
    out = sanitize(text)
    assert all(ch == "\t" or not (ord(ch) < 32 or 0x7F <= ord(ch) <= 0x9F) for ch in out)
    multi = sanitize(text, keep_newlines=True)
    assert all(ch in "\t\n" or not (ord(ch) < 32 or 0x7F <= ord(ch) <= 0x9F) for ch in multi)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=400))
def test_classifiers_never_raise(text: str) -> None:
    classify_error_line(text)
    classify_access_line(text, AccessFormat.build(), read_timeout=60)


# --- access logs ---------------------------------------------------------------------------------

CUSTOM = (
    '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" '
    '"$http_user_agent" us=$upstream_status ua=$upstream_addr rt=$request_time urt=$upstream_response_time'
)


def _combined(request: str, status: int) -> str:
    return f'10.0.0.7 - - [01/May/2026:12:00:00 +0000] "{request}" {status} 12 "-" "Mozilla/5.0 (X11; Linux)"'


def test_combined_format_parsed_by_its_variables() -> None:
    fmt = AccessFormat.build()
    assert fmt.format == COMBINED
    m = fmt.regex.match(_combined("GET /socket.io/?EIO=4&transport=polling HTTP/1.1", 404))
    assert m is not None
    assert m.group("remote_addr") == "10.0.0.7" and m.group("status") == "404"
    assert m.group("http_user_agent") == "Mozilla/5.0 (X11; Linux)"


@pytest.mark.parametrize(
    ("request_line", "status", "kind", "check"),
    [
        ("GET /socket.io/?EIO=4&transport=polling&t=abc HTTP/1.1", 404, "socketio-404", "client"),
        ("GET /dev/aiwm/chat/socket.io/?EIO=4&transport=polling HTTP/1.1", 404, "socketio-404", "route"),
        ("POST /chat/socket.io/?EIO=4&transport=polling&sid=Zx9 HTTP/1.1", 400, "400-polling-sid", "sticky"),
        ("GET /chat/socket.io/?EIO=4&transport=polling HTTP/1.1", 502, "502", "upstream"),
        ("GET /chat/socket.io/?EIO=4&transport=websocket HTTP/1.1", 504, "504", "upstream"),
        ("GET /chat/socket.io/?EIO=4&transport=websocket HTTP/1.1", 403, "403", "auth"),
        ("GET /chat/socket.io/?EIO=4&transport=polling HTTP/1.1", 401, "401", "auth"),
    ],
)
def test_access_lines_classified(request_line: str, status: int, kind: str, check: str) -> None:
    event = classify_access_line(_combined(request_line, status), AccessFormat.build(), "access.log", 7)
    assert event is not None
    assert (event.kind, event.check, event.status, event.request) == (kind, check, status, request_line)
    assert event.time == "01/May/2026:12:00:00 +0000" and event.line_no == 7


@pytest.mark.parametrize(
    ("request_line", "status"),
    [
        ("GET /api/users HTTP/1.1", 502),  # the REST API beside it: not this service's evidence
        ("GET /chat/socket.io/?EIO=4&transport=polling HTTP/1.1", 200),
        ("GET /chat/socket.io/?EIO=4&transport=polling HTTP/1.1", 400),  # 400 without a session id
    ],
)
def test_access_lines_that_say_nothing(request_line: str, status: int) -> None:
    assert classify_access_line(_combined(request_line, status), AccessFormat.build()) is None


def test_custom_format_with_upstream_lists_and_durations() -> None:
    fmt = AccessFormat.build("upstreaminfo", CUSTOM)
    assert fmt.missing() == [] and format_advice(fmt) is None
    line = (
        '10.0.0.7 - - [01/May/2026:12:00:00 +0000] "GET /chat/socket.io/?EIO=4&transport=polling HTTP/1.1" 502 '
        '157 "-" "node" us=502, 502 ua=172.16.2.100:3350, 172.16.2.100:3351 rt=0.004 urt=0.001, 0.002'
    )
    event = classify_access_line(line, fmt)
    assert event is not None and event.kind == "502"
    assert event.upstream == "172.16.2.100:3350, 172.16.2.100:3351"
    assert event.duration == 0.004


def test_101_lasting_the_read_timeout_is_an_idle_timeout() -> None:
    fmt = AccessFormat.build("timed", COMBINED + " $request_time")
    ws = "GET /chat/socket.io/?EIO=4&transport=websocket HTTP/1.1"
    long = _combined(ws, 101) + " 60.002"
    short = _combined(ws, 101) + " 12.500"
    event = classify_access_line(long, fmt, read_timeout=60.0)
    assert event is not None and (event.kind, event.check, event.duration) == (
        "101-idle-timeout",
        "timeout",
        60.002,
    )
    assert classify_access_line(short, fmt, read_timeout=60.0) is None
    assert classify_access_line(long, fmt, read_timeout=None) is None  # unknown timeout: no guess


def test_combined_lacks_the_upstream_fields() -> None:
    advice = format_advice(AccessFormat.build())
    assert advice is not None
    assert "$upstream_status $upstream_addr $request_time" in advice


def test_back_to_back_variables_and_braces() -> None:
    fmt = AccessFormat.build("odd", "${status}$body_bytes_sent [$request] $request_time")
    m = fmt.regex.match("404123 [GET /x HTTP/1.1] 0.5")
    assert m is not None and m.group("request") == "GET /x HTTP/1.1" and m.group("request_time") == "0.5"


# --- whole-file scan -----------------------------------------------------------------------------------------


def _write_log(path: Path, repeat: int = 40) -> list[str]:
    lines: list[str] = []
    for i in range(repeat):
        for line, _, _ in ERROR_LINES:
            lines.append(line.replace("*5", f"*{i}"))
        lines += BENIGN
    path.write_text("\n".join(lines) + "\n")
    return lines


def test_scan_agrees_with_the_line_classifier(tmp_path: Path) -> None:
    path = tmp_path / "error.log"
    lines = _write_log(path)
    scan = scan_error_log(str(path), keep=5)
    expected: dict[str, int] = {}
    for line in lines:
        event = classify_error_line(line)
        if event is not None:
            expected[event.kind] = expected.get(event.kind, 0) + 1
    assert scan.counts == expected
    assert scan.lines == len(lines)
    assert [e.line_no for e in scan.events] == [
        n for n, line in enumerate(lines, 1) if classify_error_line(line) is not None
    ][-5:]
    assert all(e.text == lines[e.line_no - 1] for e in scan.events if e.line_no)


def test_scan_of_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.log"
    path.write_text("")
    scan = scan_error_log(str(path))
    assert (scan.lines, scan.counts, scan.events) == (0, {}, [])


@pytest.mark.skipif(shutil.which("grep") is None, reason="grep is not installed")
def test_grep_pattern_counts_the_same_lines(tmp_path: Path) -> None:
    path = tmp_path / "error.log"
    _write_log(path, repeat=5)
    done = subprocess.run(
        ["grep", "-cE", grep_pattern(), str(path)],
        capture_output=True,
        text=True,
        timeout=10,
        env={"LC_ALL": "C"},
    )
    assert int(done.stdout) == scan_error_log(str(path)).matched


def test_parallel_scan_counts_the_same(tmp_path: Path) -> None:
    path = tmp_path / "error.log"
    _write_log(path, repeat=30)
    alone = scan_error_log(str(path), keep=3, parallel=False)
    split = scan_error_log(str(path), keep=3, parallel=True)  # a forked child counts the second half
    assert (split.counts, split.lines, split.events) == (alone.counts, alone.lines, alone.events)
