"""`syntax` (deployment): would nginx accept this configuration — and who says so?

The runbook's step 4 is ``nginx -t``. Two judges speak here, side by side, and the title says which did:

- wsdoctor's own reading: what the loader found (unbalanced braces, a missing include, an include cycle — each
  with file:line), what nginx refuses in the directives wsdoctor reasons about (argument counts — a missing
  ``;`` glues two statements into one —, on/off and time values, a block where none belongs, duplicates, a
  ``proxy_pass`` with a URI part in a regex or named location: ``_args.py``, held to the real ``nginx -t``),
  and what changed with nginx's version (``ssl on;`` removed and ``listen … http2`` deprecated in 1.25.1,
  ``http2 on;`` new there, ``server … resolve`` open source from 1.27.3) or is refused for the whole
  deployment (a ``listen … ssl`` whose default server has no certificate). A statement glued by a missing
  ``;`` that nginx still accepts (``server_name`` takes any number of names) is a warning.
- real ``nginx -t``: the running master's over SSH, or this machine's nginx on a copy of a ``--nginx-conf``
  config (``nginx/testcopy.py``: paths mapped into the copy, container host names and missing certificates
  made equal and listed). Its first ``[emerg]`` is reported with file:line as the user knows it; what it says
  about this machine (a host, a user, a file it opens) is an environment fact, not a config error; and a local
  nginx of another version than the target's does not judge the target: wsdoctor's version rules do, and
  nginx's words are shown for what they are.

The other checks do not judge a directive that the statement check flags: they say "see syntax".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from wsdoctor.checks import _util as u
from wsdoctor.checks._args import deployment_errors, statement_lines
from wsdoctor.checks._flow import Flow, Verdict, skip
from wsdoctor.checks._util import Place
from wsdoctor.facts import NO_CONFIG, CommandResult, Fact, Facts
from wsdoctor.nginx import testoutput
from wsdoctor.nginx.version import parse_version
from wsdoctor.report import Evidence, Fix, Status

if TYPE_CHECKING:
    from wsdoctor.nginx.model import Config, Directive


ID = "syntax"
TITLE = "Configuration accepted by nginx"
NEEDS = (Fact.CONFIG, Fact.COMMANDS, Fact.VERSION)

MAX_SHOWN = 8
NGINX_T = "nginx -t"
OWN = "wsdoctor's statement check"
# What the statement check cannot see without nginx itself.
UNSEEN = (
    "unknown directives and modules, directives in blocks wsdoctor does not model, the files nginx opens "
    "(certificates, keys, logs) and host names that do not resolve"
)


def _where(facts: Facts) -> Place:
    if facts.config is None and NGINX_T not in facts.commands:
        return Place(None, u.config_missing(facts) or NO_CONFIG)
    return Place(None)


# --- config half: what the loader and the statement rules refuse ----------------------------------------


@dataclass
class _Said:
    problems: list[str] = field(default_factory=list)  # "file:line: what nginx says", refused
    warnings: list[str] = field(default_factory=list)  # accepted, but not as meant or deprecated
    evidence: list[Evidence] = field(default_factory=list)
    glued: bool = False  # a missing ';' among the warnings (the fix ends the statement)
    truncated: str | None = None  # the nginx -T output was cut short: what is missing (the input, not nginx)


def _config(facts: Facts, place: Place) -> _Said:
    config = facts.config
    said = _Said()
    if config is None:
        return said
    for e in config.errors:
        if e.kind == "truncated":
            said.truncated = e.message
            continue
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
    glued = u.syntax_problems(facts)
    said.glued = any(sev == "warn" for _d, _w, sev in glued)
    for d, why, severity in [*glued, *deployment_errors(config, facts.nginx_version)]:
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


@dataclass
class _Test:
    """What `nginx -t` said, read: who judged, for which version, and whether that is the target's."""

    result: CommandResult
    judge: str  # in a sentence: "nginx 1.22.1 here", "nginx on root@lb1"
    heading: str  # in a title: "nginx -t of nginx 1.22.1 here (on a copy)", "nginx -t on root@lb1"
    outcome: testoutput.Outcome
    local: bool  # this machine's nginx on a copy of the config
    version: str | None  # the judging binary's version, when known
    other_version: (
        str | None
    )  # the target's version when it differs from the judge's (then it does not judge)
    mapped: str = ""  # the host names made to resolve for the test, as a clause ("" when none)


