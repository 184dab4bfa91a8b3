"""The proxy host's own facts, as plain (blocking) functions over a Runner: the running nginx, its
commands, the listening ports, the backend processes and their logs.

Why "the running nginx" and not "/etc/nginx/nginx.conf": hosts, containers and the lab start nginx with
their own ``-c``/``-p``; the config that matters is the one the master process loaded.  So the master is
found in the process table, and ``nginx -V``/``-T``/``-t`` are run with the same binary, ``-p``, ``-c``
and ``-g``.  Every function returns facts plus the CommandResults that are the evidence; none raises for a
failing command (its CommandResult says why).  The gatherers call them in worker threads, several at once
over the same SSH connection.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from wsdoctor.facts import CommandResult, LogEvent
from wsdoctor.logtime import Clock, parse_clock
from wsdoctor.remote.runner import Output, Pending, Runner, finish, not_found
from wsdoctor.remote.text import sanitize

COMMAND_TIMEOUT = 15.0
BACKEND_LOG_LINES = 300
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


def submit_privileged(runner: Runner, argv: list[str], timeout: float = COMMAND_TIMEOUT) -> Pending:
    """:func:`run_privileged`, started now: the first attempt (plain as root, else ``sudo -n``) is sent at
    once, in order with the caller's other submissions; a fallback runs when the result is asked for."""
    if runner.is_root:
        return runner.submit(argv, timeout)
    elevated = runner.submit(argv, timeout, sudo=True)

    def settle() -> CommandResult:
        first = elevated.result()
        if first.error is None and first.exit_status == 0:
            return first
        plain = runner.run(argv, timeout)
        if plain.error is None and plain.exit_status == 0:
            return plain
        return first if first.error else plain

    return Pending(settle)


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
    masters = nginx_masters(result)
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


def nginx_masters(ps: CommandResult) -> list[NginxProcess]:
    """Every nginx master in ``ps -eo pid=,args=`` output, with the -p/-c/-g it was started with."""
    masters: list[NginxProcess] = []
    for line in ps.stdout.splitlines():
        pid_text, _, args = line.strip().partition(" ")
        if "nginx: master process" not in args or not pid_text.isdigit():
            continue
        proc = parse_master(args, int(pid_text))
        if proc is not None:
            masters.append(proc)
    return masters


# ps, with a fallback to /proc where ps lacks -o (busybox, minimal containers), and the host's clock first:
# one fixed script (no data of ours in it), so one SSH session and one login shell instead of two.
_PS_AND_CLOCK = (
    'date "+wsdoctor-clock %s %z"; ps -eo pid=,args= 2>/dev/null && exit 0; '
    'for d in /proc/[0-9]*; do c=$(tr "\\000" " " < "$d/cmdline" 2>/dev/null); '
    '[ -n "$c" ] && echo "${d#/proc/} $c"; done; true'
)


PS_ARGV = ["sh", "-c", _PS_AND_CLOCK]
SS_ARGV = ["ss", "-ltnp"]


def processes_and_clock(runner: Runner, timeout: float = COMMAND_TIMEOUT) -> tuple[CommandResult, Clock]:
    """``ps -eo pid=,args=`` (kept out of the evidence: other processes' arguments may hold secrets) and
    the host's clock (``date +%s %z``), which says which log lines this run caused."""
    before = time.time()
    result = runner.run(PS_ARGV, timeout)
    return split_clock(result, before, time.time())


def split_clock(result: CommandResult, before: float, after: float) -> tuple[CommandResult, Clock]:
    """The process list and the host's clock from the output of PS_ARGV, run between BEFORE and AFTER
    (our clock)."""
    lines = result.stdout.splitlines()
    clock = Clock(0.0, None)
    if lines and lines[0].startswith("wsdoctor-clock "):
        clock = parse_clock(lines[0][len("wsdoctor-clock ") :], before, after)
        result.stdout = "".join(line + "\n" for line in lines[1:])
    return result, clock


