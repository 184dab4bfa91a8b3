"""Regenerate the README's screenshots (docs/diagnosis.svg, docs/detail.svg, docs/logs.svg).

They are taken with ``App.save_screenshot`` from the recorded incident in
``tests/tui/recorded.py`` (frozen clock, no network), so they are reproducible:

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

from tests.tui.logsources import scripted_source  # noqa: E402
from tests.tui.recorded import INJECTION, LOG_LINES, recorded_factory, recorded_target  # noqa: E402
from wsdoctor.app import WsdoctorApp  # noqa: E402
from wsdoctor.screens.detail import DetailScreen  # noqa: E402
from wsdoctor.screens.logs import LogsScreen  # noqa: E402
from wsdoctor.widgets.logview import LogView  # noqa: E402

SIZE = (110, 36)
TIMEOUT = 10.0


async def _until(pilot, predicate) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit("make_screenshots: the app did not reach the expected state in time")
        await pilot.pause(0.02)


def _settled(app: WsdoctorApp) -> bool:
    update = app.last_update
    rows = app.diagnosis_screen.findings.rows if app.diagnosis_screen else {}
    return bool(update and update.done and all(r.state.status is not None for r in rows.values()))


async def shoot(out: Path) -> list[Path]:
    app = WsdoctorApp(
        recorded_target(),
        recorded_factory(),
        scripted_source([LOG_LINES, [INJECTION]]),
        clock=lambda: 1000.0,
        title_suffix=" — recorded incident",
    )
    app.animation_level = "none"
    written: list[Path] = []
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, lambda: _settled(app))
        await pilot.pause()
        written.append(Path(app.save_screenshot("diagnosis.svg", str(out))))

        await pilot.press("down", "down", "down", "down", "enter")  # the sticky finding
        await _until(pilot, lambda: isinstance(app.screen, DetailScreen))
        await pilot.pause()
        await pilot.press("f")  # scroll so the fix shows under the end of the evidence
        await pilot.pause()
        written.append(Path(app.save_screenshot("detail.svg", str(out))))

        await pilot.press("escape", "l")
        await _until(pilot, lambda: isinstance(app.screen, LogsScreen))
        await _until(pilot, lambda: len(app.screen.query_one(LogView).lines) == len(LOG_LINES) + 1)
        await pilot.press("up", "up", "up")  # select the connect() refused line: shown in full under the view
        await pilot.pause()
        written.append(Path(app.save_screenshot("logs.svg", str(out))))
        await pilot.press("q")
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
