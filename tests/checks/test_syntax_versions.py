"""The deployment rules of ``checks/_args.py`` (what nginx refuses or warns about by version, and a ``listen …
ssl`` whose default server has no certificate), by version boundary, and held to the real ``nginx -t`` (1.22
here) where this machine's nginx can judge them."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.checks.test_args import NGINX, VERSION
from wsdoctor.checks._args import deployment_errors
from wsdoctor.nginx.load import load_file

CERT = "ssl_certificate /etc/nginx/c.pem; ssl_certificate_key /etc/nginx/k.pem;"


def _config(tmp: Path, servers: str, http: str = ""):
    (tmp / "etc/nginx").mkdir(parents=True, exist_ok=True)
    conf = tmp / "etc/nginx/nginx.conf"
    conf.write_text("events {}\nhttp {\n" + textwrap.indent(textwrap.dedent(http + servers), "    ") + "}\n")
    return conf


def _errors(tmp: Path, servers: str, version: str | None, http: str = "") -> list[tuple[str, str]]:
    conf = _config(tmp, servers, http)
    return [(sev, why) for _d, why, sev in deployment_errors(load_file(str(conf), root=str(tmp)), version)]


SSL_ON = f"server {{ listen 443; ssl on; {CERT} server_name a; }}\n"
LISTEN_H2 = f"server {{ listen 443 ssl http2; {CERT} server_name a; }}\n"
HTTP2_ON = f"server {{ listen 443 ssl; http2 on; {CERT} server_name a; }}\n"
RESOLVE = "upstream up { zone up 64k; server app.internal:3000 resolve; }\nresolver 127.0.0.11;\n"
RESOLVE_NO_ZONE = "upstream up { server app.internal:3000 resolve; }\nresolver 127.0.0.11;\n"
NO_CERT = "server { listen 443 ssl; server_name a; }\n"


@pytest.mark.parametrize(
    ("servers", "version", "expected", "words"),
    [
        (SSL_ON, "1.14.2", None, ""),
        (SSL_ON, "1.22.1", "warn", "deprecated"),
        (SSL_ON, "1.25.0", "warn", "deprecated"),
        (SSL_ON, "1.25.1", "fail", 'unknown directive "ssl"'),
        (SSL_ON, None, "warn", "removed in nginx 1.25.1"),
        (LISTEN_H2, "1.25.0", None, ""),
        (LISTEN_H2, "1.26.2", "warn", '"listen ... http2" directive is deprecated'),
        (HTTP2_ON, "1.24.0", "fail", 'unknown directive "http2"'),
        (HTTP2_ON, "1.25.1", None, ""),
        (HTTP2_ON, None, "warn", "1.25.1"),
        (RESOLVE, "1.27.2", "fail", 'invalid parameter "resolve"'),
        (RESOLVE, "1.27.3", None, ""),
        (RESOLVE_NO_ZONE, "1.27.3", "fail", "shared memory"),
        (NO_CERT, "1.22.1", "fail", 'no "ssl_certificate" is defined for the "listen ... ssl" directive'),
    ],
)
def test_version_boundaries(tmp_path: Path, servers: str, version: str | None, expected, words: str) -> None:
    got = _errors(tmp_path, servers, version)
    if expected is None:
        assert got == [], got
    else:
        assert len(got) == 1 and got[0][0] == expected and words in got[0][1], got


def test_certificate_is_asked_of_the_default_server_only(tmp_path: Path) -> None:
    second = (
        f"server {{ listen 443 ssl; server_name a; {CERT} }}\nserver {{ listen 443 ssl; server_name b; }}\n"
    )
    assert _errors(tmp_path / "a", second, "1.22.1") == []
    first = (
        f"server {{ listen 443 ssl; server_name b; }}\nserver {{ listen 443 ssl; server_name a; {CERT} }}\n"
    )
    got = _errors(tmp_path / "b", first, "1.22.1")
    assert len(got) == 1 and "/etc/nginx/nginx.conf:3" in got[0][1]  # nginx names the server block
    flagged = first.replace("server_name a;", "server_name a; listen 443 ssl default_server;").replace(
        "server { listen 443 ssl; server_name a;", "server { server_name a;"
    )
    assert _errors(tmp_path / "c", flagged, "1.22.1") == []
    inherited = _errors(tmp_path / "d", NO_CERT, "1.22.1", http=CERT.replace("; ", ";\n") + "\n")
    assert inherited == []
    rejecting = _errors(tmp_path / "e", "server { listen 443 ssl; ssl_reject_handshake on; }\n", "1.22.1")
    assert rejecting == []


# The cases nginx 1.22 can judge itself: its verdict and wsdoctor's agree.
REAL = [
    (SSL_ON, "warn"),
    (LISTEN_H2, None),
    (HTTP2_ON, "fail"),
    (RESOLVE, "fail"),
    (NO_CERT, "fail"),
    (
        f"server {{ listen 443 ssl; server_name a; {CERT} }}\nserver {{ listen 443 ssl; server_name b; }}\n",
        None,
    ),
    (
        f"server {{ listen 443 ssl; server_name b; }}\nserver {{ listen 443 ssl; server_name a; {CERT} }}\n",
        "fail",
    ),
    ("server { listen 443 ssl; ssl_reject_handshake on; }\n", None),
    (
        f"server {{ listen 443 ssl; server_name b; }}\nserver {{ server_name a; listen 443 ssl default_server; {CERT} }}\n",
        None,
    ),
]


@pytest.mark.skipif(NGINX is None, reason="no nginx binary to compare with")
@pytest.mark.parametrize(("servers", "expected"), REAL)
def test_rules_agree_with_nginx_t(tmp_path: Path, servers: str, expected: str | None) -> None:
    assert NGINX is not None
    conf = _config(tmp_path, servers.replace("/etc/nginx/", f"{tmp_path}/etc/nginx/"))
    for name in ("c.pem", "k.pem"):  # a real certificate and key where the config names them
        if not (tmp_path / "etc/nginx" / name).exists():
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-nodes", "-keyout", str(tmp_path / "etc/nginx/k.pem"), "-out", str(tmp_path / "etc/nginx/c.pem"),
                 "-days", "1", "-subj", "/CN=t"],
                check=True, capture_output=True, timeout=30,
            )  # fmt: skip
    done = subprocess.run(
        [NGINX, "-t", "-p", f"{tmp_path}/", "-c", str(conf), "-e", f"{tmp_path}/err.log"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    nginx = "fail" if done.returncode else "warn" if "[warn]" in done.stderr else None
    assert nginx == expected, done.stderr
    ours = _errors(tmp_path, servers, VERSION)
    assert (ours[0][0] if ours else None) == expected, (ours, done.stderr)
