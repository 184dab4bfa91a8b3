"""The setup wizard (``wsdoctor setup``): a new Socket.IO service behind nginx, from discovery to all-pass.

1. Discover what the proxy host can tell (wsdoctor.apply.discover): the running nginx, where a site file is
   read from, server names and certificates, the Socket.IO backends with their engine path and pingInterval.
2. Ask only the rest: each field says whether discovery filled it; the empty ones are what is needed.
3. Review: the generated config with the reason for each line beside it, and the client code.
4. Test it with ``nginx -t`` on the host (written, tested, the old file put back: never loaded), then apply it
   (backup, atomic write, ``nginx -t``, reload, verify, rollback on failure), each step shown live.
5. Diagnose the new service: the wizard closes with the service's target and the app runs the diagnosis.

Slow work (discovery, the apply) runs in thread workers on a connection of the wizard's own; results come back
as messages. Host text is shown as Content, never markup.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, ContentSwitcher, Footer, Input, Label, Select, Static
from textual.worker import Worker, WorkerState

from wsdoctor.apply.command import ApplyRequest, execute
from wsdoctor.apply.discover import Discovered, answers, discover
from wsdoctor.nginx.generate import Generated, GenerateError, SetupOptions, generate
from wsdoctor.remote.session import RemoteSession
from wsdoctor.screens.apply import ApplyDone, Executor, StepLog, failure_sentence, run_apply_worker
from wsdoctor.target import Target
from wsdoctor.widgets.render import clean, code_text

Discoverer = Callable[[RemoteSession, str | None], Discovered]

TRANSPORTS = {
    "polling,websocket": ("polling", "websocket"),
    "websocket": ("websocket",),
    "polling": ("polling",),
}
# (field, label, placeholder); the service and the transports are Selects above these.
FIELDS: tuple[tuple[str, str, str], ...] = (
    ("backends", "Backends", "HOST:PORT, … (the Socket.IO processes)"),
    ("backend_path", "Backend engine path", "where the backends serve Socket.IO: /socket.io/"),
    ("ping_interval", "Backends' pingInterval", "milliseconds (Socket.IO's default: 25000)"),
    ("server_name", "Public host name", "what clients connect to: api.example.com"),
    ("public_path", "Public path prefix", "/ or a prefix such as /dev/aiwm/chat/"),
    ("namespace", "Namespace", "the Socket.IO namespace clients join: /"),
    ("listen", "Listen on", "[ADDRESS:]PORT for TLS: 443"),
    ("cert", "Certificate", "ssl_certificate on the host (full chain)"),
    ("key", "Private key", "ssl_certificate_key on the host"),
    ("into", "Install as", "the site file on the host: /etc/nginx/conf.d/socketio.conf"),
)
DEFAULTS = {"public_path": "/", "namespace": "/", "listen": "443", "ping_interval": "25000"}
_HOSTPORT = re.compile(r"^\S+:\d+$")


class Discovery(Message):
    def __init__(self, found: Discovered) -> None:
        super().__init__()
        self.found = found


def discover_default(session: RemoteSession, conf: str | None) -> Discovered:
    return discover(session, conf)


def service_target(
    base: Target, options: SetupOptions, generated: Generated, nginx_conf: str | None
) -> Target:
    """The target that diagnoses the new service: its public URL and path, on the same proxy host."""
    port = options.listen_port
    url = f"wss://{options.server_name}" + ("" if port == 443 else f":{port}")
    ns = options.namespace.strip("/")
    return dataclasses.replace(
        base,
        url=url + (f"/{ns}" if ns else ""),
        path=generated.public_engine_path.rstrip("/"),
        transports=tuple(options.transports),
        nginx_conf=nginx_conf or base.nginx_conf,
        backends=[],
        raw=False,
    )


def validate_answers(values: Mapping[str, str]) -> tuple[SetupOptions | None, str | None, dict[str, str]]:
    """(SetupOptions, install path, errors by field) from the form's values; plain Python, tested alone."""
    v = {k: (values.get(k) or "").strip() for k, _, _ in FIELDS}
    errors: dict[str, str] = {}
    backends = [b for b in re.split(r"[,\s]+", v["backends"]) if b]
    if not backends:
        errors["backends"] = "Give at least one backend as HOST:PORT."
    elif bad := [b for b in backends if not _HOSTPORT.match(b)]:
        errors["backends"] = f"{bad[0]} is not HOST:PORT."
    for name in ("server_name", "cert", "key", "into"):
        if not v[name]:
            errors[name] = "Needed: discovery could not tell."
    if v["into"] and not v["into"].startswith("/"):
        errors["into"] = "An absolute path on the proxy host."
    ping = v["ping_interval"] or DEFAULTS["ping_interval"]
    if not ping.isdigit():
        errors["ping_interval"] = "Milliseconds, e.g. 25000."
    if errors:
        return None, None, errors
    options = SetupOptions(
        server_name=v["server_name"],
        public_path=v["public_path"] or "/",
        backend_path=v["backend_path"] or "/socket.io/",
        backends=backends,
        transports=TRANSPORTS.get(values.get("transports") or "polling,websocket", ("polling", "websocket")),
        cert=v["cert"],
        key=v["key"],
        namespace=v["namespace"] or "/",
        ping_interval=int(ping),
        nginx_version=values.get("nginx_version") or None,
        listen=v["listen"] or "443",
        upstream=values.get("upstream") or "socketio_backends",
        define_map=values.get("define_map", "yes") != "no",
    )
    try:
        generate(options)
    except GenerateError as e:
        message = str(e)
        field = next((k for k, _, _ in FIELDS if f"--{k.replace('_', '-')}" in message), "backends")
        return None, None, {field: message}
    return options, v["into"], {}


