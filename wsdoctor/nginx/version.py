"""The nginx version, because some defaults that decide WebSocket proxying changed in 1.29.7.

``proxy_http_version`` (1.0 → 1.1) and the ``Connection: close`` nginx adds upstream depend on it, so a check
that does not know the version must say "depends on version" with both outcomes instead of guessing.
"""

from __future__ import annotations

import re
import shutil

_NGINX = re.compile(r"nginx/(\d+)\.(\d+)\.(\d+)")
_ANY = re.compile(r"(?<![\d.])(\d+)\.(\d+)\.(\d+)")


def parse_version(text: str) -> tuple[int, int, int] | None:
    """``nginx version: nginx/1.22.1 (Ubuntu)``, ``1.22.1``, ``openresty/1.21.4.1`` → (1, 22, 1); else None.

    A build that names its nginx core (``Tengine/2.3.3 (nginx/1.18.0)``) is read by that core version.
    """
    if not text:
        return None
    m = _NGINX.search(text) or _ANY.search(text)
    if m is None:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def version_text(v: tuple[int, int, int]) -> str:
    return ".".join(str(x) for x in v)


def local_version(binary: str = "nginx", timeout: float = 3.0) -> str | None:
    """Run ``nginx -v`` on this machine (it prints to stderr); None when there is no nginx or it fails."""
    path = shutil.which(binary) or (shutil.which(binary, path="/usr/sbin:/usr/local/sbin:/sbin"))
    if path is None:
        return None
    import subprocess  # only when nginx is really asked: `check --offline` of a dump does not pay for it

    try:
        done = subprocess.run([path, "-v"], capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    v = parse_version(done.stderr or done.stdout)
    return version_text(v) if v else None


def at_least(version: str | None, x: tuple[int, int, int]) -> bool | None:
    """Whether VERSION >= X; None when the version is unknown or unreadable."""
    if not version:
        return None
    v = parse_version(version)
    if v is None:
        return None
    return v >= x
