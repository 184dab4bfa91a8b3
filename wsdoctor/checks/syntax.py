"""`syntax` (deployment): would nginx accept this configuration?

The runbook's step 4 is ``nginx -t``; this check reports what the loader found that nginx would refuse
(unbalanced braces, a missing include, an include cycle — each with file:line), what nginx refuses in the
directives wsdoctor reasons about (argument counts — a missing ``;`` glues two statements into one —, on/off and
time values, a block where none belongs, duplicates, a ``proxy_pass`` with a URI part in a regex or named
location: ``_args.py``, held to the real ``nginx -t``), and, where nginx is reachable (locally or over SSH), the
verdict of ``nginx -t`` itself. A statement glued by a missing ``;`` that nginx still accepts (``server_name``
takes any number of names) is a warning. The other checks do not judge a directive this check flags: they say
"see syntax".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from wsdoctor.checks import _util as u
from wsdoctor.checks._args import statement_lines
from wsdoctor.checks._flow import Flow, Verdict, skip
from wsdoctor.checks._util import Place
from wsdoctor.facts import NO_CONFIG, CommandResult, Fact, Facts
from wsdoctor.report import Evidence, Fix, Status

if TYPE_CHECKING:
    from wsdoctor.nginx.model import Config, Directive


ID = "syntax"
TITLE = "Configuration accepted by nginx"
NEEDS = (Fact.CONFIG, Fact.COMMANDS, Fact.VERSION)

MAX_SHOWN = 8
NGINX_T = "nginx -t"


def _where(facts: Facts) -> Place:
    if facts.config is None and NGINX_T not in facts.commands:
        return Place(None, u.config_missing(facts) or NO_CONFIG)
    return Place(None)


# --- config half: what the loader and the argument table refuse -----------------------------------------


@dataclass
class _Said:
    problems: list[str] = field(default_factory=list)  # "file:line: what nginx says", refused
    warnings: list[str] = field(default_factory=list)  # accepted, but not as meant (a glued statement)
    evidence: list[Evidence] = field(default_factory=list)


def _config(facts: Facts, place: Place) -> _Said:
    config = facts.config
    said = _Said()
    if config is None:
        return said
    for e in config.errors:
        said.problems.append(f"{e.where}: {e.message}")
        if len(said.evidence) < MAX_SHOWN:
            text = config.excerpt(e.file, e.line, 1, 1) if e.line else ""
            said.evidence.append(
                Evidence(
                    kind="config",
                    where=e.where,
                    text=(text + "\n" if text else "") + e.message,
                    highlight=(e.line,) if e.line else (),
                )
            )
    for d, why, severity in u.syntax_problems(facts):
        (said.problems if severity == "fail" else said.warnings).append(f"{d.where}: {why}")
        if len(said.evidence) < MAX_SHOWN:
            said.evidence.append(
                Evidence(
                    kind="config",
                    where=d.where,
                    text=config.excerpt(d.file, d.line, 1, _span(config, d)) + "\n" + why,
                    highlight=(d.line,),
                )
            )
    return said


# --- live half: `nginx -t` where nginx runs ---------------------------------------------------------------


def _live(facts: Facts, place: Place) -> CommandResult | None:
    return facts.commands.get(NGINX_T)


# --- the verdict ----------------------------------------------------------------------------------------


def _combine(facts: Facts, place: Place, said: _Said | None, test: CommandResult | None) -> Verdict:
    if said is None:
        return skip(place.why or "")
    config, problems, warnings = facts.config, said.problems, said.warnings
    evidence = said.evidence + ([u.cmd_ev(test)] if test is not None else [])
    test_failed = test is not None and test.error is None and test.exit_status not in (0, None)
    test_ok = test is not None and test.error is None and test.exit_status == 0

    if problems or test_failed:
        first = problems[0] if problems else _first_emerg(test.stderr if test else "")
        n = len(problems)
        summary = f"nginx would refuse to load it: {first}"
        if n > 1:
            summary += f", and {u.plural(n - 1, 'more problem')}"
        if test_failed and problems:
            summary += "; `nginx -t` agrees"
        elif test_failed:
            summary = f"`nginx -t` fails: {first}"
        elif test_ok and problems:
            return Verdict(
                Status.WARN,
                "The analysed config has errors that nginx -t does not",
                f"{first}, but `nginx -t` on the proxy succeeds: the config analysed differs from the running one, "
                "or the loader is stricter than nginx.",
                evidence,
                Fix(summary="Analyse the running config with --ssh (it reads `nginx -T`)."),
            )
        semi = _semicolon_fix(facts) if problems else None
        return Verdict(
            Status.FAIL,
            f"nginx would refuse {first.split(': ', 1)[0]}" if problems else "`nginx -t` fails",
            summary + ".",
            evidence,
            Fix(
                summary=(semi[0] + " Then run" if semi else "Fix the line shown, then run")
                + " `nginx -t` before `nginx -s reload`: a failed reload keeps the old config running silently.",
                diff=semi[1] if semi else "",
            ),
        )
    if warnings:
        semi = _semicolon_fix(facts)
        return Verdict(
            Status.WARN,
            "A missing ';' joins two statements",
            f"{warnings[0]}; nginx accepts it, but not as meant"
            + (f", and {u.plural(len(warnings) - 1, 'more like it')}" if len(warnings) > 1 else "")
            + ".",
            evidence,
            Fix(
                summary=(semi[0] if semi else "End the statement with ';'.")
                + " Then run `nginx -t` and reload.",
                diff=semi[1] if semi else "",
            ),
        )
    where = (
        f"{u.plural(len(config.files), 'file')} from {config.source}"
        if config is not None
        else "the running config"
    )
    summary = f"{where} parsed without errors"
    if test_ok:
        assert test is not None
        summary += f"; `nginx -t` succeeds{' on ' + test.host if test.host not in ('', 'local') else ''}"
    elif test is not None and test.error:
        summary += f"; `nginx -t` could not run: {test.error}"
    return Verdict(Status.PASS, TITLE, summary + ".", evidence if test_ok else [])


def _first_emerg(stderr: str) -> str:
    for line in stderr.splitlines():
        if "[emerg]" in line or "failed" in line:
            return line.strip()
    return stderr.strip().splitlines()[0] if stderr.strip() else "see the command output"


_MISSING = re.compile(r'a missing ";" at the end of line (\d+)')


def _semicolon_fix(facts: Facts) -> tuple[str, str] | None:
    """(summary, diff) ending every statement a missing ';' glued to the next, or None when none did."""
    config = facts.config
    if config is None:
        return None
    ends: list[tuple[str, int, str]] = []  # (file, line, the line ended with ';')
    for d, why, _severity in u.syntax_problems(facts):
        m = _MISSING.search(why)
        lines = config.lines(d.file)
        if m is None or not 0 < int(m.group(1)) <= len(lines):
            continue
        line = int(m.group(1))
        code, comment = _split_comment(lines[line - 1].rstrip("\r"))
        ends.append((d.file, line, code.rstrip() + ";" + (" " + comment if comment else "")))
    if not ends:
        return None

    def edit(p):
        for file, line, text in ends:
            p.replace_line(file, line, [text])

    done = ", ".join(f"{file}:{line}" for file, line, _text in ends)
    return f"End the statement at {done} with ';'.", u.diff_of(config, edit)


def _split_comment(text: str) -> tuple[str, str]:
    """A config line as (code, "# comment"), a '#' inside quotes not being a comment."""
    quote = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            return text[:i], text[i:]
        i += 1
    return text, ""


def _span(config: Config, d: Directive) -> int:
    """Lines after D's first that its statement covers (a glued statement is shown whole), at least 1."""
    span = statement_lines(config, d)
    return 1 if span is None else max(1, span[1] - span[0])


check = Flow(ID, TITLE, _where, _config, _live, _combine)
