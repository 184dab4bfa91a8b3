"""nginx logs as evidence: classify error-log and access-log lines into :class:`LogEvent`s for the checks.

Why a module of its own: the log line is often the fastest proof during an incident (``connect() failed
(111…)`` says "backend down" before any probe finishes), but only if it is read right.  Error-log lines
are matched against the messages nginx really writes (KNOWLEDGE.md §2), anchored at the start of the
message so a request URI that happens to contain the words does not count.  Access-log lines are parsed
with the ``log_format`` the config actually declares (default ``combined``), by building a regex from its
variables, never with a fixed pattern.  Large files are scanned in C (one compiled regex over an mmap,
counting by named group), so a million-line error log is summarized about as fast as ``grep -c``.
This module stays light (no paramiko): the bench and the TUI import it directly.
"""

from __future__ import annotations

import json
import mmap
import os
import re
import threading
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import TYPE_CHECKING

from wsdoctor.facts import LogEvent
from wsdoctor.logkinds import KINDS
from wsdoctor.remote.text import sanitize

if TYPE_CHECKING:
    from wsdoctor.remote.runner import LineStream, Runner

__all__ = [
    "COMBINED",
    "AccessFormat",
    "ErrorScan",
    "LogFollower",
    "LogSource",
    "classify_access_line",
    "classify_error_line",
    "classify_lines",
    "format_advice",
    "grep_pattern",
    "sanitize",
    "scan_error_log",
]

# --- error log -------------------------------------------------------------------------------------

# The messages nginx writes (KNOWLEDGE.md §2), matched right after "[level] PID#TID: [*CID ]".  One regex,
# factored by first word so each line costs about one attempt; every named group is one classification.
# Order inside a branch matters: refused before other connect() errors, timeouts by phase before the
# generic one.  Only syntax grep -E also understands is used, so the bench compares like with like.
_HEAD = r"\] [0-9]+#[0-9]+: (?:\*[0-9]+ )?"
_MESSAGE = (
    r"connect\(\) (?:to [^ \n]+ )?failed \((?:(?P<connect_refused>111: )|(?P<connect_failed>[0-9]+: ))"
    r"|no (?:(?P<no_live_upstreams>live upstreams)|(?P<no_resolver>resolver defined to resolve))"
    r"|upstream (?:timed out \([0-9]+: [^)]*\) while (?:(?P<upgraded_timeout>proxying upgraded connection)"
    r"|(?P<connect_timeout>connecting to upstream)|(?P<read_timeout>reading (?:response header from )?upstream))"
    r"|(?P<upstream_timeout>timed out)|(?P<premature_close>prematurely closed connection))"
    r"|client timed out \([0-9]+: [^)]*\) while (?P<client_upgraded_timeout>proxying upgraded connection)"
    r"|(?:recv|send|readv|writev)\(\) failed \([0-9]+: [^)]*\) while (?P<upgraded_closed>proxying upgraded connection)"
    r'|open\(\) "[^"\n]*/socket\.io(?:/[^"\n]*)?" failed \((?P<socketio_404>2: )'
    # a request for the directory /socket.io/ goes to the index module, which words it differently
    r'|"[^"\n]*/socket\.io/index\.html" is not found \((?P<socketio_index_404>2: )'
)
# named group -> kind (its check and meaning: wsdoctor.logkinds).  socketio-404's check is refined per line
# (client vs route).
_GROUPS: dict[str, str] = {
    "connect_refused": "connect-refused",
    "connect_failed": "connect-failed",
    "no_live_upstreams": "no-live-upstreams",
    "no_resolver": "no-resolver",
    "upgraded_timeout": "upgraded-timeout",
    "client_upgraded_timeout": "upgraded-timeout",
    "connect_timeout": "connect-timeout",
    "read_timeout": "read-timeout",
    "upstream_timeout": "upstream-timeout",
    "premature_close": "premature-close",
    "upgraded_closed": "upgraded-closed",
    "socketio_404": "socketio-404",
    "socketio_index_404": "socketio-404",
}
_ERROR_STR = re.compile(_HEAD + "(?:" + _MESSAGE + ")")
_ERROR_BYTES = re.compile((_HEAD + "(?:" + _MESSAGE + ")").encode())

