"""The three kinds of change ``wsdoctor apply`` makes, as Plans for the transaction, and how each is judged.

- ``--fix ID``: the diffs a fresh diagnosis proposes for those checks, applied by our own applier to the files
  as they are on the host; verified by a new diagnosis: each fixed check passes, no other check got worse.
- ``--config FILE --into PATH``: a generated config installed as PATH, which an ``include`` of the running
  config's ``http`` block must read (else nginx would never see it); verified by a diagnosis with no ``fail``
  when a client URL is known.
- ``--rollback [ID]``: a backup's files put back (bytes, owner, mode; files the apply created removed).
"""

from __future__ import annotations

import asyncio
import fnmatch
import math
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from wsdoctor.apply import backup as bk
from wsdoctor.apply.diffs import DiffError, apply_diffs, parse
from wsdoctor.apply.hostfs import FileState, Host, decode, encode
from wsdoctor.apply.nginxctl import Nginx
from wsdoctor.apply.transaction import Plan, Verifier
from wsdoctor.diagnose import Diagnosis
from wsdoctor.nginx.load import LoadError, load_dump
from wsdoctor.nginx.model import Config
from wsdoctor.remote import host as h
from wsdoctor.remote.session import RemoteSession
from wsdoctor.report import CHECK_IDS, Finding, Status
from wsdoctor.target import Target

VERIFY_WINDOW = 30.0  # seconds in which the live checks must pass after a reload
VERIFY_TRIES = 3
_RANK = {Status.PASS: 0, Status.SKIP: 0, Status.WARN: 1, Status.FAIL: 2}


class PlanRefused(Exception):
    """The change cannot be planned (a check with nothing to fix, a hunk that no longer applies); one sentence."""


# --- diagnoses ---------------------------------------------------------------------------------------


def diagnose(target: Target, session: RemoteSession, logs_after: float | None = None) -> dict[str, Finding]:
    """One whole diagnosis of TARGET on SESSION's host (blocking: its own event loop, in a thread of its own
    when this thread already runs one). LOGS_AFTER: log lines written before it are not evidence."""
    diagnosis = Diagnosis(target, session, logs_after=logs_after)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(diagnosis.run())
    else:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="wsdoctor-verify") as pool:
            pool.submit(asyncio.run, diagnosis.run()).result()
    return dict(diagnosis.findings)


def _statuses(findings: dict[str, Finding], ids: Iterable[str]) -> str:
    return ", ".join(f"{i} {findings[i].status.value}" for i in ids if i in findings)


def regressions(before: dict[str, Finding], after: dict[str, Finding], skip: Iterable[str] = ()) -> list[str]:
    """Checks that got worse: pass → warn/fail, warn → fail (a skipped check that now runs is no regression)."""
    out = []
    for cid in CHECK_IDS:
        if cid in skip or cid not in before or cid not in after:
            continue
        b, a = before[cid].status, after[cid].status
        if b is Status.SKIP:
            continue
        if _RANK[a] > _RANK[b]:
            out.append(f"{cid} {b.value} → {a.value} ({after[cid].summary})")
    return out


def _within_window(check: Callable[[float], tuple[bool, str, dict[str, Finding]]]) -> Verifier:
    """Run CHECK until it passes, at most VERIFY_TRIES times within VERIFY_WINDOW seconds, and no more once two
    tries in a row gave every check the same status (a failure that repeats itself is the verdict: the bad
    config is rolled back seconds sooner).

    The verifier runs after a reload: the log lines written before it describe the old config (an upstream
    error of the old route, say), so CHECK gets the next whole second as the floor of its log evidence, and
    starts once that second has begun (log times have a resolution of one second)."""

    def statuses(findings: dict[str, Finding]) -> tuple[tuple[str, Status], ...]:
        return tuple(sorted((cid, f.status) for cid, f in findings.items()))

    def run() -> tuple[bool, str]:
        floor = math.ceil(time.time())
        time.sleep(max(0.0, floor - time.time()))
        deadline = time.monotonic() + VERIFY_WINDOW
        ok, detail, after = check(floor)
        tries = 1
        while not ok and tries < VERIFY_TRIES and time.monotonic() + 1.0 < deadline:
            time.sleep(1.0)
            seen = statuses(after)
            ok, detail, after = check(floor)
            tries += 1
            if statuses(after) == seen:
                break
        return ok, detail

    return run