def process_list(runner: Runner, timeout: float = COMMAND_TIMEOUT) -> CommandResult:
    """The process table as ``PID ARGS`` lines (see :func:`processes_and_clock`)."""
    return processes_and_clock(runner, timeout)[0]


def _same_path(proc: NginxProcess, conf: str) -> bool:
    if proc.conf == conf:
        return True
    if proc.conf and proc.prefix and not proc.conf.startswith("/"):
        return proc.prefix.rstrip("/") + "/" + proc.conf == conf
    return False


_BINARIES = ("nginx", "/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")


def nginx_binary(runner: Runner, timeout: float) -> str:
    """The nginx binary when no master runs: the first of the usual places that exists, in ONE command
    (each command over SSH costs a session and a login shell; a fixed script, no data of ours in it)."""
    script = 'for c in "$@"; do command -v "$c" && exit 0; done; exit 1'
    found = runner.run(["sh", "-c", script, "sh", *_BINARIES], timeout)
    path = found.stdout.strip().splitlines()
    return path[0] if found.exit_status == 0 and path else "nginx"


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


# --- the discovery, sent as one batch -----------------------------------------------------------------

# The process table into $t: `ps`, or /proc where ps lacks -o (busybox, minimal containers).
_TABLE = (
    't=$(ps -eo pid=,args= 2>/dev/null) || t=$(for d in /proc/[0-9]*; do '
    'c=$(tr "\\000" " " < "$d/cmdline" 2>/dev/null); [ -n "$c" ] && echo "${d#/proc/} $c"; done); '
)
# From the table in $t, pick the nginx master as find_nginx does without --nginx-conf — the only one; of
# several, the first one listening on the client's port ($3, via `ss -ltnp`), else the first — and run
# `nginx FLAG` ($1) with the binary, -p, -c and -g it was started with, read as parse_master reads them
# ($2 "sudo": through `sudo -n`).  The argv used is printed first (NUL-separated), so the caller uses the
# output only when it is the very command it chose itself.  No master: nothing runs.  The title is matched
# through "maste[r]", so this script's own line in the process table never looks like a master.
_GUESS = (
    'f=$1; s=$2; o=${3-}; L=" "; set -f; '
    '[ -n "$o" ] && L=" $(ss -ltnp 2>/dev/null | while read -r x y z w r; do case $w in *:"$o") '
    'while case $r in *pid=*) true;; *) false;; esac; do r=${r#*pid=}; printf "%s " "${r%%[!0-9]*}"; '
    'done;; esac; done)"; '
    'printf "%s\\n" "$t" | { c=0; t=; q=; k=; '
    'while IFS=" " read -r n a; do case $a in *"nginx: maste"[r]" process"*) c=$((c+1)); '
    '[ "$c" = 1 ] && { q=$n; t=${a#*"maste"[r]" process"}; }; '
    'case $L in *" $n "*) [ -z "$k" ] && { k=1; q=$n; t=${a#*"maste"[r]" process"}; };; esac;; '
    'esac; done; '
    '[ "$c" -gt 0 ] || { echo wsdoctor-nginx-none; exit 0; }; IFS=" "; set -- $t; b=$1; shift; '
    'P=; C=; G=; while [ $# -gt 0 ]; do case $1 in '
    '-c) C=${2-}; shift; [ $# -gt 0 ] && shift;; -c*) C=${1#-c}; shift;; '
    '-p) P=${2-}; shift; [ $# -gt 0 ] && shift;; -p*) P=${1#-p}; shift;; '
    '-e) shift; [ $# -gt 0 ] && shift;; -e*) shift;; '
    '-g*) G=${1#-g}; shift; while [ $# -gt 0 ]; do case $1 in -[cpgestTqvVh?]*) break;; esac; '
    'G=${G:+$G }$1; shift; done;; *) shift;; esac; done; '
    'case $b in /*) ;; *) e=$(readlink "/proc/$q/exe" 2>/dev/null) && case $e in /*) b=$e;; esac;; esac; '
    'set -- "$b" "$f"; if [ "$f" != -V ]; then [ -n "$P" ] && set -- "$@" -p "$P"; '
    '[ -n "$C" ] && set -- "$@" -c "$C"; [ -n "$G" ] && set -- "$@" -g "$G"; fi; '
    "printf wsdoctor-nginx; printf '\\000%s' \"$@\"; printf '\\n'; "
    '[ "$s" = sudo ] && exec sudo -n -- "$@"; exec "$@"; }'
)
_SPECULATE = _TABLE + _GUESS
# The first request of a run: the host's clock and the process table (what PS_ARGV prints), then, after a
# NUL-marked line, the guessed `nginx -T` from that same table: one scan of the processes, one round trip.
_DISCOVER = 'date "+wsdoctor-clock %s %z"; ' + _TABLE + '[ -n "$t" ] && printf "%s\\n" "$t"; ' + (
    "printf '\\000wsdoctor-guess\\n'; " + _GUESS
)
_GUESS_MARK = b"\0wsdoctor-guess\n"
_SPECULATED = b"wsdoctor-nginx"


