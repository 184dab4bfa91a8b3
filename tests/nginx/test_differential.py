"""Differential test: wsdoctor's routing prediction must equal what a real nginx does.

A real nginx (``/usr/sbin/nginx``, private prefix, loopback) is loaded with configurations in which every
location tells who it is (``add_header X-Loc …``) and proxies to an echo backend that reports the URI and
headers it received (or answers ``return 200 "<id>"``). For a hand-written corpus (docs/nginx.md's proxy_pass
table, the automatic 301, ``=``, ``^~``, regex order, nesting, ``%XX``, ``..``, ``//``, header inheritance,
rewrites, server selection) and for hypothesis-generated location sets × request paths, the engine's
chosen location, 301, upstream URI and forwarded Host/Upgrade/Connection must be exactly nginx's.
"""

from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.nginx.realnginx import RealNginx, Response
from wsdoctor.nginx.effective import forwarded_headers
from wsdoctor.nginx.load import load_file
from wsdoctor.nginx.model import Config, Directive
from wsdoctor.nginx.routing import Route, route, select_server

WS = {"Upgrade": "websocket", "Connection": "Upgrade"}


def _ident(block: Directive | None) -> str:
    """The X-Loc id a location (or server) announces; "none" for no location."""
    if block is None:
        return "none"
    for d in block.children("add_header"):
        if d.args and d.args[0] == "X-Loc":
            return d.args[1]
    return "?"


def compare(
    ng: RealNginx,
    config: Config,
    host: str,
    target: str,
    headers: dict[str, str] | None = None,
    port: int | None = None,
) -> list[str]:
    """Every difference between the prediction and nginx's answer for one request ([] when they agree)."""
    port = port or ng.port
    sent = {"Host": host, **(headers or {})}
    rt: Route = route(config, host, port, target, scheme="http", headers=sent, addr="127.0.0.1")
    resp: Response = ng.request(target, host, headers, port=port)
    diffs: list[str] = []

    def differ(what: str, predicted: object, actual: object) -> None:
        if predicted != actual:
            diffs.append(f"{what}: predicted {predicted!r}, nginx {actual!r}")

    if rt.return_status == 400 and rt.location is None and rt.server is not None and not rt.normalized:
        differ("status", 400, resp.status)
        return diffs
    differ("location", _ident(rt.location), resp.header("X-Loc"))
    if rt.redirect is not None:
        differ("status", 301, resp.status)
        differ("301 Location", rt.redirect, resp.header("Location"))
        return diffs
    if rt.return_status is not None:
        differ("status", rt.return_status, resp.status)
        if rt.return_location is not None:
            differ("return Location", rt.return_location, resp.header("Location"))
        elif rt.return_text is not None:
            differ("return body", rt.return_text, resp.body.decode())
        return diffs
    if rt.proxy_pass is None:  # static files from an empty root: 404, or 403 for the directory itself
        if resp.status not in (403, 404):
            diffs.append(f"status: predicted a static-file answer (403/404), nginx {resp.status}")
        return diffs
    echo = resp.echo()
    if echo is None:
        diffs.append(f"expected the echo backend to answer, nginx said {resp.status} {resp.body[:200]!r}")
        return diffs
    differ("upstream URI", rt.upstream_uri, echo["target"])
    for name, value in forwarded_headers(rt, config, "1.22.1").items():
        differ(f"upstream {name}", value, resp.echo_header(name))
    return diffs


def _report(config_text: str, failures: list[tuple[str, str, dict | None, list[str]]]) -> str:
    out = ["wsdoctor disagrees with real nginx:", textwrap.indent(config_text, "    ")]
    for host, target, headers, diffs in failures:
        out.append(f"  GET {target} (Host {host}{', ' + str(headers) if headers else ''})")
        out += [f"      {d}" for d in diffs]
    return "\n".join(out)


# --- the hand-written corpus ---------------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    body: str  # the server's inside, {E} = echo port
    requests: list[tuple[str, dict[str, str] | None]] = field(default_factory=list)