def _read_test(facts: Facts, test: CommandResult | None) -> _Test | None:
    if test is None or test.error is not None:
        return None
    local = test.host in ("", "local")
    version = _binary_version(test.stdout) if local else facts.nginx_version
    files = set(facts.config.files) if facts.config is not None else set()
    outcome = testoutput.read(test.stderr, test.exit_status, files if local else set())
    if local:
        judge = f"nginx {version} here" if version else "this machine's nginx"
        heading = f"nginx -t of {judge} (on a copy)"
    else:
        judge, heading = f"nginx on {test.host}", f"nginx -t on {test.host}"
    target = facts.nginx_version
    other = (
        target if local and version and target and parse_version(version) != parse_version(target) else None
    )
    hosts = next(
        (
            ln[len(testoutput.HOSTS_LINE) :]
            for ln in test.stdout.splitlines()
            if ln.startswith(testoutput.HOSTS_LINE)
        ),
        "",
    )
    mapped = (
        f"; host names mapped to 127.0.0.1 for it, as they resolve on the target but maybe not here: {hosts}"
        if hosts
        else ""
    )
    return _Test(test, judge, heading, outcome, local, version, other, mapped)


def _binary_version(header: str) -> str | None:
    first = header.splitlines()[0] if header else ""
    if not first.startswith("# nginx "):
        return None
    v = parse_version(first.split("(", 1)[0])
    return ".".join(map(str, v)) if v else None


def _combine(facts: Facts, place: Place, said: _Said | None, test: CommandResult | None) -> Verdict:
    if said is None:
        return skip(place.why or "")
    t = _read_test(facts, test)
    evidence = said.evidence + ([u.cmd_ev(test)] if test is not None else [])
    if said.truncated:
        return _truncated(said, evidence)
    if t is not None and t.other_version is None and not t.outcome.stopped_by_environment:
        return _judged_by_nginx(facts, said, t, evidence)
    verdict = _own_verdict(facts, said, evidence)
    if test is not None and test.error is not None:
        return _add(verdict, f"`nginx -t` could not run: {test.error}")
    if t is None:
        return verdict
    if t.outcome.stopped_by_environment:
        return _add(
            verdict,
            f"{t.judge} stopped at a difference between this machine and the target, not a config error, and "
            f"judged nothing after it: {_strip_level(t.outcome.environment[0])}",
        )
    return _other_version(verdict, t)


def _truncated(said: _Said, evidence: list[Evidence]) -> Verdict:
    """A cut dump says nothing about what nginx accepts: say what is missing, and what was found in the rest."""
    found = f" In the part that was read: {said.problems[0]}." if said.problems else ""
    return Verdict(
        Status.WARN,
        "The nginx -T output is truncated: part of the config is missing",
        f"{_cap(said.truncated or '')}; the checks that need the missing part wait for it.{found}",
        evidence,
        Fix(summary="Save the whole output as root (`sudo nginx -T > nginx-T.txt 2>&1`) and pass it with "
            "--nginx-dump, or give --ssh to read it from the proxy host."),
    )


def _judged_by_nginx(facts: Facts, said: _Said, t: _Test, evidence: list[Evidence]) -> Verdict:
    """nginx -t of the target's own version (or over SSH): its verdict first, wsdoctor's reading beside it."""
    o = t.outcome
    env = _environment_note(t)
    if t.local and t.version and not facts.nginx_version:
        env += f"; the target's nginx version is unknown: if it is not {t.version}, give --nginx-version"
    if not o.accepted:
        first = o.emerg or _first_emerg(t.result.stderr)
        agrees = "; wsdoctor's statement check agrees" if said.problems else ""
        return Verdict(
            Status.FAIL,
            f"{_cap(t.heading)} refuses the configuration",
            f"`nginx -t` fails: {_strip_level(first)}{agrees}{env}.",
            evidence,
            _refused_fix(facts, said),
        )
    if said.problems:
        return Verdict(
            Status.WARN,
            "The analysed config has errors that nginx -t does not",
            f"{said.problems[0]}, but {t.judge} accepts it (`nginx -t` succeeds): "
            + (
                "wsdoctor's statement check is stricter than nginx here."
                if t.local
                else "the config analysed differs from the running one, or the loader is stricter than nginx."
            ),
            evidence,
            Fix(
                summary="Analyse the running config with --ssh (it reads `nginx -T`)."
                if not t.local
                else "Trust nginx -t here; please report the difference."
            ),  # fmt: skip
        )
    # wsdoctor's warnings that nginx gives too (the same file:line) are said once, in nginx's words.
    own = [w for w in said.warnings if not any(f"{w.split(': ', 1)[0]}" in x for x in o.warnings)]
    if o.warnings:
        more = len(o.warnings) + len(own) - 1
        return Verdict(
            Status.WARN,
            f"{_cap(t.heading)} accepts the configuration, with warnings",
            f"`nginx -t` succeeds, but: {_strip_level(o.warnings[0])}"
            + (f", and {u.plural(more, 'more warning')}" if more > 0 else "")
            + f"{env}.",
            evidence,
            _warning_fix(facts, said),
        )
    if own:
        mine = _own_verdict(facts, _Said(warnings=own, glued=said.glued), evidence)
        return Verdict(
            Status.WARN, mine.title, mine.then(f"`nginx -t` ({t.judge}) accepts it silently{env}."), evidence,
            mine.fix,
        )  # fmt: skip
    return Verdict(
        Status.PASS,
        f"{_cap(t.heading)} accepts the configuration",
        f"{_parsed(facts)} parsed without errors; `nginx -t` succeeds"
        + (f" on {t.result.host}" if not t.local else f" ({t.judge}, on a copy of the config{t.mapped})")
        + f"{env}.",
        evidence,
    )


