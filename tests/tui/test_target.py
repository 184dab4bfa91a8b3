"""The target form: inline one-sentence validation, start, profiles, and the token never on screen."""

from __future__ import annotations

from textual import events
from textual.keys import _character_to_key

from wsdoctor.diagnose import Diagnosis
from wsdoctor.screens.diagnosis import DiagnosisScreen
from wsdoctor.screens.target import ConfirmLeave, TargetScreen, complete_path, form_values, validate_form
from wsdoctor.target import Target, load_profiles

from .conftest import make_app, paste, screen_text, settled, wait_for
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
        await wait_for(pilot, lambda: "Give a URL like wss://api.example.com/chat" in screen_text(app))
        assert isinstance(app.screen, TargetScreen) and factory.made == []

        url = app.screen.query_one("#field-url")
        url.value = ""
        # typed key by key: q, r, e, l, t are app keys elsewhere, but here they are text
        await pilot.press(*"wss://api.x-or.cloud/dev/aiwm/chat")
        assert url.value == "wss://api.x-or.cloud/dev/aiwm/chat" and app.is_running
        app.screen.query_one("#field-token_env").value = "WS_TOKEN"
        await wait_for(
            pilot, lambda: "Give a URL" not in screen_text(app)
        )  # editing clears the field's error
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
        await wait_for(pilot, lambda: "Give the profile a name" in screen_text(app))
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
        await wait_for(
            pilot, lambda: screen.query_one("#field-url").value == "wss://api.x-or.cloud/dev/aiwm/chat"
        )
        assert screen.query_one("#field-ssh").value == "root@lb1.x-or.cloud"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: settled(app))
        assert app.target.ssh == "root@lb1.x-or.cloud" and app.target.token == SECRET
        await pilot.press("q")


def test_ssh_and_tls_options_are_validated_inline(tmp_path):
    key, known, ca = tmp_path / "id_ed25519", tmp_path / "known_hosts", tmp_path / "ca.pem"
    for f in (key, known, ca):
        f.write_text("x\n")
    base = {"url": "wss://lab.test/chat", "ssh": "root@127.0.0.1:2222"}
    _, errors = validate_form(
        {
            **base,
            "identity": str(tmp_path / "missing_key"),
            "known_hosts": str(tmp_path),
            "ca_file": str(ca),
            "insecure": "true",
            "backend_log": "logs/chat.log",
            "hold": "ninety",
        },
        environ={},
    )
    assert set(errors) == {"identity", "known_hosts", "ca_file", "backend_log", "hold"}
    assert errors["identity"].startswith(f"No file {tmp_path / 'missing_key'} here")
    assert errors["known_hosts"] == f"{tmp_path} is a directory; give a known_hosts file."
    assert errors["ca_file"] == "Give either a CA file or insecure, not both."
    assert "absolute path of the backend log on that host" in errors["backend_log"]
    assert "in seconds, like 90" in errors["hold"]
    for message in errors.values():
        assert message.endswith(".") and message.count(". ") == 0, message

    for hold in ("0", "-5", "nan", "inf", "7200"):
        assert "hold" in validate_form({**base, "hold": hold}, environ={})[1], hold
    _, errors = validate_form({"url": "wss://lab.test/chat", "identity": str(key)}, environ={})
    assert errors == {
        "identity": "This is for the SSH connection: give the proxy host above, or clear this field."
    }
    _, errors = validate_form({"url": "wss://lab.test/chat", "backend_log": "pm2:"}, environ={})
    assert errors == {"backend_log": "Name the pm2 app, like pm2:chat."}
    _, errors = validate_form(
        {"url": "wss://lab.test/chat", "backend_log": str(tmp_path / "nope.log")}, environ={}
    )
    assert errors["backend_log"].startswith("No file ")  # no SSH host: the backend log is read here

    target, errors = validate_form(
        {
            **base,
            "identity": str(key),
            "known_hosts": str(known),
            "ca_file": str(ca),
            "backend_log": "/var/log/chat/app.log",
            "hold": "90",
        },
        environ={},
    )
    assert errors == {} and target is not None
    assert (target.identity, target.known_hosts, target.ca_file) == (str(key), str(known), str(ca))
    assert (target.backend_log, target.hold, target.insecure) == ("/var/log/chat/app.log", 90.0, False)
    values = form_values(target)
    assert values["hold"] == "90" and values["insecure"] == "" and values["identity"] == str(key)
    target, errors = validate_form({**base, "insecure": "true", "backend_log": "journald:chat"}, environ={})
    assert errors == {} and target.insecure and target.backend_log == "journald:chat"
    assert form_values(target)["insecure"] == "true"


async def test_options_are_saved_in_a_profile_and_errors_open_their_section(
    export_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv("WS_TOKEN", SECRET)
    ca = tmp_path / "ca.pem"
    ca.write_text("x\n")
    app = make_app(target=None)
    async with app.run_test(size=(100, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, TargetScreen))
        screen = app.screen
        options = screen.query_one("#options")
        assert options.collapsed  # nothing set: the section is folded
        screen.query_one("#field-url").value = "wss://lab.test/chat"
        screen.query_one("#field-token_env").value = "WS_TOKEN"
        screen.query_one("#field-hold").value = "0"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not options.collapsed and screen.query_one("#field-hold").has_focus)
        await wait_for(pilot, lambda: "like 90 (at most 3600)" in screen_text(app))
        screen.query_one("#field-hold").value = "45"
        screen.query_one("#field-ca_file").value = str(ca)
        screen.query_one("#profile-name").value = "lab"
        await pilot.press("ctrl+o")
        saved = load_profiles()["lab"]
        assert saved["ca_file"] == str(ca) and saved["hold"] == 45.0 and "insecure" not in saved
        text = (export_dir / "config" / "wsdoctor" / "config.toml").read_text()
        assert SECRET not in text and "token =" not in text
        await pilot.press("escape")  # something was typed: leaving asks first
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmLeave))
        await pilot.press("y")
        await wait_for(pilot, lambda: not app.is_running)

    app = make_app(target=None)  # a new form picks the profile: the options come back, unfolded
    async with app.run_test(size=(100, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, TargetScreen))
        screen = app.screen
        screen.query_one("#profile").value = "lab"
        await wait_for(pilot, lambda: not screen.query_one("#options").collapsed)
        assert screen.query_one("#field-ca_file").value == str(ca)
        assert screen.query_one("#field-hold").value == "45"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: settled(app))
        assert (app.target.ca_file, app.target.hold, app.target.token) == (str(ca), 45.0, SECRET)
        await pilot.press("q")


