"""Snapshots (pytest-textual-snapshot): fixed size, no animations, frozen clock, recorded facts, no network.

Update after an intended change with ``pytest tests/tui/test_snapshots.py --snapshot-update`` and look
at the SVGs in ``tests/tui/__snapshots__/`` before committing them.
"""

from __future__ import annotations

from wsdoctor.screens.detail import DetailScreen
from wsdoctor.screens.logs import LogsScreen
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
