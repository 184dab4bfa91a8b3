"""The diagnosis screen driven by recorded updates: statuses, selection, detail, copy, export, quit, errors."""

from __future__ import annotations

import json

from textual.command import CommandPalette

from wsdoctor.app import DiagnosisUpdated
from wsdoctor.checks._util import Place
from wsdoctor.diagnose import target_summary
from wsdoctor.errors import InputError
from wsdoctor.remote.errors import HostKeyUnknown
from wsdoctor.report import Finding, Report, Status
from wsdoctor.screens.detail import DetailScreen
from wsdoctor.screens.help import HelpScreen
from wsdoctor.screens.hostkey import HostKeyScreen
from wsdoctor.widgets.board import Kind, Shown
from wsdoctor.widgets.findings import CORRECTED_MARK, FindingList, FindingRow, focus_line, row_summary

from .conftest import make_app, no_workers_left, screen_text, settled, stopped, wait_for
from .logsources import scripted_source
from .recorded import FINAL, TOKEN, RecordedDiagnosis, recorded_factory, recorded_target


def row_statuses(app) -> dict[str, Status | None]:
    rows = app.diagnosis_screen.query_one(FindingList).rows
    return {cid: row.status for cid, row in rows.items()}


async def test_pending_rows_say_what_they_wait_for_then_verdicts_arrive_in_place():
    messages = []
    factory = recorded_factory(manual=True)
    app = make_app(factory=factory)
    async with app.run_test(size=(100, 32), message_hook=messages.append) as pilot:
        findings = app.diagnosis_screen.query_one(FindingList)
        rows_before = dict(findings.rows)
        await wait_for(pilot, lambda: "waiting for root@lb1.x-or.cloud: nginx -T" in screen_text(app))
        first = row_statuses(app)
        assert first["client"] is Status.FAIL
        assert all(first[cid] is None for cid in first if cid != "client")  # pending: a spinner, no verdict
        text = screen_text(app)
        # a pending row has the check's own name, never the provisional verdict's title
        assert "Server and location" not in text and "waiting for its facts" not in text
        # the totals count what the rows show: one verdict, ten pending
        assert "✗1 !0 ✓0 –0 ⠋11" in text and "running" in text

        factory.made[0].allowed = 1  # the config arrives: config-only checks decided, probes pending
        await wait_for(pilot, lambda: row_statuses(app)["route"] is not None)
        second = row_statuses(app)
        assert second["route"] is Status.FAIL and second["timeout"] is Status.WARN
        assert second["sticky"] is None and second["upstream"] is None
        await wait_for(pilot, lambda: "waiting for the handshake through the proxy" in screen_text(app))
        assert "nginx 1.22.1" in screen_text(app)

        factory.made[0].allowed = 2
        await wait_for(pilot, lambda: settled(app))
        assert row_statuses(app) == {cid: f.status for cid, f in FINAL.items()}
        text = screen_text(app)
        for line in (
            "✗ FAIL  client",
            "✗ FAIL  route",
            "✓ PASS  upstream",
            "! WARN  timeout",
            "✗ FAIL  sticky",
        ):
            assert line in text
        assert "– SKIP  cors" in text and "! WARN  tls" in text
        assert "done in 2.7 s" in text and "nginx 1.22.1" in text and "ssh root@lb1.x-or.cloud" in text
        assert "request /socket.io/ → namespace /dev/aiwm/chat" in text  # at 100 columns: no method, no query
        # keyed in-place updates: the same row widgets, one per check, updated three times
        assert findings.rows == rows_before and len(app.diagnosis_screen.query("FindingRow")) == len(FINAL)
        assert len([m for m in messages if isinstance(m, DiagnosisUpdated)]) == 3
        await pilot.press("q")


async def test_the_first_failure_is_selected_with_its_fix_under_it_and_enter_shows_evidence():
    app = make_app()
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_for(pilot, lambda: settled(app))
        findings = app.diagnosis_screen.query_one(FindingList)
        assert findings.selected == "client"
        assert "└ Fix: Give the engine path in `path`" in screen_text(app)  # the fix, without a key press
        await pilot.press("down", "down", "down", "down")
        assert findings.selected == "sticky"
        await wait_for(pilot, lambda: "└ Fix: Hash each client to one backend" in screen_text(app))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen))
        detail = app.screen
        body = "\n".join(str(w.render()) for w in detail.query("#detail-body Static"))
        assert "/etc/nginx/conf.d/upstream.conf:2" in body
        assert '"Invalid session Qx1Yt9b3UuS2eM0fAAAB"' in body
        assert "+    ip_hash;" in body
        assert TOKEN not in body and "Authorization: Bearer ***" in body and "Cookie: ***" in body

        await pilot.press("c")
        assert (
            app.clipboard.startswith("--- a/etc/nginx/conf.d/upstream.conf")
            and "+    ip_hash;" in app.clipboard
        )
        await pilot.press("y")
        assert app.clipboard.startswith("[config] /etc/nginx/conf.d/upstream.conf:2")
        assert TOKEN not in app.clipboard

        await pilot.press("escape")
        assert app.screen is app.diagnosis_screen and findings.selected == "sticky"
        await pilot.press("q")


