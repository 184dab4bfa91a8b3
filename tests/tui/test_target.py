"""The target form: inline one-sentence validation, start, profiles, and the token never on screen."""

from __future__ import annotations

from wsdoctor.diagnose import Diagnosis
from wsdoctor.screens.diagnosis import DiagnosisScreen
from wsdoctor.screens.target import TargetScreen, form_values, validate_form
from wsdoctor.target import Target, load_profiles

from .conftest import make_app, screen_text, settled, wait_for
from .recorded import recorded_factory

SECRET = "tok-3f9a-very-secret-value"


def test_validation_errors_are_one_sentence_per_field(tmp_path):
    target, errors = validate_form(
        {
            "url": "ftp://x",
            "path": "socket.io",
            "token_env": "eyJhbGciOiJIUzI1NiJ9.e30.x",
            "ssh": "root@host name",
            "nginx_dump": str(tmp_path / "missing.txt"),
            "backends": "10.0.0.5:3350",
        },
        environ={},
    )
    assert target is None
    assert set(errors) == {"url", "path", "token_env", "ssh", "nginx_dump", "backends"}
    for message in errors.values():
        assert message.endswith(".") and message.count(". ") == 0, message
    assert "NAME of the variable" in errors["token_env"]
    _, errors = validate_form({"nginx_conf": str(tmp_path / "missing.conf")}, environ={})
    assert errors["nginx_conf"].startswith("No file ") and "give the main nginx.conf" in errors["nginx_conf"]


def test_validation_needs_something_to_diagnose_and_an_exported_token_variable():
    _, errors = validate_form({}, environ={})
    assert errors == {"url": "Give at least the public URL, an SSH host or an nginx config to diagnose."}
    _, errors = validate_form({"url": "wss://h/chat", "token_env": "WS_TOKEN"}, environ={})
    assert "WS_TOKEN is empty or not set" in errors["token_env"]


def test_validation_conf_and_dump_exclusive_and_ssh_paths_are_remote(tmp_path):
    conf = tmp_path / "nginx.conf"
    conf.write_text("events {}\n")
    _, errors = validate_form({"nginx_conf": str(conf), "nginx_dump": str(conf)}, environ={})
    assert errors == {"nginx_dump": "Give either an nginx config or a dump, not both."}
    target, errors = validate_form(
        {"ssh": "root@lb1:2222", "nginx_conf": "/etc/nginx/nginx.conf"}, environ={}
    )
    assert errors == {} and target is not None
    assert (target.ssh, target.nginx_conf) == ("root@lb1:2222", "/etc/nginx/nginx.conf")
    _, errors = validate_form({"ssh": "lb1", "nginx_conf": "nginx.conf"}, environ={})
    assert "absolute path" in errors["nginx_conf"]


def test_valid_form_builds_the_target_and_reads_the_token_from_its_variable():
    target, errors = validate_form(
        {
            "url": "wss://api.x-or.cloud/dev/aiwm/chat",
            "path": "/dev/aiwm/chat/socket.io",
            "transports": "websocket",
            "token_env": "WS_TOKEN",
            "backends": "http://10.0.0.5:3350, http://10.0.0.5:3351",
        },
        environ={"WS_TOKEN": SECRET},
    )
    assert errors == {}
    assert target == Target(
        url="wss://api.x-or.cloud/dev/aiwm/chat",
        path="/dev/aiwm/chat/socket.io",
        transports=("websocket",),
        token=SECRET,
        token_env="WS_TOKEN",
        backends=["http://10.0.0.5:3350", "http://10.0.0.5:3351"],
    )
    assert SECRET not in str(form_values(target))


async def test_form_shows_inline_errors_then_starts_the_diagnosis(export_dir, monkeypatch):
    monkeypatch.setenv("WS_TOKEN", SECRET)
    factory = recorded_factory()
    app = make_app(target=None, factory=factory)
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, TargetScreen))
        await pilot.press(*"ftp://x", "enter")
        text = screen_text(app)
        assert "Give a URL like wss://api.example.com/chat" in text
        assert isinstance(app.screen, TargetScreen) and factory.made == []

        url = app.screen.query_one("#field-url")
        url.value = ""
        # typed key by key: q, r, e, l, t are app keys elsewhere, but here they are text
        await pilot.press(*"wss://api.x-or.cloud/dev/aiwm/chat")
        assert url.value == "wss://api.x-or.cloud/dev/aiwm/chat" and app.is_running
        app.screen.query_one("#field-token_env").value = "WS_TOKEN"
        await pilot.pause()
        assert "Give a URL" not in screen_text(app)  # editing clears the field's error
        assert SECRET not in screen_text(app)
        await pilot.press("enter")
        await wait_for(pilot, lambda: settled(app))
        assert isinstance(app.screen, DiagnosisScreen)
        assert len(factory.made) == 1
        started = factory.made[0].target
        assert started.url == "wss://api.x-or.cloud/dev/aiwm/chat" and started.token == SECRET
        assert "✗ FAIL  client" in screen_text(app)
        assert SECRET not in screen_text(app)
        await pilot.press("q")


async def test_escape_on_the_first_form_quits(export_dir):
    app = make_app(target=None, factory=Diagnosis)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, TargetScreen))
        await pilot.press("escape")
        await wait_for(pilot, lambda: not app.is_running)
    assert app.return_value == 0


async def test_save_a_profile_without_the_token_and_pick_it_again(export_dir, monkeypatch):
    monkeypatch.setenv("WS_TOKEN", SECRET)
    app = make_app(target=None)
    async with app.run_test(size=(100, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, TargetScreen))
        screen = app.screen
        screen.query_one("#field-url").value = "wss://api.x-or.cloud/dev/aiwm/chat"
        screen.query_one("#field-ssh").value = "root@lb1.x-or.cloud"
        screen.query_one("#field-token_env").value = "WS_TOKEN"
        screen.query_one("#profile-name").value = "bad name!"
        await pilot.press("ctrl+o")
        assert "Give the profile a name" in screen_text(app)
        screen.query_one("#profile-name").value = "prod-chat"
        await pilot.press("ctrl+o")
        profiles = load_profiles()
        assert profiles["prod-chat"]["ssh"] == "root@lb1.x-or.cloud"
        assert profiles["prod-chat"]["token_env"] == "WS_TOKEN"
        saved = (export_dir / "config" / "wsdoctor" / "config.toml").read_text()
        assert SECRET not in saved and "token =" not in saved

        for field in ("url", "ssh", "token_env"):
            screen.query_one(f"#field-{field}").value = ""
        screen.query_one("#profile").value = "prod-chat"
        await pilot.pause()
        assert screen.query_one("#field-url").value == "wss://api.x-or.cloud/dev/aiwm/chat"
        assert screen.query_one("#field-ssh").value == "root@lb1.x-or.cloud"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: settled(app))
        assert app.target.ssh == "root@lb1.x-or.cloud" and app.target.token == SECRET
        await pilot.press("q")
