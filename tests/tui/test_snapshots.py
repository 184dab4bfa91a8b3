"""Snapshots (pytest-textual-snapshot): fixed size, no animations, frozen clock, recorded facts, no network.

Update after an intended change with ``pytest tests/tui/test_snapshots.py --snapshot-update`` and look
at the SVGs in ``tests/tui/__snapshots__/`` before committing them.
"""

from __future__ import annotations

from wsdoctor.screens.detail import DetailScreen
from wsdoctor.screens.logs import LogsScreen
from wsdoctor.screens.target import TargetScreen
from wsdoctor.widgets.logview import LogView

from .conftest import make_app, settled, wait_for
from .logsources import scripted_source
from .recorded import INJECTION, LOG_LINES

SIZE = (100, 32)


async def _settled(pilot) -> None:
    await wait_for(pilot, lambda: settled(pilot.app))


def test_diagnosis_with_mixed_statuses(snap_compare):
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=_settled)


def test_detail_with_a_diff(snap_compare):
    async def open_timeout(pilot) -> None:
        await _settled(pilot)
        await pilot.press("down", "down", "down", "enter")  # client → route → upstream → timeout
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, DetailScreen))

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=open_timeout)


def test_logs_screen(snap_compare):
    async def open_logs(pilot) -> None:
        app = pilot.app
        await _settled(pilot)
        await pilot.press("l")
        await wait_for(pilot, lambda: isinstance(app.screen, LogsScreen))
        await wait_for(pilot, lambda: len(app.screen.query_one(LogView).lines) == len(LOG_LINES) + 1)

    app = make_app(log_source=scripted_source([LOG_LINES, [INJECTION]]))
    assert snap_compare(app, terminal_size=SIZE, run_before=open_logs)


def test_diagnosis_at_80x24(snap_compare):
    """The smallest terminal we promise: three header lines, every check, the main keys."""
    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=_settled)


def test_logs_at_80_columns_with_a_selected_row(snap_compare):
    async def select(pilot) -> None:
        app = pilot.app
        await _settled(pilot)
        await pilot.press("l")
        await wait_for(pilot, lambda: isinstance(app.screen, LogsScreen))
        await wait_for(pilot, lambda: len(app.screen.query_one(LogView).lines) == len(LOG_LINES) + 1)
        await pilot.press("up", "up", "up")  # the connect() refused line, shown in full under the view

    app = make_app(log_source=scripted_source([LOG_LINES, [INJECTION]]))
    assert snap_compare(app, terminal_size=(80, 24), run_before=select)


def test_target_form_with_its_options_open(snap_compare, export_dir):
    async def open_options(pilot) -> None:
        app = pilot.app
        await wait_for(pilot, lambda: isinstance(app.screen, TargetScreen))
        screen = app.screen
        screen.query_one("#field-url").value = "wss://api.x-or.cloud"
        screen.query_one("#field-ssh").value = "root@lb1.x-or.cloud"
        screen.query_one("#field-identity").value = "/nonexistent/id_ed25519"
        await pilot.press("ctrl+s")  # the identity file does not exist: its section opens, its sentence shows
        await pilot.pause()

    assert snap_compare(make_app(target=None), terminal_size=(100, 40), run_before=open_options)
