"""An `nginx -T` output cut short is reported as what it is (truncated, and what is missing), never as a config
nginx would refuse, and never silently short of a file.

The dump is the real `nginx -T` of a small tree (so its format is nginx's own, not a guess), cut at every
offset. Where a cut cannot be told from a whole dump (at the end of a line between two top-level statements),
what was loaded must be exactly the text before the cut, with no error at all.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.nginx.realnginx import NGINX
from wsdoctor.nginx.load import DUMP_MARK, LoadError, load_dump, split_dump
from wsdoctor.nginx.model import Config

TREE = {
    "nginx.conf": """\
events {}
http {
    include conf.d/*.conf;
    include sites/*.conf;
    include snippets/last.conf;
}
""",
    "conf.d/upstreams.conf": """\
upstream one {
    server 127.0.0.1:3001;
}

# the second pool
upstream two { server 127.0.0.1:3002; }
""",
    "sites/a.conf": """\
server {
    listen 127.0.0.1:8081;
    location /socket.io/ {
        include snippets/headers.conf;
        add_header X-Note "semi; colon and {brace}";
        proxy_pass http://one;
    }
}
""",
    "snippets/headers.conf": "proxy_set_header Upgrade $http_upgrade;\nproxy_set_header Connection 'upgrade';\n",
    "snippets/last.conf": "map $http_upgrade $connection_upgrade { default upgrade; '' close; }\n",
}


@pytest.fixture(scope="module")
def real_dump(tmp_path_factory: pytest.TempPathFactory) -> str:
    """`nginx -T` of TREE, from the real nginx."""
    if not os.access(NGINX, os.X_OK):
        pytest.skip(f"{NGINX} is not installed; the test needs the real nginx -T")
    base = tmp_path_factory.mktemp("dump")
    for name, text in TREE.items():
        (base / name).parent.mkdir(parents=True, exist_ok=True)
        (base / name).write_text(text)
    (base / "logs").mkdir()
    proc = subprocess.run(
        [
            NGINX,
            "-T",
            "-q",
            "-p",
            str(base),
            "-e",
            str(base / "logs/error.log"),
            "-c",
            str(base / "nginx.conf"),
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _whole(dump: str) -> Config:
    config = load_dump(dump, "whole.txt")
    assert not config.errors
    return config


def _flat(config: Config, file: str) -> list[tuple]:
    return [(d.name, tuple(d.args), d.line) for d in config.walk() if d.file == file]


def test_the_real_dump_is_whole_and_complete(real_dump: str) -> None:
    config = _whole(real_dump)
    assert len(config.files) == len(TREE)
    assert real_dump.endswith("\n\n")  # nginx writes a newline after every file, each ending in its own
    # a whole dump stripped of its final newlines (`$(nginx -T)`) is still whole
    assert not load_dump(real_dump.rstrip("\n"), "stripped.txt").errors


@pytest.mark.parametrize("eol", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_every_cut_is_reported_or_loses_nothing_it_shows(real_dump: str, eol: str) -> None:
    real_dump = real_dump.replace("\n", eol)
    whole = _whole(real_dump)
    undetected = 0
    for cut in range(1, len(real_dump) - 1):
        text = real_dump[:cut]
        try:
            config = load_dump(text, "cut.txt")
        except LoadError as e:
            # no file at all, or not one statement of the first: nothing to analyse
            assert "is truncated in" in str(e) or cut < 3, (cut, str(e))
            continue
        files, order = split_dump(text)
        if config.errors and config.errors[0].kind == "truncated":
            err = config.errors[0]
            assert err.message.endswith("; save the whole `nginx -T` output (run as root) and pass that")
            assert err.file == order[-1] and "the nginx -T output is truncated " in err.message
            assert err.line is None or err.line <= text.count("\n")
            assert not [e for e in config.errors if "unexpected end of file" in e.message], cut
            assert not [e for e in config.errors if "is not in the dump" in e.message], cut
            continue
        # Not told: the cut is at the end of a line or after a `;`/`}`, at the top level of the last file.
        undetected += 1
        assert not config.errors, (cut, config.errors)
        tail = text.rsplit("\n", 1)[-1]
        assert not tail.strip() or tail.rstrip().endswith((";", "}")), (cut, tail)
        for f in files:
            shown, full = _flat(config, f), _flat(whole, f)
            assert shown == full[: len(shown)], (cut, f)
        assert whole.files[order[-1]].startswith(files[order[-1]].rstrip("\r\n")), cut
    assert undetected < len(real_dump) // 20  # the few cuts at a top-level boundary, nothing more


def _cut_after(dump: str, marker: str) -> str:
    return dump[: dump.index(marker) + len(marker)]


def test_cut_inside_a_block_names_the_last_whole_line_and_what_is_missing(real_dump: str) -> None:
    config = load_dump(_cut_after(real_dump, "    location /socket.io/ {\n        incl"), "cut.txt")
    err = config.errors[0]
    site = next(f for f in config.files if f.endswith("/sites/a.conf"))
    main = next(f for f in config.files if f.endswith("/nginx.conf"))
    assert (err.kind, err.file, err.line) == ("truncated", site, 3)
    assert err.message == (
        f"the nginx -T output is truncated after {site}:3 (inside a block); missing: the rest of {site} and "
        f"{main.rsplit('/', 1)[0]}/snippets/last.conf; save the whole `nginx -T` output (run as root) and pass that"
    )
    assert len(config.errors) == 1  # not "unexpected end of file", not "is not in the dump"


def test_cut_inside_a_quoted_string(real_dump: str) -> None:
    config = load_dump(_cut_after(real_dump, 'add_header X-Note "semi; col'), "cut.txt")
    assert "(inside a quoted string); missing: the rest of " in config.errors[0].message


def test_cut_inside_a_header_does_not_lose_a_file_silently(real_dump: str) -> None:
    text = _cut_after(real_dump, f"{DUMP_MARK}{next(iter(_whole(real_dump).files))[: -len('nginx.conf')]}si")
    config = load_dump(text, "cut.txt")
    err = config.errors[0]
    assert err.kind == "truncated" and err.file.endswith("/conf.d/upstreams.conf") and err.line == 6
    assert "(inside the header of the next file, " in err.message and "/si…" in err.message
    assert "the files of `include sites/*.conf` at " in err.message
    assert not config.servers()  # nothing invented: the server was in the lost file


def test_cut_right_after_a_header(real_dump: str) -> None:
    marker = next(ln for ln in real_dump.splitlines(keepends=True) if ln.endswith("/snippets/last.conf:\n"))
    config = load_dump(_cut_after(real_dump, marker), "cut.txt")
    err = config.errors[0]
    assert err.kind == "truncated" and err.line is None
    assert (
        "at the start of " in err.message and "(right after its header); missing: the text of " in err.message
    )


def test_cut_between_files_where_a_plain_include_names_a_missing_file(real_dump: str) -> None:
    marker = next(ln for ln in real_dump.splitlines(keepends=True) if ln.endswith("/snippets/last.conf:\n"))
    text = real_dump[: real_dump.index(marker)]  # a clean cut at the file boundary
    config = load_dump(text, "cut.txt")
    err = config.errors[0]
    assert err.kind == "truncated" and "(at the end of that file); missing: " in err.message
    assert err.message.split("; missing: ")[1].startswith("/") and "last.conf" in err.message
    assert len(config.errors) == 1


def test_a_cut_word_at_the_top_level_is_a_cut(real_dump: str) -> None:
    config = load_dump(_cut_after(real_dump, "# the second pool\nupstr"), "cut.txt")
    assert config.errors[0].kind == "truncated" and "(inside a statement)" in config.errors[0].message
    config = load_dump(_cut_after(real_dump, "# the sec"), "cut.txt")
    assert "(inside a comment)" in config.errors[0].message


def test_a_whole_dump_ending_in_an_empty_file_is_whole() -> None:
    dump = (
        "# configuration file /etc/nginx/nginx.conf:\nevents {}\nhttp { include /etc/nginx/empty.conf; }\n\n"
        "# configuration file /etc/nginx/empty.conf:\n\n"
    )
    assert not load_dump(dump, "d").errors
    assert load_dump(dump[:-1], "d").errors[0].kind == "truncated"  # nginx's newline after the file is lost
