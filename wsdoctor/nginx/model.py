"""The nginx configuration as a tree of directives, each with the real file and line it came from.

Every finding wsdoctor makes about nginx points at a file:line an engineer can open, so the model keeps the
real path (``/etc/nginx/sites-enabled/api.x-or.cloud``, even when the text was read from a copied tree or an
``nginx -T`` dump) and the 1-based line of every directive.

``include`` is expanded inline: the ``include`` directive itself stays in its block (``block`` is None,
``includes`` lists the files it pulled in) and the included directives follow it in the *same* list, with the
enclosing block as their ``parent`` and their own file:line. So ``server.children("location")`` sees locations
that live in included files, exactly as nginx does, and a walker never has to know about includes.

Nothing here imports crossplane: loading is in ``load.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

_T = TypeVar("_T")


@dataclass(eq=False, slots=True)
class Directive:
    """One directive (or comment, ``name == "#"``, ``args == [text]``) with its real file:line.

    ``args`` are crossplane's (quotes removed); they may be shared between two inclusions of one file:
    treat them as read-only.
    """

    name: str
    args: list[str]
    file: str
    line: int
    block: list[Directive] | None = field(default=None, repr=False)
    parent: Directive | None = field(default=None, repr=False)
    includes: list[str] | None = field(default=None, repr=False)  # for `include`: the files it expanded to

    def children(self, name: str) -> list[Directive]:
        """Direct children named NAME, in file order (included files expanded in place)."""
        return [d for d in self.block or () if d.name == name]

    def child(self, name: str) -> Directive | None:
        """The FIRST direct child named NAME.

        nginx rejects a duplicate of most single-valued directives ("... directive is duplicate"), so in a
        config nginx accepts there is at most one; for the few it tolerates, the first is the one reported.
        """
        for d in self.block or ():
            if d.name == name:
                return d
        return None

    def walk(self) -> Iterator[Directive]:
        """Every directive below this one, depth first, in file order."""
        stack = list(reversed(self.block or ()))
        while stack:
            d = stack.pop()
            yield d
            if d.block:
                stack.extend(reversed(d.block))

    def ancestors(self) -> Iterator[Directive]:
        """The enclosing block directives, innermost first."""
        p = self.parent
        while p is not None:
            yield p
            p = p.parent

    @property
    def where(self) -> str:
        """``file:line`` with the real path as nginx sees it."""
        return f"{self.file}:{self.line}"

    @property
    def is_comment(self) -> bool:
        return self.name == "#"

    def text(self) -> str:
        """The directive as one config line (``proxy_pass http://up/chat/;``), for messages."""
        if self.name == "#":
            return "#" + (self.args[0] if self.args else "")
        parts = [self.name, *(_quote(a) for a in self.args)]
        return " ".join(parts) + (" {" if self.block is not None else ";")

    def __repr__(self) -> str:
        return f"Directive({self.name!r}, {self.args!r}, {self.where})"


def _quote(arg: str) -> str:
    if arg == "" or any(c in arg for c in " \t\n;{}#\"'"):
        return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return arg


@dataclass
class ConfigError:
    """A problem nginx would refuse the configuration for (or that kept part of it from being read).

    ``kind`` says which: "refused" (nginx would refuse the file as it is) or "truncated" (the ``nginx -T``
    output was cut short: the configuration itself may be fine, the input lacks part of it).
    """

    file: str
    line: int | None
    message: str
    kind: str = "refused"

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass
class Config:
    """A loaded configuration: the main context with includes expanded, every file's text, the errors."""

    main_file: str  # real path of the main nginx.conf
    root: list[Directive]  # the main context
    files: dict[str, str]  # every file read: real path -> text
    errors: list[ConfigError]
    source: str  # "/etc/nginx/nginx.conf", "nginx -T dump dump.txt"
    fs_root: str | None = None  # --root DIR (DIR stands for "/")
    _cache: dict[Hashable, object] = field(default_factory=dict, repr=False, compare=False)

    def memo(self, key: Hashable, compute: Callable[[], _T]) -> _T:
        """COMPUTE's value, computed once per KEY for this configuration (answers about it live with it)."""
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]  # type: ignore[return-value]

    def http(self) -> Directive | None:
        """The (first) ``http`` block of the main context."""
        if "http" not in self._cache:
            self._cache["http"] = next((d for d in self.root if d.name == "http"), None)
        return self._cache["http"]  # type: ignore[return-value]

    def servers(self) -> list[Directive]:
        """Every ``server`` in ``http``, in config order.

        A snippet without ``http`` (a sites-enabled file given on its own) has its top-level servers used
        instead, so a single site file can still be analysed.
        """
        if "servers" not in self._cache:
            http = self.http()
            scope = (http.block or []) if http is not None else self.root
            self._cache["servers"] = [d for d in scope if d.name == "server" and d.block is not None]
        return self._cache["servers"]  # type: ignore[return-value]

    def upstreams(self) -> dict[str, Directive]:
        """``upstream`` blocks of ``http`` by name (the first of a duplicated name, as nginx reports it)."""
        if "upstreams" not in self._cache:
            http = self.http()
            scope = (http.block or []) if http is not None else self.root
            ups: dict[str, Directive] = {}
            for d in scope:
                if d.name == "upstream" and d.args and d.block is not None:
                    ups.setdefault(d.args[0], d)
            self._cache["upstreams"] = ups
        return self._cache["upstreams"]  # type: ignore[return-value]

    def maps(self) -> dict[str, Directive]:
        """``map`` blocks of ``http`` by the variable they define (``$connection_upgrade`` -> map)."""
        if "maps" not in self._cache:
            http = self.http()
            scope = (http.block or []) if http is not None else self.root
            maps: dict[str, Directive] = {}
            for d in scope:
                if d.name == "map" and len(d.args) >= 2 and d.block is not None:
                    maps.setdefault(d.args[1], d)
            self._cache["maps"] = maps
        return self._cache["maps"]  # type: ignore[return-value]

    def display_path(self, file: str) -> str:
        """The path shown to the user: the real nginx path (the same for a tree under --root or a dump)."""
        return file

    def lines(self, file: str) -> list[str]:
        """The lines of FILE (without line endings), numbered as nginx numbers them (by LF); [] if not read."""
        key = "lines:" + file
        cached = self._cache.get(key)
        if cached is None:
            text = self.files.get(file, "")
            cached = text.split("\n") if text else []
            if cached and cached[-1] == "":
                cached.pop()
            cached = [ln[:-1] if ln.endswith("\r") else ln for ln in cached]
            self._cache[key] = cached
        return cached  # type: ignore[return-value]

    def excerpt(self, file: str, line: int, before: int = 2, after: int = 2) -> str:
        """Numbered lines around FILE:LINE, as ``  42 | proxy_pass …``; "" when the file was not read."""
        lines = self.lines(file)
        if not lines or line < 1:
            return ""
        lo = max(1, line - before)
        hi = min(len(lines), line + after)
        width = len(str(hi))
        return "\n".join(f"{n:>{width}} | {lines[n - 1]}" for n in range(lo, hi + 1))

    def walk(self) -> Iterator[Directive]:
        """Every directive of the configuration, depth first, in file order."""
        for d in self.root:
            yield d
            if d.block:
                yield from d.walk()