async def test_n_and_N_move_between_problems_on_the_list_and_in_the_detail():
    app = make_app()
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_for(pilot, lambda: settled(app))
        findings = app.diagnosis_screen.query_one(FindingList)
        problems = [cid for cid, f in FINAL.items() if f.status in (Status.FAIL, Status.WARN)]
        assert problems == ["client", "route", "timeout", "sticky", "tls"]
        seen = [findings.selected]
        for _ in range(len(problems)):
            await pilot.press("n")
            seen.append(findings.selected)
        assert seen == [*problems, problems[0]]  # from the last problem, n wraps to the first
        await pilot.press("N")
        assert findings.selected == "tls"
        await pilot.press("left_square_bracket")
        assert findings.selected == "sticky"
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen))
        await pilot.press("n")
        await wait_for(pilot, lambda: app.screen.check_id == "tls" and "TLS certificate" in screen_text(app))
        assert findings.selected == "tls"  # the list follows, so Esc lands on it
        await pilot.press("escape")
        assert findings.selected == "tls"
        await pilot.press("q")


async def test_c_copies_a_fix_that_is_a_sentence_and_f_says_when_the_fix_is_on_screen():
    app = make_app()
    async with app.run_test(size=(100, 40), notifications=True) as pilot:
        await wait_for(pilot, lambda: settled(app))
        await pilot.press("N")  # from the first problem back to the last one: tls, whose fix is a sentence
        assert app.diagnosis_screen.findings.selected == "tls"
        await pilot.press("c")
        assert app.clipboard == "Renew the certificate now (e.g. certbot renew) and reload nginx.\n"
        assert any("sentence copied" in n.message for n in app._notifications)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen))
        await pilot.press("f")  # a short detail: the fix is already on screen, and f says so
        await wait_for(pilot, lambda: any("The fix is on screen" in n.message for n in app._notifications))
        await pilot.press("c")
        assert app.clipboard == "Renew the certificate now (e.g. certbot renew) and reload nginx.\n"
        await pilot.press("q")


async def test_client_detail_shows_the_corrected_code():
    app = make_app()
    async with app.run_test(size=(100, 40)) as pilot:
        await wait_for(pilot, lambda: settled(app))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen))
        assert app.screen.check_id == "client"
        await wait_for(pilot, lambda: "path: '/dev/aiwm/chat/socket.io'" in screen_text(app))
        assert "Client code" in screen_text(app)
        await pilot.press("c")
        assert app.clipboard.startswith("const socket = io('wss://api.x-or.cloud', {")
        await pilot.press("q")


async def test_export_writes_markdown_and_json_equal_to_the_report(export_dir):
    factory = recorded_factory()
    app = make_app(factory=factory, export_dir=export_dir / "out")
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_for(pilot, lambda: settled(app))
        await pilot.press("e")
        await wait_for(
            pilot, lambda: (export_dir / "out").exists() and len(list((export_dir / "out").iterdir())) == 2
        )
        await pilot.press("q")
    files = sorted((export_dir / "out").iterdir())
    assert [f.suffix for f in files] == [".json", ".md"]
    data = json.loads(files[0].read_text())
    diagnosis = factory.made[0]
    expected = Report(
        target=target_summary(diagnosis.facts), findings=list(FINAL.values()), secrets=[TOKEN]
    ).to_json()
    assert files[0].read_text() == expected == diagnosis.report().to_json()
    assert data["summary"] == {"pass": 6, "warn": 2, "fail": 3, "skip": 1}
    markdown = files[1].read_text()
    assert "### ❌ sticky: Sticky sessions" in markdown and "+    ip_hash;" in markdown
    for f in files:
        assert TOKEN not in f.read_text()


