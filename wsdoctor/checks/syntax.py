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
from typing import TYPE_CHECKING

from wsdoctor.checks import _util as u
from wsdoctor.facts import Facts
from wsdoctor.report import Evidence, Finding, Fix, Status

if TYPE_CHECKING:
    from wsdoctor.nginx.model import Config, Directive


ID = "syntax"
TITLE = "Configuration accepted by nginx"
NEEDS = ("config", "commands", "version")

MAX_SHOWN = 8


def check(facts: Facts) -> Finding:
    config = facts.config
    test = facts.commands.get("nginx -t")
    if config is None and test is None:
        return u.skip(ID, TITLE, u.config_missing(facts) or u.NO_CONFIG)

    evidence: list[Evidence] = []
    problems: list[str] = []
    warnings: list[str] = []
    if config is not None:
        for e in config.errors:
            problems.append(f"{e.where}: {e.message}")
            if len(evidence) < MAX_SHOWN:
                text = config.excerpt(e.file, e.line, 1, 1) if e.line else ""
                evidence.append(
                    Evidence(
                        kind="config",
                        where=e.where,
                        text=(text + "\n" if text else "") + e.message,
                        highlight=(e.line,) if e.line else (),
                    )
                )
        for d, why, severity in u.syntax_problems(facts):
            (problems if severity == "fail" else warnings).append(f"{d.where}: {why}")
            if len(evidence) < MAX_SHOWN:
                evidence.append(
                    Evidence(
                        kind="config",
                        where=d.where,
                        text=config.excerpt(d.file, d.line, 1, _span(config, d)) + "\n" + why,
                        highlight=(d.line,),
                    )
                )

    test_failed = test is not None and test.error is None and test.exit_status not in (0, None)
    test_ok = test is not None and test.error is None and test.exit_status == 0
    if test is not None:
        evidence.append(u.cmd_ev(test))

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
            return u.finding(
                ID,
                Status.WARN,
                "The analysed config has errors that nginx -t does not",
                f"{first}, but `nginx -t` on the proxy succeeds: the config analysed differs from the running one, "
                "or the loader is stricter than nginx.",
                evidence,
                Fix(summary="Analyse the running config with --ssh (it reads `nginx -T`)."),
            )
        semi = _semicolon_fix(facts) if problems else None
        return u.finding(
            ID,
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
        return u.finding(
            ID,
            Status.WARN,
            "A missing ';' joins two statements",
            f"{warnings[0]}; nginx accepts it, but not as meant"
            + (f", and {u.plural(len(warnings) - 1, 'more like it')}" if len(warnings) > 1 else "")
            + ".",
            evidence,
            Fix(
                summary=(semi[0] if (semi := _semicolon_fix(facts)) else "End the statement with ';'.")
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
        summary += f"; `nginx -t` succeeds{' on ' + test.host if test.host not in ('', 'local') else ''}"
    elif test is not None and test.error:
        summary += f"; `nginx -t` could not run: {test.error}"
    return u.finding(ID, Status.PASS, TITLE, summary + ".", evidence if test_ok else [])


def _first_emerg(stderr: str) -> str:
    for line in stderr.splitlines():
        if "[emerg]" in line or "failed" in line:
            return line.strip()
    return stderr.strip().splitlines()[0] if stderr.strip() else "see the command output"


_MISSING = re.compile(r'a missing ";" at the end of line (\d+)')


def _semicolon_fix(facts: Facts) -> tuple[str, str] | None:
    """(summary, diff) ending every statement a missing ';' glued to the next, or None when none did."""
    from wsdoctor.nginx.patch import Patch

    config = facts.config
    if config is None:
        return None
    p = Patch(config)
    done: list[str] = []
    for d, why, _severity in u.syntax_problems(facts):
        m = _MISSING.search(why)
        if m is None:
            continue
        line = int(m.group(1))
        text = p.line_text(d.file, line)
        code, comment = _split_comment(text)
        try:
            p.replace_line(d.file, line, [code.rstrip() + ";" + (" " + comment if comment else "")])
        except (ValueError, KeyError, IndexError):
            continue
        done.append(f"{d.file}:{line}")
    if not done:
        return None
    return f"End the statement at {', '.join(done)} with ';'.", p.diff()


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
    from wsdoctor.nginx.patch import Patch

    try:
        first, _c, last, _e = Patch(config).statement_span(d)
    except (ValueError, KeyError, IndexError):
        return 1
    return max(1, last - first)