CORPUS = [
    # docs/nginx.md#the-uri-sent-upstream, row by row.
    Case(
        "k1",
        "location /dev/aiwm/chat/ { add_header X-Loc K1 always; proxy_pass http://echo_up/chat/; }",
        [
            ("/dev/aiwm/chat/socket.io/?EIO=4&transport=websocket", WS),
            ("/dev/aiwm/chat", None),
            ("/dev/aiwm/chat?EIO=4", None),
        ],
    ),
    Case(
        "k2",
        "location /dev/aiwm/chat { add_header X-Loc K2 always; proxy_pass http://echo_up/chat; }",
        [
            ("/dev/aiwm/chat/socket.io/?EIO=4&transport=websocket", None),
            ("/dev/aiwm/chatroom", None),
            ("/dev/aiwm/chat", None),
        ],
    ),
    Case(
        "k3",
        "location /dev/aiwm/chat/ { add_header X-Loc K3 always; proxy_pass http://echo_up/chat; }",
        [("/dev/aiwm/chat/socket.io/?EIO=4&transport=websocket", None)],
    ),
    Case(
        "k4",
        "location /dev/aiwm/chat { add_header X-Loc K4 always; proxy_pass http://echo_up/chat/; }",
        [("/dev/aiwm/chat/socket.io/?EIO=4&transport=websocket", None)],
    ),
    Case(
        "k5",
        "location /dev/aiwm/chat/ { add_header X-Loc K5 always; proxy_pass http://echo_up/; }",
        [("/dev/aiwm/chat/socket.io/?EIO=4&transport=websocket", None)],
    ),
    Case(
        "k6",
        "location /dev/aiwm/chat/ { add_header X-Loc K6 always; proxy_pass http://echo_up; }",
        [
            ("/dev/aiwm/chat/socket.io/?EIO=4&transport=websocket", None),
            ("/dev/aiwm/chat/a/../b//c?x=%2F", None),
        ],
    ),
    # The runbook's server: prefix order does not matter; the runbook client's request reaches nothing.
    Case(
        "seed",
        """
        location /dev/aiwm/ { add_header X-Loc API always; proxy_pass http://echo_up/; proxy_set_header Host $host; }
        location /dev/aiwm/chat/ { add_header X-Loc WS always; proxy_pass http://echo_up/chat/;
            proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection "upgrade";
            proxy_set_header Host $host; }
        """,
        [
            ("/socket.io/?EIO=4&transport=websocket", WS),
            ("/dev/aiwm/chat/socket.io/?EIO=4&transport=websocket", WS),
            ("/dev/aiwm/chat/socket.io/?EIO=4&transport=polling", None),
            ("/dev/aiwm/chat", WS),
            ("/dev/aiwm/v2/users", None),
        ],
    ),
    # =, ^~ and regex precedence, regex file order, case-insensitive regex.
    Case(
        "prec",
        """
        location = /exact { add_header X-Loc EQ always; return 200 "EQ"; }
        location /exact { add_header X-Loc PX always; return 200 "PX"; }
        location ^~ /static/ { add_header X-Loc NOREGEX always; return 200 "NOREGEX"; }
        location /img/ { add_header X-Loc IMGPREFIX always; return 200 "IMGPREFIX"; }
        location ~ \\.png$ { add_header X-Loc PNG always; return 200 "PNG"; }
        location ~* \\.(PNG|jpg)$ { add_header X-Loc PNGI always; return 200 "PNGI"; }
        location ~ ^/img/ { add_header X-Loc IMGRE always; return 200 "IMGRE"; }
        location / { add_header X-Loc ROOT always; return 200 "ROOT"; }
        """,
        [
            ("/exact", None),
            ("/exact/", None),
            ("/exactly", None),
            ("/static/a.png", None),
            ("/img/a.png", None),
            ("/img/a.PNG", None),
            ("/img/a.gif", None),
            ("/x.JPG", None),
            ("/", None),
            ("/x/y", None),
        ],
    ),
    # Nested locations, and a nested location that does not inherit proxy_pass.
    Case(
        "nest",
        """
        location /api/ { add_header X-Loc API always; proxy_pass http://echo_up/v1/;
            location /api/admin/ { add_header X-Loc ADMIN always; return 200 "ADMIN"; }
            location /api/ws/ { add_header X-Loc WSN always; proxy_pass http://echo_up/; }
            location ~ \\.json$ { add_header X-Loc JSON always; return 200 "JSON"; }
        }
        location ~ /admin/ { add_header X-Loc ADMINRE always; return 200 "ADMINRE"; }
        """,
        [
            ("/api/x", None),
            ("/api/admin/x", None),
            ("/api/admin/x.json", None),
            ("/api/ws/socket.io/?EIO=4", None),
            ("/api/ws", None),
            ("/api/y.json", None),
            ("/other/admin/", None),
        ],
    ),
    # try_files (no file exists under the empty root): named locations, =code, internal redirects.
    Case(
        "tf",
        """
        try_files $uri /srv/;
        location /node/ { add_header X-Loc NODEL always; try_files $uri @node; }
        location @node { add_header X-Loc NODE always; proxy_pass http://echo_up; }
        location /gone/ { add_header X-Loc GONE always; try_files $uri =404; proxy_pass http://echo_up; }
        location /idx/ { add_header X-Loc IDX always; try_files $uri $uri/ /fallback/x?from=$uri; }
        location /noargs/ { add_header X-Loc NOARGS always; try_files $uri /fallback/y; }
        location /fallback/ { add_header X-Loc FB always; proxy_pass http://echo_up/fb/; }
        location /plain/ { add_header X-Loc PLAIN always; proxy_pass http://echo_up; }
        """,
        [
            ("/node/socket.io/?EIO=4", WS),
            ("/node/a//b?x=1", None),
            ("/gone/x", None),
            ("/idx/a?q=1", None),
            ("/noargs/a?q=1", None),
            ("/plain/a?q=1", None),
        ],
    ),
    # A nested ^~ only stops the regexes of its own level: the outer level's regexes still run.
    Case(
        "deep",
        """
        location /a/ { add_header X-Loc A always; return 200 "A";
            location ^~ /a/b/ { add_header X-Loc AB always; return 200 "AB"; }
            location /a/c/ { add_header X-Loc AC always; return 200 "AC";
                location ~ \\.y$ { add_header X-Loc ACY always; return 200 "ACY"; } }
        }
        location ^~ /n/ { add_header X-Loc N always; return 200 "N";
            location /n/m/ { add_header X-Loc NM always; return 200 "NM"; } }
        location ~ \\.x$ { add_header X-Loc RX always; return 200 "RX"; }
        """,
        [
            ("/a/b/c.x", None),
            ("/a/c/d.x", None),
            ("/a/c/d.y", None),
            ("/a/d.x", None),
            ("/n/m/z.x", None),
            ("/n/z.x", None),
        ],
    ),
    # Normalisation: %XX, .., //, . ; and the 400 for .. above the root.
    Case(
        "norm",
        """
        location /a/ { add_header X-Loc A always; proxy_pass http://echo_up/z/; }
        location /b/ { add_header X-Loc B always; proxy_pass http://echo_up; }
        location /c { add_header X-Loc C always; return 200 "C"; }
        """,
        [
            ("/%61/x", None),
            ("/a/%2e%2e/b/x", None),
            ("//a///x//y", None),
            ("/b/./x/../y?q=%20", None),
            ("/a/x%2Fy", None),
            ("/a/%7Ex", None),
            ("/../a/", None),
            ("/a/../../x", None),
            ("/%63", None),
            ("/b//x", None),
            ("/a", None),
            ("/a?x=1", None),
        ],
    ),
    # Header inheritance: all-or-nothing proxy_set_header, Connection close by default.
    Case(
        "hdr",
        """
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        location /inherit/ { add_header X-Loc INH always; proxy_pass http://echo_up/; }
        location /lost/ { add_header X-Loc LOST always; proxy_pass http://127.0.0.1:{E}/;
            proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection $connection_upgrade; }
        location /empty/ { add_header X-Loc EMPTY always; proxy_pass http://echo_up/;
            proxy_set_header Connection ""; proxy_set_header Upgrade $http_upgrade; }
        location /hh/ { add_header X-Loc HH always; proxy_pass http://echo_up/; proxy_set_header Host $http_host; }
        """,
        [("/inherit/x", WS), ("/lost/x", WS), ("/lost/x", None), ("/empty/x", WS), ("/hh/x", None)],
    ),
    # The rewrite module.
    Case(
        "rw",
        """
        rewrite ^/old/(.*)$ /new/$1 last;
        location /new/ { add_header X-Loc NEW always; proxy_pass http://echo_up/n/; }
        location /brk/ { add_header X-Loc BRK always; rewrite ^/brk/(.*)$ /changed/$1 break; proxy_pass http://echo_up/ignored/; }
        location /lst/ { add_header X-Loc LST always; rewrite ^/lst/(.*)$ /new/$1?y=2 last; return 200 "LST"; }
        location /ret/ { add_header X-Loc RET always; return 301 /elsewhere/; }
        location /txt/ { add_header X-Loc TXT always; return 200 "text $uri"; }
        location /redir/ { add_header X-Loc REDIR always; rewrite ^/redir/(.*)$ /new/$1 permanent; }
        location /cond/ { add_header X-Loc COND always;
            if ($http_upgrade = websocket) { return 200 "upgrade"; }
            proxy_pass http://echo_up; }
        location /var/ { add_header X-Loc VAR always; proxy_pass http://echo_up$request_uri; }
        location ~ ^/re/(.*)$ { add_header X-Loc RE always; proxy_pass http://127.0.0.1:{E}/fixed/$1; }
        location /cap/ { add_header X-Loc CAP always; rewrite ^/cap/(.*)$ /new/$1?c=$1 last; }
        location /drop/ { add_header X-Loc DROP always; rewrite ^/drop/(.*)$ /new/$1? last; }
        location /plus/ { add_header X-Loc PLUS always; rewrite ^/plus/(.*)$ /new/p?c=$1 last; }
        """,
        [
            ("/old/x?a=1", None),
            ("/brk/x%20y?a=1", None),
            ("/lst/x?a=1", None),
            ("/ret/x", None),
            ("/txt/a/../b", None),
            ("/redir/x?a=1", None),
            ("/cond/x", WS),
            ("/cond/x", None),
            ("/var/a//b?c", None),
            ("/re/p/q?z=1", None),
            ("/cap/a%20b&c?z=1", None),
            ("/cap/ab", None),
            ("/drop/x?z=1", None),
            ("/plus/a+b%2B?z", None),
            ("/plus/a+b", None),
        ],
    ),
]