def _key(character: str) -> events.Key:
    """The Key event a terminal driver makes for one typed character (or "tab")."""
    if character == "tab":
        return events.Key("tab", "\t")
    return events.Key(_character_to_key(character), character)


async def test_a_burst_of_keys_keeps_its_tab(export_dir):
    """A paste or an autotype tool sends text, Tab, text in one read: the Tab must still move the focus
    before the next characters are handed out (the keys are queued at once, as the driver does)."""
    app = make_app(target=None)
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, TargetScreen))
        burst = [*"wss://a.example", "tab", *"/p/socket.io", "tab", "tab", *"WS_TOKEN"]
        for character in burst:
            app._driver.send_message(_key(character))
        screen = app.screen
        await wait_for(pilot, lambda: screen.query_one("#field-token_env").value == "WS_TOKEN")
        assert screen.query_one("#field-url").value == "wss://a.example"
        assert screen.query_one("#field-path").value == "/p/socket.io"
        await pilot.press("escape")


async def test_escape_asks_before_losing_what_was_typed_and_enter_starts_from_any_field(export_dir):
    factory = recorded_factory()
    app = make_app(target=None, factory=factory)
    async with app.run_test(size=(100, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, TargetScreen))
        form = app.screen
        await paste(pilot, "wss://api.x-or.cloud/dev/aiwm/chat")
        await pilot.press("escape")  # typed: leaving asks first, and says what leaving means here
        await wait_for(
            pilot, lambda: isinstance(app.screen, ConfirmLeave) and app.screen.leaving == "quit wsdoctor"
        )
        await pilot.press("n")  # keep editing: the form is as it was
        await wait_for(pilot, lambda: app.screen is form)
        assert form.query_one("#field-url").value == "wss://api.x-or.cloud/dev/aiwm/chat" and app.is_running
        form.query_one("#profile-name").focus()
        await pilot.press(*"prod", "enter")  # Enter in "Save as profile" starts, as the form's title says
        await wait_for(pilot, lambda: settled(app))
        assert len(factory.made) == 1 and factory.made[0].target.url == "wss://api.x-or.cloud/dev/aiwm/chat"
        await pilot.press("o")  # the form again, over the diagnosis: Esc goes back to it, not out
        await wait_for(pilot, lambda: isinstance(app.screen, TargetScreen))
        await pilot.press("ctrl+u", *"wss://other.example")
        await pilot.press("escape")
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, ConfirmLeave) and app.screen.leaving == "go back without starting",
        )
        await pilot.press("y")
        await wait_for(pilot, lambda: app.screen is app.diagnosis_screen)
        assert app.is_running and len(factory.made) == 1
        await pilot.press("q")


async def test_the_ssh_options_follow_the_ssh_host_and_open_when_one_is_typed(export_dir, tmp_path):
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "id_ed25519").write_text("x\n")
    app = make_app(target=None)
    async with app.run_test(size=(100, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, TargetScreen))
        form = app.screen
        options = form.query_one("#options")
        assert options.collapsed
        form.query_one("#field-ssh").focus()
        await pilot.press(*"root@127.0.0.1:2222")
        await wait_for(pilot, lambda: not options.collapsed)  # the identity and known_hosts come next
        await pilot.press("tab")
        await wait_for(pilot, lambda: form.focused is not None and form.focused.id != "field-ssh")
        assert options in form.focused.ancestors_with_self  # right after the SSH host, not 8 stops later
        identity = form.query_one("#field-identity")
        identity.focus()
        await paste(pilot, f"{tmp_path}/ke")
        await wait_for(pilot, lambda: identity._suggestion == f"{tmp_path}/keys/")
        await pilot.press("right", *"id")
        await wait_for(pilot, lambda: identity._suggestion == f"{tmp_path}/keys/id_ed25519")
        await pilot.press("right")
        assert identity.value == f"{tmp_path}/keys/id_ed25519"
        await pilot.press("ctrl+q")


def test_paths_complete_as_far_as_the_files_allow(tmp_path):
    for name in ("known_hosts", "known_hosts.old", "id_ed25519"):
        (tmp_path / name).write_text("x\n")
    (tmp_path / "conf.d").mkdir()
    assert complete_path(f"{tmp_path}/kn") == f"{tmp_path}/known_hosts"  # the common start of two
    assert complete_path(f"{tmp_path}/known_hosts") is None  # nothing more to add without a choice
    assert complete_path(f"{tmp_path}/i") == f"{tmp_path}/id_ed25519"
    assert complete_path(f"{tmp_path}/co") == f"{tmp_path}/conf.d/"  # a directory gets its slash
    assert complete_path(f"{tmp_path}/zz") is None
    assert complete_path(f"{tmp_path}/nowhere/x") is None