_ERROR_PREFIX = re.compile(r"^(\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}) \[(\w+)\] ")
_FIELD = {
    "client": re.compile(r", client: ([^,]+)"),
    "server": re.compile(r", server: ([^,]*)"),
    "request": re.compile(r', request: "((?:[^"\\]|\\.)*)"'),
    "upstream": re.compile(r', upstream: "([^"]*)"'),
    "host": re.compile(r', host: "([^"]*)"'),
}


def grep_pattern() -> str:
    """The same patterns as one ``grep -E`` expression (for the benchmark's baseline)."""
    # grep matches within one line, so the "\n" kept out of bracket expressions here is simply dropped
    # (in a POSIX bracket, "\n" would mean a backslash and an "n").
    pattern = re.sub(r"\(\?P<\w+>", "(", _HEAD + "(?:" + _MESSAGE + ")").replace("(?:", "(")
    return pattern.replace("\\n", "")


def _error_event(text: str, group: str, file: str, line_no: int | None, after: int) -> LogEvent:
    kind = _GROUPS[group]
    check = KINDS[kind].check
    prefix = _ERROR_PREFIX.match(text)
    tail = text[after:]
    fields = {}
    for name, pattern in _FIELD.items():
        m = pattern.search(tail)
        if m:
            fields[name] = m.group(1)
    request = fields.get("request")
    if kind == "socketio-404":
        # The client check speaks when the browser asked for the default /socket.io/ (its `path` option is
        # wrong or missing); a prefixed path that nginx serves from disk is a routing problem.
        path = request.split(" ")[1] if request and " " in request else ""
        check = "client" if path.startswith("/socket.io") else "route"
    return LogEvent(
        source="error",
        file=file,
        line_no=line_no,
        text=text,
        kind=kind,
        check=check,
        time=prefix.group(1) if prefix else None,
        upstream=fields.get("upstream"),
        request=request,
    )


def classify_error_line(line: str, file: str = "", line_no: int | None = None) -> LogEvent | None:
    """One error-log line → a LogEvent (kind, check, time, upstream, request), or None if it says nothing."""
    text = sanitize(line)
    m = _ERROR_STR.search(text)
    if m is None or m.lastgroup is None:
        return None
    return _error_event(text, m.lastgroup, file, line_no, m.end())


@dataclass
class ErrorScan:
    """A whole error log summarized: how many lines of each kind, and the last few as evidence."""

    file: str
    lines: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # kind -> lines
    events: list[LogEvent] = field(default_factory=list)  # the last `keep` classified lines, in order
    seconds: float = 0.0

    @property
    def matched(self) -> int:
        return sum(self.counts.values())


