"""Fix diffs land inside the block they name, for any layout, and real nginx accepts every patched file.

A corpus of layouts of one configuration (multi-line, tabs, two-space, all on one line, no spaces at all,
one-line server/location/upstream inside multi-line blocks, comments everywhere, braces sharing lines, CRLF,
statements split over lines, included files, no final newline) × the edits the checks make (insert at the start,
after an anchor, at the end of a location; into an upstream, a server, http; replace a statement or a block's
head; delete; comment out; the upgrade check's combination). For each: the diff applies with ``patch -p1``,
the real ``nginx -t`` accepts the result, re-parsing it shows exactly the intended statements added or removed,
in the intended block (and place), and every inserted statement sits on a line of its own, indented like its
siblings.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.nginx.nginx_t import nginx_t
from wsdoctor.nginx.load import load_file
from wsdoctor.nginx.model import Config, Directive
from wsdoctor.nginx.patch import Patch

SNIPPET = "add_header X-S s;\n"

CLASSIC = """\
events {
    worker_connections 64;
}

http {
    map $http_upgrade $connection_upgrade {
        default upgrade;
        '' close;
    }

    upstream pool {
        server 127.0.0.1:3001;
        server 127.0.0.1:3002;
    }

    server {
        listen 127.0.0.1:8080;
        server_name example.test;

        location / {
            return 200;
        }

        location ~ ^/ws/ {
            proxy_pass http://pool;
        }

        location /socket.io/ {
            proxy_pass http://pool;
            proxy_http_version 1.0;
            add_header X-A a;
            include snippet.conf;
        }
    }
}
"""

ONE_LINE = (
    "events { worker_connections 64; } http { map $http_upgrade $connection_upgrade { default upgrade; "
    "'' close; } upstream pool { server 127.0.0.1:3001; server 127.0.0.1:3002; } server { "
    "listen 127.0.0.1:8080; server_name example.test; location / { return 200; } location ~ ^/ws/ { "
    "proxy_pass http://pool; } location /socket.io/ { proxy_pass http://pool; proxy_http_version 1.0; "
    "add_header X-A a; include snippet.conf; } } }\n"
)

NO_SPACES = (
    "events{worker_connections 64;}http{map $http_upgrade $connection_upgrade{default upgrade;'' close;}"
    "upstream pool{server 127.0.0.1:3001;server 127.0.0.1:3002;}server{listen 127.0.0.1:8080;"
    "server_name example.test;location /{return 200;}location ~ ^/ws/{proxy_pass http://pool;}"
    "location /socket.io/{proxy_pass http://pool;proxy_http_version 1.0;add_header X-A a;"
    "include snippet.conf;}}}"  # no final newline
)

ONE_LINE_SERVER = """\
events { worker_connections 64; }
http {
    map $http_upgrade $connection_upgrade { default upgrade; '' close; }
    upstream pool { server 127.0.0.1:3001; server 127.0.0.1:3002; }
    server { listen 127.0.0.1:8080; server_name example.test; location / { return 200; } \
location ~ ^/ws/ { proxy_pass http://pool; } location /socket.io/ { proxy_pass http://pool; \
proxy_http_version 1.0; add_header X-A a; include snippet.conf; } }
}
"""

ONE_LINE_BLOCKS = """\
events { worker_connections 64; }
http {
    upstream pool { server 127.0.0.1:3001; server 127.0.0.1:3002; }
    map $http_upgrade $connection_upgrade {
        default upgrade;
        '' close;
    }
    server {
        listen 127.0.0.1:8080;
        server_name example.test;
        location / { return 200; }
        location ~ ^/ws/ { proxy_pass http://pool; }
        location /socket.io/ { proxy_pass http://pool; proxy_http_version 1.0; add_header X-A a; include snippet.conf; }
    }
}
"""

COMMENTS = """\
# main config
events { worker_connections 64; } # events
http { # the http block
    # maps
    map $http_upgrade $connection_upgrade {
        default upgrade; # upgrade
        '' close;
    }
    upstream pool { # pool
        server 127.0.0.1:3001; # a
        server 127.0.0.1:3002; # b
        # end of pool
    }
    server {
        listen 127.0.0.1:8080; # port
        server_name example.test;
        location / { return 200; } # root
        location ~ ^/ws/ { # regex
            proxy_pass http://pool;
        }
        location /socket.io/ { # socket.io
            # proxying
            proxy_pass http://pool; # to the pool
            proxy_http_version 1.0; # BROKEN: old
            add_header X-A a; # header
            include snippet.conf; # shared
            # end
        }
    } # server
} # http
"""

SHARED_BRACES = """\
events {
    worker_connections 64; }
http { map $http_upgrade $connection_upgrade { default upgrade;
        '' close; }
    upstream pool { server 127.0.0.1:3001;
        server 127.0.0.1:3002; }
    server { listen 127.0.0.1:8080;
        server_name example.test;
        location / { return 200; }
        location ~ ^/ws/ { proxy_pass http://pool; }
        location /socket.io/ { proxy_pass http://pool;
            proxy_http_version 1.0; add_header X-A a;
            include snippet.conf; } } }
"""

TWO_SPACES_SPLIT = """\
events {
  worker_connections 64;
}
http {

  map $http_upgrade $connection_upgrade {
    default upgrade;
    '' close;
  }
  upstream pool {
    server 127.0.0.1:3001
      weight=1;
    server 127.0.0.1:3002;
  }
  server {
    listen
      127.0.0.1:8080;
    server_name example.test;
    location / {
      return 200;
    }
    location ~ ^/ws/ {
      proxy_pass http://pool;
    }
    location /socket.io/ {
      proxy_pass
        http://pool;
      proxy_http_version
        1.0;
      add_header X-A
        a;
      include snippet.conf;

    }
  }
}
"""

TABS_MIXED = CLASSIC.replace("    ", "\t").replace(
    "\t\tlocation /socket.io/ {\n\t\t\tproxy_pass http://pool;\n\t\t\tproxy_http_version 1.0;\n"
    "\t\t\tadd_header X-A a;\n\t\t\tinclude snippet.conf;\n\t\t}",
    "\t\tlocation /socket.io/ { proxy_pass http://pool; proxy_http_version 1.0; add_header X-A a; "
    "include snippet.conf; }",
)

INCLUDED_MAIN = """\
events { worker_connections 64; }
http {
    map $http_upgrade $connection_upgrade { default upgrade; '' close; }
    include conf.d/*.conf;
    include sites/*.conf;
}
"""
INCLUDED_POOL = "upstream pool { server 127.0.0.1:3001; server 127.0.0.1:3002; }"  # no final newline
INCLUDED_SITE = (
    "server { listen 127.0.0.1:8080; server_name example.test; location / { return 200; } "
    "location ~ ^/ws/ { proxy_pass http://pool; } location /socket.io/ { proxy_pass http://pool; "
    "proxy_http_version 1.0; add_header X-A a; include snippet.conf; } }\n"
)


def _crlf(files: dict[str, str]) -> dict[str, str]:
    return {k: v.replace("\n", "\r\n") for k, v in files.items()}


LAYOUTS: dict[str, dict[str, str]] = {
    "classic": {"nginx.conf": CLASSIC},
    "tabs-with-a-one-line-location": {"nginx.conf": TABS_MIXED},
    "all-on-one-line": {"nginx.conf": ONE_LINE},
    "no-spaces-no-final-newline": {"nginx.conf": NO_SPACES},
    "one-line-server": {"nginx.conf": ONE_LINE_SERVER},
    "one-line-location-and-upstream": {"nginx.conf": ONE_LINE_BLOCKS},
    "comments-everywhere": {"nginx.conf": COMMENTS},
    "braces-sharing-lines": {"nginx.conf": SHARED_BRACES},
    "crlf-comments": _crlf({"nginx.conf": COMMENTS, "snippet.conf": SNIPPET}),
    "crlf-one-line": _crlf({"nginx.conf": ONE_LINE, "snippet.conf": SNIPPET}),
    "two-spaces-statements-over-lines": {"nginx.conf": TWO_SPACES_SPLIT},
    "included-one-line-files": {
        "nginx.conf": INCLUDED_MAIN,
        "conf.d/pool.conf": INCLUDED_POOL,
        "sites/app.conf": INCLUDED_SITE,
    },
}


# --- the edits ---------------------------------------------------------------------------------------------


@dataclass
class Targets:
    config: Config
    loc: Directive
    ws: Directive
    up: Directive
    server: Directive
    http: Directive

    @classmethod
    def of(cls, config: Config) -> Targets:
        locs = {tuple(d.args): d for d in config.walk() if d.name == "location"}
        http = config.http()
        assert http is not None
        return cls(
            config,
            locs[("/socket.io/",)],
            locs.get(("~", "^/ws/")) or locs[("^~", "/ws/")],
            config.upstreams()["pool"],
            config.servers()[0],
            http,
        )

    def own(self, block: Directive, name: str, arg0: str | None = None) -> Directive:
        return next(
            d
            for d in block.block or ()
            if d.name == name and d.file == block.file and (arg0 is None or d.args[:1] == [arg0])
        )


Key = tuple  # (the enclosing blocks' (name, args)…, name, args)


@dataclass
class Edit:
    apply: Callable[[Patch, Targets], None]
    added: Callable[[Targets], list[Key]] = lambda t: []
    removed: Callable[[Targets], list[Key]] = lambda t: []
    inserted: list[str] = field(default_factory=list)  # statements that must sit on lines of their own
    where: Callable[[Targets, Targets], None] | None = None  # a check of the place, on (before, after)


def _chain(d: Directive) -> tuple:
    return tuple((a.name, tuple(a.args)) for a in reversed(list(d.ancestors())))


def _key(block: Directive, statement: str) -> Key:
    words = statement.rstrip(";{ ").split()
    return (*_chain(block), (block.name, tuple(block.args)), words[0], tuple(words[1:]))


def _dkey(d: Directive) -> Key:
    return (*_chain(d), d.name, tuple(d.args))


def _own_names(block: Directive) -> list[str]:
    return [
        d.name + " " + " ".join(d.args)
        for d in block.block or ()
        if d.file == block.file and not d.is_comment
    ]


UPGRADE = "proxy_set_header Upgrade $http_upgrade;"
CONNECTION = "proxy_set_header Connection $connection_upgrade;"
NEW_LOCATION = ["location /new/ {", "    proxy_pass http://pool;", "}"]


def _new_location_added(t: Targets) -> list[Key]:
    loc_key = (*_chain(t.server), (t.server.name, tuple(t.server.args)))
    return [
        (*loc_key, "location", ("/new/",)),
        (*loc_key, ("location", ("/new/",)), "proxy_pass", ("http://pool",)),
    ]


def _after_pp(before: Targets, after: Targets) -> None:
    names = _own_names(after.loc)
    assert names[names.index("proxy_pass http://pool") + 1] == UPGRADE.rstrip(";"), names


EDITS: dict[str, Edit] = {
    "location-start": Edit(
        lambda p, t: p.insert_in_block(t.loc, [UPGRADE, CONNECTION]),
        added=lambda t: [_key(t.loc, UPGRADE), _key(t.loc, CONNECTION)],
        inserted=[UPGRADE, CONNECTION],
        where=lambda b, a: _check(_own_names(a.loc)[:2] == [UPGRADE.rstrip(";"), CONNECTION.rstrip(";")]),
    ),
    "location-after-anchor": Edit(
        lambda p, t: p.insert_in_block(t.loc, [UPGRADE], after=t.own(t.loc, "proxy_pass")),
        added=lambda t: [_key(t.loc, UPGRADE)],
        inserted=[UPGRADE],
        where=_after_pp,
    ),
    "location-end": Edit(
        lambda p, t: p.insert_in_block(t.loc, ["proxy_read_timeout 3600s;"], at_end=True),
        added=lambda t: [_key(t.loc, "proxy_read_timeout 3600s;")],
        inserted=["proxy_read_timeout 3600s;"],
        where=lambda b, a: _check(_own_names(a.loc)[-1] == "proxy_read_timeout 3600s"),
    ),
    "upstream": Edit(
        lambda p, t: p.insert_in_block(t.up, ["hash $remote_addr consistent;"]),
        added=lambda t: [_key(t.up, "hash $remote_addr consistent;")],
        inserted=["hash $remote_addr consistent;"],
    ),
    "server-new-location-at-end": Edit(
        lambda p, t: p.insert_in_block(t.server, NEW_LOCATION, at_end=True),
        added=_new_location_added,
        inserted=["location /new/ {"],
        where=lambda b, a: _check(_own_names(a.server)[-1] == "location /new/"),
    ),
    "server-new-location-first": Edit(
        lambda p, t: p.insert_in_block(t.server, NEW_LOCATION, before=t.own(t.server, "location")),
        added=_new_location_added,
        inserted=["location /new/ {"],
        where=lambda b, a: _check(
            [n for n in _own_names(a.server) if n.startswith("location")][0] == "location /new/"
        ),
    ),
    "http": Edit(
        lambda p, t: p.insert_in_block(
            t.http, ["set_real_ip_from 10.0.0.0/8;", "real_ip_header X-Forwarded-For;"]
        ),
        added=lambda t: [
            _key(t.http, "set_real_ip_from 10.0.0.0/8;"),
            _key(t.http, "real_ip_header X-Forwarded-For;"),
        ],
        inserted=["set_real_ip_from 10.0.0.0/8;", "real_ip_header X-Forwarded-For;"],
    ),
    "replace": Edit(
        lambda p, t: p.replace_statement(t.own(t.loc, "proxy_http_version"), "proxy_http_version 1.1;"),
        added=lambda t: [_key(t.loc, "proxy_http_version 1.1;")],
        removed=lambda t: [_key(t.loc, "proxy_http_version 1.0;")],
    ),
    "replace-block-head": Edit(
        lambda p, t: p.replace_statement(t.ws, "location ^~ /ws/ {"),
        added=lambda t: [
            (*_chain(t.ws), "location", ("^~", "/ws/")),
            (*_chain(t.ws), ("location", ("^~", "/ws/")), "proxy_pass", ("http://pool",)),
        ],
        removed=lambda t: [_dkey(t.ws), _dkey(t.own(t.ws, "proxy_pass"))],
    ),
    "delete": Edit(
        lambda p, t: p.delete_statement(t.own(t.loc, "add_header", "X-A")),
        removed=lambda t: [_key(t.loc, "add_header X-A a;")],
    ),
    "comment-out": Edit(
        lambda p, t: p.comment_out(t.own(t.loc, "include"), "Socket.IO sets its own CORS headers"),
        removed=lambda t: [_key(t.loc, "include snippet.conf;"), _key(t.loc, "add_header X-S s;")],
        inserted=["# include snippet.conf;  # wsdoctor: Socket.IO sets its own CORS headers"],
    ),
    "cors-fix": Edit(  # what the cors check does: delete the location's header, comment out the snippet
        lambda p, t: (
            p.delete_statement(t.own(t.loc, "add_header", "X-A")),
            p.comment_out(t.own(t.loc, "include"), "Socket.IO sets its own CORS headers"),
        ),
        removed=lambda t: [
            _key(t.loc, "add_header X-A a;"),
            _key(t.loc, "include snippet.conf;"),
            _key(t.loc, "add_header X-S s;"),
        ],
        inserted=["# include snippet.conf;  # wsdoctor: Socket.IO sets its own CORS headers"],
    ),
    "delete-and-insert-at-end": Edit(
        lambda p, t: (
            p.delete_statement(t.own(t.loc, "add_header", "X-A")),
            p.insert_in_block(t.loc, ["proxy_read_timeout 3600s;"], at_end=True),
        ),
        added=lambda t: [_key(t.loc, "proxy_read_timeout 3600s;")],
        removed=lambda t: [_key(t.loc, "add_header X-A a;")],
        inserted=["proxy_read_timeout 3600s;"],
    ),
    "timeout-fix": Edit(  # what the timeout check does: two statements after one anchor, one call each
        lambda p, t: (
            p.insert_in_block(t.loc, ["proxy_read_timeout 3600s;"], after=t.own(t.loc, "proxy_pass")),
            p.insert_in_block(t.loc, ["proxy_send_timeout 3600s;"], after=t.own(t.loc, "proxy_pass")),
        ),
        added=lambda t: [_key(t.loc, "proxy_read_timeout 3600s;"), _key(t.loc, "proxy_send_timeout 3600s;")],
        inserted=["proxy_read_timeout 3600s;", "proxy_send_timeout 3600s;"],
        where=lambda b, a: _check(
            _own_names(a.loc)[1:3] == ["proxy_read_timeout 3600s", "proxy_send_timeout 3600s"]
            or _own_names(a.loc)[0] != "proxy_pass http://pool"
        ),
    ),
    "upgrade-fix": Edit(  # what the upgrade check does: one replacement, two insertions after the anchor
        lambda p, t: (
            p.replace_statement(t.own(t.loc, "proxy_http_version"), "proxy_http_version 1.1;"),
            p.insert_in_block(t.loc, [UPGRADE, CONNECTION], after=t.own(t.loc, "proxy_pass")),
        ),
        added=lambda t: [
            _key(t.loc, "proxy_http_version 1.1;"),
            _key(t.loc, UPGRADE),
            _key(t.loc, CONNECTION),
        ],
        removed=lambda t: [_key(t.loc, "proxy_http_version 1.0;")],
        inserted=[UPGRADE, CONNECTION],
        where=_after_pp,
    ),
}


def _check(ok: bool) -> None:
    assert ok


# --- the test ----------------------------------------------------------------------------------------------


def _tree(base: Path, files: dict[str, str]) -> Path:
    conf = base / "etc" / "nginx"
    for name, text in {"snippet.conf": SNIPPET, **files}.items():
        (conf / name).parent.mkdir(parents=True, exist_ok=True)
        (conf / name).write_bytes(text.encode())
    return base


def _load(base: Path) -> Config:
    config = load_file("/etc/nginx/nginx.conf", root=str(base))
    assert not config.errors, config.errors
    return config


def _patch(base: Path, diff: str) -> None:
    proc = subprocess.run(
        ["patch", "-p1", "--batch", "--forward", "-d", str(base)],
        input=diff.encode(),
        capture_output=True,
        timeout=20,
    )
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode() + diff


@pytest.fixture(scope="module")
def originals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each layout written once, and held to real nginx as it is."""
    out = {}
    for name, files in LAYOUTS.items():
        base = _tree(tmp_path_factory.mktemp(name), files)
        verdict = nginx_t(base / "etc/nginx/nginx.conf")
        assert verdict.ok, f"{name}: {verdict.stderr}"
        out[name] = base
    return out


@pytest.mark.parametrize("edit", EDITS, ids=list(EDITS))
@pytest.mark.parametrize("layout", LAYOUTS, ids=list(LAYOUTS))
def test_fix_lands_in_the_intended_block_and_nginx_accepts_it(
    originals: dict[str, Path], tmp_path: Path, layout: str, edit: str
) -> None:
    base = tmp_path / "tree"
    shutil.copytree(originals[layout], base, ignore=shutil.ignore_patterns(".nginx-t"))
    before = _load(base)
    t0 = Targets.of(before)
    e = EDITS[edit]
    p = Patch(before)
    e.apply(p, t0)
    diff = p.diff()
    assert diff.startswith("--- a/etc/nginx/"), diff
    _patch(base, diff)
    for f, text in p.apply().items():
        assert (base / f.lstrip("/")).read_bytes() == text.encode(), f  # the diff is exactly the edit

    verdict = nginx_t(base / "etc/nginx/nginx.conf")
    assert verdict.ok, f"{verdict.stderr}\n{diff}"

    after = _load(base)
    t1 = Targets.of(after)
    old = Counter(_dkey(d) for d in before.walk() if not d.is_comment)
    new = Counter(_dkey(d) for d in after.walk() if not d.is_comment)
    assert new - old == Counter(e.added(t0)), diff
    assert old - new == Counter(e.removed(t0)), diff
    if e.where is not None:
        e.where(t0, t1)

    # each inserted statement on a line of its own, indented like the other statements of its block that
    # start a line (and deeper than the block's own line)
    crlf = "\r\n" in "".join(LAYOUTS[layout].values())
    for f, text in p.apply().items():
        assert ("\r\n" in text) == crlf or "\n" not in text, f  # line endings kept
    for statement in e.inserted:
        d = next(
            d
            for d in after.walk()
            if (
                d.text() == statement.split("  #")[0]
                if not d.is_comment
                else d.text().startswith(statement[:9])
            )
        )
        line = after.lines(d.file)[d.line - 1]
        assert line.strip() == statement, (line, diff)
        indent = line[: len(line) - len(line.lstrip())]
        owner = d.parent
        assert owner is not None
        own_line = after.lines(owner.file)[owner.line - 1] if owner.file == d.file else None
        if own_line is not None and own_line.lstrip().startswith(owner.name):
            assert len(indent) > len(own_line) - len(own_line.lstrip()), (line, own_line, diff)
        for sib in owner.block or ():
            sl = after.lines(sib.file)[sib.line - 1]
            if sib.file == d.file and not sib.is_comment and sl.lstrip().startswith(sib.name + " "):
                assert sl[: len(sl) - len(sl.lstrip())] == indent, (sl, line, diff)
    new_locations = [d for d in after.walk() if d.name == "location" and d.args == ["/new/"]]
    for loc in new_locations:  # the inner line of a block inserted whole steps in like the file does
        outer = after.lines(loc.file)[loc.line - 1]
        inner = after.lines(loc.file)[loc.block[0].line - 1]
        o_ind, i_ind = outer[: len(outer) - len(outer.lstrip())], inner[: len(inner) - len(inner.lstrip())]
        step = i_ind[len(o_ind) :]
        assert i_ind.startswith(o_ind) and step in ("\t", "  ", "    "), (outer, inner)
        assert step == ("\t" if "tabs" in layout else "  " if "two-spaces" in layout else "    ")
    for ln in diff.splitlines():
        if ln.startswith("+") and not ln.startswith("+++"):
            assert ln == ln.rstrip() or ln.endswith("\r") and ln[:-1] == ln[:-1].rstrip(), repr(ln)


def test_a_big_file_is_read_and_diffed_around_the_edits_only(tmp_path: Path) -> None:
    filler = "".join(f"        location /f{i}/ {{ return 200; }}\n" for i in range(2000))
    big = CLASSIC.replace("        location / {\n", filler + "        location / {\n").replace(
        "    server {\n", "    server {\n" + filler.replace("/f", "/g"), 1
    )
    base = _tree(tmp_path, {"nginx.conf": big})
    config = _load(base)
    t = Targets.of(config)
    p = Patch(config)
    EDITS["upgrade-fix"].apply(p, t)
    EDITS["upstream"].apply(p, t)
    p.insert_in_block(t.server, NEW_LOCATION, before=t.own(t.server, "location"))
    diff = p.diff()
    assert diff.count("\n@@ ") == 2 and len(diff.splitlines()) < 50  # near the top, near the end
    assert p._edits["/etc/nginx/nginx.conf"]._tree is None  # no statement tree of the whole file was built
    _patch(base, diff)
    assert (base / "etc/nginx/nginx.conf").read_text() == p.new_text("/etc/nginx/nginx.conf")
    assert nginx_t(base / "etc/nginx/nginx.conf").ok
