"""Findings and their renderings (text, JSON, Markdown), with secrets redacted.

A Finding is the unit the whole product speaks in: the CLI prints them, the TUI
renders them, the JSON contract (``version`` 1, ``docs/report.schema.json``) serialises them.
Nothing here imports Textual.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from wsdoctor import __version__
from wsdoctor.safetext import json_safe, visible_obj


class Status(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


EVIDENCE_KINDS = ("config", "probe", "log", "command")


@dataclass
class Evidence:
    """One piece of proof: a config excerpt, a probe transcript, a log line, a command's output."""

    kind: str  # one of EVIDENCE_KINDS
    where: str  # "sites/api.conf:42", "GET https://host/socket.io/?EIO=4…", "/var/log/nginx/error.log:17"
    text: str
    # Lines (1-based, relative to the file) that are the point of a config excerpt; for highlighting.
    highlight: tuple[int, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "where": self.where, "text": clip_long_lines(self.text)}


EVIDENCE_LINE_CAP = 4096  # characters of one evidence line in any report (a 10 MB config line is not proof)


def clip_long_lines(text: str, cap: int = EVIDENCE_LINE_CAP) -> str:
    """TEXT with every line longer than CAP characters cut, saying how much was left out."""
    if len(text) <= cap:
        return text
    return "\n".join(
        line if len(line) <= cap else f"{line[:cap]}… [{len(line) - cap:,} more characters]"
        for line in text.split("\n")
    )


@dataclass
class Fix:
    summary: str
    diff: str = ""  # unified diff against the real file(s)
    code: str = ""  # for the client: corrected client code

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"summary": self.summary, "diff": self.diff}
        if self.code:
            out["code"] = self.code
        return out


def corrected_lead(path: str) -> str:
    """The words that open the summary of a finding judged for the corrected request PATH, not the client's."""
    return f"For the corrected request {path}… (see client): "


@dataclass
class Finding:
    id: str
    status: Status
    title: str
    summary: str
    evidence: list[Evidence] = field(default_factory=list)
    fix: Fix | None = None
    # The corrected request path the finding was judged for (the client's own request misses the location it
    # means); the summary then opens with corrected_lead(path). Not in the JSON: the summary says it.
    corrected: str | None = None

    @property
    def lead(self) -> str:
        """The corrected-request lead the summary opens with, or "" (a row shows a marker instead)."""
        if self.corrected is None:
            return ""
        lead = corrected_lead(self.corrected)
        return lead if self.summary.startswith(lead) else ""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status.value,
            "title": self.title,
            "summary": self.summary,
            "evidence": [e.to_json() for e in self.evidence],
            "fix": self.fix.to_json() if self.fix else None,
        }


# The five runbook issues are the spine of every rendering; then the checklist.
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("404 Not Found", ("client", "route")),
    ("502 Bad Gateway", ("upstream",)),
    ("Drops after 60 s", ("timeout",)),
    ("Different backend on reconnect", ("sticky",)),
    ("Authentication failing", ("auth",)),
    ("Checklist", ("upgrade", "buffering", "cors", "tls", "syntax")),
)
CHECK_IDS: tuple[str, ...] = tuple(cid for _, ids in GROUPS for cid in ids)


def summarize(findings: Iterable[Finding]) -> dict[str, int]:
    counts = {s.value: 0 for s in Status}
    for f in findings:
        counts[f.status.value] += 1
    return counts


def exit_code(findings: Iterable[Finding]) -> int:
    return 1 if any(f.status is Status.FAIL for f in findings) else 0


# --- redaction -------------------------------------------------------------

_BEARER = re.compile(r"(?i)(authorization\s*[:=]\s*)((?:bearer|basic|digest|token|negotiate)\s+)?[^\s\"',}]+")
_COOKIE = re.compile(r"(?i)((?:set-)?cookie\s*[:=]\s*)[^\r\n\"]+")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_TOKEN_FIELD = re.compile(r"(?i)(\"(?:token|access_token|password|secret)\"\s*:\s*\")[^\"]*(\")")
_TOKEN_ARG = re.compile(r"(?i)([?&](?:token|access_token)=)[^&\s\"]+")
# user:password@ in any URL (wss://alice:S3cr3t@host/…): the user stays, the password goes.
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s/?#@:\"']*:)[^\s/?#@\"']*@")


