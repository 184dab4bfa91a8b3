"""Layout for the terminal's size and verdicts that say what ran: the header at 80×24, the footers, group
headers in the checks' own words, and a re-run that keeps the last verdicts (marked ↻) until new ones arrive."""

from __future__ import annotations

import dataclasses

from wsdoctor.report import Finding, Status
from wsdoctor.screens.detail import DetailScreen
from wsdoctor.screens.logs import LogsScreen
from wsdoctor.screens.notes import NotesScreen
from wsdoctor.widgets.board import Kind, Shown
from wsdoctor.widgets.chain import ChainHeader, chain_content
from wsdoctor.widgets.findings import FindingList, group_verdict

from .conftest import make_app, screen_text, settled, wait_for
from .recorded import FINAL, recorded_factory, scenario_factory, seed_steps

P, W, F, S = Status.PASS, Status.WARN, Status.FAIL, Status.SKIP

LIVE_CHAIN = [
    ("url", "wss://127.0.0.1:40799/dev/aiwm/chat"),
    ("request", "GET /socket.io/?EIO=4&transport=websocket"),
    ("namespace", "/dev/aiwm/chat"),
    ("location", "location /dev/aiwm/chat/ (/etc/nginx/sites-enabled/api.x-or.cloud:12)"),
    ("upstream", "http://chat_ws/chat/socket.io/"),
]
NOTES = [
    "The access log format 'combined' lacks $upstream_status $upstream_addr: add them to see which "
    "backend answered each request.",
    "The backend log /var/log/chat/app.log is not readable by the SSH user.",
    "pm2 is not installed on the proxy host.",
]


def _row(cid: str, status: Status | None, title: str = "", kind: Kind = Kind.FRESH) -> Shown:
    if status is None:
        return Shown(cid, kind if kind is not Kind.FRESH else Kind.PENDING, None, cid, "waiting for x")
    return Shown(
        cid, kind, Finding(cid, status, title or f"{cid} {status}", "summary"), title or f"{cid} {status}"
    )


def test_a_group_header_says_what_its_checks_found_in_their_words():
    def say(name, *rows):
        verdict, titled = group_verdict(name, rows)
        return verdict.plain, titled

    # a failure is said with the check's own title, which carries the figure, never "502 happening here"
    assert say("502 Bad Gateway", _row("upstream", F, "Backend down: 127.0.0.1:3352")) == (
        "✗ Backend down: 127.0.0.1:3352",
        "upstream",
    )
    assert say("Drops after 60 s", _row("timeout", F, "proxy_read_timeout 3 s is shorter than the ping"))[
        0
    ] == ("✗ proxy_read_timeout 3 s is shorter than the ping")
    assert say("404 Not Found", _row("client", F, "Wrong path"), _row("route", None)) == (
        "✗ Wrong path",
        "client",
    )
    assert say("502 Bad Gateway", _row("upstream", W, "Slow backend")) == (
        "! suspicious: Slow backend",
        "upstream",
    )
    assert (
        say("404 Not Found", _row("client", P), _row("route", None))[0] == "checking…"
    )  # nothing claimed yet
    assert say("404 Not Found", _row("client", P), _row("route", S))[0] == "✓ not happening (1 not checked)"
    assert say("404 Not Found", _row("client", P), _row("route", P))[0] == "✓ not happening"
    assert (
        say("404 Not Found", _row("client", S), _row("route", S))[0] == "– not checked"
    )  # never "not happening"
    stale = _row("upstream", F, "Backend down: 127.0.0.1:3352", Kind.STALE)
    assert say("502 Bad Gateway", stale)[0] == "↻ ✗ Backend down: 127.0.0.1:3352"  # the last run's, said so
    stopped = Shown("upstream", Kind.STOPPED, None, "Backends answer")
    assert say("502 Bad Gateway", stopped)[0] == ""  # the run's reason is above the list, said once
    checklist = [_row("upgrade", S), _row("buffering", W), _row("cors", F), _row("tls", P), _row("syntax", P)]
    assert say("Checklist", *checklist)[0] == "✗ 1 failing · ! 1 to review · ✓ 2 passing · – 1 not checked"


def test_the_chain_says_location_once_and_keeps_details_for_wide_terminals():
    narrow = chain_content(LIVE_CHAIN, wide=False).plain
    assert "location location" not in narrow and "→ location /dev/aiwm/chat/ →" in narrow
    assert "request /socket.io/ →" in narrow and "sites-enabled" not in narrow
    wide = chain_content(LIVE_CHAIN, wide=True).plain
    assert "location /dev/aiwm/chat/ (/etc/nginx/sites-enabled/api.x-or.cloud:12)" in wide
    assert "location location" not in wide and "request GET /socket.io/?EIO=4&transport=websocket" in wide


