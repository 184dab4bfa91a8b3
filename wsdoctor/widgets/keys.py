"""The one key vocabulary: every key of every screen, its one name and what it does, written once.

Footers, the help screen and the command palette all read this table, so a key has the same name
everywhere (the footer's label is the palette's title and the help's name) and the help cannot
describe a key that does something else. Screens take their ``BINDINGS`` from ``bindings(scope)``.

A key means the same thing on every screen where it exists: ``n``/``N`` (and ``]``/``[``) move to the
next/previous problem (a failing or suspicious check, a ✗ or ! log line), ``f`` shows a fix, ``c``
copies a fix, ``y`` copies what is selected, ``Esc`` goes back (after clearing what the screen holds:
a filter, a selection), ``Enter`` opens the selected thing in full, ``?`` is help, ``q`` quits.

An entry is offered on a screen only when that screen (or the app) has its action, so a key that a
screen gains later (``a`` Apply on the detail screen) appears in its footer, help and palette at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from textual.binding import Binding

APP = "app"
DIAGNOSIS = "diagnosis"
DETAIL = "detail"
LOGS = "logs"
FORM = "form"
HOSTKEY = "hostkey"
HELP = "help"
NOTES = "notes"
WHOLE_LINE = "whole-line"
CONFIRM = "confirm"

# Where each scope's keys work, as the help screen titles them (in this order).
SCOPE_TITLES = {
    APP: "Everywhere",
    DIAGNOSIS: "Diagnosis",
    DETAIL: "Finding detail",
    LOGS: "Live logs",
    WHOLE_LINE: "Whole log line",
    FORM: "Target form",
    CONFIRM: "Leave the form?",
    HOSTKEY: "Unknown SSH host key",
    NOTES: "Notes",
    HELP: "Help",
}


@dataclass(frozen=True)
class Key:
    """One action's keys, its name (footer label, palette title, help name) and one sentence about it."""

    scope: str
    keys: str  # Textual key names, comma-separated; the first is the one shown
    action: str  # the action's name on the scope's screen (or on the app, for APP)
    name: str
    help: str
    show: bool = True  # in the footer
    palette: bool = True  # in the command palette (movement keys are not worth a palette entry)
    priority: bool = False
    bind: bool = True  # False: a key a widget handles itself (listed in help only)