def redact(text: str, secrets: Sequence[str] = ()) -> str:
    """Remove secrets: the given literal values, Authorization values, cookies, JWTs, token fields."""
    for s in sorted((s for s in secrets if s), key=len, reverse=True):
        if len(s) >= 4:
            text = text.replace(s, "***")
    # Each pattern runs only where its keyword occurs: a megabyte-long config line costs a few scans.
    lowered = text.lower()
    if "authorization" in lowered:
        text = _BEARER.sub(lambda m: m.group(1) + (m.group(2) or "") + "***", text)
    if "cookie" in lowered:
        text = _COOKIE.sub(lambda m: m.group(1) + "***", text)
    if any(k in lowered for k in ("token", "password", "secret")):
        text = _TOKEN_FIELD.sub(lambda m: m.group(1) + "***" + m.group(2), text)
        text = _TOKEN_ARG.sub(lambda m: m.group(1) + "***", text)
    if "eyJ" in text:
        text = _JWT.sub("***", text)
    if "@" in text and "://" in text:
        text = _URL_PASSWORD.sub(lambda m: m.group(1) + "***@", text)
    return text


def _redact_obj(obj: Any, secrets: Sequence[str]) -> Any:
    if isinstance(obj, str):
        return redact(obj, secrets)
    if isinstance(obj, dict):
        return {k: _redact_obj(v, secrets) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_redact_obj(v, secrets) for v in obj]
    return obj


# --- the report ------------------------------------------------------------


@dataclass
class Report:
    target: dict[str, Any]
    findings: list[Finding]
    secrets: Sequence[str] = ()
    notes: Sequence[str] = ()  # what the run could not do or wants said (access log format, gatherer trouble)

    def ordered(self) -> list[Finding]:
        order = {cid: i for i, cid in enumerate(CHECK_IDS)}
        return sorted(self.findings, key=lambda f: order.get(f.id, len(order)))

    def to_dict(self) -> dict[str, Any]:
        target = dict(self.target)
        if self.notes:
            target["notes"] = list(dict.fromkeys(self.notes))
        data = {
            "version": 1,
            "wsdoctor": __version__,
            "target": target,
            "findings": [f.to_json() for f in self.ordered()],
            "summary": summarize(self.findings),
        }
        return _redact_obj(data, self.secrets)

    def to_json(self) -> str:
        return json_safe(json.dumps(self.to_dict(), indent=2, ensure_ascii=False)) + "\n"

    def exit_code(self) -> int:
        return exit_code(self.findings)

    # -- text --------------------------------------------------------------

    def to_text(self, color: bool | None = None, verbose: bool = True) -> str:
        """Grouped by the runbook's five issues; --brief (verbose=False) is one line per check."""
        if color is None:
            color = False
        data = visible_obj(self.to_dict())  # text from outside never drives the terminal
        by_id = {f["id"]: f for f in data["findings"]}
        out: list[str] = []
        t = data["target"]
        out.append(_c(f"wsdoctor {__version__}", "bold", color))
        for key, value in _header(t):
            out.append(f"  {key}: {value}")
        for note in t.get("notes", []):
            out.append(_c(f"  note: {note}", "yellow", color))
        for group, ids in GROUPS:
            out.append("")
            out.append(_c(group, "bold", color))
            for cid in ids:
                f = by_id.get(cid)
                if f is None:
                    continue
                if not verbose:
                    out.append(f"  {_badge(f['status'], color)} {cid:<9} {f['summary']}")
                    continue
                out.append(f"  {_badge(f['status'], color)} {cid:<9} {f['title']}")
                out.append(f"             {f['summary']}")
                if f["status"] in ("fail", "warn"):
                    for ev in f["evidence"]:
                        out.append(_c(f"             [{ev['kind']}] {ev['where']}", "dim", color))
                        out += [
                            f"               {line}"
                            for line in _clip(ev["text"].splitlines(), TEXT_EVIDENCE_LINES)
                        ]
                    fix = f.get("fix")
                    if fix:
                        out.append(f"             fix: {fix['summary']}")
                        if fix.get("code"):
                            for line in fix["code"].splitlines():
                                out.append(f"               {line}")
                        for line in (fix.get("diff") or "").splitlines():
                            style = "green" if line.startswith("+") else "red" if line.startswith("-") else ""
                            out.append("               " + (_c(line, style, color) if style else line))
        s = data["summary"]
        out.append("")
        out.append(f"{s['pass']} pass, {s['warn']} warn, {s['fail']} fail, {s['skip']} skip")
        return "\n".join(out) + "\n"

    # -- markdown ----------------------------------------------------------

    def to_markdown(self) -> str:
        data = visible_obj(self.to_dict())
        by_id = {f["id"]: f for f in data["findings"]}
        icon = {"pass": "✅", "warn": "⚠️", "fail": "❌", "skip": "⏭️"}
        t = data["target"]
        out = [f"## wsdoctor report — {t.get('url') or t.get('nginx') or 'offline'}", ""]
        for key, value in _header(t, markdown=True):
            if key != "url":
                out.append(f"- **{key}**: {value}")
        for note in t.get("notes", []):
            out.append(f"- **note**: {note}")
        s = data["summary"]
        out += ["", f"**{s['fail']} fail, {s['warn']} warn, {s['pass']} pass, {s['skip']} skip**", ""]
        out += ["| | check | finding |", "|---|---|---|"]
        for _, ids in GROUPS:
            for cid in ids:
                f = by_id.get(cid)
                if f:
                    summary = f["summary"].replace("|", "\\|")
                    out.append(f"| {icon[f['status']]} | `{cid}` | **{f['title']}** — {summary} |")
        for _, ids in GROUPS:
            for cid in ids:
                f = by_id.get(cid)
                if not f or f["status"] not in ("fail", "warn"):
                    continue
                out += ["", f"### {icon[f['status']]} {cid}: {f['title']}", "", f["summary"], ""]
                for ev in f["evidence"]:
                    out += [f"*{ev['kind']}* {_md_code(ev['where'])}", "", *_md_block(ev["text"]), ""]
                fix = f.get("fix")
                if fix:
                    out += [f"**Fix:** {fix['summary']}", ""]
                    if fix.get("code"):
                        out += [*_md_block(fix["code"], "js"), ""]
                    if fix.get("diff"):
                        out += [*_md_block(fix["diff"].rstrip("\n"), "diff"), ""]
        return "\n".join(out) + "\n"