def _own_verdict(facts: Facts, said: _Said, evidence: list[Evidence]) -> Verdict:
    """wsdoctor's statement check alone (no nginx -t of the target's version): titled as such."""
    version = facts.nginx_version
    for_v = f"nginx {version}" if version else "nginx"
    if said.problems:
        first = said.problems[0]
        n = len(said.problems)
        return Verdict(
            Status.FAIL,
            f"{for_v} would refuse {first.split(': ', 1)[0]} ({OWN})",
            f"{for_v} would refuse to load it: {first}"
            + (f", and {u.plural(n - 1, 'more problem')}" if n > 1 else "")
            + ".",
            evidence,
            _refused_fix(facts, said),
        )
    if said.warnings:
        first = said.warnings[0]
        title = (
            "A missing ';' joins two statements"
            if said.glued
            else f"{for_v} would warn: {first.split(': ', 1)[0]}"
        )
        return Verdict(
            Status.WARN,
            f"{title} ({OWN})",
            f"{first}; nginx accepts it"
            + (", but not as meant" if said.glued else "")
            + (f", and {u.plural(len(said.warnings) - 1, 'more like it')}" if len(said.warnings) > 1 else "")
            + ".",
            evidence,
            _warning_fix(facts, said),
        )
    return Verdict(
        Status.PASS,
        f"Statements checked by wsdoctor (not by nginx -t): nothing {for_v} would refuse",
        f"{_parsed(facts)} parsed without errors; the statement check finds nothing nginx would refuse, but "
        f"without `nginx -t` it cannot see {UNSEEN}: run `nginx -t` where nginx runs (or give --ssh).",
        [],
    )


def _other_version(verdict: Verdict, t: _Test) -> Verdict:
    """This machine's nginx is not the target's version: its words are shown, wsdoctor's version rules judge."""
    target = t.other_version
    o = t.outcome
    if not o.accepted and o.emerg is not None:
        since = testoutput.explained_by_version(o.emerg, target)
        if since is not None:
            return _add(
                verdict,
                f"{t.judge} refuses {_strip_level(o.emerg)}, which nginx {'.'.join(map(str, since))} and later "
                f"accept: the target runs {target}, and nginx here judged nothing after that line",
            )
        if verdict.status is Status.PASS:
            return Verdict(
                Status.WARN,
                f"{_cap(t.heading)} refuses what the target's nginx {target} may accept",
                f"{t.judge} refuses it: {_strip_level(o.emerg)}; the target runs nginx {target}, which wsdoctor "
                f"cannot run here: run `nginx -t` there (or give --ssh). {verdict.summary}",
                verdict.evidence,
                Fix(
                    summary="Run `nginx -t` on the target (or give --ssh) to see whether its nginx accepts it."
                ),
            )
        return _add(verdict, f"{t.judge} refuses it too: {_strip_level(o.emerg)}")
    said = "accepts it" + (f" with warnings ({_strip_level(o.warnings[0])})" if o.warnings else "")
    return _add(
        verdict, f"{t.judge} {said}; the target runs nginx {target}, judged by wsdoctor's version rules"
    )


def _environment_note(t: _Test) -> str:
    if not t.outcome.environment:
        return ""
    return f"; about this machine, not the config: {_strip_level(t.outcome.environment[0])}"


def _add(v: Verdict, clause: str) -> Verdict:
    return Verdict(v.status, v.title, v.then(clause + "."), v.evidence, v.fix)


def _parsed(facts: Facts) -> str:
    config = facts.config
    if config is None:
        return "the running config"
    return f"{u.plural(len(config.files), 'file')} from {config.source}"


def _cap(text: str) -> str:
    """TEXT opening a title: capitalised, except nginx's own name."""
    return text if text.startswith("nginx") else text[:1].upper() + text[1:]


def _strip_level(line: str) -> str:
    return re.sub(r"^(nginx: )?\[\w+\] ", "", line.strip())


def _refused_fix(facts: Facts, said: _Said) -> Fix:
    semi = _semicolon_fix(facts) if said.problems else None
    return Fix(
        summary=(semi[0] + " Then run" if semi else "Fix the line shown, then run")
        + " `nginx -t` before `nginx -s reload`: a failed reload keeps the old config running silently.",
        diff=semi[1] if semi else "",
    )


def _warning_fix(facts: Facts, said: _Said) -> Fix:
    semi = _semicolon_fix(facts) if said.glued else None
    if semi:
        return Fix(summary=semi[0] + " Then run `nginx -t` and reload.", diff=semi[1])
    return Fix(summary="Change the line shown as nginx says, then run `nginx -t` and reload.")


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