KEYS: tuple[Key, ...] = (
    # -- everywhere ---------------------------------------------------------------------------------
    Key(
        APP,
        "r",
        "rerun",
        "Rerun",
        "Run every check again; the last verdicts stay, marked ↻, until new ones arrive",
        show=False,
    ),
    Key(APP, "l", "logs", "Logs", "Open the live logs (Esc comes back here)", show=False),
    Key(
        APP,
        "e",
        "export",
        "Export",
        "Write the report (Markdown and JSON, secrets redacted) to $WSDOCTOR_EXPORT_DIR or here",
        show=False,
    ),
    Key(
        APP,
        "o",
        "edit_target",
        "Target",
        "Change what is diagnosed (URL, SSH host, config) and run again",
        show=False,
    ),
    Key(APP, "t", "toggle_theme", "Theme", "Switch between the light and the dark theme", show=False),
    Key(APP, "question_mark", "help", "Help", "Every key, and what the signs ✗ ! ✓ – ↻ ↪ mean"),
    Key(
        APP,
        "ctrl+p",
        "command_palette",
        "Palette",
        "Search every action by name",
        show=False,
        priority=True,
        palette=False,
    ),
    Key(APP, "q", "quit", "Quit", "Stop every probe and remote command, then quit"),
    Key(
        APP,
        "ctrl+q",
        "quit",
        "Quit",
        "Stop every probe and remote command, then quit",
        show=False,
        priority=True,
    ),
    # -- the diagnosis ------------------------------------------------------------------------------
    Key(DIAGNOSIS, "enter", "open", "Detail", "The selected check's evidence and fix"),
    # the app's keys that matter most here, in this screen's footer (one key, one name: the app's)
    Key(
        DIAGNOSIS,
        "r",
        "app.rerun",
        "Rerun",
        "Run every check again; the last verdicts stay, marked ↻, until new ones arrive",
    ),
    Key(DIAGNOSIS, "l", "app.logs", "Logs", "Open the live logs (Esc comes back here)"),
    Key(
        DIAGNOSIS,
        "n,right_square_bracket",
        "next_problem",
        "Next problem",
        "Select the next failing or suspicious check",
    ),
    Key(
        DIAGNOSIS,
        "N,left_square_bracket",
        "previous_problem",
        "Previous problem",
        "Select the previous failing or suspicious check",
        show=False,
    ),
    Key(DIAGNOSIS, "f", "show_fix", "Fix", "Open the selected check's detail at its fix", show=False),
    Key(
        DIAGNOSIS,
        "c",
        "copy_fix",
        "Copy fix",
        "Copy the selected check's fix (diff, client code, or the sentence) to the clipboard",
    ),
    Key(DIAGNOSIS, "i", "notes", "Notes", "Every note from gathering the facts, in full"),
    Key(DIAGNOSIS, "escape", "dismiss", "Dismiss", "Hide the message of a stopped run (r runs again)"),
    Key(DIAGNOSIS, "down,j", "move(1)", "Down", "Select the next check", show=False, palette=False),
    Key(DIAGNOSIS, "up,k", "move(-1)", "Up", "Select the previous check", show=False, palette=False),
    Key(DIAGNOSIS, "home", "jump(0)", "First", "Select the first check", show=False, palette=False),
    Key(DIAGNOSIS, "end", "jump(-1)", "Last", "Select the last check", show=False, palette=False),
    # -- one finding --------------------------------------------------------------------------------
    Key(DETAIL, "escape,backspace", "back", "Back", "Back to the list"),
    Key(
        DETAIL,
        "n,right_square_bracket",
        "next_problem",
        "Next problem",
        "Show the next failing or suspicious check",
    ),
    Key(
        DETAIL,
        "N,left_square_bracket",
        "previous_problem",
        "Previous problem",
        "Show the previous failing or suspicious check",
        show=False,
    ),
    Key(DETAIL, "f", "show_fix", "Fix", "Scroll to the fix"),
    Key(
        DETAIL,
        "c",
        "copy_fix",
        "Copy fix",
        "Copy the fix (diff, client code, or the sentence) to the clipboard",
    ),
    Key(DETAIL, "y", "copy_evidence", "Copy evidence", "Copy every piece of evidence to the clipboard"),
    Key(
        DETAIL,
        "a",
        "apply",
        "Apply",
        "Apply the fix: backup, nginx -t, reload, verify; rolled back on failure",
    ),
    # -- live logs ----------------------------------------------------------------------------------
    Key(
        LOGS,
        "slash",
        "filter",
        "Filter",
        "Show only lines containing a text (Enter keeps it, Esc clears it)",
        priority=True,
    ),
    Key(LOGS, "p", "pause", "Pause", "Hold the view still (new lines are counted); p again follows"),
    Key(LOGS, "end", "follow", "Follow", "Jump to the newest line and follow", show=False),
    Key(LOGS, "u", "toggle_noise", "Noise", "Hide or show noise: the lines no check speaks for", show=False),
    Key(LOGS, "enter", "whole_line", "Whole line", "The selected line in full, however long"),
    Key(LOGS, "y", "copy_line", "Copy line", "Copy the selected line, whole, to the clipboard", show=False),
    Key(LOGS, "n,right_square_bracket", "next_problem", "Next problem", "Select the next ✗ or ! line"),
    Key(
        LOGS,
        "N,left_square_bracket",
        "previous_problem",
        "Previous problem",
        "Select the previous ✗ or ! line",
        show=False,
    ),
    Key(LOGS, "escape", "back", "Back", "Clear the filter, then the selection, then go back"),
    Key(LOGS, "up,k", "cursor(-1)", "Up", "Select the line above", show=False, palette=False),
    Key(LOGS, "down,j", "cursor(1)", "Down", "Select the line below", show=False, palette=False),
    Key(LOGS, "pageup", "cursor_page(-1)", "Page up", "A page up", show=False, palette=False),
    Key(LOGS, "pagedown", "cursor_page(1)", "Page down", "A page down", show=False, palette=False),
    Key(LOGS, "home", "cursor_home", "First line", "Select the oldest line kept", show=False, palette=False),
    Key(
        LOGS, "left", "page_sideways(-1)", "Scroll left", "Scroll the message left", show=False, palette=False
    ),
    Key(
        LOGS,
        "right",
        "page_sideways(1)",
        "Scroll right",
        "Scroll the message right",
        show=False,
        palette=False,
    ),
    # -- the whole log line -------------------------------------------------------------------------
    Key(WHOLE_LINE, "escape,enter,q", "close", "Close", "Back to the logs"),
    Key(WHOLE_LINE, "y", "copy", "Copy line", "Copy the whole line to the clipboard"),
    # -- the target form ----------------------------------------------------------------------------
    Key(FORM, "ctrl+s", "start", "Start", "Diagnose this target (Enter in any field does the same)"),
    Key(FORM, "ctrl+o", "save_profile", "Save profile", "Save the form as a profile (never the token)"),
    Key(FORM, "escape", "cancel", "Cancel", "Leave the form (asks first when something was typed)"),
    Key(
        FORM,
        "tab",
        "app.focus_next",
        "Next field",
        "The next field",
        show=False,
        palette=False,
        priority=True,
    ),
    Key(
        FORM,
        "shift+tab",
        "app.focus_previous",
        "Previous field",
        "The previous field",
        show=False,
        palette=False,
        priority=True,
    ),
    Key(
        FORM,
        "right",
        "complete",
        "Complete path",
        "Accept the grey completion of a file path",
        show=False,
        palette=False,
        bind=False,
    ),
    # -- dialogs ------------------------------------------------------------------------------------
    Key(CONFIRM, "y", "discard", "Discard", "Leave the form; what was typed is lost"),
    Key(CONFIRM, "n,escape", "keep", "Keep editing", "Back to the form, as it was"),
    Key(
        HOSTKEY,
        "y",
        "trust",
        "Trust and remember",
        "Trust this key and remember it, as OpenSSH's accept-new does",
    ),
    Key(
        HOSTKEY,
        "n,escape",
        "refuse",
        "Do not trust",
        "Leave the key untrusted: nothing is read from that host",
    ),
    Key(NOTES, "escape,q,i", "close", "Close", "Back to the diagnosis"),
    Key(HELP, "escape,q,question_mark", "close", "Close", "Back to where you were"),
)