def _skipping_steps():
    """The seed run with the Checklist's config checks skipped and route skipped (no config)."""
    steps = seed_steps()
    final = dict(steps[-1].findings)
    for cid in ("route", "upgrade", "buffering", "cors"):
        final[cid] = dataclasses.replace(FINAL[cid], status=Status.SKIP, summary="no nginx config")
    final["client"] = dataclasses.replace(FINAL["client"], status=Status.PASS)
    final["tls"] = dataclasses.replace(FINAL["tls"], status=Status.PASS)
    steps[-1] = dataclasses.replace(steps[-1], findings=final, notes=NOTES)
    return steps


async def test_80x24_header_takes_three_lines_and_every_check_and_key_shows():
    app = make_app(factory=recorded_factory(steps=_skipping_steps(), chain=LIVE_CHAIN))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: settled(app))
        header = app.diagnosis_screen.query_one(ChainHeader)
        assert header.outer_size.height == 3  # two lines of chain, one status line; no border under 34 lines
        rows = screen_text(app).splitlines()
        assert rows[1].rstrip().endswith("…")  # the chain is cut, not wrapped onto a third line
        assert "location location" not in "\n".join(rows[:2])
        assert rows[2].startswith(" nginx 1.22.1 · ssh root@lb1.x-or.cloud · done in 2.7 s · ✗1 !1 ✓6 –4")
        text = "\n".join(rows)
        for cid in FINAL:
            assert f"  {cid}" in text, cid
        # the verdicts say what ran: a skipped route is not "not happening"
        assert " 404 Not Found  ✓ not happening (1 not checked)" in text
        assert " Checklist  ! 1 to review · – 3 not checked" not in text  # the tls warning is now a pass
        assert " Checklist  ✓ 3 passing · – 3 not checked" in text
        # at 24 lines the notes give their line to the checks: the footer's `i Notes` says there are some
        assert "notes from gathering" not in text and "i Notes" in rows[-1]
        for key in (
            "Enter Detail",
            "r Rerun",
            "l Logs",
            "n Next problem",
            "c Copy fix",
            "i Notes",
            "? Help",
            "q Quit",
        ):
            assert key in rows[-1], key
        await pilot.press("i")
        await wait_for(
            pilot, lambda: isinstance(app.screen, NotesScreen) and "pm2 is not installed" in screen_text(app)
        )
        await pilot.press("escape")

        await pilot.press("down", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen) and "Esc Back" in screen_text(app))
        footer = screen_text(app).splitlines()[-1]
        for key in (
            "Esc Back",
            "n Next problem",
            "f Fix",
            "c Copy fix",
            "y Copy evidence",
            "? Help",
            "q Quit",
        ):
            assert key in footer, key
        await pilot.press("l")  # the logs open over the detail, and Esc comes back to it
        await wait_for(pilot, lambda: isinstance(app.screen, LogsScreen) and "/ Filter" in screen_text(app))
        footer = screen_text(app).splitlines()[-1]
        for key in ("/ Filter", "p Pause", "Enter Whole line", "n Next problem", "Esc Back", "q Quit"):
            assert key in footer, key
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen))
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.diagnosis_screen)
        await pilot.press("q")


async def test_rerun_keeps_the_last_verdicts_marked_until_the_new_run_decides_them():
    factory = scenario_factory("no-sticky", manual=True)
    app = make_app(target=factory.recording.target, factory=factory)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: bool(factory.made))
        factory.made[0].allowed = len(factory.recording.updates)
        await wait_for(
            pilot, lambda: settled(app) and "✗ 1 fail ! 0 warn ✓ 11 pass – 0 skip" in screen_text(app)
        )
        await pilot.press("r")
        await wait_for(pilot, lambda: len(factory.made) == 2)
        # the new run has reported nothing: every row keeps its verdict, marked as the last run's
        await wait_for(pilot, lambda: "↻ 12 last run's" in screen_text(app))
        text = screen_text(app)
        assert "re-running" in text and "✗ 1 fail ! 0 warn ✓ 11 pass – 0 skip" in text
        assert "↻ FAIL  sticky" in text and "↻ PASS  client" in text and "⠋" not in text
        rows = app.diagnosis_screen.query_one(FindingList).rows
        assert all(row.shown.kind is Kind.STALE for row in rows.values())
        assert app.exit_code() == 1  # the screen shows the last run's failure
        # eight updates in, the probes are back but not the config: every check is still the last run's; then
        # the config: the checks it completes are fresh, the rest stay the last run's, none a guess
        factory.made[1].allowed = 8
        await wait_for(pilot, lambda: factory.made[1].index == 7 and "↻ 12 last run's" in screen_text(app))
        factory.made[1].allowed = 9
        await wait_for(
            pilot, lambda: rows["sticky"].shown.kind is Kind.FRESH and "↻ 6 last run's" in screen_text(app)
        )
        assert rows["sticky"].status is Status.FAIL and rows["route"].shown.kind is Kind.STALE
        factory.made[1].allowed = len(factory.recording.updates)
        await wait_for(pilot, lambda: settled(app) and "last run's" not in screen_text(app))
        assert "✗ 1 fail ! 0 warn ✓ 11 pass – 0 skip" in screen_text(app)
        await pilot.press("q")
