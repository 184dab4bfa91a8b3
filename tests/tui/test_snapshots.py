"""Snapshots (pytest-textual-snapshot): fixed size, no animations, frozen clock, recorded facts, no network.

The six lab incidents and a failed start, at 80×24 (the smallest terminal we promise) and 160×48, as the
engineer first sees them; then the detail, the logs and the target form. Every ``run_before`` waits for
the state the snapshot shows (settled rows, a painted footer, the text it is about), never for time.

Update after an intended change with ``pytest tests/tui/test_snapshots.py --snapshot-update`` and look
at the SVGs in ``tests/tui/__snapshots__/`` before committing them.
"""

from __future__ import annotations

import pytest
from textual.widgets import Input

from wsdoctor.screens.detail import DetailScreen
from wsdoctor.screens.logs import LogsScreen
from wsdoctor.screens.target import TargetScreen
from wsdoctor.widgets.logview import LogView

from .conftest import make_app, screen_text, settled, stopped, wait_for
from .logsources import scripted_source
from .recorded import INJECTION, LOG_LINES, SCENARIOS, scenario_factory

SIZE = (100, 32)
SIZES = {"80x24": (80, 24), "160x48": (160, 48)}


async def _settled(pilot) -> None:
    await wait_for(pilot, lambda: settled(pilot.app))


def _no_blink(app) -> None:
    for field in app.screen.query(Input):
        field.cursor_blink = False


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario_first_screen(snap_compare, name, size):
    factory = scenario_factory(name)
    app = make_app(target=factory.recording.target, factory=factory)
    assert snap_compare(app, terminal_size=SIZES[size], run_before=_settled)


@pytest.mark.parametrize("size", SIZES)
def test_failed_start(snap_compare, size):
    factory = scenario_factory("failed-start")
    app = make_app(target=factory.recording.target, factory=factory)

    async def until_stopped(pilot) -> None:
        await wait_for(pilot, lambda: stopped(pilot.app))

    assert snap_compare(app, terminal_size=SIZES[size], run_before=until_stopped)


def test_diagnosis_with_mixed_statuses(snap_compare):
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=_settled)


def test_detail_with_a_diff(snap_compare):
    async def open_timeout(pilot) -> None:
        await _settled(pilot)
        await pilot.press("down", "down", "down", "enter")  # client → route → upstream → timeout
        await wait_for(
            pilot,
            lambda: (
                isinstance(pilot.app.screen, DetailScreen)
                and pilot.app.screen.check_id == "timeout"
                and "Esc Back" in screen_text(pilot.app)
            ),
        )

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=open_timeout)


def _open_logs(select: int = 0):
    async def run(pilot) -> None:
        app = pilot.app
        await _settled(pilot)
        await pilot.press("l")
        await wait_for(pilot, lambda: isinstance(app.screen, LogsScreen))
        view = app.screen.query_one(LogView)
        await wait_for(pilot, lambda: len(view.lines) == len(LOG_LINES) + 1)
        if select:
            await pilot.press(*["up"] * select)
            await wait_for(pilot, lambda: view.cursor is not None and app.screen.has_class("-selecting"))
        await wait_for(
            pilot,
            lambda: "/ Filter" in screen_text(app) and f"{len(LOG_LINES) + 1} shown" in screen_text(app),
        )

    return run


def test_logs_screen(snap_compare):
    app = make_app(log_source=scripted_source([LOG_LINES, [INJECTION]]))
    assert snap_compare(app, terminal_size=SIZE, run_before=_open_logs())


def test_logs_at_80_columns_with_a_selected_row(snap_compare):
    app = make_app(log_source=scripted_source([LOG_LINES, [INJECTION]]))
    # the connect() refused line, shown in full under the view
    assert snap_compare(app, terminal_size=(80, 24), run_before=_open_logs(select=3))


def test_target_form_with_its_options_open(snap_compare, export_dir):
    async def open_options(pilot) -> None:
        app = pilot.app
        await wait_for(pilot, lambda: isinstance(app.screen, TargetScreen))
        screen = app.screen
        _no_blink(app)
        screen.query_one("#field-url").value = "wss://api.x-or.cloud"
        screen.query_one("#field-ssh").value = "root@lb1.x-or.cloud"
        screen.query_one("#field-identity").value = "/nonexistent/id_ed25519"
        await pilot.press("ctrl+s")  # the identity file does not exist: its section opens, its sentence shows
        identity = screen.query_one("#field-identity")
        await wait_for(
            pilot,
            lambda: (
                identity.has_focus
                and not screen.query_one("#options").collapsed
                and "No file /nonexistent/id_ed25519 here" in screen_text(app)
            ),
        )

    assert snap_compare(make_app(target=None), terminal_size=(100, 40), run_before=open_options)
