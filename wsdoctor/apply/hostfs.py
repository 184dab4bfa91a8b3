"""Files on the proxy host, read and written through the run's Runner (this machine or SSH) as root.

Every operation is one argv (a fixed ``sh -c`` script; paths and values are its arguments, never spliced
into it), so a path from a config stays data. Contents travel as raw bytes on stdin (writes) and as base64
on stdout (reads: command output is decoded and stripped of control characters, base64 survives that), so a
file comes back byte for byte. A write is atomic: a temporary file in the same directory gets the bytes, the
owner and the mode, then ``mv`` renames it over the old one; a reader (nginx reloading) sees the old file or
the new one, never half of one.

As root: directly when we are root, else ``sudo -n`` (never a password prompt). When sudo is not allowed
without a password the command runs as ourselves, and if that is refused too the sentence says which
sudoers line would allow it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from wsdoctor.facts import CommandResult
from wsdoctor.remote.runner import Runner

TIMEOUT = 20.0

_READ = r"""
for f do
  if [ -f "$f" ]; then
    st=$(stat -L -c '%u %g %a' -- "$f") || exit 3
    printf 'F %s\n' "$st"
    base64 -- "$f" || exit 4
    printf 'E\n'
  elif [ -e "$f" ]; then
    printf 'N\n'
  else
    printf 'A\n'
  fi
done
"""

# $1 path, $2 uid, $3 gid, $4 octal mode; the bytes on stdin. Same directory, so mv is a rename. A symlink
# (sites-enabled/x -> ../sites-available/x) stays a symlink: its target is what gets replaced.
_WRITE = r"""
set -e
f=$1
if [ -L "$f" ]; then f=$(readlink -f -- "$f"); fi
dir=$(dirname -- "$f")
[ -d "$dir" ] || { echo "the directory $dir does not exist" >&2; exit 3; }
tmp=$(mktemp "$dir/.wsdoctor.XXXXXX")
trap 'rm -f -- "$tmp"' EXIT
cat > "$tmp"
chown "$2:$3" -- "$tmp"
chmod "$4" -- "$tmp"
mv -f -- "$tmp" "$f"
trap - EXIT
"""

_REMOVE = 'for f do rm -f -- "$f" || exit 1; done'
_MKDIR = 'umask 077; for d do mkdir -p -- "$d" && chmod 700 -- "$d" || exit 1; done'
_LIST = 'for d in "$1"/*/; do [ -f "$d/manifest.json" ] && printf "%s\\n" "$(basename -- "$d")"; done; true'
_SIZE = 'if [ -f "$1" ]; then stat -c %s -- "$1"; else echo 0; fi'
_FROM = 'tail -c +"$2" -- "$1"'
_WHOAMI = 'id -u; id -g; printf "%s\\n" "$HOME"'


class HostError(RuntimeError):
    """A file operation on the host failed; the message is one sentence (what failed and what to do)."""


@dataclass
class FileState:
    """One file as found on the host: its bytes (None: absent), owner, group and mode."""

    path: str
    data: bytes | None
    uid: int = 0
    gid: int = 0
    mode: int = 0o644

    @property
    def exists(self) -> bool:
        return self.data is not None

    @property
    def sha256(self) -> str | None:
        return hashlib.sha256(self.data).hexdigest() if self.data is not None else None

    def text(self) -> str | None:
        return decode(self.data) if self.data is not None else None


def decode(data: bytes) -> str:
    """Bytes as text that encodes back to the same bytes (invalid UTF-8 kept as surrogates)."""
    return data.decode("utf-8", "surrogateescape")


def encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


class Host:
    """The proxy host's files and commands as root (see the module docstring)."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self._sudo: bool | None = None if not runner.is_root else False
        self._identity: tuple[int, int, str] | None = None

    @property
    def name(self) -> str:
        return "this machine" if self.runner.host == "local" else self.runner.host

    # -- commands ------------------------------------------------------------------------------------

    def run(self, argv: list[str], timeout: float = TIMEOUT, stdin: bytes | None = None) -> CommandResult:
        """ARGV as root if we can be (see the module docstring); never raises."""
        if self._sudo is None or self._sudo:
            elevated = self.runner.run(argv, timeout, sudo=True, stdin=stdin)
            if self._sudo is None:
                if elevated.error is None or elevated.exit_status == 0:
                    self._sudo = True
                    return elevated
                self._sudo = False
                plain = self.runner.run(argv, timeout, stdin=stdin)
                if plain.exit_status != 0 and _denied(plain):
                    return elevated  # its error names the sudoers line that would allow it
                return plain
            return elevated
        return self.runner.run(argv, timeout, stdin=stdin)

    def sh(
        self, script: str, *args: str, stdin: bytes | None = None, timeout: float = TIMEOUT
    ) -> CommandResult:
        return self.run(["sh", "-c", script, "wsdoctor", *args], timeout, stdin)

    # -- files ---------------------------------------------------------------------------------------

    def read(self, paths: list[str]) -> dict[str, FileState]:
        """Every path's bytes, owner and mode (absent files have data None). HostError when unreadable."""
        if not paths:
            return {}
        result = self.sh(_READ, *paths)
        if result.error or result.exit_status != 0:
            raise HostError(
                f"could not read {', '.join(paths)} on {self.name}: {why(result)}; check the paths and rights."
            )
        return _parse_read(paths, result.stdout, self.name)

    def write(self, path: str, data: bytes, uid: int, gid: int, mode: int) -> None:
        """Replace PATH atomically with DATA, owned UID:GID with MODE. HostError on failure."""
        result = self.sh(_WRITE, path, str(uid), str(gid), f"{mode:o}", stdin=data)
        if result.error or result.exit_status != 0:
            raise HostError(f"could not write {path} on {self.name}: {why(result)}.")

    def remove(self, paths: list[str]) -> None:
        if not paths:
            return
        result = self.sh(_REMOVE, *paths)
        if result.error or result.exit_status != 0:
            raise HostError(f"could not remove {', '.join(paths)} on {self.name}: {why(result)}.")

    def mkdir_private(self, *paths: str) -> None:
        """Create PATHS (parents first) as 0700 directories."""
        result = self.sh(_MKDIR, *paths)
        if result.error or result.exit_status != 0:
            raise HostError(f"could not create {paths[-1]} on {self.name}: {why(result)}; pass --backup-dir.")

    def subdirs_with_manifest(self, path: str) -> list[str]:
        result = self.sh(_LIST, path)
        if result.error or result.exit_status != 0:
            raise HostError(f"could not list {path} on {self.name}: {why(result)}.")
        return sorted(line.strip() for line in result.stdout.splitlines() if line.strip())

    def size(self, path: str) -> int:
        result = self.sh(_SIZE, path)
        text = result.stdout.strip()
        return int(text) if result.exit_status == 0 and text.isdigit() else 0

    def text_from(self, path: str, offset: int) -> str:
        """What PATH holds after byte OFFSET (the lines written since it was OFFSET bytes long)."""
        result = self.sh(_FROM, path, str(offset + 1))
        return result.stdout if result.exit_status == 0 else ""

    def identity(self) -> tuple[int, int, str]:
        """(uid, gid, $HOME) of whoever runs our commands (root under sudo)."""
        if self._identity is not None:
            return self._identity
        result = self.sh(_WHOAMI)
        lines = result.stdout.splitlines()
        if result.exit_status != 0 or len(lines) < 3 or not lines[0].isdigit():
            raise HostError(f"could not ask {self.name} who we are: {why(result)}.")
        self._identity = (int(lines[0]), int(lines[1]), lines[2].strip())
        return self._identity


