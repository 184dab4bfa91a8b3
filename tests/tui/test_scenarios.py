"""Six real incidents (recorded from the lab by ``tests/tui/capture.py``) and a failed start, at 80×24: the
first screen says what is wrong and what to change, with no key press; a run that stops says so, whole;
and while a re-run gathers its facts, no screen shows a verdict built from the facts still missing."""

from __future__ import annotations

import pytest

from wsdoctor.report import Status
from wsdoctor.screens.detail import DetailScreen
from wsdoctor.target import Target
from wsdoctor.widgets.board import Board, Kind
from wsdoctor.widgets.findings import one_line

from .conftest import make_app, screen_text, settled, stopped, wait_for
from .recorded import SCENARIOS, scenario_factory


def _first_failure(recording):
    final = recording.updates[-1]
    return next(f for f in final["findings"] if f["status"] == "fail")


@pytest.mark.parametrize("name", SCENARIOS)
async def test_the_first_screen_at_80x24_says_what_is_wrong_and_what_to_change(name):
    factory = scenario_factory(name)
    failure = _first_failure(factory.recording)
    app = make_app(target=factory.recording.target, factory=factory)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: settled(app))
        text = screen_text(app)
        flat = " ".join(line.strip() for line in text.splitlines())
        # what is wrong: the failing check's own verdict (its title holds the figure), on its group's line
        assert f"✗ {failure['title'][:40]}" in text, text
        assert "happening here" not in text
        # what to change: its fix, on the line under the selected (first failing) row
        assert app.diagnosis_screen.findings.selected == failure["id"]
        fix = one_line(failure["fix"]["summary"])
        assert f"└ Fix: {fix[:50]}" in text, text
        assert fix[:60] in flat
        await pilot.press("q")
    assert app.return_value == 1


FIGURES = {  # the essential figure of each incident, on the first screen at 80×24
    "seed": ["/dev/aiwm/chat", "Put the prefix in `path`"],
    "no-rewrite": ["404 to /dev/aiwm/chat/socket.io/", "`proxy_pass http://chat_ws/chat/;`"],
    "backend-down": ["Backend down: 127.0.0.1:", "Start the backend process on 127.0.0.1:"],
    "short-timeout": ["proxy_read_timeout 3 s is shorter", "proxy_read_timeout 60s."],
    "no-sticky": ["Round robin over 3 servers", "`hash $remote_addr consistent`"],
    "bad-auth": ["The token has expired", "Get a fresh token"],
}


@pytest.mark.parametrize("name", SCENARIOS)
async def test_the_essential_figure_is_on_the_first_screen(name):
    factory = scenario_factory(name)
    app = make_app(target=factory.recording.target, factory=factory)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: settled(app))
        flat = " ".join(line.strip() for line in screen_text(app).splitlines())
        for figure in FIGURES[name]:
            assert figure in flat, (figure, flat)
        await pilot.press("q")


async def test_a_failed_start_says_why_whole_and_what_to_do_and_nothing_pretends_to_run():
    factory = scenario_factory("failed-start")
    reason = factory.recording.error["message"]
    app = make_app(target=factory.recording.target, factory=factory)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: stopped(app))
        text = screen_text(app)
        flat = " ".join(line.strip().lstrip("█").strip() for line in text.splitlines())
        assert f"The run stopped: {reason.rstrip('.')}." in flat  # the whole sentence, not cut at 80 columns
        assert "r runs it again · o changes the target" in flat
        assert "■ stopped" in text and "⠋" not in text and "gathering" not in text
        rows = app.diagnosis_screen.findings.rows
        assert all(row.shown.kind is Kind.STOPPED for row in rows.values())
        assert "■ STOP  client" in text
        await pilot.press("enter")  # the detail agrees with the row: not decided, never "✓ PASS"
        await wait_for(
            pilot, lambda: isinstance(app.screen, DetailScreen) and "Not decided" in screen_text(app)
        )
        text = screen_text(app)
        assert "PASS" not in text and "FAIL" not in text and "the run stopped" in text
        await pilot.press("q")
    assert app.return_value == 0  # nothing failed: the run could not decide


async def test_during_a_rerun_the_detail_never_shows_a_verdict_built_from_missing_facts():
    factory = scenario_factory("no-sticky", manual=True)
    updates = factory.recording.updates
    app = make_app(target=factory.recording.target, factory=factory)
    async with app.run_test(size=(100, 40)) as pilot:
        await wait_for(pilot, lambda: bool(factory.made))
        factory.made[0].allowed = len(updates)
        await wait_for(pilot, lambda: settled(app))
        last_run = app.board.verdicts["cors"]
        assert last_run.status is Status.PASS
        rows = app.diagnosis_screen.findings.rows
        app.select_check("cors")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.check_id == "cors")
        detail = app.screen
        await pilot.press("r")
        await wait_for(pilot, lambda: len(factory.made) == 2)
        for i in range(len(updates)):
            factory.made[1].allowed = i + 1
            await wait_for(pilot, lambda i=i: factory.made[1].index == i and app.board.updated)
            pending = "cors" in updates[i]["pending"] and not updates[i]["done"]
            shown = detail.shown
            text = screen_text(app)
            if pending:  # the last run's verdict, said to be the last run's, and what this run waits for
                await wait_for(pilot, lambda: "The last run's verdict" in screen_text(app))
                assert shown.kind is Kind.STALE and shown.finding == last_run
                assert "no nginx config given" not in text and "↻ PASS" in screen_text(app)
            else:
                await wait_for(
                    pilot,
                    lambda: (
                        detail.shown.kind is Kind.FRESH and "The last run's verdict" not in screen_text(app)
                    ),
                )
            assert shown.kind == rows["cors"].shown.kind  # the list and the detail agree, at every step
        await pilot.press("escape", "q")


async def test_a_pending_check_says_what_it_waits_for_and_shows_no_evidence():
    factory = scenario_factory("backend-down", manual=True)
    app = make_app(target=factory.recording.target, factory=factory)
    async with app.run_test(size=(100, 40)) as pilot:
        await wait_for(pilot, lambda: bool(factory.made))
        factory.made[0].allowed = 4  # the probes are coming back; the config (nginx -T) is not in yet
        await wait_for(pilot, lambda: factory.made[0].index == 3)
        await wait_for(pilot, lambda: "waiting for root@127.0.0.1:" in screen_text(app))
        await pilot.press("enter")
        await wait_for(
            pilot, lambda: isinstance(app.screen, DetailScreen) and "No verdict yet" in screen_text(app)
        )
        text = screen_text(app)
        assert ": nginx -T" in text and "Evidence" not in text and "no nginx config given" not in text
        factory.made[0].allowed = 99
        await wait_for(pilot, lambda: app.screen.shown.kind is Kind.FRESH and "Evidence" in screen_text(app))
        await pilot.press("escape", "q")


def test_progress_says_what_is_running():
    board = Board()
    target = Target(url="wss://h/x", ssh="root@lb1", hold=6.0)
    board.start(target, keep=False)
    board.accept({}, frozenset(["timeout", "route"]), done=False, facts_pending={"hold", "config"})
    board.elapsed = 2.1
    assert board.activity() == "waiting for root@lb1: nginx -T; the held tunnel (2.1/6 s)"
    assert board.waiting("timeout") == "waiting for root@lb1: nginx -T, the held tunnel (2.1/6 s)"
    assert board.shown("route").waiting == "waiting for root@lb1: nginx -T"
    board.stop("root@lb1 refused the SSH connection")
    assert board.activity() == "" and board.shown("route").kind is Kind.STOPPED
