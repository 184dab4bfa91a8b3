"""Ctrl+P: every wsdoctor action in the command palette, named as in the footers and the help.

The entries are the key vocabulary's (``keys.py``): the app's everywhere, a screen's only on that
screen and only when it has the action, so nothing the palette offers is dead, and no action has a
second name here.
"""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.screen import Screen

from wsdoctor.widgets.keys import APP, DETAIL, DIAGNOSIS, FORM, LOGS, Key, has_action, key_label


def _scope_of(screen: Screen) -> str | None:
    """The vocabulary scope of SCREEN (imported here: the screens import the palette's module)."""
    from wsdoctor.screens.detail import DetailScreen
    from wsdoctor.screens.diagnosis import DiagnosisScreen
    from wsdoctor.screens.logs import LogsScreen
    from wsdoctor.screens.target import TargetScreen

    for scope, cls in (
        (DIAGNOSIS, DiagnosisScreen),
        (DETAIL, DetailScreen),
        (LOGS, LogsScreen),
        (FORM, TargetScreen),
    ):
        if isinstance(screen, cls):
            return scope
    return None


def palette_entries(app, screen: Screen) -> list[tuple[Key, object]]:
    """(key, where its action runs) for every palette entry offered on SCREEN."""
    from wsdoctor.widgets.keys import KEYS

    here = _scope_of(screen)
    out: list[tuple[Key, object]] = []
    seen: set[str] = set()
    for k in KEYS:
        if not k.palette or k.name in seen:
            continue
        if (
            k.scope == APP
            and has_action(app, k.action.split("(")[0])
            and app.check_action(k.action, ()) is not False
        ):
            out.append((k, app))
        elif (
            k.scope == here
            and not k.action.startswith("app.")
            and has_action(screen, k.action.split("(")[0])
            and hasattr(screen, f"action_{k.action.split('(')[0]}")
        ):
            out.append((k, screen))
        else:
            continue
        seen.add(k.name)
    return out


class WsdoctorCommands(Provider):
    """The palette's wsdoctor section."""

    def _entries(self) -> list[tuple[str, str, object]]:
        return [
            (k.name, f"{k.help} ({key_label(k.keys)})", partial(self.app.run_action, k.action, owner))
            for k, owner in palette_entries(self.app, self.screen)
        ]

    async def discover(self) -> Hits:
        for title, help_text, command in self._entries():
            yield DiscoveryHit(title, command, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, command in self._entries():
            score = max(matcher.match(title), matcher.match(help_text) * 0.5)
            if score > 0:
                yield Hit(score, matcher.highlight(title), command, help=help_text)
