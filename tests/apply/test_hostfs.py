"""The host's files through a real runner on this machine: byte-for-byte reads and atomic writes that keep owner
and mode, the backup manifest, the lock, and the sudo sentence when root is needed and sudo wants a password."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from wsdoctor.apply import backup as bk
from wsdoctor.apply.hostfs import Host, HostError
from wsdoctor.apply.lock import BUSY, HostLock, LockBusy
from wsdoctor.remote.runner import LineStream, LocalRunner

FAKE_SUDO = "#!/bin/sh\necho 'sudo: a password is required' >&2\nexit 1\n"
ODD = bytes(range(256)) + b"\r\nline without newline"  # every byte value, CRLF, no final newline


@pytest.fixture
def host() -> Host:
    return Host(LocalRunner())


def test_read_and_write_are_byte_for_byte_and_keep_owner_and_mode(host: Host, tmp_path: Path) -> None:
    f = tmp_path / "site.conf"
    f.write_bytes(ODD)
    if os.geteuid() == 0:
        os.chown(f, 4242, 4343)
    f.chmod(0o640)
    st = host.read([str(f), str(tmp_path / "absent.conf")])
    assert st[str(f)].data == ODD and st[str(f)].mode == 0o640
    assert st[str(tmp_path / "absent.conf")].data is None
    inode = f.stat().st_ino
    host.write(str(f), b"new\n", st[str(f)].uid, st[str(f)].gid, st[str(f)].mode)
    assert f.read_bytes() == b"new\n" and f.stat().st_ino != inode  # renamed over, not rewritten in place
    assert (f.stat().st_uid, f.stat().st_gid) == (st[str(f)].uid, st[str(f)].gid)
    assert stat.S_IMODE(f.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["site.conf"]  # no temporary file left
    with pytest.raises(HostError, match="does not exist"):
        host.write(str(tmp_path / "missing-dir" / "x.conf"), b"x", 0, 0, 0o644)
    with pytest.raises(HostError, match="not a regular file"):
        host.read([str(tmp_path)])


def test_a_backup_holds_the_bytes_and_a_manifest_written_last(host: Host, tmp_path: Path) -> None:
    f = tmp_path / "site.conf"
    f.write_bytes(ODD)
    states = host.read([str(f), str(tmp_path / "new.conf")])
    made = bk.create(host, str(tmp_path / "backups"), list(states.values()), "test", {"conf": "/x"})
    manifest = json.loads((Path(made.directory) / "manifest.json").read_text())
    assert [(e["path"], e["existed"]) for e in manifest["files"]] == [
        (str(f), True),
        (str(tmp_path / "new.conf"), False),
    ]
    assert stat.S_IMODE(Path(made.directory).stat().st_mode) == 0o700
    loaded = bk.load(host, str(tmp_path / "backups"), None)
    assert loaded.id == made.id and bk.contents(host, loaded) == {
        str(f): ODD,
        str(tmp_path / "new.conf"): None,
    }
    (Path(made.directory) / "files/0").write_bytes(b"tampered")
    with pytest.raises(HostError, match="missing or damaged"):
        bk.contents(host, loaded)
    with pytest.raises(HostError, match="no backup nope"):
        bk.load(host, str(tmp_path / "backups"), "nope")


def test_the_lock_refuses_a_second_holder_and_is_free_again_after(host: Host, tmp_path: Path) -> None:
    with HostLock(host, str(tmp_path), "first"):
        with pytest.raises(LockBusy) as busy:
            HostLock(Host(LocalRunner()), str(tmp_path), "second").acquire()
        assert "another apply is changing nginx on this machine (first" in str(busy.value)
        assert str(busy.value).count("\n") == 0
    with HostLock(host, str(tmp_path), "third"):
        pass


class _LostLine(LocalRunner):
    """The holder's `busy` line lost (a PTY that ends at once can drop it, as seen over SSH): only its exit
    status says the lock is taken."""

    def stream_lines(self, argv: list[str], sudo: bool = False) -> LineStream:
        stream = LineStream(" ".join(argv))
        stream.end("`sh` stopped with exit status 75.", exit_status=BUSY)
        return stream


def test_a_busy_holder_whose_line_was_lost_is_still_busy_and_named(host: Host, tmp_path: Path) -> None:
    with HostLock(host, str(tmp_path), "first"):
        with pytest.raises(LockBusy) as busy:
            HostLock(Host(_LostLine()), str(tmp_path), "second").acquire()
        assert "another apply is changing nginx on this machine (first" in str(busy.value)


def test_without_root_a_refused_command_names_the_sudoers_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fakebin = tmp_path / "bin"
    fakebin.mkdir()
    (fakebin / "sudo").write_text(FAKE_SUDO)
    (fakebin / "sudo").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fakebin}:{os.environ['PATH']}")
    runner = LocalRunner()
    runner.is_root = False  # as an unprivileged user: sudo first, and it wants a password
    host = Host(runner)
    result = host.run(["sh", "-c", "echo 'cannot open /etc/nginx/x: Permission denied' >&2; exit 1"])
    assert (
        result.error is not None
        and "NOPASSWD: sh" in result.error
        and "sudo asks for a password" in result.error
    )
    ok = host.run(["sh", "-c", "echo fine"])  # what needs no root runs as ourselves
    assert ok.exit_status == 0 and ok.stdout.strip() == "fine"


def test_a_symlinked_site_stays_a_symlink_and_its_target_is_replaced(host: Host, tmp_path: Path) -> None:
    available = tmp_path / "sites-available"
    enabled = tmp_path / "sites-enabled"
    available.mkdir()
    enabled.mkdir()
    (available / "api").write_text("old\n")
    (available / "api").chmod(0o640)
    (enabled / "api").symlink_to("../sites-available/api")
    st = host.read([str(enabled / "api")])[str(enabled / "api")]
    assert st.data == b"old\n" and st.mode == 0o640  # the file's own mode, not the link's
    host.write(str(enabled / "api"), b"new\n", st.uid, st.gid, st.mode)
    assert (enabled / "api").is_symlink() and (available / "api").read_bytes() == b"new\n"
    assert stat.S_IMODE((available / "api").stat().st_mode) == 0o640
