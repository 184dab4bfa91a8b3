"""The TUI on the real lab (real nginx, python-socketio backends, sshd on loopback), over SSH.

The real Diagnosis and the real live-log source (``default_log_source`` → the remote session's
``live_logs``): the screen shows the statuses ``wsdoctor check`` computes, Enter shows the evidence and
the fix, ``e`` writes the same JSON as ``wsdoctor check --format json`` (modulo what changes from run to
run: session ids and timings inside evidence and summaries), a real client's 404 shows up in the live
logs and lands in the diagnosis, and ``q`` leaves no worker and no ``tail`` on the proxy host.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time

import httpx
import pytest

from wsdoctor.app import WsdoctorApp
from wsdoctor.demo import lab_target
from wsdoctor.report import Status
from wsdoctor.screens.detail import DetailScreen
from wsdoctor.screens.hostkey import HostKeyScreen
from wsdoctor.screens.logs import LogsScreen
from wsdoctor.target import Target
from wsdoctor.widgets.logview import LogLine, LogView

from .conftest import no_workers_left, screen_text, settled, wait_for

pytestmark = pytest.mark.lab
RUN_TIMEOUT = 90.0


def _target(lab) -> Target:
    target = lab_target(lab.info())
    assert target.ssh, "the lab has no sshd"
    return target


def _app(target: Target, tmp_path) -> WsdoctorApp:
    app = WsdoctorApp(target, export_dir=tmp_path / "export")
    app.animation_level = "none"
    return app


def _cli_json(target: Target) -> dict:
    """`wsdoctor check --format json` for the same target, as a user runs it (the token from a variable)."""
    argv = [sys.executable, "-m", "wsdoctor", "check", "--format", "json", "--url", target.url]
    argv += ["--transports", ",".join(target.transports), "--timeout", str(target.timeout)]
    for option, value in (
        ("--path", target.path),
        ("--ssh", target.ssh),
        ("--identity", target.identity),
        ("--known-hosts", target.known_hosts),
        ("--ca-file", target.ca_file),
    ):
        if value:
            argv += [option, value]
    env = dict(os.environ)
    if target.token:
        env["WSDOCTOR_LAB_TOKEN"] = target.token
        argv += ["--token-env", "WSDOCTOR_LAB_TOKEN"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT + 30, env=env)
    assert out.returncode in (0, 1), out.stderr
    return json.loads(out.stdout)


def _stable(report: dict) -> dict:
    """What must not differ between two runs against the same lab (log lines come and go with time)."""
    return {
        "target": report["target"],
        "summary": report["summary"],
        "findings": [
            (f["id"], f["status"], f["title"], [e["kind"] for e in f["evidence"] if e["kind"] != "log"])
            for f in report["findings"]
        ],
    }


def _body(app) -> str:
    return "\n".join(str(w.render()) for w in app.screen.query("#detail-body Static"))


def _tails(marker: str) -> list[str]:
    out = subprocess.run(["ps", "-ww", "-eo", "pid,args"], capture_output=True, text=True, timeout=10).stdout
    return [line for line in out.splitlines() if "tail" in line and marker in line]


async def test_no_sticky_lab_statuses_detail_export_and_clean_quit(lab_factory, tmp_path):
    lab = lab_factory("no-sticky")
    target = _target(lab)
    app = _app(target, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: settled(app) or app.error, timeout=RUN_TIMEOUT)
        assert app.error is None
        statuses = {cid: f.status for cid, f in app.last_update.findings.items()}
        assert {cid for cid, s in statuses.items() if s is Status.FAIL} == {"sticky"}, statuses
        text = screen_text(app)
        assert "✗ FAIL  sticky" in text and f"ssh {target.ssh}" in text
        assert "nginx 1." in text and "upstream " in text  # the version and the chain the engine computed

        assert app.diagnosis_screen.findings.selected == "sticky"  # the first failing finding
        await pilot.press("enter")
        await wait_for(
            pilot, lambda: isinstance(app.screen, DetailScreen) and ("Invalid session" in _body(app) or "Session ID unknown" in _body(app))
        )
        body = _body(app)
        assert "400" in body
        assert "+" in body and "hash" in body  # the fix's diff adds hashing to the upstream
        assert target.token not in body
        await pilot.press("escape", "e")
        await wait_for(pilot, lambda: any((tmp_path / "export").glob("*.json")))
        await pilot.press("q")
        assert await no_workers_left(app) == []
    exported = json.loads(next((tmp_path / "export").glob("*.json")).read_text())
    assert target.token not in json.dumps(exported)
    assert _stable(exported) == _stable(_cli_json(target))
    deadline = time.monotonic() + 10
    while _tails(lab.info()["dir"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _tails(lab.info()["dir"]) == []


async def test_a_real_clients_404_appears_live_and_lands_in_the_diagnosis(lab_factory, tmp_path):
    lab = lab_factory("seed")
    info = lab.info()
    target = _target(lab)
    app = _app(target, tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_for(pilot, lambda: settled(app) or app.error, timeout=RUN_TIMEOUT)
        assert app.error is None
        assert {c for c, f in app.last_update.findings.items() if f.status is Status.FAIL} == {
            "client",
            "route",
        }
        await pilot.press("l")
        await wait_for(pilot, lambda: isinstance(app.screen, LogsScreen))
        await wait_for(pilot, lambda: app.log_status in ("live", "waiting for log lines…"), timeout=20)

        # The engineer reproduces with the runbook's client: socket.io-client asks for /socket.io/.
        base = info["url"].replace("wss://", "https://").replace("ws://", "http://").split("/", 3)
        probe = f"{base[0]}//{base[2]}/socket.io/?EIO=4&transport=polling&t=tui-live"

        def tagged() -> list[LogLine]:  # the access-log line, classified for `client` (error-log lines too)
            lines = app.screen.query_one(LogView).lines
            return [
                line
                for line in lines
                if "t=tui-live" in line.text
                and (line.mark, line.check, line.source) == ("✗", "client", "access")
                and "404" in line.kind  # named by the classifier (remote/logs.py); shown as it comes
            ]

        deadline = time.monotonic() + 20
        while not tagged() and time.monotonic() < deadline:
            async with httpx.AsyncClient(
                verify=ssl.create_default_context(cafile=info["ca_file"]), timeout=5
            ) as client:
                assert (await client.get(probe)).status_code == 404
            await pilot.pause(0.5)
        assert tagged(), (app.log_status, list(app.screen.query_one(LogView).lines)[-5:])
        await wait_for(
            pilot,
            lambda: any(
                "t=tui-live" in e.text
                for f in app.last_update.findings.values()
                for e in f.evidence
                if e.kind == "log"
            ),
            timeout=10,
        )
        assert _tails(info["dir"])  # the live tail runs on the proxy host while the TUI is open…
        await pilot.press("q")
        assert await no_workers_left(app) == []
    deadline = time.monotonic() + 10
    while _tails(info["dir"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _tails(info["dir"]) == []  # …and is gone once it quits


async def test_a_host_key_trusted_with_y_is_remembered_for_the_next_runs(lab_factory, tmp_path, monkeypatch):
    """A real sshd whose key this machine has never seen: the fingerprint is shown, `y` trusts it, and it is
    saved in wsdoctor's own known_hosts (as OpenSSH's accept-new saves it), so a new wsdoctor trusts it
    without asking."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    lab = lab_factory("no-sticky")
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    target = _target(lab)
    target.known_hosts = str(empty)
    app = _app(target, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, HostKeyScreen) and app.screen.fingerprint in screen_text(app),
            timeout=RUN_TIMEOUT,
        )
        assert app.screen.fingerprint.startswith("SHA256:")
        await pilot.press("y")
        await wait_for(pilot, lambda: settled(app) or app.error, timeout=RUN_TIMEOUT)
        assert app.error is None
        await pilot.press("q")
        assert await no_workers_left(app) == []
    saved = (tmp_path / "state" / "wsdoctor" / "known_hosts").read_text()
    assert saved.count("\n") == 1 and f"]:{lab.info()['ssh']['port']} " in saved

    again = _target(lab)
    again.known_hosts = str(empty)  # still empty: the key comes from wsdoctor's own file now
    app = _app(again, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(
            pilot,
            lambda: settled(app) or app.error or isinstance(app.screen, HostKeyScreen),
            timeout=RUN_TIMEOUT,
        )
        assert not isinstance(app.screen, HostKeyScreen) and app.error is None
        await pilot.press("q")
