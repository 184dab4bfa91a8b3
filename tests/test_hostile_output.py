"""Hostile text never reaches the terminal, and a password in a URL never reaches any output.

A config written by somebody else carries OSC/CSI/C1 bytes in comments, names and paths; a URL carries
``user:password@``. Every output format (text, Markdown, JSON) is checked byte by byte, offline and live
(a real python-socketio backend on loopback), and the CLI's own error line too.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.probes.servers import ENGINE_PATH, SocketIOBackend
from wsdoctor.cli import main
from wsdoctor.report import EVIDENCE_LINE_CAP, redact
from wsdoctor.safetext import visible

# OSC title, OSC 52 clipboard write, clear screen, an 8-bit CSI, a bidi override, a bell.
HOSTILE = "\x1b]0;PWNED\x07 \x1b]52;c;cHduZWQ=\x07 \x1b[2J \x9b31m \u202e \x07"
# What a report may contain: printable text, tab and newline.
UNSAFE_IN_TEXT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]")
UNSAFE_IN_JSON = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]")

CONFIG = """\
# a hostile comment: {h}
events {{}}
http {{
    upstream chat_ws {{ server 127.0.0.1:{port}; }}
    server {{
        listen 443 ssl;
        server_name h.test "{h}";
        ssl_certificate /etc/ssl/x.pem;
        ssl_certificate_key /etc/ssl/x.key;
        location /chat/ {{
            # {h}
            proxy_pass http://chat_ws/socket.io/;
            proxy_read_timeout 1s;  # {h}
        }}
    }}
}}
"""


def _run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(args))
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture
def hostile_conf(tmp_path: Path) -> Path:
    conf = tmp_path / "etc" / "nginx" / "nginx.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text(CONFIG.format(h=HOSTILE, port=9))
    return conf


@pytest.mark.parametrize("fmt", ["text", "markdown", "json"])
def test_hostile_config_bytes_are_shown_escaped_in_every_format(hostile_conf: Path, fmt: str) -> None:
    rc, out, err = _run(
        "check", "--offline", "--nginx-conf", str(hostile_conf), "--root", str(hostile_conf.parents[2]),
        "--nginx-version", "1.22.1", "--url", "wss://h.test/x\x1b[2J", "--path", "/chat/socket.io",
        "--format", fmt,
    )  # fmt: skip
    assert rc in (0, 1), err
    bad = (UNSAFE_IN_JSON if fmt == "json" else UNSAFE_IN_TEXT).findall(out)
    assert not bad, f"raw control characters in the {fmt} report: {sorted(set(bad))!r}"
    if fmt == "json":
        data = json.loads(out)  # the data survives: a JSON reader gets the original characters back
        assert "\x1b[2J" in data["target"]["url"]
        assert any("\x1b]0;PWNED" in ev["text"] for f in data["findings"] for ev in f["evidence"]), data
    else:
        assert "\\x1b]0;PWNED\\x07" in out  # shown, escaped: the on-call engineer sees what is there


def test_markdown_fences_cannot_be_closed_by_config_text(tmp_path: Path) -> None:
    conf = tmp_path / "etc" / "nginx" / "nginx.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text(CONFIG.format(h="```\n# Injected heading", port=9).replace('"```\n# Injected heading"', "x"))
    rc, out, _ = _run(
        "check", "--offline", "--nginx-conf", str(conf), "--root", str(tmp_path), "--nginx-version", "1.22.1",
        "--url", "wss://h.test", "--path", "/chat/socket.io", "--format", "markdown",
    )  # fmt: skip
    assert rc in (0, 1)
    for block in re.finditer(r"^(`{3,})[a-z]*\n(.*?)^\1$", out, re.M | re.S):
        assert not re.search(rf"^{block.group(1)}", block.group(2), re.M)
    assert "\n# Injected heading" not in out.replace("    # Injected heading", "")


def test_cli_error_line_shows_escapes() -> None:
    rc, out, err = _run("check", "--offline", "--nginx-conf", "/nowhere/\x1b]0;PWNED\x07.conf")
    assert rc == 2 and not out
    assert "\x1b" not in err and "\\x1b]0;PWNED\\x07" in err
    assert len(err.strip().splitlines()) == 1


def test_visible_keeps_text_and_escapes_controls() -> None:
    assert visible("a\tb\nc") == "a\tb\nc"
    assert visible("a\nb", keep_newlines=False) == "a\\x0ab"
    assert visible("\x1b[2J\x9b\u202eé😀") == "\\x1b[2J\\x9b\\u202eé😀"


# --- passwords in URLs ------------------------------------------------------------------------------


def test_redact_removes_url_passwords_anywhere() -> None:
    text = "GET wss://alice:S3cr3t@h.test/x and https://bob:p@10.0.0.1:8443/y?z=1 and http://carol@h.test"
    got = redact(text)
    assert "S3cr3t" not in got and ":p@" not in got
    assert "wss://alice:***@h.test/x" in got and "https://bob:***@10.0.0.1:8443/y" in got
    assert "http://carol@h.test" in got  # a user without a password is not a secret


def test_redact_removes_basic_credentials() -> None:
    got = redact("Authorization: Basic YWxpY2U6UzNjcjN0\nauthorization: Bearer abc.def")
    assert "YWxpY2U6UzNjcjN0" not in got and "abc.def" not in got


@pytest.mark.parametrize("fmt", ["text", "markdown", "json"])
def test_url_password_never_printed_offline(hostile_conf: Path, fmt: str) -> None:
    rc, out, err = _run(
        "check", "--offline", "--nginx-conf", str(hostile_conf), "--root", str(hostile_conf.parents[2]),
        "--url", "wss://alice:S3cr3t@h.test/x", "--format", fmt,
    )  # fmt: skip
    assert rc in (0, 1), err
    assert "S3cr3t" not in out + err
    assert "alice:***@h.test" in out


@pytest.fixture(scope="module")
def backend() -> Iterator[SocketIOBackend]:
    b = SocketIOBackend("pw").start()
    try:
        yield b
    finally:
        b.stop()


@pytest.mark.parametrize("fmt", ["text", "markdown", "json"])
def test_url_password_never_printed_live(backend: SocketIOBackend, fmt: str) -> None:
    url = f"http://alice:S3cr3t@127.0.0.1:{backend.port}"
    rc, out, err = _run("check", "--url", url, "--path", ENGINE_PATH, "--timeout", "5", "--format", fmt)
    assert rc in (0, 1), err
    assert "S3cr3t" not in out + err
    assert "YWxpY2U6UzNjcjN0" not in out + err  # nor as Basic credentials in a probe transcript
    assert "alice:***@127.0.0.1" in out


def test_a_huge_config_line_is_clipped_in_evidence_and_redaction_stays_linear(tmp_path: Path) -> None:
    conf = tmp_path / "etc" / "nginx" / "nginx.conf"
    conf.parent.mkdir(parents=True)
    huge = "x" * 2_000_000
    conf.write_text(
        "events {}\nhttp { server { listen 80; server_name h.test; location /socket.io/ {"
        f' proxy_pass http://127.0.0.1:3000; add_header X-A "{huge}"; }} }} }}\n'.replace("}}", "}")
    )
    started = time.monotonic()
    rc, out, err = _run(
        "check", "--offline", "--nginx-conf", str(conf), "--root", str(tmp_path), "--url", "ws://h.test",
        "--format", "json",
    )  # fmt: skip
    assert rc in (0, 1), err
    assert time.monotonic() - started < 20  # seconds even on a loaded machine; it was 48 s for 10 MB
    for finding in json.loads(out)["findings"]:
        for ev in finding["evidence"]:
            assert all(len(line) < EVIDENCE_LINE_CAP + 40 for line in ev["text"].splitlines())
    assert "more characters]" in out


def test_redact_is_fast_on_long_text() -> None:
    started = time.monotonic()
    redact("x" * 5_000_000)
    assert time.monotonic() - started < 1.0


def test_a_huge_server_name_is_quoted_clipped_in_the_sentences(tmp_path) -> None:
    """A name from outside is quoted at most EVIDENCE_LINE_CAP characters long in titles and summaries (the
    route summary once carried all 10 MB of it); the fix's diff keeps every byte, it must apply."""
    import contextlib
    import io
    import json

    from wsdoctor.cli import main
    from wsdoctor.report import EVIDENCE_LINE_CAP

    name = "x" * 1_000_000  # 10 MB behaves the same, only slower
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        "events {}\nhttp {\n  server { listen 80; server_name " + name + "; location /socket.io/ {"
        " proxy_pass http://127.0.0.1:3000; } }\n}\n"
    )
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["check", "--offline", "--nginx-conf", str(conf), "--nginx-version", "1.22.1",
                     "--url", "ws://x.test", "--no-nginx-test", "--format", "json"])  # fmt: skip
    assert code == 1
    for f in json.loads(out.getvalue())["findings"]:
        assert len(f["summary"]) < EVIDENCE_LINE_CAP + 100 and len(f["title"]) < EVIDENCE_LINE_CAP + 100, f["id"]
        if f["fix"]:
            assert len(f["fix"]["summary"]) < EVIDENCE_LINE_CAP + 100
