"""Command line: argument parsing, sub-commands, exit codes (the stable contract in the README).

Exit status: 0 no ``fail``; 1 at least one ``fail``; 2 wsdoctor could not run, with one
line on stderr and never a traceback. The TUI (Textual), the lab and the demo are imported by
their own sub-commands only: ``check --offline`` must not pay for them.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from urllib.parse import urlsplit

from wsdoctor import __version__
from wsdoctor.diagnose import run_headless
from wsdoctor.errors import describe
from wsdoctor.nginx.generate import generate_command
from wsdoctor.report import use_color
from wsdoctor.safetext import visible
from wsdoctor.target import Target, apply_profile
from wsdoctor.wire.client import CLIENT_VERSIONS

COMMANDS = ("check", "generate", "setup", "apply", "lab", "demo")

USAGE = """\
wsdoctor [TARGET OPTIONS]              the TUI (with no target it opens the target form)
       wsdoctor check [TARGET OPTIONS] [--format text|json|markdown] [--offline]
       wsdoctor generate [SETUP OPTIONS] [--format text|json]   nginx config + client code
       wsdoctor setup [TARGET OPTIONS]        guided first-time setup (TUI wizard)
       wsdoctor apply [TARGET OPTIONS] --fix ID[,ID…] | --config FILE --into PATH | --rollback [ID] [--yes]
       wsdoctor lab up|down|status [--scenario NAME] [--backends node|python] [--format json]
       wsdoctor demo                          the TUI on a local lab, nothing else needed"""

EPILOG = """\
sub-commands:
  check      diagnose headless: text, JSON or Markdown report; exit 0 (no fail), 1 (a fail), 2 (cannot run)
  generate   print a correct nginx config and the matching client code (socket.io-client, python-socketio)
  setup      guided first-time setup: discover, generate, test, apply, diagnose (TUI wizard)
  apply      apply fixes or a generated config to the proxy with backup, nginx -t, reload, verify, rollback
  lab        run a local lab (real nginx + Socket.IO backends + sshd) with a broken scenario
  demo       start the seed lab and open the TUI on it

Run 'wsdoctor check --help' for every target option."""


class UsageError(Exception):
    """Bad arguments or unreadable input: exit 2 with one sentence."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, never a traceback
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _add_target_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("target")
    g.add_argument("--url", help="the URL the client passes to io(), e.g. wss://api.example.com")
    g.add_argument("--path", help="the client's `path` option (socket.io-client default /socket.io/)")
    g.add_argument("--transports", help="polling,websocket (client default) or websocket")
    g.add_argument("--raw", action="store_true", help="--url is a raw Engine.IO request URL, not an io() URL")
    tok = g.add_mutually_exclusive_group()
    tok.add_argument("--token-env", metavar="VAR", help="environment variable holding the auth token")
    tok.add_argument("--token", help="the auth token (prefer --token-env: argv is visible to other users)")
    g.add_argument("--auth-header", action="store_true", help="also send the token as Authorization: Bearer")
    g.add_argument("--backend-log", metavar="SPEC", help="backend auth log: FILE, pm2:NAME or journald:UNIT")
    g.add_argument(
        "--nginx-conf", metavar="FILE", help="main nginx.conf (includes followed); remote with --ssh"
    )
    g.add_argument("--nginx-dump", metavar="FILE", help="saved `nginx -T` output ('-' = stdin)")
    g.add_argument("--nginx-version", metavar="X.Y.Z", help="nginx version when no binary can be asked")
    g.add_argument(
        "--root",
        metavar="DIR",
        help="with --nginx-conf: a copied tree whose absolute includes live under DIR",
    )
    g.add_argument("--ssh", metavar="HOST", help="the proxy host: alias or [USER@]HOST[:PORT]")
    g.add_argument(
        "--ssh-config", metavar="FILE", help="ssh config file instead of ~/.ssh/config (like ssh -F)"
    )
    g.add_argument("--identity", metavar="FILE", help="SSH private key (like ssh -i)")
    g.add_argument("--known-hosts", metavar="FILE", help="SSH known_hosts file (UserKnownHostsFile)")
    g.add_argument(
        "--accept-host-key", metavar="SHA256:…", help="trust this (and only this) unknown host key"
    )
    g.add_argument("--timeout", type=float, metavar="S", help="per-probe timeout in seconds (default 5)")
    g.add_argument("--hold", type=float, metavar="S", help="hold a tunnel open S seconds to catch drops")
    g.add_argument("--backend", action="append", metavar="URL", help="a backend base URL (repeatable)")
    g.add_argument(
        "--server-name", metavar="NAME", help="Host used for server selection (default: the URL's host)"
    )
    g.add_argument("--offline", action="store_true", help="no network at all: config analysis only")
    g.add_argument(
        "--no-nginx-test",
        action="store_true",
        help="with --nginx-conf: do not run this machine's `nginx -t` on a copy of the config",
    )
    g.add_argument("--ca-file", metavar="FILE", help="CA bundle for wss/https probes")
    g.add_argument(
        "--insecure", action="store_true", help="do not verify TLS certificates (says so in the report)"
    )
    g.add_argument(
        "--client-version",
        type=int,
        metavar="N",
        help="the major version of the clients' socket.io-client: 2, 3 or 4 (default 4)",
    )
    g.add_argument("--profile", metavar="NAME", help="a saved target from the config file")


