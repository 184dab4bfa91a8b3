"""The contract every check keeps: its module's names, NEEDS as Fact members, the one flow, the shared tables."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.checks.helpers import RUNBOOK_URL, SEED_DUMP, case_facts, make_facts, run
from wsdoctor import checks, logkinds
from wsdoctor.checks import _util as u
from wsdoctor.checks._flow import Flow
from wsdoctor.facts import Fact
from wsdoctor.nginx.load import load_dump
from wsdoctor.remote import logs as remote_logs
from wsdoctor.report import CHECK_IDS, corrected_lead

CHECKS_DIR = Path(checks.__file__).resolve().parent


@pytest.mark.parametrize("cid", CHECK_IDS)
def test_every_check_module_has_its_names(cid: str) -> None:
    mod = checks.module(cid)
    assert cid == mod.ID
    assert isinstance(mod.TITLE, str) and mod.TITLE
    assert isinstance(mod.NEEDS, tuple) and mod.NEEDS, f"{cid}: NEEDS names no fact"
    assert callable(mod.check)


@pytest.mark.parametrize("cid", CHECK_IDS)
def test_every_needs_entry_is_a_fact(cid: str) -> None:
    """A misspelt fact name would leave a check unpending forever: NEEDS holds Fact members only."""
    needs = checks.module(cid).NEEDS
    bad = [n for n in needs if not isinstance(n, Fact)]
    assert not bad, f"{cid}: {bad} are not facts.Fact members"
    assert len(set(needs)) == len(needs), f"{cid}: a fact named twice"


@pytest.mark.parametrize("cid", CHECK_IDS)
def test_every_check_runs_the_flow(cid: str) -> None:
    """One shape: the module's check is a Flow (auth builds one per call, to pin the time the token is judged)."""
    mod = checks.module(cid)
    assert isinstance(mod.check, Flow) or cid == "auth"


def test_no_check_writes_a_cache_it_does_not_own() -> None:
    """Caches live with the objects they cache (Config.memo): no module under checks/ touches `_cache`."""
    for path in sorted(CHECKS_DIR.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        hits = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == "_cache"]
        assert not hits, f"{path.name}:{hits} reaches into a cache"


def test_every_log_kind_has_one_row() -> None:
    """The classifiers name only kinds of the table, and the table speaks only for checks that exist."""
    assert set(remote_logs._GROUPS.values()) <= set(logkinds.KINDS)
    for kind, row in logkinds.KINDS.items():
        assert row.check in CHECK_IDS, kind
        assert row.severity in (logkinds.FAIL, logkinds.WARN), kind
        assert row.meaning, kind


def test_diff_of_gives_the_diff_or_nothing() -> None:
    config = load_dump(SEED_DUMP.read_text(), str(SEED_DUMP))
    file = next(iter(config.files))
    assert u.diff_of(None, lambda p: None) == ""
    assert u.diff_of(config, lambda p: p.replace_line(file, 10**6, ["x"])) == ""  # no such line: no diff
    diff = u.diff_of(config, lambda p: p.insert_before(file, 1, ["# wsdoctor"]))
    assert diff.startswith("--- a/") and "+# wsdoctor" in diff


def test_findings_judged_for_the_corrected_request_carry_it() -> None:
    """The runbook's client: the location checks judge the corrected request; their findings say which in data
    (Finding.corrected), and only they open with its lead."""
    found = run(make_facts(dump=SEED_DUMP, url=RUNBOOK_URL, transports=("websocket",), version="1.22.1"))
    corrected = {cid for cid, f in found.items() if f.corrected}
    assert {"timeout", "upgrade", "buffering", "cors", "sticky"} <= corrected
    for f in found.values():
        opens = f.summary.startswith("For the corrected request ")
        assert opens == bool(f.corrected), (f.id, f.corrected, f.summary)
        if f.corrected:
            assert f.corrected == "/dev/aiwm/chat/socket.io/"
            assert f.lead == corrected_lead(f.corrected) and f.summary.startswith(f.lead)


def test_a_unix_socket_proxy_pass_is_read_by_routing() -> None:
    """The URI part of `proxy_pass http://unix:/path:/uri` follows the socket path, not its first '/'."""
    f = run(case_facts("route", "fail_glued_unix_socket"))["route"]
    assert "replaces its prefix by '/chat'" in f.summary, f.summary
    assert "+            proxy_pass http://unix:/run/sio.sock:/chat/;" in f.fix.diff
