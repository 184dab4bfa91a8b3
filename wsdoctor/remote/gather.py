"""What wsdoctor gathers from the proxy host, as plain (blocking) functions over a Runner.

Why "the running nginx" and not "/etc/nginx/nginx.conf": hosts, containers and the lab start nginx with
their own ``-c``/``-p``; the config that matters is the one the master process loaded.  So the master is
found in the process table, and ``nginx -V``/``-T``/``-t`` are run with the same binary, ``-p``, ``-c``
and ``-g``.  Logs are located from that config (the level nearest the Socket.IO location wins), read
with ``tail -n N -- PATH`` and classified.  Every function returns facts plus the CommandResults that
are the evidence; none raises for a failing command (its CommandResult says why).  Each call runs in a
worker thread (see ``session.py``), several at once over the same SSH connection.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from wsdoctor.facts import CommandResult, LogEvent
from wsdoctor.remote.logs import AccessFormat, LogSource, classify_lines, format_advice
from wsdoctor.remote.runner import Runner, not_found
from wsdoctor.remote.text import sanitize

if TYPE_CHECKING:
    from wsdoctor.nginx.model import Config, Directive

COMMAND_TIMEOUT = 15.0
TAIL_LINES = 400
BACKEND_LOG_LINES = 300
DEFAULT_ERROR_LOG = "/var/log/nginx/error.log"
DEFAULT_ACCESS_LOG = "/var/log/nginx/access.log"
# A backend line is auth evidence when it is about credentials AND says something went wrong: "token via
# auth" on a successful connect is not evidence of failing authentication.
_AUTH_CONTEXT = re.compile(r"auth|jwt|token|credential|signature|bearer|unauthori[sz]ed|forbidden", re.I)
_AUTH_FAILURE = re.compile(
    r"fail|invalid|unauthori[sz]ed|denied|forbidden|expired|reject|refus|error|bad|missing|malformed|"
    r"not allowed|\b40[13]\b",
    re.I,
)
_ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?")
_BACKEND_HINT = re.compile(r"node|uvicorn|gunicorn|hypercorn|daphne|pm2|socket\.?io|python", re.I)
_NGINX_FLAGS = {"-c", "-p", "-g", "-e", "-s", "-t", "-T", "-q", "-v", "-V", "-h", "-?"}


def run_privileged(runner: Runner, argv: list[str], timeout: float = COMMAND_TIMEOUT) -> CommandResult:
    """Run as root: directly when we are root, else ``sudo -n`` first, plain as a fallback.

    When neither works the sudo result is returned: its error names the command that needs NOPASSWD.
    """
    if runner.is_root:
        return runner.run(argv, timeout)
    elevated = runner.run(argv, timeout, sudo=True)
    if elevated.error is None and elevated.exit_status == 0:
        return elevated
    plain = runner.run(argv, timeout)
    if plain.error is None and plain.exit_status == 0:
        return plain
    return elevated if elevated.error else plain


def run_readable(
    runner: Runner, argv: list[str], timeout: float = COMMAND_TIMEOUT
) -> tuple[CommandResult, bool]:
    """Run a read (tail, head) as ourselves; retry with ``sudo -n`` only on "Permission denied".

    Returns the result and whether sudo was needed (the live tail then uses sudo too).
    """
    plain = runner.run(argv, timeout)
    if runner.is_root or plain.exit_status == 0 or "permission denied" not in plain.stderr.lower():
        return plain, False
    elevated = runner.run(argv, timeout, sudo=True)
    return elevated, True


# --- the running nginx -----------------------------------------------------------------------------------


@dataclass
class NginxProcess:
    """The nginx master as started: its binary and the -p/-c/-g it was given (None: nginx's defaults)."""

    pid: int | None
    binary: str
    prefix: str | None = None
    conf: str | None = None
    globals: str | None = None
    command_line: str = ""

    def argv(self, *flags: str) -> list[str]:
        """``BINARY FLAGS -p PREFIX -c CONF -g GLOBALS`` — the same files the master loaded."""
        out = [self.binary, *flags]
        if self.prefix:
            out += ["-p", self.prefix]
        if self.conf:
            out += ["-c", self.conf]
        if self.globals:
            out += ["-g", self.globals]
        return out


def parse_master(command_line: str, pid: int | None = None) -> NginxProcess | None:
    """Read ``nginx: master process /usr/sbin/nginx -p DIR -c FILE -g daemon off;`` (the title nginx sets).

    The title joins the original argv with spaces, so a ``-g`` value runs until the next nginx flag.
    """
    marker = "master process"
    at = command_line.find(marker)
    if at < 0:
        return None
    rest = command_line[at + len(marker) :].strip()
    tokens = rest.split(" ")
    if not tokens or not tokens[0]:
        return None
    proc = NginxProcess(pid=pid, binary=tokens[0], command_line=command_line.strip())
    i = 1
    while i < len(tokens):
        tok = tokens[i]
        flag, inline = tok[:2], tok[2:]
        if flag in ("-c", "-p", "-g", "-e") and tok.startswith("-"):
            if inline:
                value_tokens = [inline]
                i += 1
            else:
                value_tokens = []
                i += 1
            if flag == "-g":
                while i < len(tokens) and tokens[i][:2] not in _NGINX_FLAGS:
                    value_tokens.append(tokens[i])
                    i += 1
            elif not value_tokens and i < len(tokens):
                value_tokens.append(tokens[i])
                i += 1
            value = " ".join(value_tokens)
            if flag == "-c":
                proc.conf = value
            elif flag == "-p":
                proc.prefix = value
            elif flag == "-g":
                proc.globals = value
            continue
        i += 1
    return proc


@dataclass
class NginxFound:
    process: NginxProcess | None  # None: no master running (commands then use nginx's defaults)
    candidates: list[NginxProcess] = field(default_factory=list)
    result: CommandResult | None = None  # the `ps` evidence
    note: str | None = None


def find_nginx(
    runner: Runner,
    *,
    conf: str | None = None,
    listen_port: int | None = None,
    ss: CommandResult | None = None,
    ps: CommandResult | None = None,
    timeout: float = COMMAND_TIMEOUT,
) -> NginxFound:
    """The nginx master to diagnose.  Several masters (a host running more than one nginx): the one
    started with ``conf`` (``--nginx-conf``), else the one listening on ``listen_port`` (from ``ss``),
    else the first, with a note naming the others."""
    result = ps if ps is not None else process_list(runner, timeout)
    masters: list[NginxProcess] = []
    for line in result.stdout.splitlines():
        pid_text, _, args = line.strip().partition(" ")
        if "nginx: master process" not in args or not pid_text.isdigit():
            continue
        proc = parse_master(args, int(pid_text))
        if proc is not None:
            masters.append(proc)
    found = NginxFound(process=None, candidates=masters, result=result)
    if not masters:
        found.note = f"no running nginx master on {runner.host}; using nginx's default config paths"
        if conf:
            found.process = NginxProcess(pid=None, binary=nginx_binary(runner, timeout), conf=conf)
        return found
    chosen: NginxProcess | None = None
    if conf:
        chosen = next((m for m in masters if m.conf and _same_path(m, conf)), None)
        if chosen is None:
            # --nginx-conf names a file no master loaded: test that file with the first master's binary.
            base = masters[0]
            found.process = NginxProcess(pid=None, binary=base.binary, conf=conf, prefix=base.prefix)
            found.note = (
                f"no running nginx was started with -c {conf}; reading that file with {base.binary} -T"
            )
            return found
    if chosen is None and listen_port is not None and ss is not None:
        pids = listening_pids(ss.stdout, listen_port)
        chosen = next((m for m in masters if m.pid in pids), None)
    if chosen is None:
        chosen = masters[0]
        if len(masters) > 1:
            others = ", ".join(str(m.pid) for m in masters[1:])
            found.note = (
                f"{len(masters)} nginx masters run on {runner.host}; diagnosing pid {chosen.pid} "
                f"(others: {others}); pass --nginx-conf to pick one"
            )
    if not chosen.binary.startswith("/") and chosen.pid is not None:
        exe = runner.run(["readlink", f"/proc/{chosen.pid}/exe"], timeout)
        if exe.exit_status == 0 and exe.stdout.strip().startswith("/"):
            chosen.binary = exe.stdout.strip()
    found.process = chosen
    return found


def process_list(runner: Runner, timeout: float = COMMAND_TIMEOUT) -> CommandResult:
    """``ps -eo pid=,args=`` (kept out of the evidence: other processes' arguments may hold secrets).

    Where ps lacks ``-o`` (busybox, minimal containers) the same lines are read from /proc by a fixed
    script (no data of ours in it).
    """
    result = runner.run(["ps", "-eo", "pid=,args="], timeout)
    if result.exit_status == 0 and result.stdout.strip():
        return result
    script = (
        'for d in /proc/[0-9]*; do c=$(tr "\\000" " " < "$d/cmdline" 2>/dev/null); '
        '[ -n "$c" ] && echo "${d#/proc/} $c"; done; true'
    )
    fallback = runner.run(["sh", "-c", script], timeout)
    return fallback if fallback.stdout.strip() else result


def _same_path(proc: NginxProcess, conf: str) -> bool:
    if proc.conf == conf:
        return True
    if proc.conf and proc.prefix and not proc.conf.startswith("/"):
        return proc.prefix.rstrip("/") + "/" + proc.conf == conf
    return False


def nginx_binary(runner: Runner, timeout: float) -> str:
    for candidate in ("nginx", "/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx"):
        probe = runner.run([candidate, "-v"], timeout)
        if probe.error is None:
            return candidate
    return "nginx"


_USERS = re.compile(r"pid=(\d+)")


def listening_pids(ss_output: str, port: int) -> set[int]:
    """Pids owning a listening socket on ``port`` in ``ss -ltnp`` output."""
    pids: set[int] = set()
    for line in ss_output.splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        local = parts[3]
        if local.rsplit(":", 1)[-1] == str(port):
            pids.update(int(p) for p in _USERS.findall(line))
    return pids


@dataclass
class NginxCommands:
    """``nginx -V``, ``nginx -T``, ``nginx -t`` of the running master (the dump is parsed by the engine)."""

    version: str | None  # "1.22.1"
    version_result: CommandResult
    dump: str | None  # the text of nginx -T (None when it failed)
    dump_result: CommandResult
    test_result: CommandResult
    compiled: dict[str, str] = field(default_factory=dict)  # --prefix, --error-log-path, --http-log-path


_CONFIGURE = re.compile(r"--(prefix|error-log-path|http-log-path|conf-path)=(\S+)")


def nginx_version(runner: Runner, proc: NginxProcess, timeout: float = COMMAND_TIMEOUT) -> CommandResult:
    """``nginx -V``: the version and the compiled-in defaults (prefix, log paths), on stderr."""
    return runner.run([proc.binary, "-V"], timeout)


def parse_nginx_v(result: CommandResult) -> tuple[str | None, dict[str, str]]:
    text = result.stderr + "\n" + result.stdout
    m = re.search(r"nginx/(\d+\.\d+\.\d+)", text)
    compiled = {k: v for k, v in _CONFIGURE.findall(text)}
    return (m.group(1) if m else None), compiled


def nginx_dump(runner: Runner, proc: NginxProcess, timeout: float = COMMAND_TIMEOUT) -> CommandResult:
    """``nginx -T`` with the master's -p/-c/-g: every file nginx loaded, as text (root needed for keys)."""
    return run_privileged(runner, proc.argv("-T"), timeout)


def nginx_test(runner: Runner, proc: NginxProcess, timeout: float = COMMAND_TIMEOUT) -> CommandResult:
    """``nginx -t`` with the master's -p/-c/-g (the syntax check reads it as ``facts.commands["nginx -t"]``)."""
    return run_privileged(runner, proc.argv("-t"), timeout)


def dump_text(result: CommandResult) -> str | None:
    """The dump part of ``nginx -T`` stdout (from the first ``# configuration file``), None if absent."""
    at = result.stdout.find("# configuration file ")
    if result.error or at < 0:
        return None
    return result.stdout[at:]


# --- host context: ports, backend processes, backend logs -------------------------------------------------


def listening_ports(runner: Runner, timeout: float = COMMAND_TIMEOUT) -> CommandResult:
    """``ss -ltnp``: which processes listen where (process names need root; ports do not)."""
    return run_privileged(runner, ["ss", "-ltnp"], timeout)


def backend_hints(runner: Runner, timeout: float = COMMAND_TIMEOUT) -> dict[str, CommandResult]:
    """``pm2 jlist`` and the running systemd units that look like Node/Python servers; missing tools are
    skipped quietly (most hosts have one or neither)."""
    out: dict[str, CommandResult] = {}
    pm2 = runner.run(["pm2", "jlist"], timeout)
    if not not_found(pm2):
        out["pm2 jlist"] = _summarize_pm2(pm2)
    units = runner.run(
        [
            "systemctl",
            "list-units",
            "--type=service",
            "--state=running",
            "--no-pager",
            "--no-legend",
            "--plain",
        ],
        timeout,
    )
    if not not_found(units) and units.exit_status == 0:
        kept = [line for line in units.stdout.splitlines() if _BACKEND_HINT.search(line)]
        units.stdout = "\n".join(kept) + ("\n" if kept else "")
        out["systemctl list-units"] = units
    return out


def _summarize_pm2(result: CommandResult) -> CommandResult:
    """pm2's JSON is huge (full environments, secrets included): keep name, status, pid, restarts only."""
    if result.exit_status != 0:
        return result
    try:
        start = result.stdout.find("[")
        apps = json.loads(result.stdout[start:]) if start >= 0 else []
    except ValueError:
        result.stdout = "(pm2 jlist output was not JSON)"
        return result
    lines = []
    for app in apps if isinstance(apps, list) else []:
        env = app.get("pm2_env", {}) if isinstance(app, dict) else {}
        lines.append(
            f"{app.get('name')}  status={env.get('status')}  pid={app.get('pid')}  restarts={env.get('restart_time')}"
        )
    result.stdout = "\n".join(lines) + ("\n" if lines else "")
    return result


def backend_log_argv(spec: str, lines: int = BACKEND_LOG_LINES) -> tuple[list[str], str]:
    """``--backend-log`` SPEC → the command reading its last lines, and a label for evidence."""
    if spec.startswith("pm2:"):
        name = spec[4:]
        return ["pm2", "logs", name, "--nostream", "--lines", str(lines)], f"pm2 logs {name}"
    if spec.startswith("journald:"):
        unit = spec[len("journald:") :]
        return [
            "journalctl",
            "-u",
            unit,
            "-n",
            str(lines),
            "--no-pager",
            "-o",
            "short-iso",
        ], f"journal of {unit}"
    if spec.startswith("file:"):
        spec = spec[5:]
    return ["tail", "-n", str(lines), "--", spec], spec


def backend_auth_logs(
    runner: Runner, spec: str, lines: int = BACKEND_LOG_LINES, timeout: float = COMMAND_TIMEOUT
) -> tuple[CommandResult, list[LogEvent]]:
    """The backend's last log lines about authentication failing (auth/jwt/token AND invalid/expired/…)."""
    argv, label = backend_log_argv(spec, lines)
    if argv[0] == "tail":
        result, _ = run_readable(runner, argv, timeout)
    elif argv[0] == "journalctl":
        result = run_privileged(runner, argv, timeout)
    else:
        result = runner.run(argv, timeout)
    events = []
    for line in result.stdout.splitlines():
        if _AUTH_CONTEXT.search(line) and _AUTH_FAILURE.search(line):
            text = sanitize(line)
            stamp = _ISO_TIME.search(text[:64])  # journalctl -o short-iso, pm2 and most loggers lead with it
            events.append(
                LogEvent(
                    source="backend",
                    file=label,
                    line_no=None,
                    text=text,
                    kind="backend-auth",
                    check="auth",
                    time=stamp.group(0) if stamp else None,
                )
            )
    return result, events


# --- log files from the config -------------------------------------------------------------------------------


def _level_lists(config: Config, block: Directive | None) -> list[list[Directive]]:
    """The directive lists from BLOCK outwards: location(s), server, http, main (BLOCK None: http, main)."""
    levels: list[list[Directive]] = []
    current = block if block is not None else config.http()
    while current is not None:
        levels.append(current.block or [])
        current = current.parent
    levels.append(config.root)
    return levels


def _resolve(path: str, prefix: str) -> str:
    if path.startswith("/"):
        return path
    return prefix.rstrip("/") + "/" + path


def log_formats(config: Config) -> dict[str, AccessFormat]:
    """Every ``log_format`` of ``http`` by name (``combined`` predefined, as in nginx)."""
    formats = {"combined": AccessFormat.build("combined")}
    http = config.http()
    for d in http.children("log_format") if http is not None else []:
        if not d.args:
            continue
        args = d.args[1:]
        if args and args[0].startswith("escape="):
            args = args[1:]
        formats[d.args[0]] = AccessFormat.build(d.args[0], "".join(args))
    return formats


@dataclass
class LogPlan:
    """The logs that apply to one location, and what could not be followed (with why)."""

    sources: list[LogSource] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def log_sources(
    config: Config,
    location: Directive | None,
    *,
    prefix: str | None = None,
    compiled: dict[str, str] | None = None,
    read_timeout: float | None = None,
) -> LogPlan:
    """The error and access logs nginx writes for requests in LOCATION (None: the server-less defaults).

    The nearest level that has ``access_log`` (resp. ``error_log``) gives all of its entries, like nginx's
    own inheritance; ``off``, ``syslog:``, ``stderr`` and paths with variables cannot be tailed and are
    reported in ``notes``.  Relative paths are resolved against the prefix (``-p`` or the compiled one).
    """
    compiled = compiled or {}
    base = prefix or compiled.get("prefix") or "/usr/share/nginx"
    plan = LogPlan()
    levels = _level_lists(config, location)
    formats = log_formats(config)
    path_prefix = None
    if location is not None and location.args:
        last = location.args[-1]
        if last.startswith("/") and location.args[0] not in ("~", "~*"):
            path_prefix = last

    error_directives: list[Directive] = next(
        (found for level in levels if (found := [d for d in level if d.name == "error_log"])), []
    )
    if error_directives:
        entries = [
            (d.args[0] if d.args else "", d.args[1] if len(d.args) > 1 else "error", d)
            for d in error_directives
        ]
    else:
        entries = [(compiled.get("error-log-path") or DEFAULT_ERROR_LOG, "error", None)]
    for path, level, directive in entries:
        where = directive.where if directive is not None else None
        if _untailable(path, plan, "error_log", where):
            continue
        plan.sources.append(LogSource("error", _resolve(path, base), where=where))
        if level in ("warn", "error", "crit", "alert", "emerg"):
            plan.notes.append(
                f"error_log {path} logs at level '{level}': nginx writes idle-tunnel timeouts "
                "(… while proxying upgraded connection) at [info], so they are not in it; "
                "lower it to info while investigating drops."
            )

    access_directives: list[Directive] = next(
        (found for level in levels if (found := [d for d in level if d.name == "access_log"])), []
    )
    if access_directives:
        access = [
            (d.args[0] if d.args else "", d.args[1] if len(d.args) > 1 else "combined", d)
            for d in access_directives
        ]
    else:
        access = [(compiled.get("http-log-path") or DEFAULT_ACCESS_LOG, "combined", None)]
    for path, fmt_name, directive in access:
        where = directive.where if directive is not None else None
        if path == "off":
            plan.notes.append(f"access_log is off ({where}): no access-log evidence for this location.")
            continue
        if fmt_name.startswith(("buffer=", "gzip", "flush=", "if=")):
            fmt_name = "combined"
        if _untailable(path, plan, "access_log", where):
            continue
        fmt = formats.get(fmt_name)
        if fmt is None:
            plan.notes.append(
                f"access_log {path} uses log_format '{fmt_name}', which is not defined; read as combined."
            )
            fmt = formats["combined"]
        advice = format_advice(fmt)
        if advice and advice not in plan.notes:
            plan.notes.append(advice)
        plan.sources.append(
            LogSource(
                "access",
                _resolve(path, base),
                format=fmt,
                read_timeout=read_timeout,
                path_prefix=path_prefix,
                where=where,
            )
        )
    return plan


def _untailable(path: str, plan: LogPlan, name: str, where: str | None) -> bool:
    at = f" ({where})" if where else ""
    if not path:
        return True
    if path.startswith(("syslog:", "memory:")) or path in ("stderr", "/dev/stderr", "/dev/stdout"):
        plan.notes.append(f"{name} {path}{at} is not a file: read it where it goes (syslog, container logs).")
        return True
    if "$" in path:
        plan.notes.append(f"{name} {path}{at} contains variables: wsdoctor cannot tell which file to read.")
        return True
    return False


def tail_log(
    runner: Runner, source: LogSource, lines: int = TAIL_LINES, timeout: float = COMMAND_TIMEOUT
) -> tuple[CommandResult, list[LogEvent], bool]:
    """The last LINES lines of one log (``tail -n N -- PATH``), classified; and whether sudo was needed."""
    result, sudo = run_readable(runner, ["tail", "-n", str(lines), "--", source.path], timeout)
    events = classify_lines(source, result.stdout.splitlines()) if result.exit_status == 0 else []
    return result, events, sudo
