"""Every character on every screen reads at WCAG's 4.5:1, in both themes, in truecolour and in 256 colours.

The screens are rendered for real (the compositor's output, as a terminal receives it) in the states an
engineer meets: a finished run with every status and the cursor on a failure, a re-run with the last
verdicts kept, a stopped run, the detail with a highlighted config excerpt and a diff, the logs with a
selected line and the filter, help, notes, the target form with its errors, the host-key dialog and the
toasts. Each text segment's foreground is measured against its background; in 256 colours both are first
reduced to the palette colour a 256-colour terminal shows. Box-drawing and block characters (borders,
scrollbars) are not text and are left out.
"""

from __future__ import annotations

from rich.color import Color, ColorSystem
from textual.screen import ModalScreen

from wsdoctor.screens.detail import DetailScreen
from wsdoctor.screens.hostkey import HostKeyScreen
from wsdoctor.screens.logs import LogsScreen
from wsdoctor.screens.target import TargetScreen
from wsdoctor.widgets.logview import LogView
from wsdoctor.widgets.theme import DARK_NAME, LIGHT_NAME, PALETTES

from .conftest import make_app, settled, stopped, wait_for
from .logsources import scripted_source
from .recorded import INJECTION, LOG_LINES, scenario_factory

GOAL = 4.5
NOT_TEXT = ("\u2500", "\u259f")  # box drawing and block elements


def _linear(c: int) -> float:
    v = c / 255
    return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4


def luminance(colour: Color) -> float:
    t = colour.get_truecolor()
    return 0.2126 * _linear(t.red) + 0.7152 * _linear(t.green) + 0.0722 * _linear(t.blue)


def contrast(fg: Color, bg: Color) -> float:
    a, b = luminance(fg), luminance(bg)
    return (max(a, b) + 0.05) / (min(a, b) + 0.05)


def low_contrast(app, where: str) -> list[str]:
    """Every text segment of the top screen below GOAL, in truecolour or in 256 colours: 'where system
    ratio text'. A dialog's dimmed backdrop (the screen under it) is not measured: it is meant to recede."""
    screen = app.screen
    area = screen.children[0].region if isinstance(screen, ModalScreen) and screen.children else screen.region
    chops = screen._compositor._render_chops(screen.region, lambda y: True)
    found: list[str] = []
    for y, chop in enumerate(chops):
        if not area.y <= y < area.bottom:
            continue
        for x0, strip in chop.items():
            x = x0
            for segment in strip:
                start, x = x, x + segment.cell_length
                if start >= area.right or x <= area.x:
                    continue
                found += _measure(segment, f"{where} ({start},{y})")
    return found


def _measure(segment, where: str) -> list[str]:
    text = "".join(c for c in segment.text if not NOT_TEXT[0] <= c <= NOT_TEXT[1])
    style = segment.style
    if not text.strip() or style is None:
        return []
    fg, bg = (style.bgcolor, style.color) if style.reverse else (style.color, style.bgcolor)
    if fg is None or bg is None:
        return [f"{where}: no colour for {text.strip()!r}"]
    out = []
    for system, (f, b) in (
        ("truecolor", (fg, bg)),
        ("256", (fg.downgrade(ColorSystem.EIGHT_BIT), bg.downgrade(ColorSystem.EIGHT_BIT))),
    ):
        ratio = contrast(f, b)
        if ratio < GOAL:
            out.append(f"{where} {system} {ratio:.2f}: {text.strip()[:40]!r}")
    return out


def _backgrounds(app) -> set[str]:
    """The background colours the top screen renders with now."""
    chops = app.screen._compositor._render_chops(app.screen.region, lambda y: True)
    return {
        segment.style.bgcolor.triplet.hex
        for chop in chops
        for strip in chop.values()
        for segment in strip
        if segment.style is not None and segment.style.bgcolor is not None and segment.style.bgcolor.triplet
    }


