"""The target form: what to diagnose when the command line said nothing (or to change it later).

The public URL, the client's path and transports, the *name* of the environment
variable holding the token (the token itself never appears on screen), the proxy
host for SSH or a local config / dump, optional backends; saved profiles can be
picked or saved. Each field is validated inline with one sentence saying what to do.
``validate_form`` is plain Python so it is tested without a terminal.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, Select, Static

from wsdoctor.target import Target, config_path, load_profiles, save_profile

TRANSPORTS = {
    "polling,websocket": ("polling", "websocket"),
    "websocket": ("websocket",),
    "polling": ("polling",),
}
# (field id, label, placeholder)
FIELDS: tuple[tuple[str, str, str], ...] = (
    ("url", "Public URL", "what the client passes to io(): wss://host/…"),
    ("path", "Client path", "the client's `path` option (/socket.io/)"),
    ("token_env", "Token variable", "NAME of the variable holding the token (optional)"),
    ("ssh", "Proxy host (SSH)", "[user@]host[:port] or ssh alias (optional)"),
    ("nginx_conf", "nginx config", "main nginx.conf, on the SSH host if any (optional)"),
    ("nginx_dump", "nginx -T dump", "a saved `nginx -T` output file (optional)"),
    ("backends", "Backends", "http://10.0.0.5:3350, … (optional)"),
)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SSH_HOST = re.compile(r"^(?:[^@\s/]+@)?(?:\[[0-9A-Fa-f:.]+\]|[^@\s:/\[\]]+)(?::\d{1,5})?$")
_PROFILE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def _split_backends(text: str) -> list[str]:
    return [b for b in re.split(r"[,\s]+", text.strip()) if b]


def validate_form(
    values: Mapping[str, str], environ: Mapping[str, str] | None = None, base: Target | None = None
) -> tuple[Target | None, dict[str, str]]:
    """The Target the form describes, or None and one sentence per field that is wrong."""
    env = os.environ if environ is None else environ
    v = {k: (values.get(k) or "").strip() for k, _, _ in FIELDS}
    transports = TRANSPORTS.get(values.get("transports") or "polling,websocket", ("polling", "websocket"))
    errors: dict[str, str] = {}

    if v["url"]:
        u = urlsplit(v["url"])
        if u.scheme not in ("ws", "wss", "http", "https") or not u.hostname:
            errors["url"] = (
                "Give a URL like wss://api.example.com/chat (scheme ws, wss, http or https, and a host)."
            )
    if v["path"] and not v["path"].startswith("/"):
        errors["path"] = "The path starts with / (socket.io-client's default is /socket.io/)."
    if v["token_env"]:
        name = v["token_env"]
        if name.startswith("eyJ") or len(name) > 64:
            errors["token_env"] = (
                "That looks like a token: give the NAME of the variable that holds it instead."
            )
        elif not _ENV_NAME.match(name):
            errors["token_env"] = "Give an environment variable name (letters, digits and _), e.g. WS_TOKEN."
        elif not env.get(name):
            errors["token_env"] = (
                f"{name} is empty or not set here; export it before starting wsdoctor, or clear this field."
            )
    if v["ssh"] and not _SSH_HOST.match(v["ssh"]):
        errors["ssh"] = "Give the proxy host as an ssh alias or [user@]host[:port]."
    if v["nginx_conf"]:
        if v["ssh"]:
            if not v["nginx_conf"].startswith("/"):
                errors["nginx_conf"] = "With an SSH host, give the absolute path of nginx.conf on that host."
        elif not Path(v["nginx_conf"]).expanduser().is_file():
            errors["nginx_conf"] = (
                f"No file {v['nginx_conf']} here; give the main nginx.conf, or an SSH host."
            )
    if v["nginx_dump"]:
        if v["nginx_dump"] == "-":
            errors["nginx_dump"] = (
                "The terminal is busy with the TUI: save `nginx -T` to a file and give its path."
            )
        elif not Path(v["nginx_dump"]).expanduser().is_file():
            errors["nginx_dump"] = f"No file {v['nginx_dump']} here; save `nginx -T` output to a file first."
        elif v["nginx_conf"]:
            errors["nginx_dump"] = "Give either an nginx config or a dump, not both."
    backends = _split_backends(v["backends"])
    for b in backends:
        u = urlsplit(b)
        if u.scheme not in ("http", "https") or not u.hostname or u.port is None:
            errors["backends"] = f"{b!r} is not a backend base URL; write them like http://10.0.0.5:3350."
            break
    if not errors and not any((v["url"], v["ssh"], v["nginx_conf"], v["nginx_dump"], backends)):
        errors["url"] = "Give at least the public URL, an SSH host or an nginx config to diagnose."
    if errors:
        return None, errors

    fields: dict[str, Any] = {
        "url": v["url"] or None,
        "path": v["path"] or None,
        "transports": transports,
        "token_env": v["token_env"] or None,
        "ssh": v["ssh"] or None,
        "nginx_conf": os.path.expanduser(v["nginx_conf"])
        if v["nginx_conf"] and not v["ssh"]
        else v["nginx_conf"] or None,
        "nginx_dump": os.path.expanduser(v["nginx_dump"]) if v["nginx_dump"] else None,
        "backends": backends,
    }
    target = dataclasses.replace(base, **fields) if base is not None else Target(**fields)
    if base is not None and base.token_env != target.token_env:
        target.token = None  # a token read for another variable must not leak into this target
    if target.token_env:
        target.token = env.get(target.token_env) or None
    return target, {}


def form_values(target: Target | Mapping[str, Any]) -> dict[str, str]:
    """Field texts for a Target or a saved profile (token never included)."""
    get = (lambda k: getattr(target, k, None)) if isinstance(target, Target) else target.get
    out = {}
    for key, _, _ in FIELDS:
        value = get(key)
        if key == "backends":
            out[key] = ", ".join(value or [])
        else:
            out[key] = "" if value in (None, False) else str(value)
    transports = get("transports") or ("polling", "websocket")
    if isinstance(transports, str):
        transports = tuple(t.strip() for t in transports.split(","))
    out["transports"] = ",".join(transports)
    return out


class TargetScreen(Screen[Target | None]):
    """The form; dismisses with the Target to diagnose (or None when cancelled)."""

    DEFAULT_CSS = """
    TargetScreen {
        #form { padding: 0 2; }
        #form-title { text-style: bold; color: $accent; margin: 1 0; }
        .field { height: 1; margin-top: 1; }
        .field Label { width: 18; padding: 0 1 0 0; text-style: bold; }
        .field Input, .field Select { width: 1fr; }
        .error { color: $error; padding-left: 18; display: none; }
        .error.-shown { display: block; }
        #buttons { height: 1; margin-top: 1; }
        #buttons Button { height: 1; border: none; min-width: 12; margin-right: 2; }
        #profile-name { width: 24; }
        #profile-row { margin-top: 2; }
    }
    """

    BINDINGS = [
        Binding("ctrl+s", "start", "Start"),
        Binding("ctrl+o", "save_profile", "Save profile"),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, initial: Target | None = None, *, profiles_path: Path | None = None) -> None:
        super().__init__()
        self.initial = initial
        self.profiles_path = profiles_path
        self.profiles: dict[str, dict[str, Any]] = {}
        self.profile_error: str | None = None
        try:
            self.profiles = load_profiles(profiles_path)
        except ValueError as e:
            self.profile_error = str(e)

    def compose(self) -> ComposeResult:
        values = form_values(self.initial) if self.initial is not None else {}
        with VerticalScroll(id="form"):
            yield Static(
                Content(
                    "What should wsdoctor diagnose? Enter starts, Esc cancels; the token is read from its variable."
                ),
                id="form-title",
            )
            with Horizontal(classes="field"):
                yield Label("Profile")
                options = [(name, name) for name in sorted(self.profiles)]
                yield Select(
                    options,
                    prompt="pick a saved target" if options else "no saved targets",
                    id="profile",
                    compact=True,
                    disabled=not options,
                )
            yield Static(
                Content(self.profile_error or ""),
                id="error-profile",
                classes="error -shown" if self.profile_error else "error",
            )
            for key, label, placeholder in FIELDS:
                with Horizontal(classes="field"):
                    yield Label(label)
                    yield Input(values.get(key, ""), placeholder=placeholder, id=f"field-{key}", compact=True)
                yield Static(id=f"error-{key}", classes="error")
                if key == "path":
                    with Horizontal(classes="field"):
                        yield Label("Transports")
                        yield Select(
                            [(k.replace(",", " + "), k) for k in TRANSPORTS],
                            value=values.get("transports", "polling,websocket"),
                            allow_blank=False,
                            id="field-transports",
                            compact=True,
                        )
            with Horizontal(classes="field", id="profile-row"):
                yield Label("Save as profile")
                yield Input(placeholder="name", id="profile-name", compact=True)
            yield Static(id="error-profile-name", classes="error")
            with Horizontal(id="buttons"):
                yield Button("Start", variant="primary", id="start")
                yield Button("Save profile", id="save")
                yield Button("Cancel", id="cancel")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#field-url", Input).focus()

    # -- form data ---------------------------------------------------------------

    def values(self) -> dict[str, str]:
        out = {key: self.query_one(f"#field-{key}", Input).value for key, _, _ in FIELDS}
        transports = self.query_one("#field-transports", Select).value
        out["transports"] = transports if isinstance(transports, str) else "polling,websocket"
        return out

    def fill(self, values: Mapping[str, str]) -> None:
        for key, _, _ in FIELDS:
            self.query_one(f"#field-{key}", Input).value = values.get(key, "")
        if values.get("transports") in TRANSPORTS:
            self.query_one("#field-transports", Select).value = values["transports"]

    def show_errors(self, errors: Mapping[str, str]) -> None:
        for key, _, _ in FIELDS:
            self._set_error(f"error-{key}", errors.get(key))
        if errors:
            first = next(k for k, _, _ in FIELDS if k in errors)
            self.query_one(f"#field-{first}", Input).focus()

    def _set_error(self, widget_id: str, message: str | None) -> None:
        box = self.query_one(f"#{widget_id}", Static)
        box.update(Content(message or ""))
        box.set_class(bool(message), "-shown")

    def validate(self) -> Target | None:
        target, errors = validate_form(self.values(), base=self.initial)
        self.show_errors(errors)
        return target

    # -- events and actions --------------------------------------------------------

    def on_input_changed(self, event: Input.Changed) -> None:
        """Clear a field's error as soon as it is edited (errors come back on submit)."""
        if event.input.id and event.input.id.startswith("field-"):
            self._set_error("error-" + event.input.id.removeprefix("field-"), None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input.id == "profile-name":
            self.action_save_profile()
        else:
            self.action_start()

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "profile" and isinstance(event.value, str) and event.value in self.profiles:
            self.fill(form_values(self.profiles[event.value]))
            self.query_one("#profile-name", Input).value = event.value
            self.notify(f"Profile {event.value!r} loaded; Enter starts.", markup=False)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        {"start": self.action_start, "save": self.action_save_profile, "cancel": self.action_cancel}[
            event.button.id or "cancel"
        ]()

    def action_start(self) -> None:
        target = self.validate()
        if target is not None:
            self.dismiss(target)

    def action_save_profile(self) -> None:
        name = self.query_one("#profile-name", Input).value.strip()
        if not _PROFILE_NAME.match(name):
            self._set_error(
                "error-profile-name", "Give the profile a name of letters, digits, '.', '_' or '-'."
            )
            self.query_one("#profile-name", Input).focus()
            return
        self._set_error("error-profile-name", None)
        target = self.validate()
        if target is None:
            return
        try:
            path = save_profile(name, target, self.profiles_path)
        except (OSError, ValueError) as e:
            where = self.profiles_path or config_path()
            self._set_error("error-profile-name", f"Could not save to {where}: {e}; check that directory.")
            return
        try:
            self.profiles = load_profiles(self.profiles_path)
        except ValueError:
            self.profiles[name] = target.public()
        select = self.query_one("#profile", Select)
        select.set_options([(n, n) for n in sorted(self.profiles)])
        select.disabled = False
        self.notify(f"Saved profile {name!r} to {path} (without the token).", markup=False)

    def action_cancel(self) -> None:
        self.dismiss(None)
