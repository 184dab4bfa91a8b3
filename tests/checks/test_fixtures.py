"""gixy-style fixtures: each `fail`/`warn` config produces exactly that finding, each `pass` config none.

tests/checks/fixtures/<check>/<status>_<what>/etc/nginx/nginx.conf is a small config tree (loaded with --root,
so the real paths are /etc/nginx/…) and case.json the client (url, path, transports) and the nginx version.
Every fix diff must apply with `patch -p1` to a copy of the tree, and the check must then pass.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.checks.helpers import (
    FIXTURES,
    apply_diff,
    case_data,
    case_dirs,
    case_facts,
    parse_client_code,
    run,
)
from wsdoctor.report import CHECK_IDS, Status

CASES = case_dirs()


def _expected(case: str, data: dict) -> str:
    return data.get("expect") or case.split("_", 1)[0]


def test_every_check_has_fail_and_pass_fixtures() -> None:
    by_check: dict[str, set[str]] = {}
    for check, case in CASES:
        by_check.setdefault(check, set()).add(_expected(case, case_data(check, case)))
    for cid in CHECK_IDS:
        if cid == "auth":  # needs a CONNECT or a token: covered by test_live.py
            continue
        assert cid in by_check, f"no fixtures for {cid}"
        assert "pass" in by_check[cid] or "skip" in by_check[cid], cid
        if cid not in ("upstream", "tls", "protocol"):  # protocol needs probes: covered by test_live.py
            assert "fail" in by_check[cid] or "warn" in by_check[cid], cid


@pytest.mark.parametrize(("check", "case"), CASES, ids=[f"{c}/{k}" for c, k in CASES])
def test_fixture(check: str, case: str) -> None:
    data = case_data(check, case)
    findings = run(case_facts(check, case))
    f = findings[check]
    expected = _expected(case, data)
    assert f.status.value == expected, f"{check}/{case}: {f.status.value}: {f.title} — {f.summary}"
    assert f.summary and f.title
    others = data.get("others", {})
    for cid, other in findings.items():
        if cid == check or others.get("*") == "any":
            continue
        want = others.get(cid)
        if want:
            assert other.status.value == want, f"{cid}: {other.status.value}: {other.summary}"
        else:
            assert other.status is not Status.FAIL, (
                f"{cid} fails spuriously on {check}/{case}: {other.summary}"
            )
    if f.status in (Status.FAIL, Status.WARN):
        assert f.fix is not None and f.fix.summary, f"{check}/{case} has no fix"
        if check != "client":  # the client's proof is the request it sends, in its summary and fix code
            assert f.evidence, f"{check}/{case} has no evidence"
        for ev in f.evidence:
            if ev.kind == "config":
                assert ev.where.startswith("/etc/nginx/"), ev.where
                assert " | " in ev.text, ev.text


FIXABLE = [(c, k) for c, k in CASES if _expected(k, case_data(c, k)) in ("fail", "warn")]


@pytest.mark.parametrize(("check", "case"), FIXABLE, ids=[f"{c}/{k}" for c, k in FIXABLE])
def test_fix_makes_the_check_pass(check: str, case: str, tmp_path: Path) -> None:
    data = case_data(check, case)
    after = data.get("after_fix", "pass")
    f = run(case_facts(check, case))[check]
    assert f.fix is not None
    if f.fix.code and not f.fix.diff:
        url, path, transports = parse_client_code(f.fix.code)
        again = run(case_facts(check, case, url=url, path=path, transports=transports))[check]
        assert again.status is Status.PASS, f"after the client fix: {again.status.value}: {again.summary}"
        return
    if after is None:
        return  # a fix that is not a config change (start a backend, fix a syntax error by hand)
    assert f.fix.diff, f"{check}/{case}: the fix has no diff: {f.fix.summary}"
    assert f.fix.diff.startswith("--- a/etc/nginx/"), f.fix.diff
    tree = apply_diff(FIXTURES / check / case, f.fix.diff, tmp_path)
    again_all = run(case_facts(check, case, root=tree))
    again = again_all[check]
    assert again.status.value == after, f"after the fix: {again.status.value}: {again.title}: {again.summary}"
    for cid, other in again_all.items():
        if data.get("others", {}).get("*") == "any" or data.get("others", {}).get(cid):
            continue
        assert other.status is not Status.FAIL, f"the {check} fix breaks {cid}: {other.summary}"