def _corpus_config(port: int, echo: int) -> str:
    servers = []
    for case in CORPUS:
        body = textwrap.dedent(case.body).replace("{E}", str(echo))
        servers.append(
            f"server {{\n    listen 127.0.0.1:{port};\n    server_name {case.name}.test;\n"
            f"    add_header X-Loc none always;\n{textwrap.indent(body.strip(), '    ')}\n}}"
        )
    return "\n".join(servers)


def test_hand_corpus_matches_real_nginx(real_nginx: RealNginx) -> None:
    text = _corpus_config(real_nginx.port, real_nginx.echo_port)
    real_nginx.load(text)
    config = load_file(str(real_nginx.conf))
    assert not config.errors
    failures = []
    for case in CORPUS:
        for target, headers in case.requests:
            diffs = compare(real_nginx, config, f"{case.name}.test", target, headers)
            if diffs:
                failures.append((f"{case.name}.test", target, headers, diffs))
    assert not failures, _report(text, failures)


SERVERS = """
server { listen 127.0.0.1:{P}; server_name first.test; return 200 "FIRST"; }
server { listen 127.0.0.1:{P}; server_name *.wild.test; return 200 "HEADWILD"; }
server { listen 127.0.0.1:{P}; server_name *.deep.wild.test; return 200 "DEEPWILD"; }
server { listen 127.0.0.1:{P}; server_name www.tail.*; return 200 "TAILWILD"; }
server { listen 127.0.0.1:{P}; server_name .dot.test; return 200 "DOTWILD"; }
server { listen 127.0.0.1:{P}; server_name ~^api(\\d+)\\.re\\.test$; return 200 "REGEX1"; }
server { listen 127.0.0.1:{P}; server_name ~^api; return 200 "REGEX2"; }
server { listen 127.0.0.1:{P}; server_name exact.wild.test; return 200 "EXACT"; }
server { listen 127.0.0.1:{Q}; server_name first.test; return 200 "Q-FIRST"; }
server { listen 127.0.0.1:{Q} default_server; server_name other.test; return 200 "Q-DEFAULT"; }
"""