async def test_an_export_during_the_run_says_undecided_checks_are_undecided(export_dir):
    factory = recorded_factory(manual=True)
    app = make_app(factory=factory, export_dir=export_dir / "partial")
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_for(pilot, lambda: row_statuses(app)["client"] is Status.FAIL)
        await pilot.press("e")
        await wait_for(pilot, lambda: any((export_dir / "partial").glob("*.json")))
        await pilot.press("q")
    data = json.loads(next((export_dir / "partial").glob("*.json")).read_text())
    by_id = {f["id"]: f for f in data["findings"]}
    assert by_id["client"]["status"] == "fail"
    route = by_id["route"]  # pending: the provisional "waiting for its facts" verdict is not exported
    assert route["status"] == "skip" and route["summary"].startswith("not decided yet")
    assert "waiting for root@lb1.x-or.cloud: nginx -T" in route["summary"]


async def test_export_dir_from_the_environment(export_dir, monkeypatch):
    monkeypatch.setenv("WSDOCTOR_EXPORT_DIR", str(export_dir / "env-out"))
    app = make_app()
    async with app.run_test(size=(100, 32), notifications=True) as pilot:
        await wait_for(pilot, lambda: settled(app))
        await pilot.press("e")
        await wait_for(
            pilot, lambda: any(n.message.startswith("Report written to") for n in app._notifications)
        )
        notes = [n.message for n in app._notifications]
        assert any(str(export_dir / "env-out") in n for n in notes)
        await pilot.press("q")
    assert len(list((export_dir / "env-out").glob("wsdoctor-report-*.json"))) == 1


async def test_quit_cancels_every_worker_and_closes_the_sources():
    factory = recorded_factory(hold=True)  # a diagnosis that never finishes by itself
    source = scripted_source([[]], hold=True)  # a tail that waits for lines forever
    app = make_app(factory=factory, log_source=source)
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_for(pilot, lambda: app.last_update is not None and source.state.started == 1)
        assert [w for w in app.workers if not w.is_finished]
        await pilot.press("q")
        assert await no_workers_left(app) == []
    assert factory.made[0].closed
    assert source.state.closed == source.state.started == 1
    assert app.return_value == 1  # the screen shows failures


async def test_quit_mid_run_exits_with_what_the_screen_shows():
    """Pending checks' provisional failures are not on screen, so they do not make the exit code 1."""
    steps = recorded_factory().__call__(recorded_target()).steps
    first = {
        cid: (f if cid == "upgrade" else Finding(cid, Status.FAIL, "provisional", "from missing facts"))
        for cid, f in steps[0].findings.items()
    }
    steps[0] = type(steps[0])(
        **{**steps[0].__dict__, "findings": first, "pending": frozenset(first) - {"upgrade"}}
    )
    factory = recorded_factory(steps=steps, manual=True)
    app = make_app(factory=factory)
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_for(
            pilot,
            lambda: row_statuses(app)["upgrade"] is Status.SKIP and "✗0 !0 ✓0 –1 ⠋11" in screen_text(app),
        )
        await pilot.press("q")
    assert app.return_value == 0


async def test_a_failing_diagnosis_worker_is_shown_until_dismissed_and_the_app_stays_up():
    factory = recorded_factory(fail_with=RuntimeError("probe exploded"))
    app = make_app(factory=factory)
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_for(
            pilot,
            lambda: stopped(app) and "The run stopped: RuntimeError: probe exploded." in screen_text(app),
        )
        assert app.is_running and app.error == "RuntimeError: probe exploded"
        text = screen_text(app)
        assert "■ stopped" in text and "r runs it again · o changes the target" in text
        assert "⠋" not in text  # nothing pretends to be running
        await pilot.press("escape")  # dismissed: the reason goes, the state stays in the header
        await wait_for(pilot, lambda: "The run stopped:" not in screen_text(app))
        assert "■ stopped" in screen_text(app)
        await pilot.press("r")  # re-run starts a fresh diagnosis
        await wait_for(pilot, lambda: len(factory.made) == 2)
        assert factory.made[0].closed
        await pilot.press("q")


async def test_rerun_replaces_the_run_and_drops_stale_updates():
    factory = recorded_factory(delay=0.2)
    app = make_app(factory=factory)
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_for(pilot, lambda: app.last_update is not None)
        await pilot.press("r")
        await wait_for(pilot, lambda: len(factory.made) == 2 and settled(app))
        assert factory.made[0].closed
        assert app.generation == 2
        await pilot.press("q")


