"""Which log files serve a location, from the config: the ``error_log``/``access_log`` nearest to it (with
nginx's inheritance), resolved against the running master's prefix, and how to read their last lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from wsdoctor.facts import CommandResult, LogEvent
from wsdoctor.remote.host import COMMAND_TIMEOUT, read_last_lines
from wsdoctor.remote.logs import AccessFormat, LogSource, classify_lines, format_advice
from wsdoctor.remote.runner import Runner

if TYPE_CHECKING:
    from wsdoctor.nginx.model import Config, Directive


TAIL_LINES = 400
DEFAULT_ERROR_LOG = "/var/log/nginx/error.log"
DEFAULT_ACCESS_LOG = "/var/log/nginx/access.log"


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
    """The last LINES lines of one log, classified; and whether sudo was needed."""
    result, sudo = read_last_lines(runner, source.path, lines, timeout)
    events = classify_lines(source, result.stdout.splitlines()) if result.exit_status == 0 else []
    return result, events, sudo
