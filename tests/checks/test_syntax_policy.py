"""No check builds on a statement nginx refuses: with `proxy_pass` refused (a missing ``;``), every check that
judges the Socket.IO location waits for `syntax`, the way route does; once the ``;`` is added they judge it."""

from __future__ import annotations

from pathlib import Path

from tests.checks.helpers import FIXTURES, apply_diff, case_facts, run
from wsdoctor.report import Status

CASE = "fail_refused_proxy_pass_holds_every_check"
PLACE_CHECKS = ("route", "upgrade", "upstream", "sticky", "timeout", "buffering", "cors")


def test_every_location_check_waits_for_syntax_then_judges(tmp_path: Path) -> None:
    findings = run(case_facts("syntax", CASE))
    assert findings["syntax"].status is Status.FAIL
    for cid in PLACE_CHECKS:
        f = findings[cid]
        assert f.status is Status.SKIP, f"{cid}: {f.status.value}: {f.summary}"
        assert 'refuses "proxy_pass"' in f.summary and "(see syntax)" in f.summary, f"{cid}: {f.summary}"
    fix = findings["syntax"].fix
    assert fix is not None and fix.diff
    fixed = run(case_facts("syntax", CASE, root=apply_diff(FIXTURES / "syntax" / CASE, fix.diff, tmp_path)))
    assert fixed["syntax"].status is Status.PASS, fixed["syntax"].summary
    # The same location, now loaded: the settings the refusal hid are judged (and found wrong).
    for cid in ("timeout", "buffering", "cors"):
        assert fixed[cid].status in (Status.FAIL, Status.WARN), f"{cid}: {fixed[cid].summary}"
