"""Backups on the proxy host: one timestamped directory per apply, the files' bytes and a manifest.

``DIR/20250131-031502-7f3a/manifest.json`` names every file the apply was about to change: its path, whether
it existed, owner, group, mode, size and sha256, and the copy (``files/0``…). The copies are written first,
the manifest last (atomically), so a manifest means a complete backup: an apply killed at any later moment
leaves a state ``wsdoctor apply --rollback`` restores exactly — bytes, owner and mode — and a file the apply
created is removed again. The directory is private (0700): configs can hold secrets.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

from wsdoctor.apply.hostfs import FileState, Host, HostError

MANIFEST = "manifest.json"
ROOT_DIR = "/var/backups/wsdoctor"
USER_DIR = ".local/state/wsdoctor/backups"  # under $HOME when we cannot be root


def default_dir(host: Host) -> str:
    """Where backups go: /var/backups/wsdoctor as root, else ~/.local/state/wsdoctor/backups on the host."""
    uid, _gid, home = host.identity()
    if uid == 0:
        return ROOT_DIR
    return home.rstrip("/") + "/" + USER_DIR


def new_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + os.urandom(2).hex()


@dataclass
class BackupFile:
    path: str
    existed: bool
    uid: int = 0
    gid: int = 0
    mode: int = 0o644
    size: int = 0
    sha256: str | None = None
    copy: str | None = None  # relative to the backup directory

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "existed": self.existed,
            "uid": self.uid,
            "gid": self.gid,
            "mode": f"{self.mode:04o}",
            "size": self.size,
            "sha256": self.sha256,
            "copy": self.copy,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> BackupFile:
        return cls(
            path=str(d["path"]),
            existed=bool(d["existed"]),
            uid=int(d.get("uid", 0)),
            gid=int(d.get("gid", 0)),
            mode=int(str(d.get("mode", "0644")), 8),
            size=int(d.get("size", 0)),
            sha256=d.get("sha256"),
            copy=d.get("copy"),
        )


@dataclass
class Backup:
    id: str
    directory: str  # DIR/ID on the host
    created: str
    reason: str
    files: list[BackupFile] = field(default_factory=list)
    nginx: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "id": self.id,
            "created": self.created,
            "reason": self.reason,
            "nginx": self.nginx,
            "files": [f.to_json() for f in self.files],
        }


def create(host: Host, root: str, states: list[FileState], reason: str, nginx: dict[str, Any]) -> Backup:
    """Copy STATES into a new backup under ROOT on the host; the manifest goes last. HostError on failure."""
    uid, gid, _home = host.identity()
    backup_id = new_id()
    directory = root.rstrip("/") + "/" + backup_id
    host.mkdir_private(root, directory, directory + "/files")
    backup = Backup(
        id=backup_id,
        directory=directory,
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        reason=reason,
        nginx=nginx,
    )
    for n, st in enumerate(states):
        if st.data is None:
            backup.files.append(BackupFile(st.path, existed=False))
            continue
        copy = f"files/{n}"
        host.write(f"{directory}/{copy}", st.data, uid, gid, 0o600)
        backup.files.append(BackupFile(st.path, True, st.uid, st.gid, st.mode, len(st.data), st.sha256, copy))
    manifest = (json.dumps(backup.to_json(), indent=1) + "\n").encode()
    host.write(f"{directory}/{MANIFEST}", manifest, uid, gid, 0o600)
    return backup


def list_ids(host: Host, root: str) -> list[str]:
    """The backups under ROOT with a manifest, oldest first (ids sort by time)."""
    return host.subdirs_with_manifest(root)


def load(host: Host, root: str, backup_id: str | None) -> Backup:
    """The backup BACKUP_ID (the newest when None). HostError with one sentence when there is none."""
    ids = list_ids(host, root)
    if not ids:
        raise HostError(f"there is no wsdoctor backup in {root} on {host.name}; nothing to roll back.")
    if backup_id is None:
        backup_id = ids[-1]
    elif backup_id not in ids:
        shown = ", ".join(ids[-5:])
        raise HostError(f"no backup {backup_id} in {root} on {host.name} (the newest: {shown}).")
    directory = root.rstrip("/") + "/" + backup_id
    manifest = host.read([f"{directory}/{MANIFEST}"])[f"{directory}/{MANIFEST}"]
    try:
        data = json.loads(manifest.data or b"")
        files = [BackupFile.from_json(f) for f in data["files"]]
    except (ValueError, KeyError, TypeError):
        raise HostError(
            f"the manifest of backup {backup_id} on {host.name} is damaged; restore by hand."
        ) from None
    return Backup(
        id=backup_id,
        directory=directory,
        created=str(data.get("created", "")),
        reason=str(data.get("reason", "")),
        files=files,
        nginx=dict(data.get("nginx") or {}),
    )


def contents(host: Host, backup: Backup) -> dict[str, bytes | None]:
    """{path: the bytes to restore (None: the file did not exist)}, each checked against its sha256."""
    copies = [f"{backup.directory}/{f.copy}" for f in backup.files if f.existed and f.copy]
    found = host.read(copies)
    out: dict[str, bytes | None] = {}
    for f in backup.files:
        if not f.existed:
            out[f.path] = None
            continue
        st = found.get(f"{backup.directory}/{f.copy}")
        if st is None or st.data is None or st.sha256 != f.sha256:
            raise HostError(
                f"the copy of {f.path} in backup {backup.id} on {host.name} is missing or damaged "
                "(its sha256 differs from the manifest); nothing was restored."
            )
        out[f.path] = st.data
    return out