def scan_error_log(path: str, keep: int = 20, parallel: bool | None = None) -> ErrorScan:
    """Classify every line of a (possibly huge) local error log.

    The counting pass never enters Python per line: ``finditer`` over an mmap, ``lastgroup`` per match,
    counted by ``Counter`` (all C).  Big files are split at a line boundary and the second half is counted
    by a forked child on another core (only from a single-threaded process, where fork is safe).  The last
    ``keep`` events are then read from the end of the file.
    """
    started = time.perf_counter()
    scan = ErrorScan(file=path)
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size == 0:
            return scan
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            if parallel is None:
                parallel = size > PARALLEL_BYTES and hasattr(os, "fork") and threading.active_count() == 1
            middle = mm.find(b"\n", size // 2) + 1 if parallel else 0
            if middle > 0:
                pid, fd = _fork_count(mm, middle, size)
                counted, newlines = _count_region(mm, 0, middle)
                second, second_newlines = _join_count(mm, middle, size, pid, fd)
                counted.update(second)
                newlines += second_newlines
            else:
                counted, newlines = _count_region(mm, 0, size)
            for group, n in counted.items():
                if group:
                    kind = _GROUPS[group]
                    scan.counts[kind] = scan.counts.get(kind, 0) + n
            scan.lines = newlines + (0 if mm[size - 1 : size] == b"\n" else 1)
            if keep > 0 and scan.counts:
                scan.events = _last_events(mm, size, path, keep, scan.lines)
    scan.seconds = time.perf_counter() - started
    return scan


PARALLEL_BYTES = 32 << 20


def _count_region(
    mm: mmap.mmap, start: int, end: int, chunk: int = 16 << 20
) -> tuple[Counter[str | None], int]:
    """Matches per named group and newlines in ``mm[start:end]`` (``end`` just after a newline or EOF)."""
    counted = Counter(map(attrgetter("lastgroup"), _ERROR_BYTES.finditer(mm, start, end)))
    newlines = sum(mm[at : min(at + chunk, end)].count(b"\n") for at in range(start, end, chunk))
    return counted, newlines


def _fork_count(mm: mmap.mmap, start: int, end: int) -> tuple[int, int]:
    """Start a child counting ``mm[start:end]``; returns (pid, fd to read its JSON result from)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: count, report, leave without running any of the parent's cleanup
        code = 1
        try:
            os.close(read_fd)
            counted, newlines = _count_region(mm, start, end)
            payload = {"counts": {k or "": v for k, v in counted.items()}, "newlines": newlines}
            with os.fdopen(write_fd, "w") as out:
                out.write(json.dumps(payload))
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    return pid, read_fd


def _join_count(mm: mmap.mmap, start: int, end: int, pid: int, fd: int) -> tuple[Counter[str | None], int]:
    """The child's result (or, if it failed, the same count done here)."""
    with os.fdopen(fd) as source:
        data = source.read()
    _, status = os.waitpid(pid, 0)
    if status != 0 or not data:
        return _count_region(mm, start, end)
    parsed = json.loads(data)
    return Counter({(k or None): v for k, v in parsed["counts"].items()}), int(parsed["newlines"])


def _last_events(mm: mmap.mmap, size: int, path: str, keep: int, total_lines: int) -> list[LogEvent]:
    """Walk back from the end in growing windows until ``keep`` classified lines are found."""
    window = 256 * 1024
    while True:
        start = max(0, size - window)
        if start > 0:
            start = mm.find(b"\n", start) + 1 or size
        region = mm[start:size]
        found: deque[LogEvent] = deque(maxlen=keep)
        first_line = total_lines - (region.count(b"\n") + (0 if region.endswith(b"\n") else 1)) + 1
        for offset, raw in enumerate(region.split(b"\n")):
            if not raw:
                continue
            event = classify_error_line(raw.decode("utf-8", "replace"), path, first_line + offset)
            if event is not None:
                found.append(event)
        if len(found) >= keep or start == 0:
            return list(found)
        window *= 4


# --- access log ------------------------------------------------------------------------------------

COMBINED = (
    '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
    '"$http_referer" "$http_user_agent"'
)
RECOMMENDED = ("$upstream_status", "$upstream_addr", "$request_time")
_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
# Variables whose value is a list when nginx tried several servers: "502, 200" / "a:1, b:2 : c:3".
_LISTY = ("upstream_addr", "upstream_status", "upstream_response_time", "upstream_connect_time",
          "upstream_header_time", "upstream_bytes_received", "upstream_bytes_sent", "upstream_response_length")  # fmt: skip


@dataclass
class AccessFormat:
    """A ``log_format`` and the regex built from it."""

    name: str
    format: str
    regex: re.Pattern[str]
    variables: list[str]

    @classmethod
    def build(cls, name: str = "combined", fmt: str | None = None) -> AccessFormat:
        """Build the parser for ``fmt`` (``combined`` when None): each variable becomes a named group."""
        fmt = COMBINED if fmt is None else fmt
        parts: list[str] = []
        variables: list[str] = []
        pos = 0
        tokens = list(_VARIABLE.finditer(fmt))
        for index, m in enumerate(tokens):
            parts.append(re.escape(fmt[pos : m.start()]))
            var = m.group(1) or m.group(2)
            following = (
                fmt[m.end() : tokens[index + 1].start()] if index + 1 < len(tokens) else fmt[m.end() :]
            )
            stop = following[:1]
            if not following and index + 1 < len(tokens):
                body = r".*?"  # two variables back to back: no separator to stop at
            elif not stop:
                body = r".*"
            elif var in _LISTY and stop == " ":
                body = r"[^ ]*(?:(?:, | : )[^ ]*)*"
            else:
                body = "[^" + re.escape(stop) + "]*"
            if var in variables:
                parts.append(f"(?:{body})")
            else:
                parts.append(f"(?P<{var}>{body})")
                variables.append(var)
            pos = m.end()
        parts.append(re.escape(fmt[pos:]))
        return cls(name=name, format=fmt, regex=re.compile("".join(parts)), variables=variables)

    def has(self, variable: str) -> bool:
        return variable.lstrip("$") in self.variables

    def missing(self) -> list[str]:
        """The recommended variables this format lacks (``$upstream_status $upstream_addr $request_time``)."""
        return [v for v in RECOMMENDED if not self.has(v)]


def format_advice(fmt: AccessFormat) -> str | None:
    """One sentence recommending the upstream fields, or None when the format already has them."""
    missing = fmt.missing()
    if not missing:
        return None
    return (
        f"The access log format '{fmt.name}' lacks {' '.join(missing)}: add them to its log_format so a "
        "502 shows which backend failed and each 101 shows how long the tunnel lived (idle timeouts)."
    )


def _near(duration: float, timeout: float) -> bool:
    return abs(duration - timeout) <= max(1.0, 0.05 * timeout)


def classify_access_line(
    line: str,
    fmt: AccessFormat,
    file: str = "",
    line_no: int | None = None,
    *,
    read_timeout: float | None = None,
    path_prefix: str | None = None,
) -> LogEvent | None:
    """One access-log line → a LogEvent when it speaks for a check, else None.

    Only Engine.IO/Socket.IO requests count (``EIO=`` or ``socket.io`` in the URI, or under
    ``path_prefix``): a 502 of the REST API beside it is not this service's evidence.  A 101 counts as an
    idle timeout when its ``$request_time`` is ≈ ``read_timeout`` (the effective proxy_read_timeout).
    """
    text = sanitize(line)
    m = fmt.regex.match(text)
    if m is None:
        return None
    values = m.groupdict()
    request = values.get("request")
    uri = values.get("request_uri") or values.get("uri") or ""
    if request:
        pieces = request.split(" ")
        uri = pieces[1] if len(pieces) >= 2 else request
    if not ("EIO=" in uri or "socket.io" in uri or (path_prefix and uri.startswith(path_prefix))):
        return None
    try:
        status = int(values.get("status") or "")
    except ValueError:
        return None
    duration = _float(values.get("request_time"))
    kind = None
    if status == 404:
        kind = "socketio-404"
    elif status == 400 and "transport=polling" in uri and "sid=" in uri:
        kind = "400-polling-sid"
    elif status in (400, 403) and "sid=" in uri:  # a session's upgrade on a backend that does not know it
        kind = "sid-refused"
    elif status == 101 and duration is not None and read_timeout and _near(duration, read_timeout):
        kind = "101-idle-timeout"
    elif status in (502, 504, 401, 403):
        kind = str(status)
    if kind is None:
        return None
    check = KINDS[kind].check
    if kind == "socketio-404" and uri.startswith("/socket.io"):
        check = "client"
    upstream = values.get("upstream_addr")
    return LogEvent(
        source="access",
        file=file,
        line_no=line_no,
        text=text,
        kind=kind,
        check=check,
        time=values.get("time_local") or values.get("time_iso8601"),
        upstream=upstream if upstream and upstream != "-" else None,
        status=status,
        request=request or uri or None,
        duration=duration,
    )


def _float(value: str | None) -> float | None:
    if not value or value == "-":
        return None
    try:
        return float(value.split(",")[-1].strip())
    except ValueError:
        return None


# --- sources, batches, live tail ----------------------------------------------------------------------


@dataclass
class LogSource:
    """One log file that applies to the Socket.IO location, with how to read it."""

    kind: str  # "error" or "access"
    path: str
    format: AccessFormat | None = None  # access logs: the declared log_format
    read_timeout: float | None = None  # effective proxy_read_timeout (seconds), for 101 durations
    path_prefix: str | None = None  # the location prefix, to keep only this service's requests
    where: str | None = None  # the directive that names it ("sites/api.conf:12"), None for the default

    def classify(self, line: str, line_no: int | None = None) -> LogEvent | None:
        if self.kind == "error":
            return classify_error_line(line, self.path, line_no)
        fmt = self.format or AccessFormat.build()
        return classify_access_line(
            line, fmt, self.path, line_no, read_timeout=self.read_timeout, path_prefix=self.path_prefix
        )


def classify_lines(
    source: LogSource, lines: Iterable[str], first_line_no: int | None = None
) -> list[LogEvent]:
    """Classify a batch of lines from ``source``; line numbers counted from ``first_line_no`` if known."""
    events = []
    for offset, line in enumerate(lines):
        event = source.classify(line, None if first_line_no is None else first_line_no + offset)
        if event is not None:
            events.append(event)
    return events


def _unclassified(source: LogSource, line: str) -> LogEvent:
    return LogEvent(
        source=source.kind, file=source.path, line_no=None, text=sanitize(line), kind="", check=""
    )


class LogFollower:
    """Live tails of several logs over one Runner, yielding batches of classified LogEvents.

    Each source is followed with ``tail -n 0 -F -- PATH`` (a PTY over SSH), so a rotated log is picked
    up again.  ``close()`` (or cancelling the task iterating :meth:`batches`) stops every tail; nothing
    stays running on the host.  Lines printed by ``tail`` itself ("tail: … has appeared") go to
    ``notes``, not to the events.
    """

    def __init__(
        self,
        runner: Runner,
        sources: list[LogSource],
        *,
        sudo: bool = False,
        include_unclassified: bool = False,
        backlog: int = 0,
    ) -> None:
        self.sources = sources
        self.include_unclassified = include_unclassified
        self.notes: list[str] = []
        self._streams: list[tuple[LogSource, LineStream]] = [
            (s, runner.tail(s.path, sudo=sudo, backlog=backlog)) for s in sources
        ]

    def poll(self, timeout: float = 0.0) -> list[LogEvent] | None:
        """What arrived since the last call (waiting up to ``timeout`` on the first source); None when all ended."""
        events: list[LogEvent] = []
        alive = 0
        wait = timeout
        for source, stream in self._streams:
            lines = stream.get(wait)
            if lines is None:
                if stream.error and stream.error not in self.notes:
                    self.notes.append(stream.error)
                continue
            alive += 1
            wait = 0.0  # only the first live stream is waited on
            for line in lines:
                if line.startswith("tail: "):
                    self.notes.append(line)
                    continue
                event = source.classify(line)
                if event is not None:
                    events.append(event)
                elif self.include_unclassified:
                    events.append(_unclassified(source, line))
        if not alive and not events:
            return None
        return events

    def batches(self, interval: float = 0.2) -> AsyncIterator[list[LogEvent]]:
        """Non-empty batches as they come; the tails are closed when the consumer stops or is cancelled."""
        from wsdoctor.remote.runner import (
            poll_batches,  # lazily: the scan CLI and the bench must not pay for it
        )

        return poll_batches(self.poll, self.close, interval)

    def close(self) -> None:
        for _, stream in self._streams:
            stream.close()

    def __enter__(self) -> LogFollower:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m wsdoctor.remote.logs ERROR_LOG [KEEP]``: count each kind of line, show the last ones."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m wsdoctor.remote.logs ERROR_LOG [KEEP]", file=sys.stderr)
        return 2
    try:
        scan = scan_error_log(args[0], keep=int(args[1]) if len(args) > 1 else 5)
    except (OSError, ValueError) as exc:
        print(f"{args[0]}: cannot be read ({exc}); give a readable nginx error log.", file=sys.stderr)
        return 2
    print(f"{scan.file}: {scan.lines} lines, {scan.matched} classified, in {scan.seconds:.3f} s")
    for kind, count in sorted(scan.counts.items(), key=lambda item: -item[1]):
        print(f"  {count:>9}  {kind:<18} -> {KINDS[kind].check:<8} {KINDS[kind].meaning}")
    for event in scan.events:
        print(f"  {event.file}:{event.line_no}: {event.text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
