"""The lab's credentials: a local CA with a server certificate, and the JWTs the backends check.

Generated per lab so that clients verify TLS with ``--ca-file`` (never by turning verification off)
and so that no two labs share a secret.
"""

from __future__ import annotations

import datetime
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

TOKEN_SUBJECT = "wsdoctor-lab-user"
TOKEN_LIFETIME = 7 * 24 * 3600  # seconds: a lab outlives a working day
EXPIRED_AGO = 3600  # the bad-auth token expired an hour ago


@dataclass(frozen=True)
class TlsFiles:
    ca_file: Path
    cert_file: Path  # server certificate chain (leaf first)
    key_file: Path


def make_tls(directory: Path) -> TlsFiles:
    """A fresh CA and a server certificate for 127.0.0.1, ::1 and localhost, written under DIRECTORY."""
    import trustme

    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="wsdoctor lab", organization_unit_name=f"lab {directory.parent.name}")
    # 90 days, like an ACME certificate: the `tls` check's "days left" then reads like a real deployment's.
    now = datetime.datetime.now(datetime.UTC)
    leaf = ca.issue_cert(
        "127.0.0.1",
        "::1",
        "localhost",
        common_name="localhost",
        not_before=now - datetime.timedelta(hours=1),
        not_after=now + datetime.timedelta(days=90),
    )
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    ca.cert_pem.write_to_path(str(files.ca_file))
    for i, blob in enumerate(leaf.cert_chain_pems):
        blob.write_to_path(str(files.cert_file), append=i > 0)
    # The key is written with the umask first, then narrowed; create it 0600 from the start instead.
    fd = os.open(files.key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(leaf.private_key_pem.bytes())
    return files


def make_secret() -> str:
    return secrets.token_urlsafe(32)


def write_secret(path: Path, secret: str) -> None:
    """Write the JWT secret readable by the owner only (the backends read it from here)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")


def make_token(secret: str, *, expired: bool = False, now: float | None = None) -> str:
    """An HS256 JWT for the lab's backends: valid for a week, or one that expired an hour ago."""
    import jwt

    t = int(now if now is not None else time.time())
    if expired:
        claims = {"sub": TOKEN_SUBJECT, "iat": t - EXPIRED_AGO - 3600, "exp": t - EXPIRED_AGO}
    else:
        claims = {"sub": TOKEN_SUBJECT, "iat": t, "exp": t + TOKEN_LIFETIME}
    return jwt.encode(claims, secret, algorithm="HS256")