def test_server_selection_matches_real_nginx(real_nginx: RealNginx) -> None:
    p, q = real_nginx.ports
    text = SERVERS.replace("{P}", str(p)).replace("{Q}", str(q))
    real_nginx.load(text)
    config = load_file(str(real_nginx.conf))
    hosts = [
        ("first.test", p),
        ("FIRST.test.", p),
        ("unknown.test", p),
        ("a.wild.test", p),
        ("a.b.wild.test", p),
        ("x.deep.wild.test", p),
        ("exact.wild.test", p),
        ("wild.test", p),
        ("www.tail.org", p),
        ("www.tail.co.uk", p),
        ("dot.test", p),
        ("a.dot.test", p),
        ("api7.re.test", p),
        ("api.re.test", p),
        ("apix.other", p),
        ("first.test", q),
        ("nobody.test", q),
        ("other.test:81", q),
    ]
    failures = []
    for host, port in hosts:
        server, why = select_server(config, host, port, addr="127.0.0.1")
        predicted = server.child("return").args[1] if server is not None else None
        resp = real_nginx.request("/", host, port=port)
        if predicted != resp.body.decode():
            failures.append(
                (host, "/", None, [f"server: predicted {predicted} ({why}), nginx {resp.body!r}"])
            )
    assert not failures, _report(text, failures)