TEXT_EVIDENCE_LINES = 40


def _header(t: dict[str, Any], markdown: bool = False) -> list[tuple[str, str]]:
    """The target lines of a rendering: what was diagnosed, and where the inputs came from (the nginx version
    and its source, the files read from this machine rather than the target)."""

    def code(v: Any) -> str:
        return _md_code(str(v)) if markdown else str(v)

    out: list[tuple[str, str]] = []
    for key in ("url", "request", "namespace", "location", "upstream_uri"):
        if t.get(key):
            out.append((key.replace("_", " "), code(t[key])))
    source = t.get("nginx_version_source")
    if t.get("nginx_version"):
        out.append(("nginx version", code(t["nginx_version"]) + (f" (from {source})" if source else "")))
    elif source:
        out.append(
            ("nginx version", "unknown (give --nginx-version: version-dependent defaults show both outcomes)")
        )
    if t.get("local_files"):
        out.append(("read from this machine, not the target", ", ".join(code(f) for f in t["local_files"])))
    if t.get("ssh"):
        out.append(("ssh", code(t["ssh"])))
    return out


def _md_block(text: str, lang: str = "") -> list[str]:
    """TEXT as a fenced block whose fence is longer than any run of backticks inside it (a config line
    cannot close the block and inject Markdown)."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + lang, text, fence]


def _md_code(text: str) -> str:
    """TEXT as inline code that its own backticks cannot end."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def _clip(lines: list[str], cap: int) -> list[str]:
    """At most CAP lines of one piece of evidence, saying how many were left out (JSON and the TUI have all)."""
    if len(lines) <= cap:
        return lines
    return [
        *lines[:cap],
        f"… {len(lines) - cap} more line{'s' if len(lines) - cap != 1 else ''} (--format json has all)",
    ]


_ANSI = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "cyan": "36", "grey": "90"}


def _c(text: str, style: str, color: bool) -> str:
    if not color or not style:
        return text
    return f"\x1b[{_ANSI[style]}m{text}\x1b[0m"


def _badge(status: str, color: bool) -> str:
    style = {"pass": "green", "warn": "yellow", "fail": "red", "skip": "grey"}[status]
    return _c(f"{status.upper():<4}", style, color)


def use_color(stream: Any) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    return bool(getattr(stream, "isatty", lambda: False)())
