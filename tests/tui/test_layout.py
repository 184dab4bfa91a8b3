"""Layout for the terminal's size, and verdicts that say what ran: the header at 80×24, the footers,
the title column, group verdicts from what the checks decided, and totals during a re-run."""

from __future__ import annotations

import dataclasses

from wsdoctor.report import Status
from wsdoctor.screens.detail import DetailScreen
from wsdoctor.screens.logs import LogsScreen
from wsdoctor.screens.notes import NotesScreen
from wsdoctor.widgets.chain import ChainHeader, chain_content
from wsdoctor.widgets.findings import FindingList, verdict

from .conftest import make_app, screen_text, settled, wait_for
from .recorded import FINAL, RecordedDiagnosis, recorded_factory, seed_steps

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


def test_a_group_verdict_reflects_what_its_checks_did():
    assert verdict("404 Not Found", [F, S]) == ("✗ happening here", "bold $error")
    assert verdict("404 Not Found", [F, None]) == ("✗ happening here", "bold $error")  # a fail is final
    assert verdict("404 Not Found", [P, None]) is None  # nothing claimed while a check is pending
    assert verdict("404 Not Found", [P, S])[0] == "✓ not happening (1 not checked)"
    assert verdict("404 Not Found", [P, P])[0] == "✓ not happening"
    assert verdict("404 Not Found", [S, S])[0] == "– not checked"  # never "not happening"
    assert verdict("502 Bad Gateway", [W])[0] == "! suspicious"
    assert verdict("502 Bad Gateway", [W, S])[0] == "! suspicious (1 not checked)"
    assert verdict("Checklist", [S, S, S, P, P])[0] == "✓ 2 passing (3 not checked)"
    assert verdict("Checklist", [S, W, F, P, P])[0] == "✗ 1 failing"
    assert verdict("Checklist", [S, S, S, S, S])[0] == "– not checked"


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
        await pilot.pause()
        header = app.diagnosis_screen.query_one(ChainHeader)
        assert header.outer_size.height == 3 + 1  # two lines of chain, one status line, the border
        rows = screen_text(app).splitlines()
        assert rows[1].rstrip().endswith("…")  # the chain is cut, not wrapped onto a third line
        assert "location location" not in "\n".join(rows[:2])
        assert rows[2].startswith(" nginx 1.22.1 · ssh root@lb1.x-or.cloud · done in 2.7 s · ✗1 !1 ✓6 –4")
        text = "\n".join(rows)
        for cid in FINAL:
            assert f"  {cid}" in text, cid
        # the verdicts say what ran: a skipped route is not "not happening"
        assert " 404 Not Found  ✓ not happening (1 not checked)" in text
        assert " Checklist  ✓ 3 passing (3 not checked)" in text
        # the notes go under the list, one line each, and n shows them all
        assert "! 3 notes (n shows them all): The access log format 'combined' lacks" in text
        for key in ("⏎ Detail", "r Rerun", "e Export", "l Logs", "n Notes", "? Help", "q Quit"):
            assert key in rows[-1], key
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, NotesScreen))
        await pilot.pause()
        assert "pm2 is not installed on the proxy host." in screen_text(app)
        await pilot.press("escape")

        await pilot.press("down", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen))
        await pilot.pause()
        footer = screen_text(app).splitlines()[-1]
        for key in ("f Fix", "c Copy fix", "y Copy evidence", "esc Back", "? Help", "q Quit"):
            assert key in footer, key
        await pilot.press("escape", "l")
        await wait_for(pilot, lambda: isinstance(app.screen, LogsScreen))
        await pilot.pause()
        footer = screen_text(app).splitlines()[-1]
        for key in ("/ Filter", "p Pause", "f Follow", "esc Back", "q Quit"):
            assert key in footer, key
        await pilot.press("q")


async def test_the_title_column_grows_with_the_width():
    long_title = "The client joins namespace /dev/aiwm/chat instead of requesting /dev/aiwm/chat/socket.io/"
    steps = seed_steps()
    final = dict(steps[-1].findings)
    final["client"] = dataclasses.replace(FINAL["client"], title=long_title)
    steps[-1] = dataclasses.replace(steps[-1], findings=final)
    for size, shown in (((80, 24), 21), ((160, 50), 53)):
        app = make_app(factory=recorded_factory(steps=steps))
        async with app.run_test(size=size) as pilot:
            await wait_for(pilot, lambda app=app: settled(app))
            await pilot.pause()
            row = next(r for r in screen_text(app).splitlines() if "✗ FAIL  client" in r)
            assert long_title[:shown] in row, (size, row)
            if size[0] == 160:  # 40% of the row: 53 characters of the title, not 30
                assert long_title[:54] not in row and "Sticky sessions   " in screen_text(app)
            await pilot.press("q")


async def test_rerun_shows_pending_totals_until_the_new_run_reports():
    made: list[RecordedDiagnosis] = []

    def factory(target, session=None):
        made.append(RecordedDiagnosis(target, manual=True))
        made[-1].allowed = 2 if len(made) == 1 else -1  # the re-run reports nothing until allowed
        return made[-1]

    totals = "✗ 3 fail ! 2 warn ✓ 6 pass – 1 skip"
    pending = "✗ 0 fail ! 0 warn ✓ 0 pass – 0 skip ⠋ 12 pending"  # (the clock is frozen: one frame)
    app = make_app(factory=factory)
    async with app.run_test(size=(120, 40)) as pilot:
        # Wait for what is asserted, the painted header, not for a proxy of it (under load the header is
        # repainted a few frames after the rows settle); generous bounds for a loaded machine.
        await wait_for(pilot, lambda: settled(app) and totals in screen_text(app), timeout=30)
        await pilot.press("r")
        await wait_for(pilot, lambda: len(made) == 2 and pending in screen_text(app), timeout=30)
        text = screen_text(app)
        assert "happening here" not in text and "not happening" not in text and "review" not in text
        rows = app.diagnosis_screen.query_one(FindingList).rows
        assert all(row.pending for row in rows.values())
        made[1].allowed = 2
        await wait_for(pilot, lambda: settled(app) and totals in screen_text(app), timeout=30)
        await pilot.press("q")
