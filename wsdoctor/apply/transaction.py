"""One apply as a transaction on the proxy host: it ends applied and verified, or as it was before.

preflight (``nginx -t`` of the current config: a config that already fails is refused untouched; the new
contents computed from the files as they are now) → lock → the diff → backup → atomic writes → ``nginx -t``
→ reload → verify (new workers run, ``nginx -T`` holds the change, no new ``[emerg]``/``[alert]`` line, the
plan's live checks pass) → on any failure: restore the files byte for byte, ``nginx -t``, reload if the change
had been loaded, and verify the old behaviour is back. Without ``yes`` it stops after the preflight: the plan
and the diff, nothing changed.

Each finished step is handed to a reporter as it happens (the CLI prints it, the TUI shows it live); the
Outcome holds them all for JSON.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from wsdoctor.apply import backup as bk
from wsdoctor.apply.diffs import DiffError, unified
from wsdoctor.apply.hostfs import FileState, Host, HostError, decode
from wsdoctor.apply.lock import HostLock, LockBusy
from wsdoctor.apply.nginxctl import Nginx, first_problem
from wsdoctor.nginx.model import Config
from wsdoctor.remote.text import sanitize

STEPS = ("preflight", "lock", "backup", "write", "test", "reload", "verify", "restore")

Verifier = Callable[[], tuple[bool, str]]


@dataclass
class Step:
    step: str
    ok: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "ok": self.ok, "detail": self.detail}


class Reporter(Protocol):
    def note(self, text: str) -> None: ...

    def started(self, step: str, what: str) -> None: ...

    def finished(self, step: Step) -> None: ...

    def show_diff(self, diff: str) -> None: ...


class NoReporter:
    def note(self, text: str) -> None:
        pass

    def started(self, step: str, what: str) -> None:
        pass

    def finished(self, step: Step) -> None:
        pass

    def show_diff(self, diff: str) -> None:
        pass


@dataclass
class Change:
    path: str
    before: FileState
    after: bytes | None  # None: the file is removed (it did not exist before the change being undone)

    @property
    def changed(self) -> bool:
        return self.before.data != self.after


@dataclass
class Plan:
    """What to change and how to judge it; built by wsdoctor.apply.plans."""

    action: str  # "fix", "config" or "rollback"
    title: str  # one line: "fix route (1 file)", "install site.conf as /etc/nginx/conf.d/ws.conf"
    paths: list[str]
    compute: Callable[[dict[str, FileState]], dict[str, bytes | None]]  # new contents from current states
    reason: str = ""  # for the backup manifest: the command that made it
    backup: bool = True
    test_before: bool = True  # refuse a config that fails nginx -t before the change
    new_mode: int = 0o644  # for files that do not exist yet
    verify_live: Verifier | None = None  # after the reload: the plan's own checks
    verify_restored: Verifier | None = None  # after a restore: the old behaviour
    rollback_hint: str = ""  # the command that undoes a successful apply ("… --rollback {id} --yes")
    precheck: Callable[[], str | None] | None = None  # a reason to refuse before anything is read
    trial: bool = False  # write, `nginx -t`, put the old files back: never reloaded (the wizard's "Test")


@dataclass
class Outcome:
    action: str
    host: str
    title: str
    applied: bool = False
    rolled_back: bool = False
    refused: bool = False
    dry_run: bool = False
    backup: str | None = None
    steps: list[Step] = field(default_factory=list)
    diff: str = ""
    summary: str = ""

    def exit_code(self) -> int:
        if self.refused or self.rolled_back and not self.applied:
            return 1
        if self.dry_run or self.applied:
            return 0
        return 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": 1,
            "applied": self.applied,
            "rolled_back": self.rolled_back,
            "backup": self.backup,
            "steps": [s.to_json() for s in self.steps],
            "diff": self.diff,
            "action": self.action,
            "dry_run": self.dry_run,
            "summary": self.summary,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"


class _Failed(Exception):
    """A step failed: stop, and restore if anything was changed."""


class Transaction:
    def __init__(
        self,
        host: Host,
        nginx: Nginx,
        backup_dir: str,
        plan: Plan,
        *,
        config: Config | None = None,
        reporter: Reporter | None = None,
    ) -> None:
        self.host = host
        self.nginx = nginx
        self.backup_dir = backup_dir
        self.plan = plan
        self.config = config
        self.reporter = reporter or NoReporter()
        self.outcome = Outcome(plan.action, host.name, plan.title)
        self.changes: list[Change] = []
        self._written = False
        self._reloaded = False

    # -- steps -----------------------------------------------------------------------------------------

    def _start(self, step: str, what: str) -> None:
        self.reporter.started(step, what)

    def _done(self, step: str, ok: bool, detail: str) -> Step:
        s = Step(step, ok, sanitize(detail))
        self.outcome.steps.append(s)
        self.reporter.finished(s)
        return s

    def _refuse(self, step: str, detail: str) -> Outcome:
        self._done(step, False, detail)
        self.outcome.refused = True
        self.outcome.summary = "Refused: nothing was changed."
        return self.outcome

    # -- the run ---------------------------------------------------------------------------------------

    def run(self, yes: bool) -> Outcome:
        out = self.outcome
        if not self._preflight():
            return out
        if not yes:
            out.dry_run = True
            out.summary = "Dry run: nothing was changed; re-run with --yes to apply."
            return out
        lock = HostLock(self.host, self.backup_dir, f"wsdoctor apply ({self.plan.title})")
        self._start("lock", f"taking the apply lock {lock.path}")
        try:
            try:
                self.host.mkdir_private(self.backup_dir)
                lock.acquire()
            except LockBusy as e:
                return self._refuse("lock", str(e))
            except (HostError, RuntimeError) as e:
                return self._refuse("lock", str(e))
            moved = self._changed_since_preflight()
            if moved:
                return self._refuse(
                    "lock", f"{moved} changed since it was read a moment ago (another editor?); re-run"
                )
            self._done("lock", True, f"{lock.path} held on {self.host.name}")
            self._apply()
        finally:
            lock.release()
        return out

    def _preflight(self) -> bool:
        plan = self.plan
        self._start("preflight", "testing the current config and computing the change")
        notes: list[str] = []
        if plan.test_before:
            test = self.nginx.test()
            if test.exit_status != 0 or test.error:
                self._refuse(
                    "preflight",
                    f"the current config already fails `{self.nginx.command('-t')}`: {first_problem(test)}; "
                    "fix that first (nothing was changed)",
                )
                return False
            notes.append("`nginx -t` passes on the current config")
        problem = plan.precheck() if plan.precheck is not None else None
        if problem:
            self._refuse("preflight", problem.rstrip(".") + "; nothing was changed")
            return False
        try:
            states = self.host.read(plan.paths)
            new = plan.compute(states)
        except (HostError, DiffError) as e:
            self._refuse("preflight", str(e).rstrip(".") + "; nothing was changed")
            return False
        self.changes = [Change(p, states[p], new[p]) for p in plan.paths if p in new]
        self.changes = [c for c in self.changes if c.changed]
        if not self.changes:
            if plan.action == "rollback":
                self._done("preflight", True, "the files already match the backup: nothing to restore")
                self.outcome.applied = self.outcome.rolled_back = True
                self.outcome.summary = "Nothing to do: the files already are as in the backup."
                return False
            self._refuse("preflight", "the files already hold this change: nothing to do")
            return False
        self.outcome.diff = "".join(
            unified(
                c.path,
                c.before.text() if c.before.exists else None,
                decode(c.after) if c.after is not None else None,
            )
            for c in self.changes
        )
        self.reporter.show_diff(self.outcome.diff)
        names = ", ".join(c.path for c in self.changes)
        if plan.action == "rollback":
            notes.append(f"every copy in the backup matches its sha256; the restore touches {names}")
        else:
            notes.append(f"the change touches {names}")
        self._done("preflight", True, "; ".join(notes))
        return True

    def _changed_since_preflight(self) -> str | None:
        now = self.host.read([c.path for c in self.changes])
        for c in self.changes:
            if now[c.path].data != c.before.data:
                return c.path
            c.before = now[c.path]  # owner and mode as they are now
        return None

    def _apply(self) -> None:
        out = self.outcome
        try:
            if self.plan.backup:
                self._backup()
            self._write()
            self._test()
            if self.plan.trial:
                self._restore("a trial")
                out.dry_run = True
                out.rolled_back = False
                out.summary = (
                    "Tested: `nginx -t` accepts the new config; the old files are back and nginx never loaded it."
                    if out.steps[-1].ok
                    else "Tested, but putting the old files back did not complete: see the restore step."
                )
                return
            self._reload()
            self._verify()
        except _Failed as failed:
            if self._written:
                self._restore(str(failed))
            else:
                out.summary = "Nothing was changed: " + str(failed)
            return
        except KeyboardInterrupt:
            if self._written:  # Ctrl+C mid-change: put the old files back before giving up
                self._restore("interrupted")
            raise
        out.applied = True
        if self.plan.action == "rollback":
            out.rolled_back = True
            out.summary = "Backup restored and verified: nginx runs the config it had before that apply."
            return
        undo = (
            f" Undo with: {self.plan.rollback_hint.replace('{id}', out.backup or '')}" if out.backup else ""
        )
        out.summary = "Applied and verified." + undo

    def _backup(self) -> None:
        self._start("backup", f"backing up {len(self.changes)} file(s) into {self.backup_dir}")
        try:
            made = bk.create(
                self.host,
                self.backup_dir,
                [c.before for c in self.changes],
                self.plan.reason,
                self.nginx.describe(),
            )
        except HostError as e:
            self._done("backup", False, str(e))
            raise _Failed("the backup could not be written") from None
        self.outcome.backup = made.id
        files = ", ".join(
            f"{f.path} ({f.uid}:{f.gid} {f.mode:04o}, sha256 {f.sha256[:12]}…)"
            if f.existed
            else f"{f.path} (new)"
            for f in made.files
        )
        self._done("backup", True, f"{made.id} in {made.directory}: {files}")

    def _write(self) -> None:
        self._start("write", "writing the new files (temp file + rename)")
        uid, gid, _ = self.host.identity()
        done: list[str] = []
        try:
            for c in self.changes:
                self._written = True
                if c.after is None:
                    self.host.remove([c.path])
                    done.append(f"{c.path} removed")
                    continue
                st = c.before
                mode = st.mode if st.exists else self.plan.new_mode
                owner = (st.uid, st.gid) if st.exists else (uid, gid)
                self.host.write(c.path, c.after, owner[0], owner[1], mode)
                done.append(f"{c.path} ({owner[0]}:{owner[1]} {mode:04o})")
        except HostError as e:
            self._done("write", False, str(e))
            raise _Failed("a file could not be written") from None
        self._done("write", True, "atomically: " + ", ".join(done))

    def _test(self) -> None:
        self._start("test", f"{self.nginx.command('-t')}")
        test = self.nginx.test()
        if test.exit_status != 0 or test.error:
            self._done(
                "test",
                False,
                f"`nginx -t` refuses the new config: {first_problem(test)}; it was never loaded",
            )
            raise _Failed("nginx -t refused the new config")
        self._done("test", True, "`nginx -t`: syntax is ok, test is successful")

    def _reload(self) -> None:
        argv = self.nginx.reload_argv()
        shown = shlex.join(argv)
        self._start("reload", shown)
        self._marks = self.nginx.log_marks(self.nginx.error_logs(self.config))
        old = self.nginx.workers()
        result = self.nginx.reload()
        self._reloaded = True
        if result.exit_status != 0 or result.error:
            self._done("reload", False, f"`{shown}` failed: {first_problem(result)}")
            raise _Failed("the reload failed")
        new = self.nginx.wait_new_workers(old)
        if new is None:
            bad = self.nginx.new_bad_lines(self._marks)
            self._done(
                "reload",
                False,
                f"`{shown}` ran but the master started no new workers: "
                + (bad[0] if bad else "it did not load the new config"),
            )
            raise _Failed("nginx did not load the new config")
        workers = ", ".join(str(p) for p in sorted(new - old))
        self._done("reload", True, f"`{shown}`: master {self.nginx.process.pid} runs new workers {workers}")

    def _verify(self) -> None:
        self._start("verify", "nginx -T, the error log and the live checks")
        ok, detail = self._verify_files(self.changes, after=True)
        if not ok:
            self._done("verify", False, detail)
            raise _Failed("the running config does not hold the change")
        parts = [detail]
        bad = self.nginx.new_bad_lines(self._marks)
        if bad:
            self._done("verify", False, f"the error log has a new line since the reload: {bad[0]}")
            raise _Failed("the reload logged an error")
        parts.append("no new [emerg]/[alert] line in the error log")
        if self.plan.verify_live is not None:
            live_ok, live = self.plan.verify_live()
            if not live_ok:
                self._done("verify", False, "; ".join(parts + [live]))
                raise _Failed("the live checks did not pass")
            parts.append(live)
        self._done("verify", True, "; ".join(parts))

    def _verify_files(self, changes: list[Change], *, after: bool) -> tuple[bool, str]:
        files = self.nginx.dump_files()
        if files is None:
            return False, "`nginx -T` failed after the reload"
        for c in changes:
            want = c.after if after else c.before.data
            have = files.get(c.path)
            if want is None:
                if have is not None:
                    return False, f"`nginx -T` still reads {c.path}"
                continue
            if have is None:
                return False, (
                    f"`nginx -T` does not read {c.path}: no include of the running config matches it"
                )
            if sanitize(want.decode("utf-8", "replace"), keep_newlines=True).rstrip("\n") != have.rstrip(
                "\n"
            ):
                return False, f"`nginx -T` shows another text for {c.path} than the one written"
        return True, "`nginx -T` holds " + ("the change" if after else "the old files")

    def _restore(self, why: str) -> None:
        out = self.outcome
        self._start("restore", "restoring the files as they were")
        detail: list[str] = []
        ok = True
        try:
            for c in self.changes:
                st = c.before
                if st.data is None:
                    self.host.remove([c.path])
                else:
                    self.host.write(c.path, st.data, st.uid, st.gid, st.mode)
            now = self.host.read([c.path for c in self.changes])
            same = all(now[c.path].data == c.before.data for c in self.changes)
            kept = all(
                (now[c.path].uid, now[c.path].gid, now[c.path].mode)
                == (c.before.uid, c.before.gid, c.before.mode)
                for c in self.changes
                if c.before.exists
            )
            if not (same and kept):
                ok = False
                detail.append("the files read back differ from the originals")
            else:
                detail.append("files restored byte for byte (owner and mode kept)")
            test = self.nginx.test()
            if test.exit_status != 0 or test.error:
                ok = False
                detail.append(f"but `nginx -t` fails on them: {first_problem(test)}")
            else:
                detail.append("`nginx -t` passes")
                if self._reloaded:
                    old = self.nginx.workers()
                    marks = self.nginx.log_marks(self.nginx.error_logs(self.config))
                    result = self.nginx.reload()
                    if result.exit_status != 0 or result.error or self.nginx.wait_new_workers(old) is None:
                        ok = False
                        detail.append("but the reload did not take")
                    else:
                        detail.append("reloaded")
                        files_ok, files = self._verify_files(self.changes, after=False)
                        detail.append(files)
                        ok = ok and files_ok
                        bad = self.nginx.new_bad_lines(marks)
                        if bad:
                            ok = False
                            detail.append(f"the error log says: {bad[0]}")
                        if ok and self.plan.verify_restored is not None:
                            back, what = self.plan.verify_restored()
                            detail.append(what)
                            ok = ok and back
                else:
                    detail.append("nginx never loaded the change")
        except HostError as e:
            ok = False
            detail.append(str(e))
        if not ok and out.backup:
            detail.append(f"restore by hand from backup {out.backup} in {self.backup_dir}")
        self._done("restore", ok, "; ".join(detail))
        out.rolled_back = True
        out.summary = (
            f"Rolled back ({why}): nginx runs the config it had before."
            if ok
            else f"Rolling back after a failure ({why}) did not complete: see the restore step."
        )