@dataclass
class Discovery:
    """The first batch of a run's commands, sent together the moment the connection is up (through one
    remote shell over SSH): the process table with the host's clock, ``ss -ltnp``, and — when the host
    runs exactly one nginx master and no ``--nginx-conf`` picks another — that master's ``nginx -T``,
    ``-V`` and ``-t`` guessed in the same batch, so the config does not wait for a round trip to choose
    the master.  A guess is used only when it ran the very command :func:`find_nginx` chooses."""

    runner: Runner
    before: float  # when it was sent (our clock): the host's clock is read between this and the answer
    ps: Pending
    ss: Pending
    guesses: dict[str, Callable[[], Output]] = field(default_factory=dict)  # flag -> raw output
    started: float = field(default_factory=time.monotonic)

    def nginx(self, proc: NginxProcess, flag: str, timeout: float = COMMAND_TIMEOUT) -> Pending:
        """``nginx FLAG`` of PROC (-T and -t as root, -V as ourselves): the guess when it ran exactly that,
        else the command itself, sent now."""
        argv = [proc.binary, "-V"] if flag == "-V" else proc.argv(flag)
        privileged = flag != "-V"
        guess = self.guesses.get(flag)

        def send() -> Pending:
            if privileged:
                return submit_privileged(self.runner, argv, timeout)
            return self.runner.submit(argv, timeout)

        if guess is None:
            return send()
        sudo = privileged and not self.runner.is_root

        def settle() -> CommandResult:
            out = guess()
            head, _, rest = out.stdout.partition(b"\n")
            if not head.startswith(_SPECULATED) or head.split(b"\0")[1:] != [a.encode() for a in argv]:
                return send().result()  # another master, or none: the command itself
            result = finish(argv, self.runner.host, dataclasses.replace(out, stdout=rest), sudo=sudo,
                            user=self.runner.user)  # fmt: skip
            if sudo and (result.error is not None or result.exit_status != 0):
                plain = self.runner.run(argv, timeout)  # as run_privileged: plain when sudo would not
                if plain.error is None and plain.exit_status == 0:
                    return plain
                return result if result.error else plain
            return result

        return Pending(settle)


