"""wsdoctor's two themes: every text colour readable (WCAG 4.5:1) in truecolour and in 256-colour terminals.

Every colour here is one of the xterm 256-colour palette's (the 6×6×6 cube or the grey ramp), so a terminal
without truecolour shows the same colour instead of a nearest match that may lose contrast. The derived
colours Textual would compute (muted text, the cursor row, the footer) are set explicitly for the same
reason. ``tests/tui/test_contrast.py`` renders the screens in both themes and measures every character's
foreground against its background, in truecolour and downgraded to 256 colours.

The status colours keep their meaning on the selected row: the cursor row is a light tint that all of
them read on, not a saturated bar that turns red text into a 2.5:1 smudge.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.theme import Theme


@dataclass(frozen=True)
class Palette:
    background: str
    surface: str  # log view, code blocks
    panel: str  # header, status bars, footer, dialogs
    selected: str  # the cursor row
    text: str
    muted: str
    error: str
    warning: str
    success: str
    accent: str
    primary: str  # borders and rules (not text)
    kinds: tuple[str, ...]  # one colour per log-line kind


DARK = Palette(
    background="#121212",
    surface="#1c1c1c",
    panel="#262626",
    selected="#3a3a3a",
    text="#e4e4e4",
    muted="#b2b2b2",
    error="#ff8787",
    warning="#ffd75f",
    success="#87d787",
    accent="#87afff",
    primary="#5f87d7",
    kinds=("#d787ff", "#5fd7d7", "#ffaf87", "#87d7ff", "#d7afff", "#afd75f"),
)

LIGHT = Palette(
    background="#ffffff",
    surface="#eeeeee",
    panel="#e4e4e4",
    selected="#d7d7ff",
    text="#121212",
    muted="#444444",
    error="#af0000",
    warning="#5f5f00",
    success="#005f00",
    accent="#005f87",
    primary="#005faf",
    kinds=("#870087", "#005f5f", "#870000", "#005f87", "#5f00af", "#444444"),
)

DARK_NAME = "wsdoctor-dark"
LIGHT_NAME = "wsdoctor-light"


def _theme(name: str, p: Palette, dark: bool) -> Theme:
    return Theme(
        name=name,
        primary=p.primary,
        secondary=p.accent,
        accent=p.accent,
        warning=p.warning,
        error=p.error,
        success=p.success,
        foreground=p.text,
        background=p.background,
        surface=p.surface,
        panel=p.panel,
        boost=p.panel,
        dark=dark,
        variables={
            "text": p.text,
            "text-muted": p.muted,
            "text-disabled": p.muted,
            "foreground-muted": p.muted,
            "text-primary": p.accent,
            "text-secondary": p.accent,
            "text-accent": p.accent,
            "text-warning": p.warning,
            "text-error": p.error,
            "text-success": p.success,
            "block-cursor-background": p.selected,
            "block-cursor-foreground": p.text,
            "block-cursor-text-style": "bold",
            "block-cursor-blurred-background": p.selected,
            "block-cursor-blurred-foreground": p.text,
            "block-cursor-blurred-text-style": "none",
            "block-hover-background": p.selected,
            "footer-background": p.panel,
            "footer-foreground": p.text,
            "footer-key-foreground": p.accent,
            "footer-key-background": p.panel,
            "footer-description-foreground": p.text,
            "footer-description-background": p.panel,
            "footer-item-background": p.panel,
            "input-cursor-background": p.text,
            "input-cursor-foreground": p.background,
            "input-selection-background": p.selected,
            "input-selection-foreground": p.text,
            "screen-selection-background": p.selected,
            "screen-selection-foreground": p.text,
            "button-foreground": p.text,
            "button-color-foreground": p.text,
            "link-color": p.accent,
            "link-background": p.background,
            "scrollbar": p.primary,
            "scrollbar-background": p.surface,
            "scrollbar-corner-color": p.surface,
            "wsdoctor-selected": p.selected,
            **{f"wsdoctor-kind-{i}": c for i, c in enumerate(p.kinds)},
        },
    )


THEMES = (_theme(DARK_NAME, DARK, True), _theme(LIGHT_NAME, LIGHT, False))
PALETTES = {DARK_NAME: DARK, LIGHT_NAME: LIGHT}
