"""The running nginx an apply changes: test its config, reload it, and see that the reload took.

Everything uses the running master's own binary and ``-p``/``-c``/``-g`` (``nginx -t`` with other paths would
test another config). Reload is ``systemctl reload UNIT`` when systemd manages the master (its cgroup names
the unit: systemd would otherwise lose track of a master it did not reload), else ``nginx -s reload`` with
the master's flags. ``-s reload`` only sends a signal: the master then reads the config and starts new
workers, or logs ``[emerg]`` and keeps the old ones. So a reload counts as done when a worker the master did
not have before appears, and as failed when none does within the window or the error log gains an
``[emerg]``/``[alert]`` line.
"""

from __future__ import annotations

import re
import shlex
import time
from dataclasses import dataclass, field

from wsdoctor.apply.hostfs import Host, why
from wsdoctor.facts import CommandResult
from wsdoctor.nginx.load import split_dump
from wsdoctor.nginx.model import Config
from wsdoctor.remote import host as h
from wsdoctor.remote.logplan import DEFAULT_ERROR_LOG
from wsdoctor.remote.text import sanitize

RELOAD_WINDOW = 10.0  # seconds for new workers to appear after a reload
POLL = 0.1

_PS = (
    "ps -ww -eo pid=,ppid=,args= 2>/dev/null && exit 0; "
    'for d in /proc/[0-9]*; do s=$(sed -n "s/.*) [A-Za-z] \\([0-9]*\\) .*/\\1/p" "$d/stat" 2>/dev/null); '
    'c=$(tr "\\000" " " < "$d/cmdline" 2>/dev/null); [ -n "$c" ] && echo "${d#/proc/} $s $c"; done; true'
)
# The process table with whole command lines: without -ww, ps cuts them at the width of a terminal it may find
# (a local run under a terminal), and the master's -c would be cut off. /proc where ps lacks -o (busybox).
_PS_WIDE = (
    "ps -ww -eo pid=,args= 2>/dev/null && exit 0; "
    'for d in /proc/[0-9]*; do c=$(tr "\\000" " " < "$d/cmdline" 2>/dev/null); '
    '[ -n "$c" ] && echo "${d#/proc/} $c"; done; true'
)
_UNIT = re.compile(r"/([A-Za-z0-9@_.\\-]+\.service)\s*$")
_BAD = re.compile(r"\[(emerg|alert)\]")


class NginxError(RuntimeError):
    """No running nginx to change; one sentence."""


