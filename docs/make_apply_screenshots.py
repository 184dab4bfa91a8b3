"""Take the setup wizard's and the TUI apply's screenshots (docs/setup-answers.svg, docs/setup-review.svg,
docs/setup-applied.svg, docs/apply.svg) from real runs against local labs over their sshd:

    .venv/bin/python docs/make_apply_screenshots.py

Unlike docs/make_screenshots.py (a recorded incident, byte-for-byte reproducible), these show real hosts, so
ports, pids and backup ids differ from run to run. The wizard sets up a service on an nginx of its own (its
http block includes conf.d/*.conf, like a fresh host) in front of the healthy lab's backends; the apply fixes
the no-upgrade lab from the upgrade finding's detail. Everything is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from textual.widgets import Input, Select  # noqa: E402

from tests.apply.helpers import Proxy, ssh_target  # noqa: E402
from tests.tui.conftest import settled  # noqa: E402
from wsdoctor.app import WsdoctorApp  # noqa: E402
from wsdoctor.lab import Lab, procs  # noqa: E402
from wsdoctor.screens.apply import ApplyScreen  # noqa: E402
from wsdoctor.screens.detail import DetailScreen  # noqa: E402
from wsdoctor.screens.setup import SetupScreen  # noqa: E402

SIZE = (150, 42)
TIMEOUT = 120.0


async def _until(pilot, predicate) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit("make_apply_screenshots: the app did not reach the expected state in time")
        await pilot.pause(0.05)


async def wizard(out: Path, work: Path) -> list[Path]:
    lab = Lab.up("healthy", work / "lab")
    proxy = Proxy(work / "proxy", procs.free_ports(1)[0]).start()
    written: list[Path] = []
    try:
        target = dataclasses.replace(ssh_target(lab), url=None, path=None, nginx_conf=str(proxy.conf))
        app = WsdoctorApp(None, title_suffix=" setup")
        app.animation_level = "none"
        screen = SetupScreen(target, {}, backup_dir=str(work / "backups"))
        app.setup_screen = screen
        async with app.run_test(size=SIZE) as pilot:
            await _until(pilot, lambda: screen.step == "answers")
            group = next(g for g in screen.found.groups() if g.endswith(f" in {lab.directory}"))
            screen.query_one("#group", Select).value = group
            await pilot.pause()
            screen.query_one("#in-server_name", Input).focus()
            await pilot.pause()
            written.append(Path(app.save_screenshot("setup-answers.svg", str(out))))
            for name, value in {
                "server_name": "127.0.0.1",
                "public_path": "/dev/aiwm/chat/",
                "listen": f"127.0.0.1:{proxy.port}",
                "cert": lab.state["cert_file"],
                "key": lab.state["key_file"],
            }.items():
                screen.query_one(f"#in-{name}", Input).value = value
            await pilot.press("ctrl+g")
            await _until(pilot, lambda: screen.step == "review")
            await pilot.pause()
            written.append(Path(app.save_screenshot("setup-review.svg", str(out))))
            await pilot.press("a")
            await _until(pilot, lambda: screen.running is None and screen.applied)
            await pilot.pause(0.5)
            written.append(Path(app.save_screenshot("setup-applied.svg", str(out))))
            await pilot.press("q")
    finally:
        proxy.stop()
        lab.down()
    return written


async def apply_fix(out: Path, work: Path) -> list[Path]:
    lab = Lab.up("no-upgrade", work / "no-upgrade")
    try:
        app = WsdoctorApp(ssh_target(lab))
        app.animation_level = "none"
        async with app.run_test(size=SIZE) as pilot:
            await _until(pilot, lambda: settled(app))
            app.diagnosis_screen.findings.selected = "upgrade"
            await pilot.press("enter")
            await _until(pilot, lambda: isinstance(app.screen, DetailScreen))
            await pilot.press("a")
            await _until(pilot, lambda: isinstance(app.screen, ApplyScreen))
            screen = app.screen
            screen.request.backup_dir = str(work / "no-upgrade-backups")
            await pilot.press("y")
            await _until(pilot, lambda: screen.state == "done")
            await pilot.pause(0.5)
            path = Path(app.save_screenshot("apply.svg", str(out)))
            await pilot.press("q")
    finally:
        lab.down()
    return [path]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs"), help="directory for the SVG files")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="wsdoctor-shots-") as tmp:
        work = Path(tmp)
        for path in asyncio.run(wizard(out, work)) + asyncio.run(apply_fix(out, work)):
            print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
