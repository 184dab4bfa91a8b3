"""One key vocabulary: every key a footer shows is in the help and in the palette, under the same name.

The footers are read from the screen as painted (every screen an engineer reaches, in the states that
change them: notes, a stopped run, a selected log line), the help from its screen, the palette from
its provider on the same screen.
"""

from __future__ import annotations

from wsdoctor.screens.commands import palette_entries
from wsdoctor.screens.detail import DetailScreen
from wsdoctor.screens.help import help_sections
from wsdoctor.screens.logs import LogsScreen
from wsdoctor.screens.target import TargetScreen
from wsdoctor.widgets.keys import DETAIL, KEYS, has_action, key_label, key_name, offered
from wsdoctor.widgets.logview import LogView

from .conftest import make_app, screen_text, settled, stopped, wait_for
from .logsources import scripted_source
from .recorded import LOG_LINES, recorded_factory, scenario_factory, seed_steps


def footer_items(app) -> list[tuple[str, str]]:
    """(key as shown, name) of every item of the top screen's footer, as it is painted; each also checked
    to be on the footer's line of the screen."""
    last = screen_text(app).splitlines()[-1]
    items = [(k.key_display, k.description) for k in app.screen.query("Footer FooterKey")]
    for key, name in items:
        assert f"{key} {name}" in last, (key, name, last)
    return items


def help_names(app) -> dict[str, set[str]]:
    """name → the key labels the help gives it, over every section."""
    out: dict[str, set[str]] = {}
    for _, rows in help_sections(app):
        for keys, name, _ in rows:
            out.setdefault(name, set()).update(k.strip() for k in keys.split(" / "))
    return out


def check_footer(app, where: str) -> list[tuple[str, str]]:
    """The footer's items, each asserted to be in the help (same key, same name) and in the palette."""
    items = footer_items(app)
    assert items, where
    names = help_names(app)
    entries = [k.name for k, _ in palette_entries(app, app.screen)]
    assert len(entries) == len(set(entries)), (where, entries)  # each action once
    palette = set(entries)
    for key, name in items:
        assert name in names and key in names[name], (where, key, name, names.get(name))
        assert name in palette, (where, name, sorted(palette))
    return items


def test_every_key_is_named_once_and_shown_as_people_write_it():
    labels = {key_label(k.keys) for k in KEYS}
    assert "Enter" in labels and "Esc" in labels and "Ctrl+P" in labels and "? " not in labels
    assert (
        key_name("ctrl+p") == "Ctrl+P" and key_name("question_mark") == "?" and key_name("enter") == "Enter"
    )
    # one name per action and scope; the same key means the same thing wherever it exists
    by_scope: dict[tuple[str, str], str] = {}
    for k in KEYS:
        for key in k.keys.split(","):
            assert by_scope.setdefault((k.scope, key), k.name) == k.name, (k.scope, key)
    meaning: dict[str, set[str]] = {}
    for k in KEYS:
        if k.scope in ("diagnosis", "detail", "logs"):
            for key in k.keys.split(","):
                meaning.setdefault(key, set()).add(k.name)
    assert meaning["n"] == {"Next problem"} and meaning["N"] == {"Previous problem"}
    assert meaning["c"] == {"Copy fix"} and meaning["f"] == {"Fix"}
    assert "Whole line" in meaning["enter"] and "Detail" in meaning["enter"]


async def test_every_footer_key_is_in_the_help_and_the_palette_under_its_name():
    steps = seed_steps()
    steps[-1] = type(steps[-1])(
        **{**steps[-1].__dict__, "notes": ["pm2 is not installed on the proxy host."]}
    )
    app = make_app(factory=recorded_factory(steps=steps), log_source=scripted_source([LOG_LINES]))
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_for(pilot, lambda: settled(app) and "i Notes" in screen_text(app))
        seen = {name for _, name in check_footer(app, "diagnosis")}
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen) and "Esc Back" in screen_text(app))
        seen |= {name for _, name in check_footer(app, "detail")}
        await pilot.press("l")
        await wait_for(pilot, lambda: isinstance(app.screen, LogsScreen) and "/ Filter" in screen_text(app))
        view = app.screen.query_one(LogView)
        await wait_for(pilot, lambda: len(view.lines) == len(LOG_LINES))
        await pilot.press("up")
        seen |= {name for _, name in check_footer(app, "logs")}
        await pilot.press("escape", "escape", "escape", "o")
        await wait_for(
            pilot, lambda: isinstance(app.screen, TargetScreen) and "Ctrl+S Start" in screen_text(app)
        )
        seen |= {name for _, name in check_footer(app, "form")}
        await pilot.press("escape")
        await pilot.press("q")
    assert {"Detail", "Next problem", "Copy fix", "Rerun", "Logs", "Notes", "Help", "Quit"} <= seen
    assert {"Back", "Fix", "Copy evidence", "Filter", "Pause", "Whole line", "Start", "Save profile"} <= seen


async def test_a_stopped_runs_footer_offers_what_helps():
    factory = scenario_factory("failed-start")
    app = make_app(target=factory.recording.target, factory=factory)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: stopped(app) and "Esc Dismiss" in screen_text(app))
        items = dict((name, key) for key, name in check_footer(app, "stopped"))
        # nothing to go to and nothing to copy: those keys are not offered
        assert "Next problem" not in items and "Copy fix" not in items
        assert items["Rerun"] == "r" and items["Dismiss"] == "Esc" and items["Quit"] == "q"
        await pilot.press("q")


def test_a_key_is_offered_exactly_when_its_screen_has_the_action():
    """The vocabulary lists every key once; a screen's footer, help and palette offer the ones it can do:
    `a` Apply on the detail screen, not on a screen without the action."""

    class WithoutApply(DetailScreen):
        action_apply = None  # type: ignore[assignment]

    assert has_action(DetailScreen, "apply") and "Apply" in {k.name for k in offered(DETAIL, DetailScreen)}
    assert not has_action(WithoutApply, "apply")
    assert "Apply" not in {k.name for k in offered(DETAIL, WithoutApply)}


def test_the_palette_holds_wsdoctors_actions_only_each_once():
    from wsdoctor.app import WsdoctorApp
    from wsdoctor.screens.commands import WsdoctorCommands

    assert {WsdoctorCommands} == WsdoctorApp.COMMANDS  # no second "Keys", no theme picker beside `t`
