"""Make remote text (logs, config, server answers) safe to put on a terminal.

A log line is written by whoever can reach the server: it may carry ANSI escape
sequences that clear the screen, move the cursor, set the window title or fake a
hyperlink, and bidi overrides that reorder what the engineer reads. Everything
remote goes through ``sanitize`` before it is shown; markup is never parsed
(widgets get ``Content``/``Text`` or ``markup=False``), so ``[bold]`` stays literal.
Nothing here imports Textual: the headless core may reuse it.
"""

from __future__ import annotations

import re

# ESC-introduced sequences (ECMA-48): CSI (ESC [ … final), OSC/DCS/SOS/PM/APC strings
# terminated by BEL or ST, and two-byte/nF escapes; plus their 8-bit C1 forms.
_ESCAPES = re.compile(
    r"""
      \x1b\[[0-?]*[ -/]*[@-~]                      # CSI: ESC [ params intermediates final
    | \x9b[0-?]*[ -/]*[@-~]                        # 8-bit CSI
    | (?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])      # OSC, DCS, SOS, PM, APC (7- or 8-bit) …
      [^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?        #   … up to BEL or ST (or the end)
    | \x1b[ -/]*[0-~]                              # nF / Fp / Fe / Fs escapes (ESC ( B, ESC c, …)
    | \x1b                                         # a lone ESC at the end
    """,
    re.VERBOSE,
)
# C0 and C1 controls except tab and newline, DEL, and the bidi overrides/isolates (Trojan Source).
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def sanitize(text: str, *, multiline: bool = True, tab_size: int = 4) -> str:
    """Strip escape sequences and control characters; keep newlines only when ``multiline``.

    Carriage returns are dropped (a ``\\r`` would let a line overwrite itself); tabs
    become spaces so columns line up the same in every widget.
    """
    if (
        not text or text.isprintable()
    ):  # the common case: nothing to strip (ESC, C0/C1, bidi are not printable)
        return text
    if "\r\n" in text:
        text = text.replace("\r\n", "\n")
    text = _ESCAPES.sub("", text)
    text = _CONTROLS.sub("", text)
    if "\t" in text:
        text = text.expandtabs(tab_size)
    if not multiline and "\n" in text:
        text = text.replace("\n", " ⏎ ")
    return text