async def _each_theme(app, pilot, where: str, out: list[str]) -> None:
    for theme in (DARK_NAME, LIGHT_NAME):
        other = PALETTES[LIGHT_NAME if theme == DARK_NAME else DARK_NAME]
        others = {other.background, other.surface, other.panel}
        app.theme = theme
        # measured once the screen is rendered in the new theme: none of the other theme's backgrounds left
        await wait_for(
            pilot, lambda t=theme, o=others: app.current_theme.name == t and not _backgrounds(app) & o
        )
        out.extend(low_contrast(app, f"{where} [{theme}]"))


async def test_diagnosis_detail_logs_help_in_both_themes():
    source = scripted_source([[*LOG_LINES, INJECTION]])
    app = make_app(log_source=source)  # the recorded incident: fail, warn, pass and skip rows
    bad: list[str] = []
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await wait_for(pilot, lambda: settled(app))
        await _each_theme(app, pilot, "diagnosis", bad)
        app.notify("information toast")
        app.notify("warning toast", severity="warning")
        app.notify("error toast", severity="error")
        await wait_for(pilot, lambda: len(app.screen.query("Toast")) == 3)
        await _each_theme(app, pilot, "toasts", bad)
        app.clear_notifications()
        await pilot.press("down", "enter")  # route: a config excerpt with highlighted lines
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen))
        await _each_theme(app, pilot, "detail (config)", bad)
        await pilot.press("escape", "down", "down", "down", "enter")  # sticky: a probe transcript and a diff
        await wait_for(
            pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.check_id == "sticky"
        )
        await pilot.press("f")
        await _each_theme(app, pilot, "detail (diff)", bad)
        await pilot.press("escape", "l")
        await wait_for(pilot, lambda: isinstance(app.screen, LogsScreen))
        view = app.screen.query_one(LogView)
        await wait_for(pilot, lambda: len(view.lines) == len(LOG_LINES) + 1)
        await pilot.press("up", "up")
        await _each_theme(app, pilot, "logs", bad)
        await pilot.press("slash", "e")
        await _each_theme(app, pilot, "logs filter", bad)
        await pilot.press("escape", "escape", "question_mark")
        await _each_theme(app, pilot, "help", bad)
        await pilot.press("escape")
        await pilot.press("q")
    assert bad == []


async def test_rerun_stopped_form_and_host_key_in_both_themes(export_dir):
    bad: list[str] = []
    factory = scenario_factory("no-sticky", manual=True)
    app = make_app(target=factory.recording.target, factory=factory)
    async with app.run_test(size=(100, 32)) as pilot:
        factory.made  # noqa: B018 - the first run is allowed to finish
        await wait_for(pilot, lambda: bool(factory.made))
        factory.made[0].allowed = 99
        await wait_for(pilot, lambda: settled(app))
        await pilot.press("r")
        await wait_for(pilot, lambda: len(factory.made) == 2)
        factory.made[1].allowed = 3  # a few updates: some rows fresh, the rest stale or pending
        await wait_for(pilot, lambda: factory.made[1].index >= 2 and app.board.rerunning)
        await _each_theme(app, pilot, "re-run", bad)
        app.push_screen(
            HostKeyScreen(
                "lb1.x-or.cloud", "SHA256:Zm9vYmFy", remember_in="~/.local/state/wsdoctor/known_hosts"
            )
        )
        await wait_for(pilot, lambda: isinstance(app.screen, HostKeyScreen))
        await _each_theme(app, pilot, "host key", bad)
        await pilot.press("n")
        await pilot.press("q")

    failed = scenario_factory("failed-start")
    app = make_app(target=failed.recording.target, factory=failed)
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_for(pilot, lambda: stopped(app))
        await _each_theme(app, pilot, "stopped", bad)
        await pilot.press("q")

    app = make_app(target=None)
    async with app.run_test(size=(100, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, TargetScreen))
        form = app.screen
        form.query_one("#field-ssh").value = "root@lb1.x-or.cloud"
        form.query_one("#field-identity").value = "/nonexistent/id_ed25519"
        await pilot.press("ctrl+s")
        await wait_for(
            pilot,
            lambda: "No file /nonexistent/id_ed25519" in str(form.query_one("#error-identity").render()),
        )
        await _each_theme(app, pilot, "form", bad)
        await pilot.press("ctrl+q")
    assert bad == []
