"""What is being diagnosed: the client's view (URL, path, transports, token) and where nginx lives.

Built from command-line options or a saved profile; every field is optional, and
a check that needs a missing one says ``skip`` with the reason.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Target:
    url: str | None = None  # what the client passes to io()
    path: str | None = None  # the client's `path` option (default /socket.io/)
    transports: tuple[str, ...] = ("polling", "websocket")
    raw: bool = False  # the URL is a raw Engine.IO request (already holds /socket.io/?…)
    token: str | None = field(default=None, repr=False)  # a secret: never printed
    token_env: str | None = None
    auth_header: bool = False  # also send the token as Authorization: Bearer
    backend_log: str | None = None  # file, pm2:NAME or journald:UNIT
    nginx_conf: str | None = None
    nginx_dump: str | None = None  # path or "-"
    nginx_version: str | None = None
    root: str | None = None
    ssh: str | None = None
    ssh_config: str | None = None
    identity: str | None = None
    known_hosts: str | None = None
    accept_host_key: str | None = None
    timeout: float = 5.0
    hold: float | None = None
    backends: list[str] = field(default_factory=list)
    server_name: str | None = None
    offline: bool = False
    nginx_test: bool = True  # with --nginx-conf: run this machine's nginx -t on a copy
    ca_file: str | None = None
    insecure: bool = False
    profile: str | None = None

    def secrets(self) -> list[str]:
        """The literal secrets of this target, removed from every output: the token, and a password in the
        URL's user info (``wss://alice:S3cr3t@host``)."""
        password = None
        if self.url:
            with contextlib.suppress(ValueError):
                password = urlsplit(self.url).password
        return [s for s in (self.token, password) if s]

    def resolve_token(self) -> None:
        """Read the token from --token-env when no literal token was given."""
        if not self.token and self.token_env:
            self.token = os.environ.get(self.token_env) or None

    def is_empty(self) -> bool:
        """No target at all: the TUI then opens the target form."""
        return not any((self.url, self.nginx_conf, self.nginx_dump, self.ssh, self.backends, self.profile))

    def public(self) -> dict[str, Any]:
        """A JSON-safe description without secrets (the token itself never leaves)."""
        d = asdict(self)
        d.pop("token", None)
        d["transports"] = list(self.transports)
        d["token"] = "***" if self.token else None
        return {k: v for k, v in d.items() if v not in (None, False, [], "")}


# --- profiles --------------------------------------------------------------


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "wsdoctor" / "config.toml"


PROFILE_KEYS = {f.name for f in fields(Target)} - {"token", "profile"}


def load_profiles(path: Path | None = None) -> dict[str, dict[str, Any]]:
    p = path or config_path()
    if not p.exists():
        return {}
    import tomllib  # only when there are profiles to read: `check` should not pay for it

    try:
        data = tomllib.loads(p.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ValueError(f"cannot read profiles from {p}: {e}; fix or remove that file") from e
    profiles = data.get("profile", {})
    return {name: {k: v for k, v in body.items() if k in PROFILE_KEYS} for name, body in profiles.items()}


def apply_profile(target: Target, name: str, path: Path | None = None) -> Target:
    """Fill the fields the command line left empty from profile NAME."""
    profiles = load_profiles(path)
    if name not in profiles:
        known = ", ".join(sorted(profiles)) or "none saved"
        raise ValueError(f"no profile named {name!r} ({known}); save one from the TUI's target screen")
    defaults = Target()
    for key, value in profiles[name].items():
        if getattr(target, key) == getattr(defaults, key):
            if key == "transports" and isinstance(value, list | str):
                value = tuple(value.split(",")) if isinstance(value, str) else tuple(value)
            setattr(target, key, value)
    target.profile = name
    return target


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    s = str(v).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{s}"'


def save_profile(name: str, target: Target, path: Path | None = None) -> Path:
    """Save TARGET (never its token) as profile NAME, keeping the other profiles."""
    p = path or config_path()
    profiles = load_profiles(p)
    body = {k: v for k, v in target.public().items() if k in PROFILE_KEYS}
    profiles[name] = body
    lines: list[str] = []
    for pname in sorted(profiles):
        lines.append(f'[profile."{pname}"]')
        for k, v in profiles[pname].items():
            lines.append(f"{k} = {_toml_value(v)}")
        lines.append("")
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".tmp")
    tmp.write_text("\n".join(lines))
    os.replace(tmp, p)
    return p
