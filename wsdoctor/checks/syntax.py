"""`syntax` (deployment): would nginx accept this configuration?

The runbook's step 4 is ``nginx -t``; this check reports what the loader found that nginx would refuse
(unbalanced braces, a missing include, an include cycle — each with file:line), the few semantic errors the
routing engine proves offline (a ``proxy_pass`` with a URI part in a regex or named location), and, where
nginx is reachable (locally or over SSH), the verdict of ``nginx -t`` itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wsdoctor.checks import _util as u
from wsdoctor.facts import Facts
from wsdoctor.report import Evidence, Finding, Fix, Status

if TYPE_CHECKING:
    from wsdoctor.nginx.model import Config


ID = "syntax"
TITLE = "Configuration accepted by nginx"
NEEDS = ("config", "commands")

MAX_SHOWN = 8


def check(facts: Facts) -> Finding:
    config = facts.config
    test = facts.commands.get("nginx -t")
    if config is None and test is None:
        return u.skip(ID, TITLE, u.config_missing(facts) or u.NO_CONFIG)

    evidence: list[Evidence] = []
    problems: list[str] = []
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
        for d, why in _semantic_errors(config):
            problems.append(f"{d.where}: {why}")
            if len(evidence) < MAX_SHOWN:
                evidence.append(
                    Evidence(
                        kind="config",
                        where=d.where,
                        text=config.excerpt(d.file, d.line, 1, 1) + "\n" + why,
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
            summary += f" (and {n - 1} more)"
        if test_failed and problems:
            summary += "; `nginx -t` agrees"
        elif test_failed:
            summary = f"`nginx -t` fails: {first}"
        elif test_ok and problems:
            return u.finding(
                ID,
                Status.WARN,
                "The analysed config has errors that nginx -t does not",
                f"{first}, but `nginx -t` on the proxy succeeds: the config analysed differs from the running one "
                "(or the loader is stricter than nginx).",
                evidence,
                Fix(summary="Analyse the running config with --ssh (it reads `nginx -T`)."),
            )
        return u.finding(
            ID,
            Status.FAIL,
            f"nginx would refuse {first.split(': ', 1)[0]}" if problems else "`nginx -t` fails",
            summary + ".",
            evidence,
            Fix(
                summary="Fix the line shown, then run `nginx -t` before `nginx -s reload` (a failed reload keeps the "
                "old config running silently)."
            ),
        )
    where = (
        f"{len(config.files)} file(s) from {config.source}" if config is not None else "the running config"
    )
    summary = f"{where} parsed without errors"
    if test_ok:
        summary += f"; `nginx -t` succeeds{' on ' + test.host if test.host not in ('', 'local') else ''}"
    elif test is not None and test.error:
        summary += f" (`nginx -t` could not run: {test.error})"
    return u.finding(ID, Status.PASS, TITLE, summary + ".", evidence if test_ok else [])


def _first_emerg(stderr: str) -> str:
    for line in stderr.splitlines():
        if "[emerg]" in line or "failed" in line:
            return line.strip()
    return stderr.strip().splitlines()[0] if stderr.strip() else "see the command output"


def _semantic_errors(config: Config) -> list[tuple[object, str]]:
    """proxy_pass with a URI part where nginx forbids one (regex/named location, if, limit_except)."""
    out = []
    for d in config.walk():
        if d.name != "proxy_pass" or not d.args or "$" in d.args[0]:
            continue
        parent = d.parent
        if parent is None:
            continue
        scheme, sep, rest = d.args[0].partition("://")
        if not sep or rest.startswith("unix:"):
            continue
        has_uri = "/" in rest
        if not has_uri:
            continue
        if (
            parent.name == "location"
            and parent.args
            and (parent.args[0] in ("~", "~*") or parent.args[0].startswith("@"))
        ):
            kind = "a regular expression" if parent.args[0] in ("~", "~*") else "a named location"
            out.append((d, f'"proxy_pass" cannot have URI part in location given by {kind} ({parent.where})'))
        elif parent.name in ("if", "limit_except"):
            out.append((d, f'"proxy_pass" cannot have URI part inside "{parent.name}" ({parent.where})'))
    return out
