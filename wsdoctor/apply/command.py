"""``wsdoctor apply``: one request (fix, config or rollback) run against the proxy host, and its output.

``execute`` is what the CLI and the TUI both call: it opens the host (SSH or this machine), finds the running
nginx, builds the plan and runs the transaction, reporting each step as it happens. What stops it before any
plan exists (no connection, no running nginx, bad options) raises ApplyError: one sentence, exit 2.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
from dataclasses import dataclass, field
from typing import TextIO

from wsdoctor.apply import backup as bk
from wsdoctor.apply.hostfs import Host, HostError
from wsdoctor.apply.nginxctl import Nginx, NginxError
from wsdoctor.apply.plans import PlanRefused, config_plan, diagnose, fix_plan, rollback_plan, running_config
from wsdoctor.apply.transaction import NoReporter, Outcome, Reporter, Step, Transaction
from wsdoctor.remote.errors import RemoteError
from wsdoctor.remote.session import RemoteSession, client_port
from wsdoctor.report import CHECK_IDS, Finding
from wsdoctor.target import Target

_OK, _FAIL = "✓", "✗"


class ApplyError(Exception):
    """The apply could not run at all (exit 2); the message is one sentence."""


@dataclass
class ApplyRequest:
    target: Target
    fix: list[str] = field(default_factory=list)
    config_file: str | None = None  # --config FILE (on this machine)
    config_data: bytes | None = None  # or the config itself (the setup wizard)
    into: str | None = None
    rollback: bool = False
    backup_id: str | None = None
    yes: bool = False
    backup_dir: str | None = None
    # A diagnosis the caller just made (the TUI's), else the apply makes a fresh one.
    before: dict[str, Finding] | None = None
    trial: bool = False  # --config only: write, nginx -t, put the old file back (never loaded)

    def validate(self) -> None:
        modes = sum(
            (bool(self.fix), self.config_file is not None or self.config_data is not None, self.rollback)
        )
        if modes != 1:
            raise ApplyError(
                "give exactly one of --fix ID[,ID…], --config FILE --into PATH or --rollback [ID]"
            )
        unknown = [i for i in self.fix if i not in CHECK_IDS]
        if unknown:
            raise ApplyError(f"--fix {','.join(unknown)}: no such check; the ids are {', '.join(CHECK_IDS)}")
        if (self.config_file is not None or self.config_data is not None) and not self.into:
            raise ApplyError("--config FILE needs --into PATH: the file nginx should read it as")
        if self.into and self.config_file is None and self.config_data is None:
            raise ApplyError("--into goes with --config FILE")
        t = self.target
        if t.nginx_dump or t.root:
            raise ApplyError(
                "apply changes the files a running nginx reads: give --ssh HOST (or run it on the proxy host), "
                "not --nginx-dump or --root"
            )


def undo_command(target: Target, backup_dir: str) -> str:
    """The command that rolls back an apply made with TARGET ({id} stands for the backup)."""
    argv = ["wsdoctor", "apply"]
    for opt, value in (
        ("--ssh", target.ssh),
        ("--ssh-config", target.ssh_config),
        ("--identity", target.identity),
        ("--known-hosts", target.known_hosts),
        ("--nginx-conf", target.nginx_conf),
    ):
        if value:
            argv += [opt, value]
    argv += ["--backup-dir", backup_dir]
    return " ".join(shlex.quote(a) for a in argv) + " --rollback {id} --yes"


def _reason(req: ApplyRequest) -> str:
    if req.fix:
        return f"wsdoctor apply --fix {','.join(req.fix)}"
    if req.rollback:
        return "wsdoctor apply --rollback"
    return f"wsdoctor apply --config {req.config_file or '(setup)'} --into {req.into}"


def execute(
    req: ApplyRequest, reporter: Reporter | None = None, session: RemoteSession | None = None
) -> Outcome:
    """Run REQ (see the module docstring). SESSION: the caller's, else one opened and closed here."""
    req.validate()
    reporter = reporter or NoReporter()
    data = req.config_data
    if req.config_file is not None:
        try:
            with open(os.path.expanduser(req.config_file), "rb") as fh:
                data = fh.read()
        except OSError as e:
            raise ApplyError(f"--config {req.config_file}: {e.strerror or e}; check the path") from None
    own = session is None
    session = session or RemoteSession(req.target)
    try:
        return _execute(req, data, reporter, session)
    finally:
        if own:
            session.close()


