"""Time in the logs: which lines belong to this run, and in what order.

Log lines carry the proxy host's local time at one-second resolution; the run is timed by this machine's
clock.  ``Clock`` is the host's clock against ours (measured from its ``date`` when the run starts), so a
line's timestamp can be placed on our time line: lines from before the run describe a past state and are
left out, and lines from several logs are merged in time order.
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass

from wsdoctor.facts import LogEvent

_MONTHS = {
    m: i
    for i, m in enumerate(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1
    )
}
_TIME_LOCAL = re.compile(r"^(\d{2})/([A-Z][a-z]{2})/(\d{4}):(\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})$")
_ERROR_TIME = re.compile(r"^(\d{4})/(\d{2})/(\d{2}) (\d{2}):(\d{2}):(\d{2})$")
_ISO_PARTS = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?(Z|([+-])(\d{2}):?(\d{2}))?$"
)
# Within one second (the logs' resolution) the lines that say why (error log, backend) come after the
# access line of the same request, so "the last lines" favour the explanation.
_SOURCE_RANK = {"access": 0, "backend": 1, "error": 2}
# nginx logs a refused upstream server once, then skips it for fail_timeout (10 s by default): a run
# shortly after another may not produce the line itself, so upstream errors this recent still count.
UPSTREAM_MEMORY = 30.0
RUN_SLACK = 3.0  # seconds: log timestamps have 1 s resolution, and clocks drift a little


@dataclass
class Clock:
    """The proxy host's clock against ours: ``skew`` (theirs minus ours, seconds) and its UTC offset."""

    skew: float = 0.0
    utc_offset: int | None = (
        None  # seconds east of UTC; None when unknown (naive times then cannot be placed)
    )


def local_clock() -> Clock:

    return Clock(0.0, time.localtime().tm_gmtoff)


def parse_clock(text: str, before: float, after: float) -> Clock:
    """``date +%s %z`` output read between BEFORE and AFTER (our clock) → the host's skew and zone."""
    m = re.match(r"^(\d+) ([+-])(\d{2})(\d{2})$", text.strip())
    if m is None:
        return Clock(0.0, None)
    offset = (int(m.group(3)) * 3600 + int(m.group(4)) * 60) * (-1 if m.group(2) == "-" else 1)
    return Clock(int(m.group(1)) + 0.5 - (before + after) / 2, offset)


def _epoch(fields: tuple[int, ...], offset: int) -> float:
    return calendar.timegm(fields) - offset


def log_epoch(stamp: str | None, utc_offset: int | None) -> float | None:
    """A log line's time as seconds since the epoch: ``$time_local`` (with its offset), the error log's
    ``2026/11/26 01:14:22`` and naive ISO times (in the host's zone, ``utc_offset``), ISO 8601 with zone."""
    if not stamp:
        return None
    stamp = stamp.strip()
    m = _TIME_LOCAL.match(stamp)
    if m and m.group(2) in _MONTHS:
        offset = (int(m.group(8)) * 3600 + int(m.group(9)) * 60) * (-1 if m.group(7) == "-" else 1)
        fields = (
            int(m.group(3)),
            _MONTHS[m.group(2)],
            int(m.group(1)),
            int(m.group(4)),
            int(m.group(5)),
            int(m.group(6)),
        )
        return _epoch(fields, offset)
    m = _ERROR_TIME.match(stamp)
    if m:
        return None if utc_offset is None else _epoch(tuple(int(x) for x in m.groups()), utc_offset)
    m = _ISO_PARTS.match(stamp)
    if m:
        fields = tuple(int(x) for x in m.groups()[:6])
        if m.group(8) == "Z":
            return _epoch(fields, 0)
        if m.group(8):
            offset = (int(m.group(10)) * 3600 + int(m.group(11)) * 60) * (-1 if m.group(9) == "-" else 1)
            return _epoch(fields, offset)
        return None if utc_offset is None else _epoch(fields, utc_offset)
    return None


def order_logs(events: list[LogEvent], *, since: float | None, clock: Clock) -> tuple[list[LogEvent], int]:
    """The events of this run in time order, and how many older ones were left out.

    ``since`` is the run's start on OUR clock (None: keep every line, e.g. ``--offline`` where history is
    all there is).  A line whose time cannot be told is kept.  Lines of earlier runs (and older traffic)
    describe a past state — before a fix, say — so they would contradict what the probes show now; recent
    upstream errors are the exception (see UPSTREAM_MEMORY).  Lines without a time take the time of the
    line before them in the same file.
    """
    keyed: list[tuple[float, int, int, LogEvent]] = []
    last: dict[tuple[str, str], float] = {}
    dropped = 0
    start = None if since is None else since + clock.skew - RUN_SLACK
    for index, event in enumerate(events):
        when = log_epoch(event.time, clock.utc_offset)
        known = when is not None
        if when is None:
            when = last.get((event.source, event.file), float("-inf"))
        else:
            last[(event.source, event.file)] = when
        if start is not None and known and when < start:
            recent_upstream = event.source == "error" and event.check == "upstream"
            if not (recent_upstream and when >= start - UPSTREAM_MEMORY):
                dropped += 1
                continue
        keyed.append((when, _SOURCE_RANK.get(event.source, 1), index, event))
    keyed.sort(key=lambda item: item[:3])
    return [item[3] for item in keyed], dropped


def merge_logs(
    known: list[LogEvent], new: Iterable[LogEvent], *, since: float | None, clock: Clock
) -> list[LogEvent]:
    """KNOWN plus the lines of NEW not already there (a line once, by source, file and text), this run's
    only (see ``order_logs``), in time order."""
    seen = {(e.source, e.file, e.text) for e in known}
    merged = list(known)
    for e in new:
        key = (e.source, e.file, e.text)
        if key not in seen:
            seen.add(key)
            merged.append(e)
    return order_logs(merged, since=since, clock=clock)[0]


def drop_before(events: list[LogEvent], floor: float, clock: Clock) -> list[LogEvent]:
    """EVENTS without the lines written before FLOOR (our clock, a whole second): a hard cut with no slack and
    no memory of upstream errors, for a run that must not see what happened before a change (a reload)."""
    cut = floor + clock.skew
    kept = []
    for e in events:
        when = log_epoch(e.time, clock.utc_offset)
        if when is None or when >= cut:
            kept.append(e)
    return kept
