"""The target form: what to diagnose when the command line said nothing (or to change it later).

The public URL, the client's path and transports, the *name* of the environment
variable holding the token (the token itself never appears on screen), the proxy
host for SSH or a local config / dump, optional backends; under "SSH / TLS options"
what a lab or a private-CA host needs (identity and known_hosts files, a CA file or
insecure, the backend log, a hold time), right after the SSH host, and opened by itself once a
host is typed. Saved profiles can be picked or saved (never with the token). Each field is validated
inline with one sentence saying what to do. Enter in any field starts; Esc leaves, asking first when
something was typed. File fields complete paths on this machine (→ accepts the grey completion).
``validate_form`` is plain Python so it is tested without a terminal.

Tab and Shift+Tab are priority bindings here: Textual hands each key to the widget
focused when the app reads it, and a plain binding moves the focus only once the Tab
has bubbled back up from the input. In a burst (a paste, an autotype tool, tmux
send-keys) the keys after the Tab were then already queued for the old field.
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
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen, Screen
from textual.suggester import Suggester
from textual.widgets import Button, Checkbox, Collapsible, Footer, Input, Label, Select, Static

from wsdoctor.target import Target, config_path, load_profiles, save_profile
from wsdoctor.widgets.keys import CONFIRM, FORM, bindings

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
    ("nginx_conf", "nginx config", "main nginx.conf, on the SSH host if any (optional; → completes)"),
    ("nginx_dump", "nginx -T dump", "a saved `nginx -T` output file (optional; → completes)"),
    ("backends", "Backends", "http://10.0.0.5:3350, … (optional)"),
)
# The field after which the SSH / TLS section comes: a lab or a private-CA host needs it next.
OPTIONS_AFTER = "ssh"
# Under "SSH / TLS options" (plus the insecure checkbox).
OPTION_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("identity", "Identity file", "SSH private key here, like ssh -i (optional; → completes)"),
    ("known_hosts", "known_hosts", "SSH known_hosts file here (optional; → completes)"),
    ("ca_file", "CA file", "CA bundle (PEM) for wss/https, here (optional; → completes)"),
    ("backend_log", "Backend log", "FILE, pm2:NAME or journald:UNIT (optional)"),
    ("hold", "Hold seconds", "hold a tunnel open this long to catch drops (optional)"),
)
INPUT_FIELDS = FIELDS + OPTION_FIELDS
OPTION_KEYS = tuple(k for k, _, _ in OPTION_FIELDS) + ("insecure",)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SSH_HOST = re.compile(r"^(?:[^@\s/]+@)?(?:\[[0-9A-Fa-f:.]+\]|[^@\s:/\[\]]+)(?::\d{1,5})?$")
_PROFILE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
# Fields naming a file on this machine (nginx_conf and backend_log only without an SSH host).
PATH_FIELDS = {"identity", "known_hosts", "ca_file", "nginx_dump", "nginx_conf", "backend_log"}
REMOTE_WITH_SSH = {"nginx_conf", "backend_log"}


def _split_backends(text: str) -> list[str]:
    return [b for b in re.split(r"[,\s]+", text.strip()) if b]


def validate_form(
    values: Mapping[str, str], environ: Mapping[str, str] | None = None, base: Target | None = None
) -> tuple[Target | None, dict[str, str]]:
    """The Target the form describes, or None and one sentence per field that is wrong."""
    env = os.environ if environ is None else environ
    v = {k: (values.get(k) or "").strip() for k, _, _ in INPUT_FIELDS}
    insecure = (values.get("insecure") or "").strip().lower() in ("1", "true", "yes", "on")
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
    errors.update(_option_errors(v, insecure))
    hold = float(v["hold"]) if v["hold"] and "hold" not in errors else None
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
        "identity": os.path.expanduser(v["identity"]) if v["identity"] else None,
        "known_hosts": os.path.expanduser(v["known_hosts"]) if v["known_hosts"] else None,
        "ca_file": os.path.expanduser(v["ca_file"]) if v["ca_file"] else None,
        "insecure": insecure,
        "backend_log": _backend_log_path(v["backend_log"], remote=bool(v["ssh"])),
        "hold": hold,
    }
    target = dataclasses.replace(base, **fields) if base is not None else Target(**fields)
    if base is not None and base.token_env != target.token_env:
        target.token = None  # a token read for another variable must not leak into this target
    if target.token_env:
        target.token = env.get(target.token_env) or None
    return target, {}


def _local_file_error(path: str, what: str) -> str | None:
    """One sentence if PATH is not a readable file on this machine (WHAT: what it should be)."""
    p = Path(path).expanduser()
    if p.is_dir():
        return f"{path} is a directory; give {what}."
    if not p.is_file():
        return f"No file {path} here; give {what}, or clear this field."
    return None


def _backend_log_path(spec: str, *, remote: bool) -> str | None:
    if not spec:
        return None
    if spec.startswith(("pm2:", "journald:")) or remote:
        return spec
    return os.path.expanduser(spec)


def _option_errors(v: Mapping[str, str], insecure: bool) -> dict[str, str]:
    """The SSH / TLS options: local files must exist, remote paths be absolute, hold a positive number."""
    errors: dict[str, str] = {}
    for key, what in (
        ("identity", "the SSH private key file (like ssh -i)"),
        ("known_hosts", "a known_hosts file"),
    ):
        if not v[key]:
            continue
        if not v["ssh"]:
            errors[key] = "This is for the SSH connection: give the proxy host above, or clear this field."
        elif message := _local_file_error(v[key], what):
            errors[key] = message
    if v["ca_file"]:
        if insecure:
            errors["ca_file"] = "Give either a CA file or insecure, not both."
        elif message := _local_file_error(v["ca_file"], "the CA bundle (PEM) that signed the certificate"):
            errors["ca_file"] = message
    spec = v["backend_log"]
    if spec:
        kind, _, name = spec.partition(":")
        if kind in ("pm2", "journald"):
            if not name.strip():
                errors["backend_log"] = (
                    f"Name the {kind} {'app' if kind == 'pm2' else 'unit'}, like {kind}:chat."
                )
        elif v["ssh"]:
            if not spec.startswith("/"):
                errors["backend_log"] = (
                    "With an SSH host, give the absolute path of the backend log on that host "
                    "(or pm2:NAME, journald:UNIT)."
                )
        elif message := _local_file_error(spec, "the backend's log file (or pm2:NAME, journald:UNIT)"):
            errors["backend_log"] = message
    if v["hold"]:
        try:
            seconds = float(v["hold"])
        except ValueError:
            seconds = -1.0
        if not 0 < seconds <= 3600:  # also refuses nan and inf
            errors["hold"] = "Give how long to hold a tunnel open, in seconds, like 90 (at most 3600)."
    return errors


def form_values(target: Target | Mapping[str, Any]) -> dict[str, str]:
    """Field texts for a Target or a saved profile (token never included)."""
    get = (lambda k: getattr(target, k, None)) if isinstance(target, Target) else target.get
    out = {}
    for key, _, _ in INPUT_FIELDS:
        value = get(key)
        if key == "backends":
            out[key] = ", ".join(value or [])
        elif key == "hold" and isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = f"{value:g}"
        else:
            out[key] = "" if value in (None, False) else str(value)
    out["insecure"] = "true" if get("insecure") else ""
    transports = get("transports") or ("polling", "websocket")
    if isinstance(transports, str):
        transports = tuple(t.strip() for t in transports.split(","))
    out["transports"] = ",".join(transports)
    return out


class PathSuggester(Suggester):
    """Completes a file path on this machine: the one entry that starts with what was typed (a directory
    gets its slash), or the longest common start of several. Off when ENABLED says the path is remote."""

    def __init__(self, enabled=lambda: True) -> None:
        super().__init__(use_cache=False, case_sensitive=True)
        self.enabled = enabled

    async def get_suggestion(self, value: str) -> str | None:
        if not value or not self.enabled() or value.startswith(("pm2:", "journald:")):
            return None
        return complete_path(value)


def complete_path(value: str) -> str | None:
    """VALUE completed as far as the files on this machine allow (None: nothing to add)."""
    head, slash, partial = value.rpartition("/")
    base = head + slash
    directory = Path(os.path.expanduser(base or "."))
    try:
        names = sorted(e.name for e in os.scandir(directory) if e.name.startswith(partial))
    except OSError:
        return None
    if not partial:
        names = [n for n in names if not n.startswith(".")]
    if not names:
        return None
    prefix = os.path.commonprefix(names)
    completed = base + prefix
    if len(names) == 1 and (directory / prefix).is_dir():
        completed += "/"
    return completed if completed != value else None


class ConfirmLeave(ModalScreen[bool]):
    """Esc on a form with something typed: leave (losing it) or keep editing."""

    DEFAULT_CSS = """
    ConfirmLeave {
        align: center middle;
        #confirm {
            width: 60;
            max-width: 100%;
            height: auto;
            border: thick $warning;
            background: $panel;
            padding: 1 2;
        }
    }
    """

    BINDINGS = bindings(CONFIRM)

    def __init__(self, leaving: str) -> None:
        super().__init__()
        self.leaving = leaving

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm") as box:
            box.border_title = "Leave the form?"
            yield Static(
                Content.assemble(
                    f"What you typed is lost if you {self.leaving}.\n\n",
                    ("y", "bold $accent"),
                    " leave · ",
                    ("n", "bold $accent"),
                    " / ",
                    ("Esc", "bold $accent"),
                    " keep editing",
                )
            )

    def action_discard(self) -> None:
        self.dismiss(True)

    def action_keep(self) -> None:
        self.dismiss(False)


class TargetScreen(Screen[Target | None]):
    """The form; dismisses with the Target to diagnose (or None when cancelled)."""

    DEFAULT_CSS = """
    TargetScreen {
        #form { padding: 0 2; }
        #form-title { text-style: bold; color: $accent; margin: 1 0; }
        .field { height: 1; margin-top: 1; }
        .field Label { width: 18; padding: 0 1 0 0; text-style: bold; }
        .field Input, .field Select { width: 1fr; }
        .field Checkbox { width: 1fr; }
        #options { margin-top: 1; padding: 0; border: none; background: transparent; }
        #options Contents { padding: 0; }
        .error { color: $error; padding-left: 18; display: none; }
        .error.-shown { display: block; }
        #buttons { height: 1; margin-top: 1; }
        #buttons Button { height: 1; border: none; min-width: 12; margin-right: 2; }
        #profile-name { width: 24; }
        SelectCurrent Static#label, SelectCurrent .arrow { color: $text-muted; }
        SelectCurrent.-has-value Static#label { color: $text; }
        Checkbox > .toggle--button { color: $text-muted; }
        #profile-row { margin-top: 2; }
    }
    """

    BINDINGS = bindings(FORM)

    def __init__(self, initial: Target | None = None, *, profiles_path: Path | None = None) -> None:
        super().__init__()
        self.initial = initial
        self._start_values: dict[str, str] | None = None  # what the form held when it opened
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
                    "What should wsdoctor diagnose? Enter starts (in any field), Esc leaves; "
                    "the token is read from its variable."
                ),
                id="form-title",
            )
            with Horizontal(classes="field"):
                yield Label("Profile")
                options = [(name, name) for name in sorted(self.profiles)]
                yield Select(
                    options,
                    prompt="pick a saved target"
                    if options
                    else "no saved targets yet (Ctrl+O saves this form)",
                    id="profile",
                    compact=True,
                )
            yield Static(
                Content(self.profile_error or ""),
                id="error-profile",
                classes="error -shown" if self.profile_error else "error",
            )
            for key, label, placeholder in FIELDS:
                with Horizontal(classes="field"):
                    yield Label(label)
                    yield self._input(key, values.get(key, ""), placeholder)
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
                if key == OPTIONS_AFTER:
                    yield from self._options(values)
            with Horizontal(classes="field", id="profile-row"):
                yield Label("Save as profile")
                yield Input(placeholder="name", id="profile-name", compact=True)
            yield Static(id="error-profile-name", classes="error")
            with Horizontal(id="buttons"):
                yield Button("Start", variant="primary", id="start")
                yield Button("Save profile", id="save")
                yield Button("Cancel", id="cancel")
        yield Footer(compact=True, show_command_palette=False)

    def _input(self, key: str, value: str, placeholder: str) -> Input:
        suggester = None
        if key in PATH_FIELDS:
            remote = key in REMOTE_WITH_SSH
            suggester = PathSuggester(lambda: not (remote and self._value("ssh")))
        return Input(value, placeholder=placeholder, id=f"field-{key}", compact=True, suggester=suggester)

    def _value(self, key: str) -> str:
        found = self.query(f"#field-{key}")
        return found.first(Input).value.strip() if found else ""

    def _options(self, values: Mapping[str, str]) -> ComposeResult:
        """The SSH / TLS section, folded unless it holds something or a proxy host is given."""
        with Collapsible(
            title="SSH / TLS options: identity, known_hosts, CA file, backend log, hold",
            collapsed=not any(values.get(k) for k in (*OPTION_KEYS, "ssh")),
            id="options",
        ):
            for key, label, placeholder in OPTION_FIELDS:
                with Horizontal(classes="field"):
                    yield Label(label)
                    yield self._input(key, values.get(key, ""), placeholder)
                yield Static(id=f"error-{key}", classes="error")
                if key == "ca_file":
                    with Horizontal(classes="field"):
                        yield Label("Insecure")
                        yield Checkbox(
                            "do not verify TLS certificates (the report says so)",
                            value=bool(values.get("insecure")),
                            id="field-insecure",
                            compact=True,
                        )

    def on_mount(self) -> None:
        self.query_one("#field-url", Input).focus()
        self._start_values = self.values()

    # -- form data ---------------------------------------------------------------

    def values(self) -> dict[str, str]:
        out = {key: self.query_one(f"#field-{key}", Input).value for key, _, _ in INPUT_FIELDS}
        transports = self.query_one("#field-transports", Select).value
        out["transports"] = transports if isinstance(transports, str) else "polling,websocket"
        out["insecure"] = "true" if self.query_one("#field-insecure", Checkbox).value else ""
        return out

    def fill(self, values: Mapping[str, str]) -> None:
        for key, _, _ in INPUT_FIELDS:
            self.query_one(f"#field-{key}", Input).value = values.get(key, "")
        if values.get("transports") in TRANSPORTS:
            self.query_one("#field-transports", Select).value = values["transports"]
        self.query_one("#field-insecure", Checkbox).value = bool(values.get("insecure"))
        if any(values.get(k) for k in OPTION_KEYS):
            self.query_one("#options", Collapsible).collapsed = False

    def show_errors(self, errors: Mapping[str, str]) -> None:
        for key, _, _ in INPUT_FIELDS:
            self._set_error(f"error-{key}", errors.get(key))
        if errors:
            first = next(k for k, _, _ in INPUT_FIELDS if k in errors)
            if first in OPTION_KEYS:  # the section may be folded: open it so the sentence shows
                self.query_one("#options", Collapsible).collapsed = False
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
        if event.input.id == "field-ssh" and event.value.strip():
            self.query_one(
                "#options", Collapsible
            ).collapsed = False  # the identity and known_hosts come next

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        self._set_error("error-ca_file", None)  # "either a CA file or insecure" no longer applies

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter starts, in every field (the profile's name included: Ctrl+O saves)."""
        event.stop()
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
        self.notify(f"Saved profile {name!r} to {path} (without the token).", markup=False)

    def action_cancel(self) -> None:
        """Leave the form; when something was typed, ask first (it would be lost)."""
        if self._start_values is None or self.values() == self._start_values:
            self.dismiss(None)
            return
        board = getattr(self.app, "board", None)
        leaving = "go back without starting" if board is not None and board.started else "quit wsdoctor"

        def answered(leave: bool | None) -> None:
            if leave:
                self.dismiss(None)

        self.app.push_screen(ConfirmLeave(leaving), callback=answered)