async def test_help_and_palette_name_the_keys_as_the_footers_do(export_dir):
    app = make_app(export_dir=export_dir / "pal")
    async with app.run_test(size=(120, 60)) as pilot:
        await wait_for(pilot, lambda: settled(app))
        await pilot.press("question_mark")
        await wait_for(
            pilot, lambda: isinstance(app.screen, HelpScreen) and "Copy evidence" in screen_text(app)
        )
        text = screen_text(app)
        for key in (
            "Rerun",
            "Export",
            "Logs",
            "Copy fix",
            "Copy evidence",
            "Filter",
            "Pause",
            "Next problem",
            "Ctrl+Q",
        ):
            assert key in text
        assert (
            "↻" in text and "↪" in text and "judged for the corrected request" in text
        )  # the signs, explained
        assert "⏎" not in text and "^p" not in text
        await pilot.press("escape")
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*"export")
        await wait_for(pilot, lambda: "Export" in screen_text(app))
        await pilot.press("enter")
        await wait_for(pilot, lambda: (export_dir / "pal").exists())
        await pilot.press("q")


async def test_80x24_shows_every_check():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: settled(app))
        text = screen_text(app)
        for cid in FINAL:
            assert f"  {cid}" in text, cid
        await pilot.press("q")


async def test_theme_toggle_and_target_without_secrets_in_header():
    target = recorded_target()
    app = make_app(target=target)
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_for(pilot, lambda: settled(app))
        dark = app.current_theme.dark
        await pilot.press("t")
        assert app.current_theme.dark is not dark and app.current_theme.name.startswith("wsdoctor-")
        assert TOKEN not in screen_text(app)
        await pilot.press("q")


def _host_key_refusal() -> Exception:
    """What the remote gatherer raises for an unknown key: InputError, the HostKeyUnknown as its context."""
    try:
        raise HostKeyUnknown(
            "the SSH host key of lb1.x-or.cloud is unknown (ssh-ed25519 SHA256:Zm9vYmFy); if it is right, "
            "re-run with --accept-host-key SHA256:Zm9vYmFy.",
            "SHA256:Zm9vYmFy",
            "lb1.x-or.cloud",
        )
    except HostKeyUnknown as e:
        try:
            raise InputError(str(e)) from None
        except InputError as err:
            return err


async def test_unknown_host_key_is_trusted_only_after_the_fingerprint_is_shown(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    made: list[RecordedDiagnosis] = []

    def factory(target, session=None):
        refuse = not target.accept_host_key
        made.append(RecordedDiagnosis(target, fail_with=_host_key_refusal() if refuse else None))
        return made[-1]

    app = make_app(factory=factory)
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_for(
            pilot, lambda: isinstance(app.screen, HostKeyScreen) and "SHA256:Zm9vYmFy" in screen_text(app)
        )
        assert "lb1.x-or.cloud" in screen_text(app)
        assert app.screen.remember_in == str(tmp_path / "state" / "wsdoctor" / "known_hosts")
        await pilot.press("n")
        assert app.target.accept_host_key is None and len(made) == 1
        await wait_for(pilot, lambda: "not trusted yet" in screen_text(app))

        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, HostKeyScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: settled(app))
        assert app.target.accept_host_key == "SHA256:Zm9vYmFy" and len(made) == 3
        assert app.error is None
        await pilot.press("q")


async def test_no_color_keeps_every_status_readable(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app()
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_for(pilot, lambda: settled(app))
        assert app.no_color
        text = screen_text(app)
        for badge in ("✗ FAIL", "! WARN", "✓ PASS", "– SKIP", "not happening", "└ Fix:"):
            assert badge in text  # meaning is in words and symbols, not only in colour
        await pilot.press("down", "enter")  # route: its config excerpt marks the offending lines with ▶
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen) and "▶12 │" in screen_text(app))
        assert "▶12 │     location /dev/aiwm/chat/ {" in screen_text(app)
        await pilot.press("q")


def test_a_row_shortens_the_corrected_request_lead_and_explains_it_on_the_focus_line():
    """Six checks may open with the corrected-request lead; at 80 columns it hid their verdicts."""
    sentence = Place(None, corrected="/dev/aiwm/chat/socket.io/").say(
        "No location proxies it to the backend."
    )
    assert sentence.startswith("For the corrected request /dev/aiwm/chat/socket.io/… (see client): ")
    finding = Finding(
        id="route", title="Route", status=Status.PASS, summary=sentence, corrected="/dev/aiwm/chat/socket.io/"
    )
    assert row_summary(finding) == CORRECTED_MARK + "no location proxies it to the backend."
    plain = Finding(id="route", title="Route", status=Status.PASS, summary="For the record, all fine.")
    assert row_summary(plain) == "For the record, all fine."
    shown = Shown("route", Kind.FRESH, finding, finding.title)
    row = FindingRow("route")
    row.set_shown(shown, (), None, False)
    assert row.finding is finding and row.finding.summary == sentence  # the detail screen reads the whole one
    assert focus_line(shown, ()).plain == (
        "↪ judged for the corrected request /dev/aiwm/chat/socket.io/ (the client's own request misses it: see client)"
    )