def fixes_verifier(
    target: Target, session: RemoteSession, ids: list[str], before: dict[str, Finding]
) -> Verifier:
    how = "live" if target.url else "config"

    def check(floor: float) -> tuple[bool, str, dict[str, Finding]]:
        after = diagnose(target, session, logs_after=floor)
        still = [
            f"{i} is {after[i].status.value}: {after[i].summary}"
            for i in ids
            if after[i].status is not Status.PASS
        ]
        worse = regressions(before, after, skip=ids)
        if still or worse:
            return False, f"{how}: " + "; ".join(still + [f"got worse: {w}" for w in worse]), after
        moved = ", ".join(f"{i} {before[i].status.value} → pass" for i in ids)
        return True, f"{how}: {moved}; no other check got worse", after

    return _within_window(check)


def unchanged_verifier(target: Target, session: RemoteSession, before: dict[str, Finding]) -> Verifier:
    """After a restore: the diagnosis is back to what it was before the change (nothing worse)."""

    def check(floor: float) -> tuple[bool, str, dict[str, Finding]]:
        after = diagnose(target, session, logs_after=floor)
        worse = regressions(before, after)
        if worse:
            return False, "live: not as before: " + "; ".join(worse), after
        failing = [i for i in CHECK_IDS if i in after and after[i].status is Status.FAIL]
        return (
            True,
            "live: the old behaviour is back"
            + (f" ({_statuses(after, failing)} as before)" if failing else ""),
            after,
        )

    return _within_window(check)


def service_verifier(target: Target, session: RemoteSession) -> Verifier:
    """After installing a config: the diagnosis of the client URL has no fail."""

    def check(floor: float) -> tuple[bool, str, dict[str, Finding]]:
        after = diagnose(target, session, logs_after=floor)
        failing = [after[i] for i in CHECK_IDS if i in after and after[i].status is Status.FAIL]
        if failing:
            return False, "live: " + "; ".join(f"{f.id} fails: {f.summary}" for f in failing), after
        counts = {s: sum(1 for f in after.values() if f.status is s) for s in Status}
        return (
            True,
            (
                f"live: no check fails ({counts[Status.PASS]} pass, {counts[Status.WARN]} warn, "
                f"{counts[Status.SKIP]} skip)"
            ),
            after,
        )

    return _within_window(check)


# --- --fix -----------------------------------------------------------------------------------------


def fix_plan(
    ids: list[str],
    before: dict[str, Finding],
    *,
    target: Target,
    session: RemoteSession,
    reason: str,
    rollback_hint: str,
) -> Plan:
    """The fixes of checks IDS from the diagnosis BEFORE; PlanRefused when one has no config change."""
    diffs: list[tuple[str, str]] = []
    for cid in ids:
        f = before.get(cid)
        if f is None:
            raise PlanRefused(f"the diagnosis has no check {cid}")
        if f.status in (Status.PASS, Status.SKIP):
            why = "passes" if f.status is Status.PASS else f"was skipped ({f.summary})"
            raise PlanRefused(f"check {cid} {why}: there is nothing to fix")
        if f.fix is None or not f.fix.diff.strip():
            what = "client code" if f.fix is not None and f.fix.code else "no config change"
            raise PlanRefused(
                f"check {cid} proposes {what}, not a diff of the nginx files; "
                "make that change as `wsdoctor check` shows it"
            )
        diffs.append((cid, f.fix.diff))
    paths: list[str] = []
    for _cid, diff in diffs:
        for patch in parse(diff):
            if patch.path not in paths:
                paths.append(patch.path)

    def compute(states: dict[str, FileState]) -> dict[str, bytes | None]:
        texts: dict[str, str] = {}
        for p, st in states.items():
            if st.data is None:
                raise DiffError(f"{p} no longer exists on the host")
            texts[p] = decode(st.data)
        texts.update(apply_diffs(texts, diffs))
        return {p: encode(t) for p, t in texts.items()}

    return Plan(
        action="fix",
        title=f"fix {', '.join(ids)}",
        paths=paths,
        compute=compute,
        reason=reason,
        verify_live=fixes_verifier(target, session, ids, before),
        verify_restored=unchanged_verifier(target, session, before),
        rollback_hint=rollback_hint,
    )