def start_discovery(
    runner: Runner, *, guess: bool, listen_port: int | None = None, timeout: float = COMMAND_TIMEOUT
) -> Discovery:
    """Send the discovery batch now (see :class:`Discovery`); GUESS: also the nginx commands of the master
    (not when ``--nginx-conf`` names the config to read); LISTEN_PORT: the client's port, which picks the
    master among several."""
    before = time.time()
    raw = getattr(runner, "submit_raw", None)
    if not guess or raw is None:
        ps = runner.submit(PS_ARGV, timeout)
        return Discovery(runner, before, ps, submit_privileged(runner, SS_ARGV, timeout))
    sudo = "" if runner.is_root else "sudo"
    port = str(listen_port or "")
    first = raw(["sh", "-c", _DISCOVER, "wsdoctor", "-T", sudo, port], timeout, phase="nginx -T")

    def table() -> CommandResult:
        out = first()
        head, mark, _ = out.stdout.partition(_GUESS_MARK)
        if not mark:  # it could not run (the error is the command's own): ask for the table alone
            return runner.run(PS_ARGV, timeout)
        return finish(PS_ARGV, runner.host, Output(0, head, b""), sudo=False, user=runner.user)

    def dump() -> Output:
        out = first()
        _, mark, rest = out.stdout.partition(_GUESS_MARK)
        return dataclasses.replace(out, stdout=rest) if mark else dataclasses.replace(out, stdout=b"")

    found = Discovery(runner, before, Pending(table), submit_privileged(runner, SS_ARGV, timeout))
    found.guesses["-T"] = dump
    for flag, extra in (("-V", ""), ("-t", sudo)):
        found.guesses[flag] = raw(["sh", "-c", _SPECULATE, "wsdoctor", flag, extra, port], timeout)
    return found


def dump_text(result: CommandResult) -> str | None:
    """The dump part of ``nginx -T`` stdout (from the first ``# configuration file``), None if absent."""
    at = result.stdout.find("# configuration file ")
    if result.error or at < 0:
        return None
    return result.stdout[at:]


# --- host context: ports, backend processes, backend logs -------------------------------------------------


def listening_ports(runner: Runner, timeout: float = COMMAND_TIMEOUT) -> CommandResult:
    """``ss -ltnp``: which processes listen where (process names need root; ports do not)."""
    return run_privileged(runner, SS_ARGV, timeout)


def backend_hints(runner: Runner, timeout: float = COMMAND_TIMEOUT) -> dict[str, CommandResult]:
    """``pm2 jlist`` and the running systemd units that look like Node/Python servers; missing tools are
    skipped quietly (most hosts have one or neither).  The session runs the two halves concurrently."""
    return {**pm2_hint(runner, timeout), **units_hint(runner, timeout)}


def pm2_hint(runner: Runner, timeout: float = COMMAND_TIMEOUT) -> dict[str, CommandResult]:
    """``pm2 jlist``, summarized (name, status, pid, restarts); nothing when pm2 is not installed."""
    pm2 = runner.run(["pm2", "jlist"], timeout)
    return {} if not_found(pm2) else {"pm2 jlist": _summarize_pm2(pm2)}


def units_hint(runner: Runner, timeout: float = COMMAND_TIMEOUT) -> dict[str, CommandResult]:
    """The running systemd units that look like Node/Python servers; nothing without systemd."""
    out: dict[str, CommandResult] = {}
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
        result, _ = read_last_lines(runner, argv[-1], lines, timeout)
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


def backend_log_problem(spec: str, result: CommandResult, pm2_apps: list[str] | None = None) -> str | None:
    """Why ``--backend-log SPEC`` gave nothing to read, as one sentence (None when it was read).

    A log that cannot be read must be said: without it the auth check silently loses its best witness.
    ``pm2 logs NAME --nostream`` exits 0 with only its "[TAILING]" header for an app pm2 does not run, and
    ``journalctl -u UNIT`` prints "-- No entries --", so those are recognised by their output.
    """
    argv, label = backend_log_argv(spec, 1)
    where = "this machine" if result.host in ("", "local") else result.host
    if result.error:
        why = result.error.rstrip(".")
        return f"the backend log {spec} could not be read on {where}: {why}; check --backend-log."
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    if argv[0] == "pm2":
        name = spec[4:]
        if pm2_apps is not None and name not in pm2_apps:
            running = ", ".join(pm2_apps) if pm2_apps else "none"
            return f"pm2 on {where} runs no app named {name} (apps: {running}); check --backend-log pm2:NAME."
        if result.exit_status != 0 or not [
            line for line in lines if not line.lstrip().startswith("[TAILING]")
        ]:
            why = last_line(result.stderr) or "no log lines"
            return f"pm2 shows no log lines for {name} on {where} ({why}); check the app name with `pm2 ls`."
        return None
    if argv[0] == "journalctl":
        if result.exit_status != 0:
            return (
                f"the journal of {label[len('journal of ') :]} could not be read on {where} "
                f"({last_line(result.stderr) or f'exit status {result.exit_status}'}); check --backend-log."
            )
        if not lines or all(line.startswith("-- No entries --") for line in lines):
            return f"journald has no entries for unit {spec[len('journald:') :]} on {where}; check the unit name."
        return None
    if result.exit_status != 0:
        why = last_line(result.stderr) or f"exit status {result.exit_status}"
        if why.startswith("tail: ") or label in why:  # "tail: cannot open 'x' for reading: No such file …"
            why = why.rsplit(": ", 1)[-1]
        return f"the backend log {label} cannot be read on {where} ({why}); check --backend-log."
    if not lines:
        return f"the backend log {label} on {where} is empty; check --backend-log."
    return None