# --- hypothesis-generated location sets × request paths ------------------------------------------------------

PROXIES_STATIC = (
    "http://127.0.0.1:{E}",
    "http://127.0.0.1:{E}/",
    "http://127.0.0.1:{E}/up/",
    "http://127.0.0.1:{E}/up",
    "http://echo_up",
    "http://echo_up/u/",
    "http://echo_up$request_uri",
    "http://127.0.0.1:{E}/v$uri$is_args$args",
)
PROXIES_REGEX = (
    "http://127.0.0.1:{E}",
    "http://echo_up",
    "http://echo_up$request_uri",
    "http://127.0.0.1:{E}/v$uri$is_args$args",
)
HEADERS = (
    "",
    "proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade; "
    "proxy_set_header Connection $connection_upgrade;",
    'proxy_set_header Connection ""; proxy_set_header Host $host;',
    "proxy_set_header Host $http_host; proxy_set_header Upgrade $http_upgrade;",
)
SERVER_HEADERS = ("", "proxy_set_header Host $host; proxy_set_header X-Real-IP $remote_addr;")
SERVER_REWRITES = (
    "",
    "",
    "rewrite ^/x/(.*)$ /a/$1 last;",
    "rewrite ^/x/(.*)$ /ab/$1?r=1;",
    "merge_slashes off;",
)
LOCATION_REWRITES = ("", "", "", "rewrite ^/(.*)$ /r/$1 break;", "rewrite ^(.*)/c\\.b$ $1/c last;")
EXTENSIONS = ("", "a", "b", "a/", "b/", "ab", "ab/", "a.b", "c/", "a/b", "a/b/", "/", "/a", "/a/")
REGEXES = ("^/a", "^/a/", "b$", "\\.b", "^/ab", "/c/", "^/A", "(a|c)/b", "^/a/b$", "b/$", "^/b")


@dataclass
class GenLoc:
    kind: str
    name: str
    handler: str
    headers: str
    children: list[GenLoc]
    ident: str = ""