# --- --config FILE --into PATH -----------------------------------------------------------------------


def _glob(pattern: str, path: str) -> bool:
    """nginx's include globbing: ``*`` and ``?`` never cross a ``/``."""
    a, b = pattern.split("/"), path.split("/")
    return len(a) == len(b) and all(fnmatch.fnmatchcase(y, x) for x, y in zip(a, b, strict=True))


def http_includes(config: Config) -> list[str]:
    """The include patterns of the http block (absolute), where a drop-in site file can go."""
    http = config.http()
    base = os.path.dirname(config.main_file)
    out = []
    for d in http.walk() if http is not None else []:
        if d.name == "include" and d.args and d.parent is http:
            pattern = d.args[0] if d.args[0].startswith("/") else os.path.join(base, d.args[0])
            out.append(pattern)
    return out


def include_problem(config: Config, path: str) -> str | None:
    """Why nginx would not read PATH as part of its http block (None: it would)."""
    patterns = http_includes(config)
    if any(_glob(p, path) for p in patterns):
        return None
    where = f"the http block of {config.main_file} includes " + (
        ", ".join(patterns) if patterns else "no file at all"
    )
    return (
        f"nginx would not read {path}: {where}; install it where one of those matches "
        f"(or add `include {os.path.dirname(path)}/*.conf;` to the http block first)"
    )


def running_config(nginx: Nginx) -> Config | None:
    result = nginx.dump()
    text = h.dump_text(result)
    if text is None:
        return None
    try:
        return load_dump(text, f"from {nginx.host.name}")
    except LoadError:
        return None


def config_plan(
    data: bytes,
    into: str,
    *,
    host: Host,
    config: Config | None,
    target: Target,
    session: RemoteSession,
    before: dict[str, Finding] | None,
    reason: str,
    rollback_hint: str,
    trial: bool = False,
) -> Plan:
    if not into.startswith("/"):
        raise PlanRefused(f"--into takes an absolute path on the host, not {into!r}")

    def precheck() -> str | None:
        if config is None:
            return "`nginx -T` printed no config, so where nginx reads files cannot be told"
        if into in config.files and into != config.main_file:
            return None  # already read by nginx: replaced in place
        if into == config.main_file:
            return f"{into} is nginx's main config; --config installs a file for the http block, not a main config"
        return include_problem(config, into)

    has_url = bool(target.url)
    return Plan(
        action="config",
        title=f"install a config as {into}",
        paths=[into],
        compute=lambda states: {into: data},
        reason=reason,
        verify_live=service_verifier(target, session) if has_url else _no_live,
        verify_restored=unchanged_verifier(target, session, before) if has_url and before else None,
        rollback_hint=rollback_hint,
        precheck=precheck,
        trial=trial,
    )


def _no_live() -> tuple[bool, str]:
    return True, "no --url given: the live checks were not run"


# --- --rollback ------------------------------------------------------------------------------------


def rollback_plan(host: Host, backup_dir: str, backup_id: str | None) -> tuple[Plan, bk.Backup]:
    found = bk.load(host, backup_dir, backup_id)

    def compute(states: dict[str, FileState]) -> dict[str, bytes | None]:
        return bk.contents(host, found)

    plan = Plan(
        action="rollback",
        title=f"restore backup {found.id} ({found.reason or 'wsdoctor apply'}, {found.created})",
        paths=[f.path for f in found.files],
        compute=compute,
        backup=False,
        test_before=False,
    )
    return plan, found
