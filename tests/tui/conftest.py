"""Helpers for the TUI tests: a deterministic app, the screen as text, bounded waits."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable

import pytest
from rich.console import Console
from textual import events

from tests.tui.recorded import recorded_factory, recorded_target
from wsdoctor.app import WsdoctorApp, no_log_source
from wsdoctor.widgets.board import RunState

FROZEN = 1000.0
RECORDED = object()  # make_app's default target: the recorded incident's


def make_app(target=RECORDED, factory=None, log_source=None, **kwargs) -> WsdoctorApp:
    """An app with recorded findings, a frozen clock and no animations (Textual reads
    TEXTUAL_ANIMATIONS at import, before conftest runs, so it is set on the instance)."""
    app = WsdoctorApp(
        recorded_target() if target is RECORDED else target,
        factory or recorded_factory(),
        log_source or no_log_source,  # never the real tail: it would open SSH to the recorded host
        clock=kwargs.pop("clock", lambda: FROZEN),
        **kwargs,
    )
    app.animation_level = "none"
    return app


def screen_text(app) -> str:
    """What the terminal shows right now, as plain text (the same compositor output as a screenshot)."""
    width, height = app.size
    console = Console(
        width=width, height=height, file=io.StringIO(), record=True, color_system=None, legacy_windows=False
    )
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text()


async def wait_for(pilot, predicate: Callable[[], object], timeout: float = 5.0) -> None:
    """Pump the app until PREDICATE holds; fail the test after TIMEOUT seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await pilot.pause(0.02)


async def paste(pilot, text: str) -> None:
    """What a user does with a long value (a URL, a path): one paste into the focused field. Typing it key by
    key is tested where typing matters; Pilot waits for the app to idle after every key (about 90 ms)."""
    await pilot.pause()  # a focus() just asked for lands first
    focused = pilot.app.focused
    assert focused is not None, "paste needs a focused widget"
    focused.post_message(events.Paste(text))
    await pilot.pause()


def settled(app) -> bool:
    """The run is done and its final state is on screen: every row shows what the board says, and the
    header's status line, as painted, says done (rows and header render after the screen mounts)."""
    screen = app.diagnosis_screen
    if app.board.state is not RunState.DONE or screen is None or not screen.is_mounted:
        return False
    rows = screen.findings.rows
    if any(row.shown != app.board.shown(cid) for cid, row in rows.items()):
        return False
    return app.screen is not screen or _painted(screen_text(app), "done in")


def _painted(text: str, state: str) -> bool:
    """The header says STATE and the footer has been laid out (it recomposes after the bindings change)."""
    return state in text and "q Quit" in text.splitlines()[-1]


def stopped(app) -> bool:
    """The run stopped and the screen says so (the header and the reason under it)."""
    screen = app.diagnosis_screen
    if app.board.state is not RunState.STOPPED or screen is None or not screen.is_mounted:
        return False
    return app.screen is not screen or _painted(screen_text(app), "stopped")


@pytest.fixture
def export_dir(tmp_path, monkeypatch):
    """Exports and profiles go to a temp dir; nothing touches the real home."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("WSDOCTOR_EXPORT_DIR", raising=False)
    return tmp_path


async def no_workers_left(app, timeout: float = 5.0) -> list:
    """Workers still running after TIMEOUT (empty when everything was cancelled)."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [w for w in app.workers if not w.is_finished]
        if not alive or time.monotonic() > deadline:
            return alive
        await asyncio.sleep(0.02)