@dataclass
class Nginx:
    host: Host
    process: h.NginxProcess
    version: str | None = None
    compiled: dict[str, str] = field(default_factory=dict)
    unit: str | None = None  # the systemd unit that runs the master, if any

    # -- finding it ----------------------------------------------------------------------------------

    @classmethod
    def find(cls, host: Host, conf: str | None = None, listen_port: int | None = None) -> Nginx:
        """The master started with CONF, else the one listening on LISTEN_PORT, else the only one; a change
        is never made to a master picked by chance among several (NginxError says how to choose)."""
        ps = process_table(host)
        masters = h.nginx_masters(ps)
        ss = h.listening_ports(host.runner) if len(masters) > 1 and conf is None and listen_port else None
        found = h.find_nginx(host.runner, conf=conf, listen_port=listen_port, ss=ss, ps=ps)
        proc = found.process
        if proc is None or proc.pid is None:
            raise NginxError(
                f"no running nginx master on {host.name}{f' started with -c {conf}' if conf else ''}: apply "
                "changes the config a running nginx serves and reloads it; start nginx first"
            )
        if len(masters) > 1 and not conf:
            chosen_by_port = ss is not None and proc.pid in h.listening_pids(ss.stdout, listen_port or 0)
            if not chosen_by_port:
                confs = ", ".join(m.conf or "(default)" for m in masters[:5])
                raise NginxError(
                    f"{len(masters)} nginx masters run on {host.name} (-c {confs}); pass --nginx-conf with "
                    "the config of the one to change"
                )
        version, compiled = h.parse_nginx_v(h.nginx_version(host.runner, proc))
        nginx = cls(host, proc, version, compiled)
        cgroup = host.run(["cat", f"/proc/{proc.pid}/cgroup"], 5.0)
        for line in cgroup.stdout.splitlines() if cgroup.exit_status == 0 else []:
            m = _UNIT.search(line)
            if m and "nginx" in m.group(1):
                nginx.unit = m.group(1)
        return nginx

    def describe(self) -> dict[str, object]:
        p = self.process
        return {"pid": p.pid, "binary": p.binary, "prefix": p.prefix, "conf": p.conf, "globals": p.globals}

    @property
    def conf_path(self) -> str:
        p = self.process
        conf = p.conf or self.compiled.get("conf-path") or "/etc/nginx/nginx.conf"
        if not conf.startswith("/"):
            conf = (p.prefix or self.compiled.get("prefix") or "/etc/nginx/").rstrip("/") + "/" + conf
        return conf

    def command(self, *flags: str) -> str:
        return shlex.join(self.process.argv(*flags))

    # -- commands ------------------------------------------------------------------------------------

    def test(self) -> CommandResult:
        return self.host.run(self.process.argv("-t"), 30.0)

    def dump(self) -> CommandResult:
        return self.host.run(self.process.argv("-T"), 30.0)

    def dump_files(self) -> dict[str, str] | None:
        """The files ``nginx -T`` prints now ({path: text}), None when it fails."""
        result = self.dump()
        text = h.dump_text(result)
        if result.exit_status != 0 or text is None:
            return None
        return split_dump(text)[0]

    def reload_argv(self) -> list[str]:
        if self.unit is not None:
            return ["systemctl", "reload", self.unit]
        return self.process.argv("-s", "reload")

    def reload(self) -> CommandResult:
        return self.host.run(self.reload_argv(), 30.0)

    def workers(self) -> set[int]:
        """The master's live workers (not those shutting down after a reload)."""
        result = self.host.sh(_PS)
        out: set[int] = set()
        for line in result.stdout.splitlines():
            parts = line.split(None, 2)
            if len(parts) < 3 or not parts[0].isdigit() or not parts[1].isdigit():
                continue
            if int(parts[1]) == self.process.pid and "shutting down" not in parts[2]:
                out.add(int(parts[0]))
        return out

    def wait_new_workers(self, old: set[int], window: float = RELOAD_WINDOW) -> set[int] | None:
        """The workers once the master runs new ones and none of OLD still accepts connections; None if that
        does not happen within WINDOW (the master kept its old workers: it did not load the config)."""
        deadline = time.monotonic() + window
        while True:
            now = self.workers()
            if now - old and not now & old:
                return now
            if time.monotonic() >= deadline:
                return None
            time.sleep(POLL)

    # -- the error log -------------------------------------------------------------------------------

    def error_logs(self, config: Config | None) -> list[str]:
        """The main-level error_log files (where the master writes reload errors), resolved on the host."""
        prefix = self.process.prefix or self.compiled.get("prefix") or "/usr/share/nginx/"
        paths: list[str] = []
        for d in config.root if config is not None else []:
            if d.name == "error_log" and d.args:
                p = d.args[0]
                if p.startswith(("syslog:", "memory:", "stderr")) or "$" in p or p == "/dev/null":
                    continue
                paths.append(p if p.startswith("/") else prefix.rstrip("/") + "/" + p)
        if not paths:
            p = self.compiled.get("error-log-path") or DEFAULT_ERROR_LOG
            paths.append(p if p.startswith("/") else prefix.rstrip("/") + "/" + p)
        return list(dict.fromkeys(paths))

    def log_marks(self, paths: list[str]) -> dict[str, int]:
        return {p: self.host.size(p) for p in paths}

    def new_bad_lines(self, marks: dict[str, int]) -> list[str]:
        """``[emerg]``/``[alert]`` lines written to the error logs since MARKS (their sizes then)."""
        bad: list[str] = []
        for path, offset in marks.items():
            size = self.host.size(path)
            text = self.host.text_from(path, offset if size >= offset else 0)
            bad += [sanitize(line) for line in text.splitlines() if _BAD.search(line)]
        return bad


def process_table(host: Host) -> CommandResult:
    """``PID ARGS`` lines of every process, command lines whole."""
    return host.runner.run(["sh", "-c", _PS_WIDE], 15.0)


def first_problem(result: CommandResult) -> str:
    """The line of ``nginx -t`` output that says what is wrong (the [emerg] one), else why it failed."""
    for line in (result.stderr + "\n" + result.stdout).splitlines():
        if "[emerg]" in line or "[alert]" in line or "[crit]" in line:
            return line.strip()
    return why(result)
