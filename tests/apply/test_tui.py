"""The TUI parts of apply and setup, driven through Pilot against real hosts (a lab over its sshd, an nginx of the
test's own): the setup wizard from discovery to the all-pass diagnosis, and a fix applied from a finding's detail.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.widgets import Input, Select

from tests.apply.helpers import Proxy, ssh_target
from tests.tui.conftest import paste, screen_text, settled, wait_for
from wsdoctor.app import WsdoctorApp
from wsdoctor.lab import Lab, procs
from wsdoctor.report import Status
from wsdoctor.screens.apply import ApplyScreen, StepLog
from wsdoctor.screens.detail import DetailScreen
from wsdoctor.screens.setup import SetupScreen, validate_answers

pytestmark = pytest.mark.lab

SIZE = (140, 45)


@pytest.fixture(scope="module")
def fresh_host(lab_factory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, Proxy, Path]]:
    """The healthy lab's backends and sshd, and an nginx of our own whose http block includes conf.d/*.conf."""
    lab = lab_factory("healthy")
    base = tmp_path_factory.mktemp("tui-setup")
    proxy = Proxy(base / "proxy", procs.free_ports(1)[0]).start()
    try:
        yield lab, proxy, base / "backups"
    finally:
        proxy.stop()


async def test_the_wizard_sets_up_a_service_with_discovery_filling_the_answers(fresh_host) -> None:
    lab, proxy, backups = fresh_host
    target = dataclasses.replace(ssh_target(lab), url=None, path=None, nginx_conf=str(proxy.conf))
    app = WsdoctorApp(None, title_suffix=" setup")
    app.animation_level = "none"
    wizard = SetupScreen(target, {}, backup_dir=str(backups))
    app.setup_screen = wizard
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: wizard.step == "answers", timeout=60)

        def field(name: str) -> str:
            return wizard.query_one(f"#in-{name}", Input).value

        def state(name: str) -> str:
            return str(wizard.query_one(f"#state-{name}").render())

        # Several services on this host: the lab's is one of the groups discovery offers.
        group = next(g for g in wizard.found.groups() if g.endswith(f" in {lab.directory}"))
        wizard.query_one("#group", Select).value = group
        await pilot.pause()
        ports = sorted(int(b.rsplit(":", 1)[1]) for b in field("backends").split(", "))
        assert ports == sorted(lab.state["backend_ports"]) and state("backends") == "discovered"
        # What discovery found on the host: where nginx reads site files, the backends' engine path and
        # pingInterval (from a real handshake), the nginx version; what it could not: name, certificate.
        assert field("into") == f"{proxy.sites}/socketio.conf" and state("into") == "discovered"
        assert field("backend_path") == "/chat/socket.io/" and state("backend_path") == "discovered"
        assert field("ping_interval") == "25000" and state("ping_interval") == "discovered"
        for needed in ("server_name", "cert", "key"):
            assert field(needed) == "" and state(needed) == "needed"
        assert wizard.discovered["nginx_version"]
        # The answers discovery could not give, typed like a user would.
        answers = {
            "server_name": "127.0.0.1",
            "public_path": "/dev/aiwm/chat/",
            "listen": f"127.0.0.1:{proxy.port}",
            "cert": lab.state["cert_file"],
            "key": lab.state["key_file"],
        }
        for name, value in answers.items():
            box = wizard.query_one(f"#in-{name}", Input)
            box.focus()
            box.value = ""
            if name == "server_name":
                await pilot.press(*value)  # typed key by key
            else:
                await paste(pilot, value)  # the paths and addresses, pasted
            await wait_for(pilot, lambda box=box, value=value: box.value == value)
        assert all(state(name) == "given" for name in answers)
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: wizard.step == "review")
        text = screen_text(app)
        # The config beside the reason for each line; the client code beside it.
        assert "map $http_upgrade $connection_upgrade {" in text and "the Connection header" in text
        assert "const socket = io('wss://127.0.0.1:" in text

        await pilot.press("t")  # nginx -t on the host, never loaded
        await wait_for(
            pilot, lambda: wizard.running is None and wizard.query_one(StepLog).outcome, timeout=60
        )
        tested = wizard.query_one(StepLog).outcome
        assert tested.dry_run and tested.exit_code() == 0, tested.to_json()
        assert not (proxy.sites / "socketio.conf").exists()

        await pilot.press("a")
        await wait_for(pilot, lambda: wizard.running is None and wizard.applied, timeout=90)
        steps = [(s.step, s.ok) for s in wizard.query_one(StepLog).steps]
        assert steps[-1] == ("verify", True), steps
        assert (proxy.sites / "socketio.conf").read_text() == wizard.generated.nginx_conf

        await pilot.press("d")  # the diagnosis of the new service, in the same app
        await wait_for(pilot, lambda: settled(app), timeout=60)
        findings = app.last_update.findings
        assert not [f.id for f in findings.values() if f.status is Status.FAIL], screen_text(app)
        assert findings["route"].status is Status.PASS and findings["upgrade"].status is Status.PASS
        await pilot.press("q")


async def test_apply_from_a_finding_shows_the_diff_asks_then_each_step(lab_factory, tmp_path: Path) -> None:
    lab = lab_factory.fresh("no-upgrade")
    app = WsdoctorApp(ssh_target(lab))
    app.animation_level = "none"
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: settled(app), timeout=60)
        assert app.last_update.findings["upgrade"].status is Status.FAIL
        app.diagnosis_screen.findings.selected = "upgrade"
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen))
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, ApplyScreen))
        screen = app.screen
        screen.request.backup_dir = str(tmp_path / "backups")
        text = screen_text(app)
        assert "+            proxy_set_header Upgrade $http_upgrade;" in text and "y apply" in text
        assert not (tmp_path / "backups").exists()  # nothing happens before the confirm
        await pilot.press("y")
        await wait_for(pilot, lambda: screen.state == "done", timeout=90)
        log = screen.query_one(StepLog)
        assert [(s.step, s.ok) for s in log.steps] == [
            (n, True) for n in ("preflight", "lock", "backup", "write", "test", "reload", "verify")
        ]
        await wait_for(pilot, lambda: "Applied and verified" in screen_text(app))  # scrolled into view
        await pilot.press("escape")  # back to the finding: the diagnosis re-runs on the changed proxy
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen))
        detail = app.screen
        await wait_for(pilot, lambda: settled(app) and detail.finding.status is Status.PASS, timeout=60)
        await pilot.press("q")


def test_the_answers_are_validated_in_one_sentence_per_field() -> None:
    options, into, errors = validate_answers(
        {"backends": "nope", "into": "relative.conf", "ping_interval": "x"}
    )
    assert options is None and into is None
    assert errors["backends"] == "nope is not HOST:PORT."
    assert errors["into"] == "An absolute path on the proxy host."
    assert errors["server_name"].startswith("Needed") and errors["ping_interval"].startswith("Milliseconds")
    options, into, errors = validate_answers(
        {
            "backends": "10.0.0.5:3350, 10.0.0.5:3351",
            "server_name": "api.example.com",
            "cert": "/etc/ssl/a.pem",
            "key": "/etc/ssl/a.key",
            "into": "/etc/nginx/conf.d/ws.conf",
            "public_path": "/rt/",
        }
    )
    assert not errors and into == "/etc/nginx/conf.d/ws.conf"
    assert options.backends == ["10.0.0.5:3350", "10.0.0.5:3351"] and options.public_path == "/rt/"
