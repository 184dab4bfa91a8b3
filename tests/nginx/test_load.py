"""Loading: --nginx-conf (includes as nginx follows them), --root trees, nginx -T dumps, and bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.nginx.conftest import SEED_DUMP, SEED_TREE
from wsdoctor.nginx.load import LoadError, load_dump, load_file, split_dump
from wsdoctor.nginx.model import Config


def _flat(c: Config) -> list[tuple]:
    return [
        (d.name, tuple(d.args), d.file, d.line, d.parent.where if d.parent else None, tuple(d.includes or ()))
        for d in c.walk()
    ]


def _write(base: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        p = base / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return base / next(iter(files))


# --- the seed: tree and dump -------------------------------------------------------------------------------


def test_seed_tree_and_dump_give_identical_directives(seed_tree: Config, seed_dump: Config) -> None:
    assert _flat(seed_tree) == _flat(seed_dump)
    assert seed_tree.files == seed_dump.files
    assert not seed_tree.errors and not seed_dump.errors
    assert seed_tree.main_file == seed_dump.main_file == "/etc/nginx/nginx.conf"
    assert sorted(seed_tree.files) == [
        "/etc/nginx/conf.d/upstream.conf",
        "/etc/nginx/cors-01.conf",
        "/etc/nginx/nginx.conf",
        "/etc/nginx/sites-enabled/api.x-or.cloud",
    ]


def test_seed_real_paths_and_lines(seed_tree: Config) -> None:
    (server,) = seed_tree.servers()
    assert server.where == "/etc/nginx/sites-enabled/api.x-or.cloud:1"
    ws, rest = server.children("location")
    assert (ws.args, ws.where) == (["/dev/aiwm/chat/"], "/etc/nginx/sites-enabled/api.x-or.cloud:12")
    assert ws.child("proxy_pass").where == "/etc/nginx/sites-enabled/api.x-or.cloud:18"
    assert rest.where == "/etc/nginx/sites-enabled/api.x-or.cloud:47"
    # the include stays in place and the included directives follow it, parented to the location
    inc = rest.child("include")
    assert inc.includes == ["/etc/nginx/cors-01.conf"]
    cors = [d for d in rest.block if d.file == "/etc/nginx/cors-01.conf" and d.name == "add_header"]
    assert [d.line for d in cors] == [2, 3, 4, 5] and all(d.parent is rest for d in cors)
    assert list(seed_tree.upstreams()) == ["api-aiwm-ws", "api-aiwm"]
    assert seed_tree.upstreams()["api-aiwm-ws"].where == "/etc/nginx/conf.d/upstream.conf:2"
    assert seed_tree.source == f"/etc/nginx/nginx.conf (under {SEED_TREE})"


def test_excerpt_numbers_lines(seed_tree: Config) -> None:
    text = seed_tree.excerpt("/etc/nginx/sites-enabled/api.x-or.cloud", 18, before=1, after=1)
    assert text.splitlines() == [
        "17 |         # The trailing slash in both location and proxy_pass is REQUIRED",
        "18 |         proxy_pass http://api-aiwm-ws/chat/;",
        "19 | ",
    ]
    assert seed_tree.excerpt("/nope", 3) == ""


def test_root_accepts_the_real_path_too() -> None:
    c = load_file("/etc/nginx/nginx.conf", root=str(SEED_TREE))
    assert c.main_file == "/etc/nginx/nginx.conf" and len(c.servers()) == 1


def test_dump_with_nginx_stderr_lines_and_crlf() -> None:
    text = (
        "nginx: the configuration file /etc/nginx/nginx.conf syntax is ok\n"
        "nginx: configuration file /etc/nginx/nginx.conf test is successful\n" + SEED_DUMP.read_text()
    )
    c = load_dump(text.replace("\n", "\r\n"), "dump.txt")
    assert not c.errors
    assert c.servers()[0].children("location")[0].where == "/etc/nginx/sites-enabled/api.x-or.cloud:12"
    assert c.lines("/etc/nginx/sites-enabled/api.x-or.cloud")[11] == "    location /dev/aiwm/chat/ {"


def test_split_dump_strips_the_newline_nginx_adds() -> None:
    files, order = split_dump("# configuration file /a.conf:\nx;\n\n# configuration file /b.conf:\ny;")
    assert order == ["/a.conf", "/b.conf"] and files == {"/a.conf": "x;\n", "/b.conf": "y;"}


def test_dump_globs_resolve_against_dumped_names() -> None:
    dump = (
        "# configuration file /etc/nginx/nginx.conf:\n"
        "http {\n    include conf.d/*.conf;\n    include /etc/nginx/none/*.conf;\n}\n\n"
        "# configuration file /etc/nginx/conf.d/b.conf:\nserver { server_name b; }\n\n"
        "# configuration file /etc/nginx/conf.d/a.conf:\nserver { server_name a; }\n\n"
        "# configuration file /etc/nginx/conf.d/sub/c.conf:\nserver { server_name c; }\n\n"
    )
    c = load_dump(dump, "d")
    names = [s.child("server_name").args[0] for s in c.servers()]
    assert names == ["a", "b"]  # sorted, `*` stays inside one directory, a glob matching nothing is fine
    assert not c.errors


def test_dump_missing_plain_include_is_an_error() -> None:
    main = "# configuration file /etc/nginx/nginx.conf:\nhttp {\n  include /etc/nginx/x.conf;\n"
    c = load_dump(
        main + "  include /etc/nginx/y.conf;\n}\n\n# configuration file /etc/nginx/y.conf:\n\n", "d"
    )
    (err,) = c.errors
    assert (err.file, err.line) == ("/etc/nginx/nginx.conf", 2)
    assert err.message == '"/etc/nginx/x.conf" is not in the dump (nginx -T prints every file it read)'
    # read after the dump's last file, the missing file is where the dump was cut short
    (err,) = load_dump(main + "}\n\n", "d").errors
    assert err.kind == "truncated" and "(at the end of that file); missing: /etc/nginx/x.conf;" in err.message


# --- --nginx-conf on disk ------------------------------------------------------------------------------------


def test_relative_includes_follow_the_main_files_directory(tmp_path: Path) -> None:
    main = _write(
        tmp_path,
        {
            "nginx.conf": "http {\n    include sites/*.conf;\n}\n",
            "sites/a.conf": "server {\n    include snippets/s.conf;\n}\n",
            "snippets/s.conf": "listen 8080;\n",
            "sites/snippets/s.conf": "listen 9999;\n",  # NOT this one: nginx resolves against the conf prefix
            "sites/.hidden.conf": "server { listen 1; }\n",
        },
    )
    c = load_file(str(main))
    assert not c.errors
    (server,) = c.servers()
    listen = server.child("listen")
    assert (
        listen.args == ["8080"]
        and listen.file == str(tmp_path / "snippets/s.conf")
        and listen.parent is server
    )


def test_missing_include_cycle_and_broken_file_are_errors_the_rest_is_analysed(tmp_path: Path) -> None:
    main = _write(
        tmp_path,
        {
            "nginx.conf": "http {\n    include a.conf;\n    include missing.conf;\n    include broken.conf;\n"
            "    include none-*.conf;\n    server { listen 80; }\n}\n",
            "a.conf": "include b.conf;\n",
            "b.conf": "include a.conf;\nmap $x $y { default 1; }\n",
            "broken.conf": "server {\n    listen 81;\n",
        },
    )
    c = load_file(str(main))
    msgs = {(e.file.rsplit("/", 1)[-1], e.line, e.message.split(":")[0]) for e in c.errors}
    assert ("b.conf", 1, "include cycle") in msgs
    assert ("nginx.conf", 3, f'open() "{tmp_path}/missing.conf" failed (2') in msgs
    assert ("broken.conf", 2, 'unexpected end of file, expecting "}"') in msgs
    assert len(c.errors) == 3
    assert [s.child("listen").args for s in c.servers()] == [["80"]]
    assert "$y" in c.maps()


def test_crossplane_handles_lua_blocks(tmp_path: Path) -> None:
    main = _write(
        tmp_path,
        {"nginx.conf": "http {\n  server {\n    location / {\n      content_by_lua_block {\n"
         "        ngx.say('}')\n      }\n    }\n  }\n}\n"},
    )  # fmt: skip
    c = load_file(str(main))
    assert not c.errors
    (loc,) = c.servers()[0].children("location")
    assert loc.block[0].name == "content_by_lua_block" and loc.block[0].line == 4


def test_unterminated_directive_reports_nginx_style(tmp_path: Path) -> None:
    main = _write(tmp_path, {"nginx.conf": "http {\n    server { listen 80 }\n}\n"})
    c = load_file(str(main))
    assert [(e.line, e.message.split(" (")[0]) for e in c.errors] == [(2, 'unexpected "}"')]


@pytest.mark.parametrize(
    ("content", "expect"),
    [
        (b"", "is empty"),
        (b"   \n\n", "is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "is not an nginx configuration: it is binary data"),
        (b'{"not": "nginx"}\n', "is not an nginx configuration: nginx stops at the `{`"),
        (b"just some words\nin a text file\n", "is not an nginx configuration: its first statement"),
    ],
)
def test_not_an_nginx_config_is_one_clear_sentence(tmp_path: Path, content: bytes, expect: str) -> None:
    p = tmp_path / "x.conf"
    p.write_bytes(content)
    with pytest.raises(LoadError) as e:
        load_file(str(p))
    msg = str(e.value)
    assert expect in msg and "\n" not in msg and msg.count(";") <= 1


def test_missing_file_directory_and_bad_root(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="not found"):
        load_file(str(tmp_path / "nope.conf"))
    with pytest.raises(LoadError, match="is a directory"):
        load_file(str(tmp_path))
    with pytest.raises(LoadError, match="--root"):
        load_file("/etc/nginx/nginx.conf", root=str(tmp_path / "nothing"))


def test_bad_dumps() -> None:
    with pytest.raises(LoadError, match="not `nginx -T` output"):
        load_dump("hello\n", "x.txt")
    with pytest.raises(LoadError, match=r"`nginx -T` failed \(nginx: \[emerg\] unknown directive"):
        load_dump('nginx: [emerg] unknown directive "foo" in /etc/nginx/nginx.conf:3\n', "x.txt")
    with pytest.raises(LoadError, match="x.txt is binary, not `nginx -T` output"):
        load_dump("\x00\x01", "x.txt")


def test_a_site_file_alone_is_analysed_as_http(tmp_path: Path) -> None:
    main = _write(
        tmp_path, {"site": "server {\n  listen 443 ssl;\n  location / { proxy_pass http://up; }\n}\n"}
    )
    c = load_file(str(main))
    assert c.http() is None and len(c.servers()) == 1


def test_a_copied_tree_without_root_does_not_read_this_machines_files(tmp_path) -> None:
    """…/copy/etc/nginx/nginx.conf including /etc/nginx/conf.d/*.conf must not pull in the local /etc/nginx."""
    conf = tmp_path / "copy" / "etc" / "nginx"
    (conf / "conf.d").mkdir(parents=True)
    (conf / "conf.d" / "up.conf").write_text("upstream u { server 10.0.0.1:80; }\n")
    (conf / "nginx.conf").write_text("events {}\nhttp {\n    include /etc/nginx/conf.d/*.conf;\n}\n")
    cfg = load_file(str(conf / "nginx.conf"))
    assert not cfg.upstreams()  # nothing read from this machine's /etc/nginx
    (err,) = [e for e in cfg.errors if "copied" in e.message]
    assert err.line == 3 and f"--root {tmp_path / 'copy'}" in err.message
    with_root = load_file("/etc/nginx/nginx.conf", root=str(tmp_path / "copy"))
    assert set(with_root.upstreams()) == {"u"} and not with_root.errors
