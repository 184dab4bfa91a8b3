"""Turn an exception into the one sentence a user sees (exit 2), or None for a real bug."""

from __future__ import annotations


class InputError(Exception):
    """The target cannot be diagnosed at all (unreadable file, bad option): exit 2, one sentence."""


def describe(e: BaseException) -> str | None:
    # Exceptions that wsdoctor defines (LoadError, InputError, lab and SSH errors) carry a sentence for users.
    if type(e).__module__.startswith("wsdoctor"):
        return str(e) or type(e).__name__
    if isinstance(e, FileNotFoundError):
        return f"{e.filename}: no such file; check the path"
    if isinstance(e, PermissionError):
        return f"{e.filename}: permission denied; run as a user who can read it"
    if isinstance(e, IsADirectoryError):
        return f"{e.filename} is a directory; give the main config file"
    if isinstance(e, OSError):
        return f"{e.strerror or e}" + (f": {e.filename}" if e.filename else "")
    return None