def _parser_main() -> argparse.ArgumentParser:
    p = _Parser(
        prog="wsdoctor", usage=USAGE, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--version", action="version", version=f"wsdoctor {__version__}")
    _add_target_options(p)
    return p


def _parser_check() -> argparse.ArgumentParser:
    p = _Parser(prog="wsdoctor check", description="Diagnose headless and print a report.")
    _add_target_options(p)
    p.add_argument("--format", choices=("text", "json", "markdown"), default="text")
    p.add_argument("--brief", action="store_true", help="text: one line per check, no evidence")
    return p


def _parser_lab() -> argparse.ArgumentParser:
    p = _Parser(
        prog="wsdoctor lab", description="A local lab: real nginx + Socket.IO backends + sshd on loopback."
    )
    p.add_argument("action", choices=("up", "down", "status"))
    p.add_argument("--scenario", help="healthy, seed, no-rewrite, backend-down, … (default: healthy)")
    p.add_argument(
        "--backends",
        choices=("node", "python"),
        default="node",
        help="up: Node socket.io 4 or python-socketio backends (default: node)",
    )
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--dir", help="state directory (default $WSDOCTOR_LAB_DIR or ~/.local/state/wsdoctor/lab)")
    return p


def _parser_demo() -> argparse.ArgumentParser:
    p = _Parser(prog="wsdoctor demo", description="Start the seed lab and open the TUI on its diagnosis.")
    p.add_argument("--scenario", default="seed", help="lab scenario to diagnose (default: seed)")
    p.add_argument(
        "--backends", choices=("node", "python"), default="node",
        help="Node socket.io 4 or python-socketio backends (default: node)",
    )  # fmt: skip
    p.add_argument("--dir", help="lab state directory")
    p.add_argument("--text", action="store_true", help="print the text report instead of opening the TUI")
    return p


def _add_setup_options(p: argparse.ArgumentParser, *, with_target: bool = False) -> None:
    """The SETUP OPTIONS of `generate` (and of `setup`, which has --server-name, --backend and --transports
    among its target options already)."""
    g = p.add_argument_group("setup")
    if not with_target:
        g.add_argument("--server-name", default="api.example.com", help="server_name / public host")
        g.add_argument("--backend", action="append", metavar="HOST:PORT", help="a backend (repeatable)")
        g.add_argument(
            "--transports", default="polling,websocket", help="polling,websocket, websocket or polling"
        )
        g.add_argument(
            "--nginx-version", metavar="X.Y.Z", help="the proxy's nginx version (syntax, defaults)"
        )
    g.add_argument("--public-path", help="the public path prefix, e.g. /dev/aiwm/chat/ (default /)")
    g.add_argument(
        "--backend-path", help="the backends' engine path, e.g. /chat/socket.io/ (default /socket.io/)"
    )
    g.add_argument("--upstream", default="socketio_backends", help="upstream block name")
    g.add_argument("--namespace", default="/", help="the Socket.IO namespace the clients join (default /)")
    g.add_argument("--ping-interval", metavar="MS", help="the backends' pingInterval in ms (default 25000)")
    g.add_argument("--client-version", metavar="N", help="the clients' socket.io-client major: 2, 3 or 4")
    g.add_argument("--listen", metavar="[ADDR:]PORT", help="where the TLS server listens (default 443)")
    g.add_argument("--cert", default="/etc/ssl/certs/server.pem", help="ssl_certificate path")
    g.add_argument("--key", default="/etc/ssl/private/server.key", help="ssl_certificate_key path")


def _parser_generate() -> argparse.ArgumentParser:
    p = _Parser(
        prog="wsdoctor generate",
        description="Print a correct nginx config and the matching client code (socket.io-client, python-socketio).",
    )
    _add_setup_options(p)
    p.add_argument("--format", choices=("text", "json"), default="text")
    return p


def _parser_apply() -> argparse.ArgumentParser:
    p = _Parser(
        prog="wsdoctor apply",
        description="Change the proxy's nginx safely: preflight, lock, diff, backup, atomic write, nginx -t, "
        "reload, verify, and rollback on any failure. Without --yes: the plan and the diff only.",
    )
    _add_target_options(p)
    what = p.add_argument_group("what to apply (one of)")
    what.add_argument(
        "--fix", metavar="ID[,ID…]", help="apply the diffs a fresh diagnosis proposes for these checks"
    )
    what.add_argument(
        "--config", metavar="FILE", help="a config file on this machine (from `wsdoctor generate`)"
    )
    what.add_argument(
        "--into", metavar="PATH", help="with --config: the path on the proxy host to install it as"
    )
    what.add_argument(
        "--rollback", nargs="?", const="", metavar="BACKUP_ID", help="restore a backup (default: the newest)"
    )
    p.add_argument("--yes", action="store_true", help="really change the host (else: a dry run)")
    p.add_argument("--backup-dir", metavar="DIR", help="backups on the host (default /var/backups/wsdoctor)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    return p


def _parser_setup() -> argparse.ArgumentParser:
    p = _Parser(
        prog="wsdoctor setup",
        description="Guided first-time setup of a Socket.IO service behind nginx (TUI wizard). Headless: "
        "`wsdoctor generate … > site.conf` then `wsdoctor apply --config site.conf --into PATH --yes`.",
    )
    _add_target_options(p)
    _add_setup_options(p, with_target=True)
    p.add_argument("--into", metavar="PATH", help="where to install the config on the proxy host")
    p.add_argument("--backup-dir", metavar="DIR", help="backups on the host (default /var/backups/wsdoctor)")
    return p


def target_from_args(ns: argparse.Namespace) -> Target:
    t = Target()
    for key in (
        "url", "path", "token", "token_env", "backend_log", "nginx_conf", "nginx_dump", "nginx_version", "root",
        "ssh", "ssh_config", "identity", "known_hosts", "accept_host_key", "hold", "server_name", "ca_file",
    ):  # fmt: skip
        value = getattr(ns, key, None)
        if isinstance(value, str) and not value.strip():
            # A script's unset variable (`--url "$URL"`) must not turn into a run that checks nothing.
            raise UsageError(
                f"--{key.replace('_', '-')} was given an empty value (an unset variable in a script?); "
                "give a value or leave the option out"
            )
        if value is not None:
            setattr(t, key, value)
    if ns.transports:
        tr = tuple(x.strip() for x in ns.transports.split(",") if x.strip())
        bad = [x for x in tr if x not in ("polling", "websocket")]
        if bad or not tr:
            raise UsageError(f"--transports takes polling,websocket or websocket, not {ns.transports!r}")
        t.transports = tr
    if ns.timeout is not None:
        if ns.timeout <= 0:
            raise UsageError("--timeout must be a positive number of seconds")
        t.timeout = ns.timeout
    if ns.hold is not None and ns.hold <= 0:
        raise UsageError("--hold must be a positive number of seconds")
    if ns.client_version is not None:
        if ns.client_version not in CLIENT_VERSIONS:
            raise UsageError(
                f"--client-version takes 2, 3 or 4 (socket.io-client's major version), not {ns.client_version}"
            )
        t.client_version = ns.client_version
    t.raw = bool(ns.raw)
    t.auth_header = bool(ns.auth_header)
    t.offline = bool(ns.offline)
    t.nginx_test = not ns.no_nginx_test
    t.insecure = bool(ns.insecure)
    t.backends = list(ns.backend or [])
    if ns.profile:
        try:
            apply_profile(t, ns.profile)
        except ValueError as e:
            raise UsageError(str(e)) from None
    if t.token_env and not os.environ.get(t.token_env) and not t.token:
        raise UsageError(
            f"--token-env {t.token_env}: that environment variable is empty or not set; export it first"
        )
    t.resolve_token()
    _validate(t)
    if t.root and not t.nginx_conf:
        raise UsageError("--root goes with --nginx-conf (the main config inside the copied tree)")
    if t.nginx_conf and t.nginx_dump:
        raise UsageError("give either --nginx-conf or --nginx-dump, not both")
    return t


_VERSION = re.compile(r"^\d+\.\d+(?:\.\d+)?$")
_FINGERPRINT = re.compile(r"^SHA256:[A-Za-z0-9+/]{43}=?$")


def _validate(t: Target) -> None:
    """Refuse what cannot work before anything runs: one sentence, exit 2."""
    if t.nginx_version and not _VERSION.match(t.nginx_version):
        raise UsageError(f"--nginx-version takes a version like 1.22.1, not {t.nginx_version!r}")
    if t.accept_host_key and not _FINGERPRINT.match(t.accept_host_key):
        raise UsageError(
            f"--accept-host-key takes the SHA256:… fingerprint wsdoctor printed, not {t.accept_host_key!r}"
        )
    for b in t.backends:
        u = urlsplit(b)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise UsageError(f"--backend takes a base URL like http://10.0.0.5:3350, not {b!r}")
    files = {"--identity": t.identity, "--ssh-config": t.ssh_config, "--ca-file": t.ca_file}
    files["--known-hosts"] = t.known_hosts
    if not t.ssh:  # with --ssh it names a file on the proxy host
        files["--nginx-conf"] = None if t.root else t.nginx_conf
    # A --backend-log that cannot be read is a note of the run, not a refusal: the backend may not have
    # logged yet, and the rest of the diagnosis does not depend on it.
    for opt, path in files.items():
        if path and not os.path.isfile(os.path.expanduser(path)):
            what = "is a directory" if os.path.isdir(path) else "does not exist"
            raise UsageError(f"{opt} {path}: that file {what}; check the path")
    if t.nginx_dump and t.nginx_dump != "-" and os.path.isdir(t.nginx_dump):
        raise UsageError(f"--nginx-dump {t.nginx_dump} is a directory: give the file `nginx -T` wrote")


def cmd_check(argv: Sequence[str]) -> int:
    ns = _parser_check().parse_args(argv)
    target = target_from_args(ns)
    if target.is_empty():
        raise UsageError("nothing to check: give --url and/or --nginx-conf, --nginx-dump or --ssh")
    report = run_headless(target)
    if ns.format == "json":
        out = report.to_json()
    elif ns.format == "markdown":
        out = report.to_markdown()
    else:
        out = report.to_text(color=use_color(sys.stdout), verbose=not ns.brief)
    sys.stdout.write(out)
    sys.stdout.flush()
    return report.exit_code()


def cmd_lab(argv: Sequence[str]) -> int:
    ns = _parser_lab().parse_args(argv)
    from wsdoctor.lab.cli import lab_command

    return lab_command(ns.action, ns.scenario, ns.format, ns.dir, backends=ns.backends)


def cmd_demo(argv: Sequence[str]) -> int:
    ns = _parser_demo().parse_args(argv)
    from wsdoctor.demo import demo

    return demo(scenario=ns.scenario, directory=ns.dir, text=ns.text, backends=ns.backends)


def cmd_generate(argv: Sequence[str]) -> int:
    ns = _parser_generate().parse_args(argv)
    return generate_command(ns)


def cmd_apply(argv: Sequence[str]) -> int:
    ns = _parser_apply().parse_args(argv)
    target = target_from_args(ns)
    from wsdoctor.apply.command import ApplyError, ApplyRequest, run_cli

    req = ApplyRequest(
        target=target,
        fix=[x.strip() for x in (ns.fix or "").split(",") if x.strip()],
        config_file=ns.config,
        into=ns.into,
        rollback=ns.rollback is not None,
        backup_id=ns.rollback or None,
        yes=ns.yes,
        backup_dir=ns.backup_dir,
    )
    try:
        req.validate()
    except ApplyError as e:
        raise UsageError(str(e)) from None
    return run_cli(req, ns.format, color=ns.format == "text" and use_color(sys.stdout))


def cmd_setup(argv: Sequence[str]) -> int:
    ns = _parser_setup().parse_args(argv)
    target = target_from_args(ns)
    from wsdoctor.app import run_setup

    preset = {
        "server_name": target.server_name,
        "public_path": ns.public_path,
        "backend_path": ns.backend_path,
        "namespace": ns.namespace if ns.namespace != "/" else None,
        "ping_interval": ns.ping_interval,
        "listen": ns.listen,
        "cert": ns.cert if ns.cert != "/etc/ssl/certs/server.pem" else None,
        "key": ns.key if ns.key != "/etc/ssl/private/server.key" else None,
        "into": ns.into,
        "nginx_version": target.nginx_version,
        "backends": [b.split("://", 1)[-1].rstrip("/") for b in target.backends] or None,
        "transports": ns.transports,
    }
    return run_setup(target, preset, ns.backup_dir)


def cmd_tui(argv: Sequence[str]) -> int:
    ns = _parser_main().parse_args(argv)
    target = target_from_args(ns)
    from wsdoctor.app import run_tui

    return run_tui(None if target.is_empty() else target)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    handlers = {
        "check": cmd_check,
        "lab": cmd_lab,
        "demo": cmd_demo,
        "generate": cmd_generate,
        "apply": cmd_apply,
        "setup": cmd_setup,
    }
    try:
        if args and args[0] in handlers:
            return handlers[args[0]](args[1:])
        return cmd_tui(args)
    except UsageError as e:
        return _fail(str(e))
    except KeyboardInterrupt:
        print("wsdoctor: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # noqa: BLE001 - the contract: one line, never a traceback
        message = describe(e)
        if message is None:
            if os.environ.get("WSDOCTOR_DEBUG"):
                raise
            message = (
                f"unexpected {type(e).__name__}: {e} — this is a wsdoctor bug; "
                "re-run with WSDOCTOR_DEBUG=1 for the traceback and report it"
            )
        return _fail(message)


def _fail(message: str) -> int:
    # The message may quote what the user gave (a path, a URL): shown escaped, never driving the terminal.
    print(f"wsdoctor: {visible(message, keep_newlines=False)}", file=sys.stderr)
    return 2