@st.composite
def locations(draw: st.DrawFn, base: str = "/", depth: int = 0) -> list[GenLoc]:
    n = draw(st.integers(1, 5 if depth == 0 else 2))
    out: list[GenLoc] = []
    used: set[tuple[str, str]] = set()
    for _ in range(n):
        kind = draw(st.sampled_from(["", "", "=", "^~", "~", "~*"]))
        if kind in ("~", "~*"):
            name = draw(st.sampled_from(REGEXES))
            handler = draw(st.sampled_from(("return",) + PROXIES_REGEX))
        else:
            ext = draw(st.sampled_from(EXTENSIONS))
            if depth:
                ext = ext.lstrip("/") or "a"
            name = (base + ext).replace("//", "/")
            if not name.startswith("/"):
                name = "/" + name
            handler = draw(st.sampled_from(("return",) + PROXIES_STATIC))
        key = ("=" if kind == "=" else "~" if kind.startswith("~") else "", name)
        if key in used:
            continue
        used.add(key)
        children: list[GenLoc] = []
        if kind in ("", "^~") and depth == 0 and draw(st.integers(0, 3)) == 0:
            children = draw(locations(name, depth + 1))
        headers = draw(st.sampled_from(HEADERS)) if handler != "return" else ""
        if handler != "return":
            headers = (draw(st.sampled_from(LOCATION_REWRITES)) + " " + headers).strip()
        out.append(GenLoc(kind, name, handler, headers, children))
    return out


def _render(locs: list[GenLoc], echo: int, counter: list[int], indent: str = "    ") -> str:
    lines = []
    for loc in locs:
        counter[0] += 1
        loc.ident = f"L{counter[0]}"
        head = f"location {loc.kind + ' ' if loc.kind else ''}{loc.name} {{"
        body = [f"add_header X-Loc {loc.ident} always;"]
        if loc.handler == "return":
            body.append(f'return 200 "{loc.ident}";')
        else:
            body.append(f"proxy_pass {loc.handler.replace('{E}', str(echo))};")
            if loc.headers:
                body.append(loc.headers)
        inner = "\n".join(indent + "    " + b for b in body)
        kids = _render(loc.children, echo, counter, indent + "    ") if loc.children else ""
        lines.append(f"{indent}{head}\n{inner}\n{kids}{indent}}}\n")
    return "".join(lines)


def _names(locs: list[GenLoc]) -> list[str]:
    out = []
    for loc in locs:
        if not loc.kind.startswith("~"):
            out.append(loc.name)
        out += _names(loc.children)
    return out


TRANSFORMS = (
    "none",
    "none",
    "noslash",
    "slash",
    "sub",
    "dup",
    "dot",
    "dotdot",
    "pct",
    "pctslash",
    "upper",
    "ext",
)


def _transform(path: str, how: str) -> str:
    if how == "noslash":
        return path.rstrip("/") or "/"
    if how == "slash":
        return path if path.endswith("/") else path + "/"
    if how == "sub":
        return path.rstrip("/") + "/b/c.b"
    if how == "dup":
        return path.replace("/", "//", 1)
    if how == "dot":
        return path.rstrip("/") + "/./x"
    if how == "dotdot":
        return path.rstrip("/") + "/x/../c"
    if how == "pct":
        return path.replace("a", "%61", 1)
    if how == "pctslash":
        return path.replace("/", "%2F", 2) if path.count("/") > 1 else "%2F" + path
    if how == "upper":
        return path.upper()
    if how == "ext":
        return path + "b"
    return path


@st.composite
def scenario(draw: st.DrawFn) -> tuple[list[GenLoc], str, list[tuple[str, bool]]]:
    locs = draw(locations())
    server_headers = draw(st.sampled_from(SERVER_HEADERS)) + " " + draw(st.sampled_from(SERVER_REWRITES))
    names = _names(locs) + ["/", "/a", "/ab/c", "/b/a.b", "/c/b", "/A/b", "/x/a/b"]
    targets = []
    for _ in range(draw(st.integers(6, 10))):
        path = _transform(draw(st.sampled_from(names)), draw(st.sampled_from(TRANSFORMS)))
        if not path.startswith("/") and not path.startswith("%2F"):
            path = "/" + path
        if path.startswith("%2F"):
            path = "/" + path
        query = draw(st.sampled_from(("", "", "?q=1", "?EIO=4&transport=websocket", "?x=%2F")))
        targets.append((path + query, draw(st.booleans())))
    return locs, server_headers, targets


