"""Real ``nginx -t`` on a copy of a loaded configuration, never on the files nginx runs from.

The copy holds every file the loader read at ``COPY + its real path``, with the absolute paths nginx opens
(includes, certificates, logs, pid, temp and cache directories, modules) pointing into the copy, and nginx runs
as ``nginx -t -p COPY/ -c COPY/<main>``, so it reads, creates and writes nothing outside the copy. Its messages
are mapped back to the real paths the user knows.

What differs between this machine and the target is made equal or said, never judged as a config error:

- host names in ``proxy_pass`` and upstream ``server`` lines (``http://app:3000``, a container name) resolve on
  the target, not necessarily here: they are replaced by 127.0.0.1 in the copy (no DNS query is made), and
  the names are listed;
- certificates, keys and DH parameters the copy lacks (private keys are seldom copied) are throwaway ones made
  for the run (a file that exists in the tree is linked, not copied);
- what nginx still says about this machine (a missing user, a module file, permissions) is classified by
  ``environment_line`` so the syntax check can report it as an environment fact.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from wsdoctor.nginx.testoutput import HOSTS_LINE
from wsdoctor.nginx.version import at_least, local_version

if TYPE_CHECKING:
    from wsdoctor.nginx.model import Config, Directive

TIMEOUT = 15.0

# Directives whose first argument is a file or directory nginx opens or creates (at -t or at start).
_FILE_ARGS = frozenset(
    [
        "include", "load_module", "pid", "lock_file", "error_log", "access_log", "working_directory",
        "ssl_certificate", "ssl_certificate_key", "ssl_dhparam", "ssl_trusted_certificate",
        "ssl_client_certificate", "ssl_crl", "ssl_password_file", "ssl_session_ticket_key", "ssl_stapling_file",
        "proxy_ssl_certificate", "proxy_ssl_certificate_key", "proxy_ssl_trusted_certificate", "proxy_ssl_crl",
        "proxy_ssl_password_file", "grpc_ssl_certificate", "grpc_ssl_certificate_key",
        "grpc_ssl_trusted_certificate", "auth_basic_user_file", "client_body_temp_path", "proxy_temp_path",
        "fastcgi_temp_path", "uwsgi_temp_path", "scgi_temp_path", "proxy_cache_path", "fastcgi_cache_path",
        "uwsgi_cache_path", "scgi_cache_path",
    ]
)  # fmt: skip
# The ones nginx creates (a directory for the temp/cache paths, the parent directory for the others).
_MADE_DIRS = frozenset(
    ["client_body_temp_path", "proxy_temp_path", "fastcgi_temp_path", "uwsgi_temp_path", "scgi_temp_path",
     "proxy_cache_path", "fastcgi_cache_path", "uwsgi_cache_path", "scgi_cache_path"]
)  # fmt: skip
_MADE_FILES = frozenset(["error_log", "access_log", "pid", "lock_file"])
_CERTS = frozenset(
    ["ssl_certificate", "ssl_trusted_certificate", "ssl_client_certificate", "proxy_ssl_certificate",
     "proxy_ssl_trusted_certificate", "grpc_ssl_certificate", "grpc_ssl_trusted_certificate"]
)  # fmt: skip
_KEYS = frozenset(["ssl_certificate_key", "proxy_ssl_certificate_key", "grpc_ssl_certificate_key"])
_NOT_FILES = ("syslog:", "memory:", "data:", "engine:")
_PASSES = frozenset(["proxy_pass", "grpc_pass", "uwsgi_pass", "scgi_pass", "fastcgi_pass", "memcached_pass"])
# A token that may be an absolute path: "/" after whitespace or a quote, up to what ends a token.
_PATH_TOKEN = re.compile(r"(?<![^\s\"'])/[^\s;\"'{}]+")
_USER = re.compile(r"(?m)^([ \t]*)user[ \t]+[^;{}#\n]*;")
_IP = re.compile(r"^(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:.]+\])$")
_HOST = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?$")


@dataclass
class CopyTest:
    """One ``nginx -t`` on a copy: what ran, what nginx said (real paths), and what was made equal."""

    argv: list[str]
    binary: str
    version: str | None  # the binary's own version (`nginx -v`)
    exit_status: int | None = None
    output: str = ""  # nginx's stderr, the copy's prefix removed (real paths)
    error: str | None = None  # could not run (timeout, no permission)
    mapped_hosts: list[str] = field(default_factory=list)
    made: list[str] = field(default_factory=list)  # throwaway certificates/keys/parameters (real paths)
    users: list[str] = field(default_factory=list)  # `user` names this machine lacks, left out of the copy

    def header(self) -> list[str]:
        """What the run was, for the evidence: which nginx judged and what was made equal for it."""
        out = [
            f"# nginx {self.version or '(version unknown)'} ({self.binary}) on this machine, on a copy of the config"
        ]
        if self.mapped_hosts:
            out.append(HOSTS_LINE + ", ".join(self.mapped_hosts))
        if self.made:
            out.append("# throwaway files made for the test (missing from the copy): " + ", ".join(self.made))
        if self.users:
            out.append("# `user` left out of the copy (no such user here): " + ", ".join(self.users))
        return out


def find_binary() -> str | None:
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin:/sbin")


def run(config: Config, binary: str | None = None, timeout: float = TIMEOUT) -> CopyTest | None:
    """``nginx -t`` of BINARY (this machine's nginx by default) on a copy of CONFIG; None without a binary."""
    binary = binary or find_binary()
    if binary is None:
        return None
    version = local_version(binary)
    with tempfile.TemporaryDirectory(prefix="wsdoctor-nginx-t-") as tmp:
        copy = os.path.realpath(tmp)
        hosts, made, users = _write_copy(config, copy)
        main = copy + config.main_file
        argv = [binary, "-t", "-p", copy + "/", "-c", main]
        if at_least(version, (1, 19, 5)):  # -e: nginx's own startup log into the copy too
            argv += ["-e", copy + "/wsdoctor-startup.log"]
        test = CopyTest(argv, binary, version, mapped_hosts=hosts, made=made, users=users)
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            test.error = f"nginx -t did not finish within {timeout:g} s"
            return test
        except OSError as e:
            test.error = f"cannot run {binary}: {e.strerror or e}"
            return test
        test.exit_status = done.returncode
        test.output = done.stderr.replace(copy + "/", "/").replace(copy, "")
        return test


# --- the copy ------------------------------------------------------------------------------------------------


def _write_copy(config: Config, copy: str) -> tuple[list[str], list[str], list[str]]:
    """Every file CONFIG read, written under COPY with its paths and host names rewritten; the directories and
    files nginx needs made. Returns (the host names mapped, the throwaway files made, the users left out)."""
    paths: set[str] = set()
    hosts: dict[str, None] = {}
    upstreams = set(config.upstreams())
    files: list[tuple[Directive, str]] = []  # (directive, the absolute path it opens)
    users: list[str] = []  # `user` names this machine does not have: left out of the copy
    for d in config.walk():
        if not d.args or d.name == "#":
            continue
        arg = d.args[0]
        if d.name in _FILE_ARGS:
            if arg.startswith("/") and len(arg) > 1:
                paths.add(arg)
            files.append((d, arg if arg.startswith("/") else os.path.join(_relative_base(config, d), arg)))
        elif d.name in _PASSES or (
            d.name == "server" and d.parent is not None and d.parent.name == "upstream"
        ):
            host = _host_of(arg)
            named_upstream = d.name in _PASSES and host in upstreams  # proxy_pass http://NAME: an upstream
            if (
                host
                and not named_upstream
                and host != "localhost"
                and not _IP.match(host)
                and _HOST.match(host)
            ):
                hosts[host] = None
        elif d.name == "user" and d.parent is None and not _user_exists(arg):
            users.append(arg)
    host_re = None
    if hosts:
        names = "|".join(re.escape(h) for h in sorted(hosts, key=len, reverse=True))
        host_re = re.compile(
            rf"((?:\b(?:{'|'.join(sorted(_PASSES))})\s+[\"']?(?:[a-z0-9+]+://)?|\bserver\s+[\"']?))({names})(?=[:/;\"'\s])"
        )
    for real, text in config.files.items():
        # One pass over the text: every absolute-path token that a directive opens points into the copy.
        new = _PATH_TOKEN.sub(lambda m: copy + m.group(0) if m.group(0) in paths else m.group(0), text)
        if host_re is not None:
            new = host_re.sub(r"\g<1>127.0.0.1", new)
        if users:  # blanked, not removed: every line keeps its number
            new = _USER.sub(lambda m: m.group(1) + " " * (len(m.group(0)) - len(m.group(1))), new)
        dest = copy + real
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(dest, "w", encoding="utf-8", newline="") as fh:
            fh.write(new)
    made = _files_nginx_needs(config, copy, files)
    return list(hosts), made, users


def _relative_base(config: Config, d: Directive) -> str:
    """Where nginx takes a relative path of D from: the conf directory for includes and TLS files, else the
    prefix (the copy's root stands for it: '/')."""
    if (
        d.name == "include"
        or d.name.startswith(("ssl_", "proxy_ssl_", "grpc_ssl_"))
        or d.name == "auth_basic_user_file"
    ):
        return os.path.dirname(config.main_file) or "/"
    return "/"


def _host_of(arg: str) -> str | None:
    """The host name of a proxy_pass URL or an upstream server address (None: a unix socket, variables, IPv6)."""
    if "$" in arg:
        return None
    rest = arg.split("://", 1)[1] if "://" in arg else arg
    if rest.startswith(("unix:", "[")):
        return None
    host = rest.split("/", 1)[0]
    return host.rsplit(":", 1)[0] if ":" in host else host


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _files_nginx_needs(config: Config, copy: str, files: list[tuple[Directive, str]]) -> list[str]:
    """Directories for logs, temp and cache paths; certificates, keys and DH parameters: linked from the source
    tree when it has them, else throwaway ones. Returns the real paths of the throwaway files."""
    made: list[str] = []
    source_root = config.fs_root or ""
    material: dict[str, bytes] | None = None
    for d, real in files:
        arg = d.args[0]
        if d.name == "include" or "$" in real or arg in ("off", "stderr") or arg.startswith(_NOT_FILES):
            continue
        dest = copy + os.path.normpath(real)
        if d.name in _MADE_DIRS:
            os.makedirs(dest, exist_ok=True)
            continue
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if d.name in _MADE_FILES or os.path.lexists(dest):
            continue
        source = source_root + os.path.normpath(real)
        if os.path.isfile(source) and os.access(source, os.R_OK):
            os.symlink(source, dest)
            continue
        kind = (
            "key"
            if d.name in _KEYS
            else "dh"
            if d.name == "ssl_dhparam"
            else "cert"
            if d.name in _CERTS
            else None
        )
        if kind is None:
            continue
        if material is None:
            material = _throwaway_tls()
        if material.get(kind):
            with open(dest, "wb") as fh:
                fh.write(material[kind])
            os.chmod(dest, 0o600)
            made.append(real)
    return made


def _throwaway_tls() -> dict[str, bytes]:
    """A self-signed certificate, its key and DH parameters, made by openssl for this run only ({} without
    openssl: nginx then says it cannot load them, which the check reports as an environment fact)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return {}
    out: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="wsdoctor-tls-") as d:
        key, cert, dh = (os.path.join(d, n) for n in ("key.pem", "cert.pem", "dh.pem"))
        try:
            subprocess.run(
                [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=wsdoctor-nginx-t"],
                capture_output=True, timeout=10, check=True,
            )  # fmt: skip
            subprocess.run(
                [openssl, "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt", "dh_param:ffdhe2048", "-out", dh],
                capture_output=True, timeout=10, check=False,
            )  # fmt: skip
        except (OSError, subprocess.SubprocessError):
            return {}
        for kind, path in (("key", key), ("cert", cert), ("dh", dh)):
            if os.path.exists(path):
                with open(path, "rb") as fh:
                    out[kind] = fh.read()
    return out