def _denied(result: CommandResult) -> bool:
    text = (result.stderr + result.stdout).lower()
    return "permission denied" in text or "operation not permitted" in text


def why(result: CommandResult) -> str:
    """The reason a command failed, as a clause."""
    if result.error:
        return result.error.rstrip(".")
    lines = [ln.strip() for ln in result.stderr.strip().splitlines() if ln.strip()]
    return (lines[-1] if lines else f"exit status {result.exit_status}").rstrip(".")


_STAT = re.compile(r"^F (\d+) (\d+) ([0-7]+)$")


def _parse_read(paths: list[str], stdout: str, host: str) -> dict[str, FileState]:
    out: dict[str, FileState] = {}
    lines = stdout.splitlines()
    i = 0
    for path in paths:
        if i >= len(lines):
            raise HostError(f"reading {path} on {host} was cut short; retry.")
        head = lines[i].strip()
        i += 1
        if head == "A":
            out[path] = FileState(path, None)
            continue
        if head == "N":
            raise HostError(f"{path} on {host} is not a regular file; wsdoctor changes regular files only.")
        m = _STAT.match(head)
        if not m:
            raise HostError(f"reading {path} on {host} gave an unexpected answer; retry.")
        chunk: list[str] = []
        while i < len(lines) and lines[i].strip() != "E":
            chunk.append(lines[i].strip())
            i += 1
        i += 1
        try:
            data = base64.b64decode("".join(chunk), validate=True)
        except (binascii.Error, ValueError):
            raise HostError(f"reading {path} on {host} gave damaged data; retry.") from None
        out[path] = FileState(path, data, int(m.group(1)), int(m.group(2)), int(m.group(3), 8))
    return out