# 40 configurations in the default suite (a few seconds); WSDOCTOR_DIFF_EXAMPLES=2000 for a deep local run.
@settings(
    max_examples=int(os.environ.get("WSDOCTOR_DIFF_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
@given(case=scenario())
def test_generated_locations_match_real_nginx(real_nginx: RealNginx, case) -> None:
    locs, server_headers, targets = case
    body = _render(locs, real_nginx.echo_port, [0])
    text = (
        f"server {{\n    listen 127.0.0.1:{real_nginx.port};\n    server_name gen.test;\n"
        f"    add_header X-Loc none always;\n    {server_headers}\n{body}}}\n"
    )
    real_nginx.load(text)
    config = load_file(str(real_nginx.conf))
    assert not config.errors
    failures = []
    for target, upgrade in targets:
        headers = WS if upgrade else None
        diffs = compare(real_nginx, config, "gen.test", target, headers)
        if diffs:
            failures.append(("gen.test", target, headers, diffs))
    assert not failures, _report(text, failures)


# --- hypothesis-generated server sets × Host headers ---------------------------------------------------------

NAMES = (
    "a.test",
    "*.a.test",
    ".b.test",
    "www.c.*",
    "~^x\\d+\\.test$",
    "~^(?<n>.+)\\.d\\.test$",
    "*.x.a.test",
    "b.test",
    "_",
    "~^X",
    "www.c.org",
)
HOSTS = (
    "a.test",
    "z.a.test",
    "y.x.a.test",
    "b.test",
    "q.b.test",
    "www.c.org",
    "www.c.co.uk",
    "x12.test",
    "k.d.test",
    "none.test",
    "A.TEST",
    "b.test.",
    "xa.test",
    "www.c.org:8080",
)


@st.composite
def server_sets(draw: st.DrawFn) -> tuple[list[tuple[list[str], bool, bool]], list[tuple[str, bool]]]:
    servers = []
    for _ in range(draw(st.integers(1, 5))):
        names = draw(st.lists(st.sampled_from(NAMES), min_size=0, max_size=2, unique=True))
        servers.append((names, draw(st.booleans()), False))  # (names, on port P else Q, default_server)
    if draw(st.booleans()):
        i = draw(st.integers(0, len(servers) - 1))
        servers[i] = (servers[i][0], servers[i][1], True)
    hosts = draw(st.lists(st.tuples(st.sampled_from(HOSTS), st.booleans()), min_size=4, max_size=8))
    return servers, hosts


@settings(max_examples=int(os.environ.get("WSDOCTOR_DIFF_EXAMPLES", "15")), deadline=None,
          suppress_health_check=list(HealthCheck), database=None)  # fmt: skip
@given(case=server_sets())
def test_generated_server_names_match_real_nginx(real_nginx: RealNginx, case) -> None:
    servers, hosts = case
    p, q = real_nginx.ports
    blocks = []
    for i, (names, on_p, default) in enumerate(servers):
        listen = f"127.0.0.1:{p if on_p else q}{' default_server' if default else ''}"
        sn = f"    server_name {' '.join(names)};\n" if names else ""
        blocks.append(f'server {{\n    listen {listen};\n{sn}    return 200 "S{i}";\n}}')
    text = "\n".join(blocks)
    real_nginx.load(text)
    config = load_file(str(real_nginx.conf))
    failures = []
    for host, to_p in hosts:
        port = p if to_p else q
        server, why = select_server(config, host, port, addr="127.0.0.1")
        ret = server.child("return") if server is not None else None
        predicted = (
            ret.args[1] if ret is not None else ("marker" if server is not None else "nothing listens")
        )
        try:
            resp = real_nginx.request("/", host, port=port)
            actual = (
                resp.body.decode()
                if resp.status == 200
                else "marker"
                if resp.status in (403, 404)
                else f"status {resp.status}"
            )
        except ConnectionRefusedError:
            actual = "nothing listens"
        if predicted != actual:
            failures.append(
                (host, f"/ on port {port}", None, [f"server: predicted {predicted} ({why}), nginx {actual}"])
            )
    assert not failures, _report(text, failures)