def _execute(req: ApplyRequest, data: bytes | None, reporter: Reporter, session: RemoteSession) -> Outcome:
    target = req.target
    try:
        runner = session.connect()
    except RemoteError as e:
        raise ApplyError(str(e).rstrip(".")) from None
    host = Host(runner)
    conf = target.nginx_conf
    try:
        backup_dir = req.backup_dir or bk.default_dir(host)
        if req.rollback and not conf:
            # The backup names the nginx it was made for: with several masters on the host, that one.
            with contextlib.suppress(HostError):
                conf = bk.load(host, backup_dir, req.backup_id).nginx.get("conf") or None
        nginx = Nginx.find(host, conf=conf, listen_port=client_port(target))
    except (NginxError, HostError) as e:
        raise ApplyError(str(e).rstrip(".")) from None
    if not target.ssh and not target.nginx_conf:
        target.nginx_conf = nginx.conf_path  # the diagnosis reads the running master's config
    p = nginx.process
    reporter.note(
        f"nginx pid {p.pid} on {host.name}: {nginx.command()}"
        + (f" (systemd unit {nginx.unit})" if nginx.unit else "")
    )
    hint = undo_command(target, backup_dir)
    config = None
    restored: str | None = None
    try:
        if req.fix:
            before = req.before
            if before is None:
                reporter.note("diagnosing, for the fixes it proposes…")
                before = diagnose(target, session)
            plan = fix_plan(
                req.fix, before, target=target, session=session, reason=_reason(req), rollback_hint=hint
            )
            config = None
        elif req.rollback:
            plan, found = rollback_plan(host, backup_dir, req.backup_id)
            restored = found.id
        else:
            assert data is not None and req.into is not None
            config = running_config(nginx)
            before = None
            if target.url and req.yes and not req.trial:
                reporter.note("diagnosing the service as it is, to compare after the change…")
                before = diagnose(target, session)
            plan = config_plan(
                data,
                req.into,
                host=host,
                config=config,
                target=target,
                session=session,
                before=before,
                reason=_reason(req),
                rollback_hint=hint,
                trial=req.trial,
            )
    except (PlanRefused, HostError) as e:
        out = Outcome(
            "fix" if req.fix else "rollback" if req.rollback else "config",
            host.name,
            _reason(req),
            refused=True,
        )
        step = Step("preflight", False, str(e).rstrip(".") + "; nothing was changed")
        out.steps.append(step)
        reporter.finished(step)
        out.summary = "Refused: nothing was changed."
        return out
    if config is None:
        config = running_config(nginx)  # its error_log lines say where a failed reload is logged
    reporter.note(f"{'plan' if not req.yes else 'applying'}: {plan.title}")
    outcome = Transaction(host, nginx, backup_dir, plan, config=config, reporter=reporter).run(req.yes)
    if restored is not None:
        outcome.backup = restored
    return outcome


# --- text output -------------------------------------------------------------------------------------


class TextReporter:
    """Each step on its own line as it finishes, ✓ or ✗ and what happened (readable at 3 a.m.)."""

    def __init__(self, out: TextIO, color: bool = False) -> None:
        self.out = out
        self.color = color

    def _c(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color else text

    def note(self, text: str) -> None:
        self.out.write(self._c(text, "2") + "\n")
        self.out.flush()

    def started(self, step: str, what: str) -> None:
        pass

    def finished(self, step: Step) -> None:
        mark = self._c(_OK, "32") if step.ok else self._c(_FAIL, "31;1")
        self.out.write(f"{mark} {step.step:<9} {step.detail}\n")
        self.out.flush()

    def show_diff(self, diff: str) -> None:
        for line in diff.splitlines():
            if line.startswith(("+++", "---")):
                line = self._c(line, "1")
            elif line.startswith("+"):
                line = self._c(line, "32")
            elif line.startswith("-"):
                line = self._c(line, "31")
            elif line.startswith("@@"):
                line = self._c(line, "36")
            self.out.write(line + "\n")
        self.out.flush()

    def summary(self, outcome: Outcome) -> None:
        text = outcome.summary or ("Applied." if outcome.applied else "Not applied.")
        code = "32;1" if outcome.exit_code() == 0 else "31;1"
        self.out.write(self._c(text, code) + "\n")
        self.out.flush()


def run_cli(req: ApplyRequest, fmt: str = "text", color: bool = False, out: TextIO | None = None) -> int:
    """The CLI's apply: text live on OUT (stdout), or JSON at the end; the exit code."""
    out = out or sys.stdout
    if fmt == "json":
        try:
            outcome = execute(req, NoReporter())
        except ApplyError as e:
            print(f"wsdoctor: {e}.", file=sys.stderr)
            return 2
        out.write(outcome.to_json())
        return outcome.exit_code()
    reporter = TextReporter(out, color=color)
    try:
        outcome = execute(req, reporter)
    except ApplyError as e:
        print(f"wsdoctor: {e}.", file=sys.stderr)
        return 2
    reporter.summary(outcome)
    return outcome.exit_code()