_KEY_NAMES = {
    "question_mark": "?",
    "slash": "/",
    "escape": "Esc",
    "enter": "Enter",
    "backspace": "Backspace",
    "up": "↑",
    "down": "↓",
    "left": "←",
    "right": "→",
    "home": "Home",
    "end": "End",
    "pageup": "PgUp",
    "pagedown": "PgDn",
    "tab": "Tab",
    "shift+tab": "Shift+Tab",
    "right_square_bracket": "]",
    "left_square_bracket": "[",
}


def key_name(key: str) -> str:
    """One Textual key name as people write it: `enter` → `Enter`, `ctrl+p` → `Ctrl+P`, `slash` → `/`."""
    key = key.strip()
    if key in _KEY_NAMES:
        return _KEY_NAMES[key]
    if key.startswith("ctrl+"):
        return "Ctrl+" + key_name(key[5:]).upper()
    if key.startswith("shift+"):
        return "Shift+" + key_name(key[6:])
    return key


def key_label(keys: str) -> str:
    """Every key of an entry: `down,j` → `↓ / j`."""
    return " / ".join(key_name(k) for k in keys.split(","))


def in_scope(scope: str) -> tuple[Key, ...]:
    return tuple(k for k in KEYS if k.scope == scope)


def bindings(scope: str, *, only: Iterable[str] | None = None, but: Iterable[str] = ()) -> list[Binding]:
    """The Textual bindings of SCOPE (a screen's BINDINGS), labelled with the vocabulary's names; ONLY or BUT
    these actions (by name, without arguments) when a focused widget holds some of them."""
    keep = set(only) if only is not None else None
    drop = set(but)
    return [
        Binding(k.keys, k.action, k.name, show=k.show, priority=k.priority, tooltip=k.help)
        for k in in_scope(scope)
        if k.bind and (keep is None or _action_name(k.action) in keep) and _action_name(k.action) not in drop
    ]


def _action_name(action: str) -> str:
    return action.split("(", 1)[0].removeprefix("app.")


def has_action(owner: object, action: str) -> bool:
    """Whether OWNER (a screen) can run ACTION: a vocabulary key whose action it lacks is hidden, so a key
    a screen gains later (``a`` Apply) shows up by itself."""
    vocabulary = {_action_name(k.action) for k in KEYS if not k.action.startswith("app.")}
    return action not in vocabulary or callable(getattr(owner, f"action_{action}", None))


def offered(scope: str, owner: object) -> tuple[Key, ...]:
    """SCOPE's keys whose action OWNER (a screen or app class, or instance) really has."""
    return tuple(
        k
        for k in in_scope(scope)
        if k.action.startswith("app.")
        or callable(getattr(owner, f"action_{_action_name(k.action)}", None))
        or not k.bind
    )


def help_rows(keys: Iterable[Key]) -> list[tuple[str, str, str]]:
    """(keys, name, sentence) for the help screen; one row per action (Quit's two keys are one row); the
    app's keys that a screen's footer repeats are listed once, under "Everywhere"."""
    rows: dict[tuple[str, str], list[str]] = {}
    sentences: dict[tuple[str, str], str] = {}
    app_actions = {k.action for k in KEYS if k.scope == APP}
    for k in keys:
        if k.scope != APP and k.action.startswith("app.") and k.action[4:] in app_actions:
            continue
        ident = (k.action, k.name)
        rows.setdefault(ident, []).append(key_label(k.keys))
        sentences.setdefault(ident, k.help)
    return [(" / ".join(labels), name, sentences[(action, name)]) for (action, name), labels in rows.items()]
