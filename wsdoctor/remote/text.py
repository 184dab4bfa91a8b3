"""Make remote text safe to show: strip terminal escape and control sequences.

A log line or a command's output from the proxy host is attacker-influenced (request lines land in
nginx's logs verbatim, with ``\\x1b`` only partly escaped by older nginx versions).  Before it reaches a
terminal, a report or a Textual widget, every escape sequence (CSI, OSC, other ESC forms) and every
C0/C1 control character except tab (and newline for multi-line text) is removed.
"""

from __future__ import annotations

import re

# CSI ... final byte; OSC ... BEL or ST; DCS/SOS/PM/APC ... ST; two-byte ESC sequences; 8-bit CSI.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"
    r"|\x1b[ -/]*[0-~]?"
    r"|\x9b[0-?]*[ -/]*[@-~]"
)
_CONTROLS_LINE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
_CONTROLS_TEXT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_NEEDS_WORK = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def sanitize(text: str, keep_newlines: bool = False) -> str:
    """``text`` without escape sequences or control characters (tab kept; newlines kept if asked).

    ``\\r`` is dropped (CRLF output, PTY line endings), so ``keep_newlines`` text has ``\\n`` only.
    """
    if keep_newlines:
        if not _NEEDS_WORK.search(text):
            return text
        return _CONTROLS_TEXT.sub("", _ESCAPES.sub("", text))
    if "\n" not in text and not _NEEDS_WORK.search(text):
        return text
    return _CONTROLS_LINE.sub("", _ESCAPES.sub("", text))


def decode(data: bytes, keep_newlines: bool = True) -> str:
    """Bytes from a remote command as sanitized text (invalid UTF-8 replaced, never an exception)."""
    return sanitize(data.decode("utf-8", "replace"), keep_newlines=keep_newlines)
