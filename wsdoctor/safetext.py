"""Text from outside made visible-safe for a terminal: control characters shown escaped, never emitted.

Config lines, log lines, server answers, URLs, file names and host command output are written by
somebody else. A comment such as ``# \\x1b]0;PWNED\\x07 \\x1b]52;c;cHduZWQ=\\x07`` would set the terminal's
title and write into the clipboard (OSC 52) if a report printed it raw, and a poisoned clipboard is one
paste away from a shell command. Reports therefore show every C0/C1 control character (ESC included),
DEL, and the Unicode characters that reorder or hide text (bidirectional overrides and isolates, line and
paragraph separators, zero-width joiners are kept: emoji need them) as an escape such as ``\\x1b`` or
``\\u202e``. Tab and newline stay as they are where the output has lines.
"""

from __future__ import annotations

import re
from typing import Any

# C0 except tab and newline, DEL, C1; bidi embeddings/overrides/isolates and marks; line/paragraph separators.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")
_UNSAFE_LINE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str, keep_newlines: bool = True) -> str:
    """TEXT with every unsafe character shown as a backslash escape (newlines kept unless asked)."""
    pattern = _UNSAFE if keep_newlines else _UNSAFE_LINE
    return pattern.sub(_escape, text)


def visible_obj(obj: Any) -> Any:
    """Every string inside OBJ (dicts, lists) made visible-safe."""
    if isinstance(obj, str):
        return visible(obj)
    if isinstance(obj, dict):
        return {k: visible_obj(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [visible_obj(v) for v in obj]
    return obj


def json_safe(dumped: str) -> str:
    """A JSON text (``json.dumps(..., ensure_ascii=False)``) with the unsafe characters that JSON leaves raw
    (C1 controls, DEL, the Unicode reorderers) written as ``\\uXXXX`` escapes: the same data for a JSON
    reader, nothing a terminal acts on. (JSON itself escapes C0 controls.)"""
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", dumped)
