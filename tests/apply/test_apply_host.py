"""``wsdoctor apply`` against an nginx of the test's own, over the lab's real sshd, in front of the lab's backends.

The safety rules, each on the real thing: a dry run changes nothing; a config is installed, verified and a real
client connects; a change that ``nginx -t`` refuses is never loaded and the files are restored byte for byte; a
change that loads but fails verification is rolled back and the old behaviour verified; a config that already
fails ``nginx -t`` is refused untouched; a second apply is refused by the lock; an apply killed (SIGKILL) after
its backup leaves a state ``--rollback`` restores; files with an unusual owner and mode keep them.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.apply.helpers import Proxy, real_client, sha, ssh_argv, wait_transport
from wsdoctor.apply.hostfs import Host
from wsdoctor.apply.lock import HostLock
from wsdoctor.cli import main
from wsdoctor.diagnose import run_headless
from wsdoctor.lab import Lab, procs
from wsdoctor.nginx.generate import SetupOptions, generate
from wsdoctor.remote.ssh import SshRunner
from wsdoctor.report import Status
from wsdoctor.target import Target

pytestmark = pytest.mark.lab

TOKEN_ENV = "WSDOCTOR_APPLY_TEST_TOKEN"
PUBLIC = "/dev/aiwm/chat/socket.io"
ODD_UID, ODD_GID, ODD_MODE = 4242, 4343, 0o640


@dataclass
class Host_:
    lab: Lab
    proxy: Proxy
    backups: Path
    work: Path

    @property
    def site(self) -> Path:
        return self.proxy.sites / "ws.conf"

    @property
    def url(self) -> str:
        return f"wss://127.0.0.1:{self.proxy.port}"

    def config(self, **change: object) -> str:
        lab = self.lab
        opts = SetupOptions(
            server_name="127.0.0.1",
            public_path="/dev/aiwm/chat/",
            backend_path="/chat/socket.io/",
            backends=[f"127.0.0.1:{p}" for p in lab.state["backend_ports"]],
            upstream="ws_backends",
            cert=lab.state["cert_file"],
            key=lab.state["key_file"],
            listen=f"127.0.0.1:{self.proxy.port}",
        )
        for k, v in change.items():
            setattr(opts, k, v)
        return generate(opts).nginx_conf

    def file(self, name: str, text: str) -> Path:
        path = self.work / name
        path.write_text(text)
        return path

    def install(self, text: str, *, odd: bool = True) -> None:
        """Put TEXT in place as the site, by hand (owner 4242:4343, mode 0640), and load it."""
        self.site.write_text(text)
        if odd:
            os.chown(self.site, ODD_UID, ODD_GID)
            os.chmod(self.site, ODD_MODE)
        self.proxy.reload()

    def argv(self, *extra: str, url: bool = True) -> list[str]:
        argv = [
            "apply",
            *ssh_argv(self.lab),
            "--nginx-conf",
            str(self.proxy.conf),
            "--backup-dir",
            str(self.backups),
        ]
        if url:
            argv += [
                "--url",
                self.url,
                "--path",
                PUBLIC,
                "--ca-file",
                self.lab.ca_file,
                "--token-env",
                TOKEN_ENV,
            ]
        return argv + list(extra)

    def backup_ids(self) -> list[str]:
        return sorted(p.parent.name for p in self.backups.glob("*/manifest.json"))


@pytest.fixture(scope="module")
def host(lab_factory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host_]:
    lab = lab_factory("healthy")  # its backends and its sshd; its own nginx is not touched
    base = tmp_path_factory.mktemp("apply-host")
    proxy = Proxy(base / "proxy", procs.free_ports(1)[0]).start()
    work = base / "work"
    work.mkdir()
    try:
        yield Host_(lab, proxy, base / "backups", work)
    finally:
        proxy.stop()


@pytest.fixture(autouse=True)
def _token(host: Host_, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, host.lab.token)


def _json(capsys: pytest.CaptureFixture[str]) -> dict:
    return json.loads(capsys.readouterr().out)


async def _connects(host: Host_) -> None:
    async with real_client(host.url, PUBLIC, host.lab.token, host.lab.ca_file, ["polling", "websocket"]) as c:
        await wait_transport(c, "websocket")
        assert (await c.call("whoami", timeout=5)).startswith("backend-")


def _stat(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return st.st_uid, st.st_gid, st.st_mode & 0o7777


async def test_install_dry_run_then_apply_then_rollback(
    host: Host_, capsys: pytest.CaptureFixture[str]
) -> None:
    host.site.unlink(missing_ok=True)
    host.proxy.reload()
    good = host.file("good.conf", host.config())
    assert main(host.argv("--config", str(good), "--into", str(host.site))) == 0
    out = capsys.readouterr().out
    assert (
        f"+++ b/{str(host.site).lstrip('/')}" in out and "+    location ^~ /dev/aiwm/chat/socket.io/ {" in out
    )
    assert "Dry run: nothing was changed" in out
    assert not host.site.exists() and not host.backups.exists()

    assert main(host.argv("--config", str(good), "--into", str(host.site), "--yes", "--format", "json")) == 0
    data = _json(capsys)
    assert data["version"] == 1 and data["applied"] and not data["rolled_back"] and data["backup"]
    steps = [s["step"] for s in data["steps"]]
    assert steps == ["preflight", "lock", "backup", "write", "test", "reload", "verify"], data
    assert all(s["ok"] for s in data["steps"])
    assert "live: no check fails" in data["steps"][-1]["detail"]
    assert host.site.read_text() == good.read_text()
    await _connects(host)
    # wsdoctor finds nothing wrong with the config it generated, served by real nginx.
    report = await asyncio.to_thread(
        run_headless,
        Target(
            url=host.url,
            path=PUBLIC,
            ca_file=host.lab.ca_file,
            token=host.lab.token,
            nginx_conf=str(host.proxy.conf),
        ),
    )
    bad = [(f.id, f.summary) for f in report.findings if f.status in (Status.FAIL, Status.WARN)]
    assert not bad, bad

    # The file did not exist before: the rollback removes it again, and nginx stops serving it.
    assert main(host.argv("--rollback", "--yes", url=False)) == 0
    out = capsys.readouterr().out
    assert "✓ verify" in out and "Backup restored and verified" in out
    assert not host.site.exists()
    assert not host.proxy.listening()


async def test_a_change_nginx_t_refuses_is_never_loaded_and_the_files_come_back_byte_for_byte(
    host: Host_, capsys: pytest.CaptureFixture[str]
) -> None:
    host.install(host.config())
    before, owner, workers = host.site.read_bytes(), _stat(host.site), host.proxy.workers()
    broken = host.file(
        "broken.conf", host.config().replace("proxy_buffering off;", "proxy_buffering sideways;")
    )
    assert (
        main(host.argv("--config", str(broken), "--into", str(host.site), "--yes", "--format", "json")) == 1
    )
    data = _json(capsys)
    steps = {s["step"]: s for s in data["steps"]}
    assert not data["applied"] and data["rolled_back"]
    assert not steps["test"]["ok"] and "proxy_buffering" in steps["test"]["detail"]
    assert "reload" not in steps and steps["restore"]["ok"], steps["restore"]
    assert "nginx never loaded the change" in steps["restore"]["detail"]
    assert host.site.read_bytes() == before and _stat(host.site) == owner == (ODD_UID, ODD_GID, ODD_MODE)
    assert host.proxy.workers() == workers  # never reloaded
    assert not list(host.proxy.sites.glob(".wsdoctor.*"))  # no temporary file left behind
    await _connects(host)


async def test_a_change_that_fails_verification_is_rolled_back_and_the_old_behaviour_verified(
    host: Host_, capsys: pytest.CaptureFixture[str]
) -> None:
    host.install(host.config())
    before, owner, workers = host.site.read_bytes(), _stat(host.site), host.proxy.workers()
    # Valid for nginx, wrong for the service: the backends do not serve /wrong/socket.io/.
    wrong = host.file("wrong.conf", host.config(backend_path="/wrong/socket.io/"))
    assert main(host.argv("--config", str(wrong), "--into", str(host.site), "--yes", "--format", "json")) == 1
    data = _json(capsys)
    steps = {s["step"]: s for s in data["steps"]}
    assert [s["step"] for s in data["steps"]] == [
        "preflight", "lock", "backup", "write", "test", "reload", "verify", "restore"
    ]  # fmt: skip
    assert steps["reload"]["ok"] and not steps["verify"]["ok"] and "route fails" in steps["verify"]["detail"]
    assert steps["restore"]["ok"], steps["restore"]["detail"]
    assert (
        "reloaded" in steps["restore"]["detail"] and "the old behaviour is back" in steps["restore"]["detail"]
    )
    assert data["rolled_back"] and not data["applied"] and data["backup"] in host.backup_ids()
    assert host.site.read_bytes() == before and _stat(host.site) == owner
    assert host.proxy.workers().isdisjoint(workers)  # loaded twice: the change, then the old config again
    await _connects(host)


def test_a_config_that_already_fails_nginx_t_is_refused_untouched(
    host: Host_, capsys: pytest.CaptureFixture[str]
) -> None:
    host.install(host.config())
    before, backups = sha(host.site), host.backup_ids()
    junk = host.proxy.sites / "junk.conf"
    junk.write_text("this is not nginx;\n")  # on disk, not loaded: the next reload would fail
    try:
        good = host.file("good2.conf", host.config(ping_interval=30000))
        assert main(host.argv("--config", str(good), "--into", str(host.site), "--yes")) == 1
        out = capsys.readouterr().out
        assert "✗ preflight the current config already fails" in out and "junk.conf" in out
        assert "nothing was changed" in out
        assert sha(host.site) == before and host.backup_ids() == backups
    finally:
        junk.unlink()


def test_the_second_of_two_applies_is_refused_by_the_lock(
    host: Host_, capsys: pytest.CaptureFixture[str]
) -> None:
    host.install(host.config())
    before = sha(host.site)
    s = host.lab.info()["ssh"]
    with SshRunner.connect(
        f"{s['user']}@{s['host']}:{s['port']}", identity=s["key"], known_hosts=s["known_hosts"]
    ) as runner:
        host.backups.mkdir(exist_ok=True)
        with HostLock(Host(runner), str(host.backups), "the first apply"):
            other = host.file("other.conf", host.config(ping_interval=40000))
            assert main(host.argv("--config", str(other), "--into", str(host.site), "--yes", url=False)) == 1
            out = capsys.readouterr().out
            assert "✗ lock" in out and "another apply is changing nginx" in out and "the first apply" in out
            assert sha(host.site) == before
    # Released: the same apply now goes through.
    assert main(host.argv("--config", str(other), "--into", str(host.site), "--yes", url=False)) == 0
    assert host.site.read_text() == other.read_text()
    assert _stat(host.site) == (ODD_UID, ODD_GID, ODD_MODE)  # owner and mode of the file it replaced


async def test_an_apply_killed_after_its_backup_is_restored_by_rollback(
    host: Host_, capsys: pytest.CaptureFixture[str]
) -> None:
    host.install(host.config())
    before, owner = host.site.read_bytes(), _stat(host.site)
    known = set(host.backup_ids())
    changed = host.file("changed.conf", host.config(ping_interval=50000))
    env = {**os.environ, TOKEN_ENV: host.lab.token}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wsdoctor",
            *host.argv("--config", str(changed), "--into", str(host.site), "--yes"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while not set(host.backup_ids()) - known:  # the manifest is written last: the backup is complete
            assert proc.poll() is None, "the apply ended before its backup was seen"
            assert time.monotonic() < deadline, "no backup within 60 s"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    # Whatever it had done by then, the rollback (not refused by the dead apply's lock) restores it all.
    assert main(host.argv("--rollback", "--yes", "--format", "json", url=False)) == 0
    data = _json(capsys)
    assert data["rolled_back"] and data["backup"] == max(set(host.backup_ids()) - known)
    assert host.site.read_bytes() == before and _stat(host.site) == owner
    await _connects(host)


async def test_fix_from_a_fresh_diagnosis_keeps_owner_and_mode(
    host: Host_, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI's own diagnosis proposes the fix; dry run first, then applied with the text output."""
    broken = host.config().replace("        proxy_set_header Upgrade $http_upgrade;\n", "")
    host.install(broken)
    before = host.site.read_bytes()
    assert main(host.argv("--fix", "upgrade")) == 0
    out = capsys.readouterr().out
    assert "+        proxy_set_header Upgrade $http_upgrade;" in out and "Dry run" in out
    assert host.site.read_bytes() == before
    assert main(host.argv("--fix", "upgrade", "--yes")) == 0
    out = capsys.readouterr().out
    for step in ("preflight", "lock", "backup", "write", "test", "reload", "verify"):
        assert f"✓ {step}" in out, out
    assert "upgrade fail → pass" in out and "Undo with: wsdoctor apply" in out
    assert "proxy_set_header Upgrade $http_upgrade;" in host.site.read_text()
    assert _stat(host.site) == (ODD_UID, ODD_GID, ODD_MODE)
    await _connects(host)
    # Nothing left to fix: refused in one sentence, exit 1.
    assert main(host.argv("--fix", "upgrade", "--yes")) == 1
    assert "check upgrade passes: there is nothing to fix" in capsys.readouterr().out


def test_usage_errors_exit_2_in_one_line(host: Host_, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        host.argv("--fix", "nope"),
        host.argv(),
        host.argv("--config", "/nonexistent.conf"),
        ["apply", "--nginx-dump", str(host.proxy.conf), "--fix", "route"],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("wsdoctor: ") and err.count("\n") == 1, err


def test_the_same_on_this_machine_without_ssh(host: Host_, capsys: pytest.CaptureFixture[str]) -> None:
    """No --ssh: the proxy host is this machine (a LocalRunner), the rest is the same transaction."""
    host.install(host.config())
    before = host.site.read_bytes()
    local = ["apply", "--nginx-conf", str(host.proxy.conf), "--backup-dir", str(host.backups)]
    changed = host.file("local.conf", host.config(ping_interval=35000))
    assert main([*local, "--config", str(changed), "--into", str(host.site), "--yes"]) == 0
    out = capsys.readouterr().out
    assert (
        "on this machine" in out and "✓ reload" in out and "proxy_read_timeout 70s;" in host.site.read_text()
    )
    assert main([*local, "--rollback", "--yes"]) == 0
    assert host.site.read_bytes() == before and _stat(host.site) == (ODD_UID, ODD_GID, ODD_MODE)
