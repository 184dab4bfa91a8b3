"""What is an nginx configuration is decided as nginx decides it: it reads as statements of known directives.

Every case is given to the real ``nginx -t`` as its main file and to wsdoctor: a file nginx accepts is loaded
without an error (a compact one-line config, a NUL or a stray byte inside a comment), a file nginx reads as a
broken configuration is loaded with nginx's complaint at nginx's line, and a file that is no configuration at
all (a PNG, JSON, YAML, prose) is refused in one sentence that names where nginx stops and what to pass.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest

from tests.nginx.nginx_t import nginx_t
from wsdoctor.nginx.load import LoadError, load_dump, load_file


def _png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00\x00"))
        + chunk(b"IEND", b"")
    )


SITE = "server { listen 127.0.0.1:8; location / { return 200; } }"

ACCEPTED = {
    "one-line": f"events {{}} http {{ {SITE} }}".encode(),
    "no-spaces": b"events{}http{server{listen 127.0.0.1:8;location /{return 200;}}}",
    "nul-in-comment": b"events {}\n# a \x00 NUL inside a comment\nhttp {}\n",
    "controls-and-latin1-in-comments": b"# caf\xe9 \x01\x1b[2J\r\nevents {}\r\nhttp {}\r\n",
    "comments-first": b"# managed by hand\n\n# really\nevents {}\n",
    "third-party-first": b"lua_shared_dict cache 1m;\nevents {}\n",
}


@pytest.mark.parametrize("case", ACCEPTED, ids=list(ACCEPTED))
def test_what_nginx_accepts_is_loaded_without_error(tmp_path: Path, case: str) -> None:
    main = tmp_path / "nginx.conf"
    main.write_bytes(ACCEPTED[case])
    if case == "third-party-first":
        # nginx without the Lua module refuses the directive by name, after reading it as one: a configuration
        assert nginx_t(main).message == 'unknown directive "lua_shared_dict"'
    else:
        assert nginx_t(main).ok, nginx_t(main).stderr
    config = load_file(str(main))
    assert [d.name for d in config.root if not d.is_comment][-1] in ("http", "events")
    assert not config.errors
    dump = f"# configuration file {main}:\n".encode() + ACCEPTED[case] + b"\n"
    assert not load_dump(dump.decode("utf-8", "replace"), "dump").errors


# (content, what the refusal must say, where nginx stops: the token it names or the end of the file)
REFUSED = {
    "png": (_png(), "it is binary data, `\\x89PNG\\x0d\\x0a\\x1a\\x0a", "end"),
    "json": (b'{\n  "server": "x"\n}\n', "nginx stops at the `{` at line 1 (byte 0)", "{"),
    "yaml": (
        b"server:\n  listen: 80\n",
        "its first statement starts with `server:` at line 1 (byte 0)",
        "end",
    ),
    "prose": (b"just some words\nin a text file\n", "starts with `just` at line 1 (byte 0)", "end"),
    "unknown-statement": (b"# a note\nhello world;\n", "starts with `hello` at line 2 (byte 9)", "hello"),
    "utf16": ("events {}\n".encode("utf-16"), "it is binary data, `\\xff\\xfee\\x00v\\x00", "\xff\xfee"),
    "only-comments": (b"# nothing\n# here\n", "it holds only comments, no directive", "events"),
}


@pytest.mark.parametrize("case", REFUSED, ids=list(REFUSED))
def test_what_is_no_config_is_refused_where_nginx_stops(tmp_path: Path, case: str) -> None:
    content, says, stops = REFUSED[case]
    main = tmp_path / "given.conf"
    main.write_bytes(content)
    real = nginx_t(main)
    assert not real.ok
    if stops == "end":
        assert real.message.startswith("unexpected end of file"), real.stderr
    elif stops == "events":
        assert real.message == 'no "events" section in configuration', real.stderr
    elif stops == "{":
        assert (real.message, real.line) == ('unexpected "{"', 1), real.stderr
    else:  # nginx names the directive it does not know (up to a NUL: a C string)
        assert real.message == f'unknown directive "{stops}"'
    with pytest.raises(LoadError) as e:
        load_file(str(main))
    msg = str(e.value)
    assert msg.startswith(f"{main} is not an nginx configuration: ") and says in msg, msg
    assert msg.endswith("pass the main nginx.conf (the file `nginx -t` names) or a saved `nginx -T` output")
    assert msg.count(";") == 1 and "\n" not in msg and msg.isprintable()


# A broken configuration is still one: wsdoctor loads it and reports nginx's own complaint at nginx's line.
BROKEN = {
    "nul-in-a-name": b"events {}\nhttp {}\nfoo\x00bar;\n",
    "lone-semicolon": b"events {}\n;\nhttp {}\n",
    "lone-brace": b"events {}\n{ }\n",
    "unbalanced": b"events {}\nhttp {\n    server { listen 127.0.0.1:8; }\n",
}


@pytest.mark.parametrize("case", BROKEN, ids=list(BROKEN))
def test_a_broken_config_is_loaded_with_nginxs_complaint(tmp_path: Path, case: str) -> None:
    main = tmp_path / "nginx.conf"
    main.write_bytes(BROKEN[case])
    real = nginx_t(main)
    assert not real.ok and real.line is not None, real.stderr
    config = load_file(str(main))
    (err,) = config.errors
    if real.message.startswith("unexpected end of file"):
        # nginx counts the end of the file as the line after the last newline; wsdoctor shows the last line
        # with text, as crossplane does
        assert err.line == real.line - 1 and err.message == real.message
        return
    assert err.line == real.line
    # nginx's message is a C string: it ends at the NUL, wsdoctor's shows it escaped
    assert err.message.replace("\\x00", "\x00").startswith(real.message.split("\x00")[0].rstrip('"'))


def test_a_dump_with_a_nul_byte_in_a_comment_is_read() -> None:
    dump = "# configuration file /etc/nginx/nginx.conf:\nevents {}\n# \x00\nhttp { " + SITE + " }\n\n"
    config = load_dump(dump, "dump.txt")
    assert not config.errors and len(config.servers()) == 1


def test_binary_data_given_as_a_dump_is_refused() -> None:
    with pytest.raises(LoadError, match=r"^x\.bin is binary, not `nginx -T` output; save the text"):
        load_dump(_png().decode("latin-1"), "x.bin")