def pm2_apps(hints: dict[str, CommandResult]) -> list[str] | None:
    """The app names in the summarized ``pm2 jlist`` (None when pm2 was not asked or failed)."""
    result = hints.get("pm2 jlist")
    if result is None or result.exit_status != 0 or result.error:
        return None
    return [line.split("  ", 1)[0] for line in result.stdout.splitlines() if line.strip()]


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


_LOCAL_ADDRESS = re.compile(r"^(?:LISTEN|UNCONN|ESTAB)\s+\d+\s+\d+\s+(\S+)")


def focus_listening(
    result: CommandResult, *, pids: set[int], ports: dict[int, str], expected: dict[int, str] | None = None
) -> CommandResult:
    """``ss -ltnp`` cut to what the diagnosis is about: nginx's sockets (by pid) and the given ports.

    A busy proxy host listens on dozens of ports; evidence for "is the backend up" is the few lines of
    nginx and of the upstream's servers.  ``ports`` maps port → what it is ("nginx", "upstream chat_ws");
    ``expected`` names loopback servers that should listen here: a missing one is said in so many words.
    What was left out is counted in a last line, so the cut is visible.
    """
    if result.exit_status != 0 or not result.stdout.strip() or not (pids or ports):
        return result
    lines = result.stdout.splitlines()
    head = [lines[0]] if lines and lines[0].split()[:1] in (["State"], ["Netid"]) else []
    kept: list[str] = []
    listening: set[int] = set()
    other = 0
    for line in lines[len(head) :]:
        m = _LOCAL_ADDRESS.match(line.strip())
        port_text = m.group(1).rsplit(":", 1)[-1] if m else ""
        port = int(port_text) if port_text.isdigit() else None
        if port is not None:
            listening.add(port)
        owners = {int(p) for p in _USERS.findall(line)}
        if (port is not None and port in ports) or owners & pids:
            kept.append(line)
        elif line.strip():
            other += 1
    footer: list[str] = []
    missing = sorted(p for p in (expected or {}) if p not in listening)
    if missing:
        footer.append(
            "(nothing listens on port "
            + ", ".join(f"{p} ({(expected or {})[p]})" for p in missing)
            + " on this host)"
        )
    if other:
        what = sorted(set(ports.values()) | ({"nginx"} if pids else set()))
        footer.append(
            f"({other} other listening socket{'s' if other != 1 else ''} left out: not {' or '.join(what)})"
        )
    return dataclasses.replace(result, stdout="\n".join(head + kept + footer) + "\n")


def read_last_lines(
    runner: Runner, path: str, lines: int, timeout: float = COMMAND_TIMEOUT
) -> tuple[CommandResult, bool]:
    """The last LINES lines of PATH, and whether sudo was needed.

    Read without starting a process where the runner can (SFTP over SSH: no session, no login shell, and
    a shell's rc files can cost more than the read); else, or when that read is refused, ``tail -n N``.
    """
    direct = runner.read_tail(path, lines, timeout)
    if direct is not None:
        return direct, False
    return run_readable(runner, ["tail", "-n", str(lines), "--", path], timeout)
