"""The live verify after a reload: retried while the verdicts move, stopped once a failure repeats itself."""

from __future__ import annotations

import pytest

from wsdoctor.apply import plans
from wsdoctor.report import Finding, Status


def _findings(**statuses: Status) -> dict[str, Finding]:
    return {
        cid: Finding(id=cid, status=st, title=cid, summary=f"{cid} {st.value}")
        for cid, st in statuses.items()
    }


@pytest.fixture(autouse=True)
def _no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plans.time, "sleep", lambda s: None)


def _verifier(answers: list[dict[str, Finding]]):
    calls: list[float] = []

    def check(floor: float):
        after = answers[min(len(calls), len(answers) - 1)]
        calls.append(floor)
        ok = all(f.status is Status.PASS for f in after.values())
        return ok, "ok" if ok else "fails", after

    return plans._within_window(check), calls


def test_a_failure_that_repeats_itself_is_the_verdict() -> None:
    run, calls = _verifier([_findings(route=Status.FAIL, upstream=Status.PASS)])
    assert run() == (False, "fails")
    assert len(calls) == 2  # not VERIFY_TRIES: the same statuses twice


def test_verdicts_that_move_are_given_every_try() -> None:
    moving = [
        _findings(route=Status.FAIL, upstream=Status.FAIL),
        _findings(route=Status.FAIL, upstream=Status.PASS),
        _findings(route=Status.PASS, upstream=Status.PASS),
    ]
    run, calls = _verifier(moving)
    assert run() == (True, "ok") and len(calls) == plans.VERIFY_TRIES == 3


def test_a_pass_at_once_is_one_try() -> None:
    run, calls = _verifier([_findings(route=Status.PASS)])
    assert run() == (True, "ok") and len(calls) == 1
