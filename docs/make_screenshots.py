"""Regenerate the README's screenshots.

- ``docs/diagnosis.svg``, ``docs/detail.svg``, ``docs/logs.svg``: the recorded incident of
  ``tests/tui/recorded.py`` at 110×36;
- ``docs/scenario-NAME.svg``: the first screen, at 80×24 and with no key pressed, of six real incidents
  recorded from the lab (``tests/tui/scenarios/``: seed, no-rewrite, backend-down, short-timeout,
  no-sticky, bad-auth), each showing what is wrong and what to change;
- ``docs/failed-start.svg``: a run that could not reach its SSH host, at 80×24.

They are taken with ``App.save_screenshot`` from recordings (frozen clock, no network), so they are
reproducible:

    .venv/bin/python docs/make_screenshots.py

Pass ``--out DIR`` to write elsewhere.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.tui.conftest import settled, stopped  # noqa: E402
from tests.tui.logsources import scripted_source  # noqa: E402
from tests.tui.recorded import (  # noqa: E402
    INJECTION,
    LOG_LINES,
    SCENARIOS,
    recorded_factory,
    recorded_target,
    scenario_factory,
)
from wsdoctor.app import WsdoctorApp, no_log_source  # noqa: E402
from wsdoctor.screens.detail import DetailScreen  # noqa: E402
from wsdoctor.screens.logs import LogsScreen  # noqa: E402
from wsdoctor.widgets.logview import LogView  # noqa: E402

SIZE = (110, 36)
SMALL = (80, 24)
TIMEOUT = 10.0


async def _until(pilot, predicate) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit("make_screenshots: the app did not reach the expected state in time")
        await pilot.pause(0.02)


def _app(target, factory, source=no_log_source, suffix: str = "") -> WsdoctorApp:
    app = WsdoctorApp(target, factory, source, clock=lambda: 1000.0, title_suffix=suffix)
    app.animation_level = "none"
    return app


async def shoot_incident(out: Path) -> list[Path]:
    app = _app(
        recorded_target(),
        recorded_factory(),
        scripted_source([LOG_LINES, [INJECTION]]),
        " — recorded incident",
    )
    written: list[Path] = []
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, lambda: settled(app))
        written.append(Path(app.save_screenshot("diagnosis.svg", str(out))))

        await pilot.press("down", "down", "down", "down", "enter")  # the sticky finding
        await _until(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.check_id == "sticky")
        await pilot.press("f")  # scroll so the fix shows under the end of the evidence
        await _until(pilot, lambda: app.screen.query_one("#detail-body").scroll_offset.y > 0)
        written.append(Path(app.save_screenshot("detail.svg", str(out))))

        await pilot.press("escape", "l")
        await _until(pilot, lambda: isinstance(app.screen, LogsScreen))
        view = app.screen.query_one(LogView)
        await _until(pilot, lambda: len(view.lines) == len(LOG_LINES) + 1)
        await pilot.press("up", "up", "up")  # select the connect() refused line: shown in full under the view
        await _until(pilot, lambda: app.screen.has_class("-selecting"))
        written.append(Path(app.save_screenshot("logs.svg", str(out))))
        await pilot.press("q")
    return written


async def shoot_scenario(name: str, out: Path) -> Path:
    factory = scenario_factory(name)
    label = "a failed start" if name == "failed-start" else f"the {name} lab, recorded"
    app = _app(factory.recording.target, factory, suffix=f" — {label}")
    async with app.run_test(size=SMALL) as pilot:
        await _until(pilot, lambda: settled(app) or stopped(app))
        filename = "failed-start.svg" if name == "failed-start" else f"scenario-{name}.svg"
        path = Path(app.save_screenshot(filename, str(out)))
        await pilot.press("q")
    return path


async def shoot(out: Path) -> list[Path]:
    written = await shoot_incident(out)
    for name in (*SCENARIOS, "failed-start"):
        written.append(await shoot_scenario(name, out))
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs"), help="directory for the SVG files")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for path in asyncio.run(shoot(out)):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