class SetupScreen(Screen[Target | None]):
    """The wizard (see the module docstring). Dismisses with the new service's target, or None."""

    DEFAULT_CSS = """
    SetupScreen {
        #setup-title { background: $boost; padding: 0 1; border-bottom: solid $primary 50%; height: auto; }
        #setup-steps { height: 1fr; }
        .pane { padding: 0 1; }
        .section { margin: 1 0 0 0; text-style: bold; color: $accent; }
        .hint { color: $text-muted; height: auto; }
        .row { height: 1; margin: 0 0 1 0; }
        .row > Label { width: 24; padding: 0 1 0 0; }
        .row > Input, .row > Select { width: 1fr; }
        .row > .state { width: 12; padding: 0 0 0 1; color: $text-muted; }
        .row > .state.-needed { color: $warning; text-style: bold; }
        .error { color: $error; height: auto; padding: 0 0 0 24; margin: -1 0 1 0; display: none; }
        .error.-shown { display: block; }
        #review-panes { height: 1fr; }
        #review-config { width: 2fr; }
        #review-clients { width: 1fr; }
        .code { background: $surface; padding: 0 1; width: 100%; }
        #answers-buttons { height: auto; margin: 1 0; }
    }
    """

    BINDINGS = [
        Binding("ctrl+g", "generate", "Generate", show=False),
        Binding("t", "test", "Test (nginx -t)"),
        Binding("a", "apply", "Apply"),
        Binding("d", "diagnose", "Diagnose"),
        Binding("b,escape", "back", "Back"),
    ]

    def __init__(
        self,
        target: Target,
        preset: Mapping[str, Any] | None = None,
        *,
        backup_dir: str | None = None,
        discoverer: Discoverer = discover_default,
        executor: Executor = execute,
    ) -> None:
        super().__init__()
        self.target = target
        self.preset = {k: v for k, v in (preset or {}).items() if v not in (None, "", [])}
        self.backup_dir = backup_dir
        self.discoverer = discoverer
        self.executor = executor
        self.session: RemoteSession | None = None
        self.found: Discovered | None = None
        self.discovered: dict[str, Any] = {}
        self.options: SetupOptions | None = None
        self.generated: Generated | None = None
        self.into: str | None = None
        self.step = "discover"
        self.running: str | None = None  # "test" or "apply" while a worker runs
        self.applied = False

    @property
    def where(self) -> str:
        return self.target.ssh or "this machine"

    # -- layout ----------------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static(id="setup-title")
        with ContentSwitcher(initial="discover", id="setup-steps"):
            with VerticalScroll(id="discover", classes="pane"):
                yield Static("Discovering", classes="section")
                yield Static(id="discover-log")
            with VerticalScroll(id="answers", classes="pane"):
                yield Static(id="answers-intro", classes="hint")
                with Horizontal(classes="row"):
                    yield Label("Service")
                    yield Select[str]([], id="group", prompt="enter the backends below", compact=True)
                    yield Static("", classes="state", id="state-group")
                with Horizontal(classes="row"):
                    yield Label("Transports")
                    yield Select[str](
                        [(k, k) for k in TRANSPORTS],
                        value="polling,websocket",
                        allow_blank=False,
                        id="transports",
                    )
                    yield Static("", classes="state")
                for key, label, placeholder in FIELDS:
                    with Horizontal(classes="row"):
                        yield Label(label)
                        yield Input(placeholder=placeholder, id=f"in-{key}", compact=True)
                        yield Static("", classes="state", id=f"state-{key}")
                    yield Static("", classes="error", id=f"err-{key}")
                with Horizontal(id="answers-buttons"):
                    yield Button("Generate (Ctrl+G)", variant="primary", id="generate", compact=True)
            with Vertical(id="review", classes="pane"):
                yield Static(id="review-hint", classes="hint")
                with Horizontal(id="review-panes"):
                    with VerticalScroll(id="review-config"):
                        yield Static("nginx config and why each line is there", classes="section")
                        yield Static(id="config-table")
                    with VerticalScroll(id="review-clients"):
                        yield Static("socket.io-client", classes="section")
                        yield Static(id="client-js", classes="code")
                        yield Static("python-socketio", classes="section")
                        yield Static(id="client-py", classes="code")
                        yield Static("Notes", classes="section")
                        yield Static(id="notes", classes="hint")
            with VerticalScroll(id="apply", classes="pane"):
                yield Static(id="apply-heading", classes="section")
                yield StepLog(self.target.secrets(), id="setup-steps-log")
                yield Static(id="apply-hint", classes="hint")
        yield Footer()

    def on_mount(self) -> None:
        self._title("1/4 discovering what the proxy host can tell")
        self._discover()

    def on_unmount(self) -> None:
        if self.session is not None:
            self.session.close()

    def _title(self, text: str) -> None:
        self.query_one("#setup-title", Static).update(
            Content.assemble(("wsdoctor setup", "bold"), " — ", clean(self.where), " — ", text)
        )

    def _show(self, step: str) -> None:
        self.step = step
        self.query_one(ContentSwitcher).current = step
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if self.running is not None and action in ("test", "apply", "back", "generate"):
            return False
        if action in ("test", "apply"):
            return self.step in ("review", "apply") and self.generated is not None and not self.applied
        if action == "diagnose":
            return self.applied
        if action == "generate":
            return self.step == "answers"
        return True

    # -- 1. discovery ----------------------------------------------------------------------------------

    @work(thread=True, exit_on_error=False, group="setup-discover", name="discover")
    def _discover(self) -> None:
        self.session = RemoteSession(self.target)
        found = self.discoverer(self.session, self.target.nginx_conf)
        self.post_message(Discovery(found))

    def on_discovery(self, message: Discovery) -> None:
        self.found = found = message.found
        lines = [
            f"nginx on {found.host}: {found.nginx_conf or 'none running'} ({found.nginx_version or '?'})"
        ]
        if found.includes:
            lines.append("its http block includes: " + ", ".join(found.includes))
        for name, group in found.groups().items():
            b = group[0]
            lines.append(
                f"Socket.IO at {b.engine_path} (pingInterval {b.ping_interval} ms): "
                + ", ".join(x.hostport for x in group)
                + f" — {name}"
            )
        if found.services:
            lines.append("services: " + ", ".join(found.services[:8]))
        lines += found.notes
        self.query_one("#discover-log", Static).update(Content(clean("\n".join(lines))))
        self._fill(found)
        self._title("2/4 what discovery could not tell")
        self._show("answers")
        first_needed = next(
            (
                self.query_one(f"#in-{k}", Input)
                for k, _, _ in FIELDS
                if not self.query_one(f"#in-{k}", Input).value
            ),
            None,
        )
        (first_needed or self.query_one("#generate", Button)).focus()

    def _fill(self, found: Discovered, group: str | None = None) -> None:
        self.discovered = answers(found, group)
        groups = found.groups()
        select = self.query_one("#group", Select)
        with self.prevent(Select.Changed):
            select.set_options(
                [
                    (f"{name}: {len(bs)} backend(s) at {bs[0].engine_path}", name)
                    for name, bs in groups.items()
                ]
            )
            if groups:
                select.value = group or next(iter(groups))
        self.query_one("#state-group", Static).update(
            f"{len(groups)} found" if len(groups) != 1 else "discovered"
        )
        values = {k: DEFAULTS.get(k, "") for k, _, _ in FIELDS}
        states = {k: "default" if k in DEFAULTS else "" for k, _, _ in FIELDS}
        for k, v in self.discovered.items():
            if k in values:
                values[k] = ", ".join(v) if isinstance(v, list) else str(v)
                states[k] = "discovered"
        for k, v in self.preset.items():
            if k in values:
                values[k] = ", ".join(v) if isinstance(v, list) else str(v)
                states[k] = "given"
        if "transports" in self.preset and self.preset["transports"] in TRANSPORTS:
            self.query_one("#transports", Select).value = self.preset["transports"]
        for k, _, _ in FIELDS:
            self.query_one(f"#in-{k}", Input).value = values[k]
            st = self.query_one(f"#state-{k}", Static)
            st.update(states[k] or "needed")
            st.set_class(not values[k], "-needed")
        known = sum(1 for s in states.values() if s in ("discovered", "given"))
        self.query_one("#answers-intro", Static).update(
            Content(
                f"Discovery filled {known} of {len(FIELDS)} answers on {found.host}; "
                "the fields marked 'needed' are what it could not tell. Ctrl+G or Generate when done."
            )
        )

    @on(Input.Changed)
    def _typed(self, event: Input.Changed) -> None:
        """A field the user edits is theirs: its state says so (and 'needed' while it is empty)."""
        if not event.input.has_focus or not event.input.id:
            return
        state = self.query_one(f"#state-{event.input.id[3:]}", Static)
        state.update("given" if event.value else "needed")
        state.set_class(not event.value, "-needed")

    @on(Select.Changed, "#group")
    def _group_changed(self, event: Select.Changed) -> None:
        if self.found is not None and isinstance(event.value, str):
            self._fill(self.found, event.value)

    # -- 2. the answers → 3. review ----------------------------------------------------------------------

    def _values(self) -> dict[str, str]:
        values = {k: self.query_one(f"#in-{k}", Input).value for k, _, _ in FIELDS}
        values["transports"] = str(self.query_one("#transports", Select).value)
        values["nginx_version"] = str(
            self.discovered.get("nginx_version") or self.preset.get("nginx_version") or ""
        )
        return values

    @on(Button.Pressed, "#generate")
    def _generate_pressed(self) -> None:
        self.action_generate()

    @on(Input.Submitted)
    def _submitted(self) -> None:
        if self.step == "answers":
            self.action_generate()

    def action_generate(self) -> None:
        options, into, errors = validate_answers(self._values())
        for k, _, _ in FIELDS:
            err = self.query_one(f"#err-{k}", Static)
            err.update(Content(errors.get(k, "")))
            err.set_class(k in errors, "-shown")
        if options is None:
            first = next(k for k, _, _ in FIELDS if k in errors)
            self.query_one(f"#in-{first}", Input).focus()
            return
        self.options, self.into = options, into
        self.generated = out = generate(options)
        table = Table.grid(padding=(0, 2), expand=True)
        # The config as written (never wrapped; the longest directives fit), its reason beside it.
        table.add_column(no_wrap=True, overflow="ellipsis", max_width=60)
        table.add_column(ratio=1, style="dim", min_width=24)
        reasons = dict(out.reasons)
        for line in out.nginx_conf.splitlines():
            style = "dim" if line.strip().startswith("#") else ""
            table.add_row(Text(line, style=style), Text(reasons.get(line.strip(), "")))
        self.query_one("#config-table", Static).update(table)
        self.query_one("#client-js", Static).update(code_text(out.client_js))
        self.query_one("#client-py", Static).update(code_text(out.client_py))
        self.query_one("#notes", Static).update(Content("\n".join(f"• {n}" for n in out.notes)))
        self.query_one("#review-hint", Static).update(
            Content.assemble(
                "To be installed as ",
                (clean(into or ""), "bold"),
                f" on {clean(self.where)}.  ",
                ("t", "bold reverse"),
                " test it with nginx -t   ",
                ("a", "bold reverse"),
                " apply it   ",
                ("b", "bold reverse"),
                " back to the answers",
            )
        )
        self._title("3/4 review the config and the client code")
        self._show("review")
        self.query_one("#review-config").focus()

    # -- 4. test / apply -------------------------------------------------------------------------------

    def _request(self, trial: bool) -> ApplyRequest:
        assert self.generated is not None and self.options is not None and self.into is not None
        conf = self.found.nginx_conf if self.found is not None else None
        target = service_target(self.target, self.options, self.generated, conf)
        return ApplyRequest(
            target=target,
            config_data=self.generated.nginx_conf.encode(),
            into=self.into,
            yes=True,
            trial=trial,
            backup_dir=self.backup_dir,
        )

    def _run(self, trial: bool) -> None:
        self.running = "test" if trial else "apply"
        log = self.query_one(StepLog)
        log.reset()
        heading = (
            f"Testing the config with nginx -t on {self.where} (written, tested, put back: never loaded)"
            if trial
            else f"Applying the config on {self.where}"
        )
        self.query_one("#apply-heading", Static).update(Content(clean(heading)))
        self.query_one("#apply-hint", Static).update("")
        self._title("4/4 " + ("testing" if trial else "applying"))
        self._show("apply")
        run_apply_worker(self, log, self._request(trial), self.executor)

    def action_test(self) -> None:
        self._run(trial=True)

    def action_apply(self) -> None:
        self._run(trial=False)

    def on_apply_done(self, message: ApplyDone) -> None:
        trial = self.running == "test"
        self.running = None
        outcome = message.outcome
        self.query_one(StepLog).done(outcome)
        if outcome.applied:
            self.applied = True
            hint = Content.assemble(("d", "bold reverse"), " diagnose the new service now")
        elif trial and outcome.exit_code() == 0:
            hint = Content.assemble(("a", "bold reverse"), " apply it   ", ("b", "bold reverse"), " back")
        else:
            hint = Content.assemble(("b", "bold reverse"), " back to the answers (nothing was left changed)")
        self.query_one("#apply-hint", Static).update(hint)
        self.refresh_bindings()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is not WorkerState.ERROR:
            return
        sentence = failure_sentence(event.worker.error)
        if event.worker.group == "apply":
            self.running = None
            self.query_one(StepLog).failed(sentence)
            self.query_one("#apply-hint", Static).update(Content.assemble(("b", "bold reverse"), " back"))
            self.refresh_bindings()
        elif event.worker.group == "setup-discover":
            self.query_one("#discover-log", Static).update(Content(clean(f"Discovery stopped: {sentence}")))
            self.found = Discovered(host=self.where, notes=[sentence])
            self._fill(self.found)
            self._show("answers")

    # -- navigation ------------------------------------------------------------------------------------

    def action_diagnose(self) -> None:
        if self.applied and self.generated is not None and self.options is not None:
            conf = self.found.nginx_conf if self.found is not None else None
            self.dismiss(service_target(self.target, self.options, self.generated, conf))

    def action_back(self) -> None:
        if self.step in ("review", "apply") and not self.applied:
            self._title("2/4 what discovery could not tell")
            self._show("answers")
        elif self.step == "apply" and self.applied:
            self.action_diagnose()
        else:
            self.dismiss(None)
