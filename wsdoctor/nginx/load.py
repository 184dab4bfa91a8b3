"""Load an nginx configuration into the model: a main file on disk, a copied tree (--root), or an ``nginx -T`` dump.

Each file is parsed once with crossplane's semantics (``parse.py``: crossplane's tokens and statement tree,
``single=True, comments=True, check_ctx=False, check_args=False`` — newer directives must not fail —
without crossplane's slow lexer; crossplane itself for files with Lua blocks). wsdoctor follows the includes
itself, because the text may come from a copied tree or a dump while the paths must stay the real ones. The
model is then built in one linear pass, one Directive per statement per inclusion.

Include resolution follows nginx (``ngx_conf_include``): a relative path is taken against the *conf prefix*,
i.e. the directory of the main file, not of the including file; a pattern with ``*?[`` is a glob whose
matches are read in sorted order and which may match nothing; a plain path that cannot be opened is an error
(``open() "…" failed``). An include cycle is reported once and not followed.

A file crossplane cannot parse becomes a ConfigError with file:line and the rest is still analysed. What is an
nginx configuration is decided as nginx decides it: it reads as statements, and a directive nginx knows comes
before the point where nginx would stop reading (a NUL byte inside a comment is fine, a compact one-line config
too). Input that is no nginx configuration at all (empty, a PNG, JSON, prose, a dump without a single file) is
a LoadError: one sentence naming where nginx stops (line and byte) and what to pass instead.

An ``nginx -T`` output cut short (a dropped session, a paste cut off) is reported as that, a ConfigError of kind
"truncated" first in ``errors`` naming the last whole line and what is missing, instead of the "unexpected end
of file" or "not in the dump" errors it would otherwise cause.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wsdoctor.nginx.model import Config, ConfigError, Directive
from wsdoctor.nginx.parse import (
    Stmt,
    from_crossplane,
    needs_crossplane,
    parse_directives,
    shown,
    token_spans,
)

DUMP_MARK = "# configuration file "
_GLOB_MAGIC = re.compile(r"[*?[]")


class LoadError(Exception):
    """The input cannot be analysed at all; the message is one sentence saying what to do."""


def load_file(path: str, root: str | None = None) -> Config:
    """Load the main config PATH and its includes (``--nginx-conf``), optionally from a copied tree (``--root``).

    With ROOT, DIR stands for "/": PATH may be given inside the tree (``tree/etc/nginx/nginx.conf``) or as the
    real path (``/etc/nginx/nginx.conf``); the model keeps the real paths, the text is read from the tree.
    """
    if root is not None:
        root_abs = os.path.abspath(root)
        if not os.path.isdir(root_abs):
            raise LoadError(
                f"--root {root} is not a directory; pass the directory that stands for / in the copy"
            )
        p = os.path.abspath(path) if not os.path.isabs(path) else path
        if p == root_abs or p.startswith(root_abs.rstrip("/") + "/"):
            real = "/" + os.path.relpath(p, root_abs)
        elif os.path.isabs(path):
            real = path
        else:
            real = "/" + path.lstrip("./")
        real = os.path.normpath(real)
        source = FsSource(root_abs)
    else:
        real = os.path.abspath(path)
        source = FsSource(None)
    disk = source.disk(real)
    if not os.path.exists(disk):
        where = f" (looked for {disk})" if root is not None else ""
        raise LoadError(f"nginx config {path} not found{where}; pass the main nginx.conf with --nginx-conf")
    if os.path.isdir(disk):
        raise LoadError(f"{path} is a directory; pass the main nginx.conf file itself with --nginx-conf")
    text = source.read(real)
    if text is None:
        raise LoadError(f"cannot read {path}; check its permissions (or run as a user that can read it)")
    _check_not_empty(text, path)
    label = real if root is None else f"{real} (under {root})"
    config = _Loader(source, real, label, fs_root=os.path.abspath(root) if root else None).load()
    _check_is_nginx(config, path, lambda: _read_bytes(disk))
    return config


def load_dump(text: str, source: str) -> Config:
    """Load the output of ``nginx -T`` (``--nginx-dump``): its files, real paths and line numbers.

    The ``nginx: … syntax is ok`` / ``test is successful`` lines nginx writes to stderr (often captured with
    ``2>&1``) are ignored; a dump of a failed test holds no file at all and is reported with nginx's message.
    """
    files, order = split_dump(text)
    if not files:
        if text.strip() and "\n" not in text and _cut_header(text) is not None:
            raise LoadError(
                f"{source} is truncated inside its first '# configuration file' line; "
                "save the whole `nginx -T` output (run as root) and pass that"
            )
        if "\x00" in text:
            raise LoadError(
                f"{source} is binary, not `nginx -T` output; save the text of `nginx -T` (run as root)"
            )
        emerg = next((ln.strip() for ln in text.splitlines() if "[emerg]" in ln), "")
        if emerg:
            raise LoadError(
                f"{source} holds no configuration because `nginx -T` failed ({emerg}); fix that error first"
            )
        raise LoadError(
            f"{source} is not `nginx -T` output (no '# configuration file' line); "
            "save what `nginx -T` prints (run as root) and pass that"
        )
    main = order[0]
    try:
        _check_not_empty(files[main], f"{main} in {source}")
        loader = _Loader(DumpSource(files), main, f"nginx -T dump {source}", last=order[-1])
        config = loader.load()
        _check_is_nginx(config, f"{main} in {source}", None)
    except LoadError:
        if len(order) == 1 and not text.endswith("\n\n"):  # nginx ends every file it prints with a newline
            raise LoadError(
                f"{source} is truncated in its first file, {main}; "
                "save the whole `nginx -T` output (run as root) and pass that"
            ) from None
        raise
    cut = _truncation(text, files, order, config, loader.late)
    if cut is not None:
        config.errors[:] = [cut] + [e for e in config.errors if not _superseded(e, cut, order[-1], loader)]
    return config


def split_dump(text: str) -> tuple[dict[str, str], list[str]]:
    """Split ``nginx -T`` output into {real path: text} and the order the files appear in.

    nginx writes ``# configuration file PATH:`` then the file's bytes then one newline; that extra newline is
    removed so the text (and its line numbers) are the file's own. A last line that is a header cut short
    (``# configuration file /etc/ng``) belongs to no file and is left out.
    """
    files: dict[str, str] = {}
    order: list[str] = []
    end = len(text)
    last_line = text.rfind("\n") + 1
    if last_line < end and _cut_header(text[last_line:]) is not None:
        end = last_line  # a header cut short is no file text (see _truncation)
    name: str | None = None
    body_start = 0
    pos = 0
    while pos < end:
        nl = text.find("\n", pos, end)
        line_end = end if nl < 0 else nl + 1
        if text.startswith(DUMP_MARK, pos):  # nginx counts lines by LF only
            head = text[pos + len(DUMP_MARK) : line_end].rstrip("\r\n")
            if head.endswith(":") and head[:-1].strip():
                _flush(files, order, name, text, body_start, pos)
                name, body_start = head[:-1], line_end
        pos = line_end
    _flush(files, order, name, text, body_start, end)
    return files, order


def _flush(
    files: dict[str, str], order: list[str], name: str | None, text: str, start: int, end: int
) -> None:
    """Keep TEXT[START:END] as the file NAME, less the newline nginx writes after each file."""
    if name is None:
        return
    if end > start and text[end - 1] == "\n":
        end -= 1
    if name not in files:
        order.append(name)
    files[name] = text[start:end]


def _cut_header(line: str) -> str | None:
    """The part of a file name in LINE when it is a ``# configuration file …:`` header cut short (no newline,
    no final colon), else None."""
    if line.endswith("\n"):
        return None
    if line.startswith(DUMP_MARK):
        return None if line.rstrip("\r").endswith(":") else line[len(DUMP_MARK) :]
    return "" if len(line) >= 3 and DUMP_MARK.startswith(line) else None


def _truncation(
    text: str, files: dict[str, str], order: list[str], config: Config, late: list[_Late]
) -> ConfigError | None:
    """The ConfigError saying that an ``nginx -T`` output is cut short, and what it lacks; None when whole.

    nginx prints a dump only for a configuration that passed its test, so every file in it parses, every plain
    include names a file in it, and it ends with the newline nginx writes after each file. It is cut short when
    its last line is a file header cut short, when it ends right after a header, when its last file ends inside
    a block, a statement or a quoted string, when it ends in the middle of a line that no ``;`` or ``}`` ends
    (a word or a comment cut), or when an include read after its last file names a file it lacks (nginx prints
    the files in the order it reads them). A cut at the end of a line between two top-level statements, with
    only glob includes after it, cannot be told from a whole dump.
    """
    last = order[-1]
    tail = text[text.rfind("\n") + 1 :]
    header = _cut_header(tail)
    body = files[last]
    complete = header is not None or text.endswith("\n")  # the last line of BODY is whole
    whole = body.count("\n") + (1 if body and not body.endswith("\n") and complete else 0)
    eof = next(
        (e for e in config.errors if e.file == last and e.message.startswith("unexpected end of file")), None
    )
    head = DUMP_MARK + last + ":"
    lost: list[str] = [f"the rest of {last}"]
    if header is not None:
        inside = "inside the header of the next file" + (f", {header}…" if header.strip() else "")
        lost = [f"that file ({header}…)"] if header.strip() else []
    elif not body and text[text.rfind(head) + len(head) :] in ("", "\r", "\n", "\r\n"):
        inside, lost = "right after its header", [f"the text of {last}"]
    elif eof is not None:
        cut = _cut_in(body)
        inside = (
            cut
            if cut == "inside a quoted string"
            else "inside a block"
            if eof.message.endswith('expecting "}"')
            else "inside a statement"
        )
    elif tail.strip() and not tail.rstrip().endswith((";", "}")):
        inside = _cut_in(body)
    elif any(not x.glob for x in late):
        inside, lost = "at the end of that file", []
    else:
        return None
    lost += [x.name for x in late if not x.glob]
    lost += [f"the files of `include {x.name}` at {x.where}" for x in late if x.glob]
    if whole:
        message = f"the nginx -T output is truncated after {last}:{whole} ({inside})"
    else:
        message = f"the nginx -T output is truncated at the start of {last} ({inside})"
    if lost:
        message += f"; missing: {_join(lost)}"
    message += "; save the whole `nginx -T` output (run as root) and pass that"
    return ConfigError(last, whole or None, message, kind="truncated")


def _cut_in(body: str) -> str:
    """Where BODY's text stops: inside a quoted string, a comment or a statement (its tokens end before)."""
    toks = token_spans(body)
    rest = (body[toks[-1][4] :] if toks else body).lstrip()
    if rest[:1] in ("'", '"'):
        return "inside a quoted string"
    return "inside a comment" if rest[:1] == "#" else "inside a statement"


def _superseded(e: ConfigError, cut: ConfigError, last: str, loader: _Loader) -> bool:
    """An error the cut explains: the last file's end inside a statement, a missing file read after the cut."""
    if e is cut:
        return True
    if e.file == last and e.message.startswith("unexpected end of file"):
        return True
    return any(x.error is e for x in loader.late)


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _check_not_empty(text: str, label: str) -> None:
    if not text.strip():
        raise LoadError(f"{label} is empty; pass the main nginx.conf (the file `nginx -t` names)")


# Directives that open or fill any real nginx config (main, events, http, server, location, upstream, stream):
# one of them at the top of the main file settles that it is an nginx configuration without a second look.
_COMMON_DIRECTIVE_NAMES = """
    user worker_processes pid error_log include events http stream mail load_module env daemon master_process
    worker_connections worker_rlimit_nofile use multi_accept server location upstream map geo split_clients
    listen server_name root alias index try_files return rewrite proxy_pass proxy_set_header
    proxy_http_version proxy_read_timeout proxy_send_timeout proxy_connect_timeout proxy_buffering add_header
    access_log log_format sendfile tcp_nopush tcp_nodelay keepalive_timeout types default_type gzip
    ssl_certificate ssl_certificate_key ssl_protocols client_max_body_size fastcgi_pass uwsgi_pass grpc_pass
    set if limit_except ip_hash hash least_conn keepalive resolver allow deny auth_basic charset expires
"""
_COMMON_DIRECTIVES = frozenset(_COMMON_DIRECTIVE_NAMES.split())
_TRY_INSTEAD = "pass the main nginx.conf (the file `nginx -t` names) or a saved `nginx -T` output"


def _check_is_nginx(config: Config, label: str, raw: Callable[[], bytes | None] | None) -> None:
    """Refuse a main file that nginx would not read as a configuration at all, saying where it stops.

    nginx reads statements (``name args… ;`` or ``name args… {``) and knows its directives' names; a file is a
    configuration, perhaps a broken one, when a known directive comes before the point where nginx stops
    reading it. A NUL byte or any other byte is judged by that rule too (one inside a comment is harmless).
    RAW reads the file's bytes, for exact byte offsets.
    """
    main = config.main_file
    if any(d.name in _COMMON_DIRECTIVES for d in config.root if d.file == main):
        return
    data = raw() if raw is not None else None
    text = data.decode("utf-8", "surrogateescape") if data is not None else config.files.get(main, "")
    why = not_nginx_reason(text)
    if why is not None:
        raise LoadError(f"{label} is not an nginx configuration: {why}; {_TRY_INSTEAD}")


def _read_bytes(path: str) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return None


def _known_directives() -> frozenset[str]:
    import crossplane.analyzer  # only for a file that names none of the common directives

    return _COMMON_DIRECTIVES | frozenset(crossplane.analyzer.DIRECTIVES)


def not_nginx_reason(text: str) -> str | None:
    """Why nginx would not read TEXT as a configuration (a phrase with line and byte offset), or None.

    The statements are read as nginx reads them until it would stop (an unexpected ``{`` or ``;`` where a
    directive name belongs, a ``}`` closing nothing, the end of the text inside a statement); a known directive
    before that point makes it a configuration. Otherwise the first statement (or the token nginx stops at) is
    the one named: its line, its byte offset in the UTF-8 text, and its first bytes, escaped.
    """
    known = _known_directives()
    toks = token_spans(text)
    n = len(toks)
    first: tuple[int, int, int] | None = None  # the first statement's name: line, start, end
    stop: tuple[str, int, int] | None = None  # the token nginx stops at
    depth = 0
    i = 0
    while i < n:
        tok, line, quoted, start, end = toks[i]
        if not quoted and tok[:1] == "#":
            i += 1
            continue
        if not quoted and tok in ("{", ";") or not quoted and tok == "}" and depth == 0:
            stop = (tok, line, start)
            break
        if not quoted and tok == "}":
            depth -= 1
            i += 1
            continue
        if not quoted and tok in known:
            return None
        if first is None:
            first = (line, start, end)
        j = i + 1
        while j < n and (toks[j][2] or toks[j][0] not in ("{", ";", "}")):
            j += 1
        if j >= n:
            break
        depth += {"{": 1, ";": 0, "}": -1}[toks[j][0]]
        i = j + 1
    if first is not None:
        line, start, end = first
        if _binary(text[start : start + 64]):
            return (
                f"it is binary data, `{_shown(text, start, start + 12)}` at byte {_byte_offset(text, start)} "
                f"(line {line}) where nginx expects a directive"
            )
        return (
            f"its first statement starts with `{_shown(text, start, min(end, start + 40))}` at line {line} "
            f"(byte {_byte_offset(text, start)}), which is no nginx directive"
        )
    if stop is not None:
        tok, line, start = stop
        return (
            f"nginx stops at the `{tok}` at line {line} (byte {_byte_offset(text, start)}), "
            "where a directive name must come"
        )
    return "it holds only comments, no directive"


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8", "surrogateescape"))


def _binary(chunk: str) -> bool:
    return any((ord(c) < 32 and c not in "\t\n\r") or c == "\x7f" or "\udc80" <= c <= "\udcff" for c in chunk)


def _shown(text: str, start: int, end: int) -> str:
    """TEXT[START:END] as it can be shown inside a message (escaped, backquotes too); "…" when the token goes
    on."""
    more = end < len(text) and not text[end].isspace() and text[end] not in ";{"
    return shown(text[start:end]).replace("`", "\\x60") + ("…" if more else "")


# --- where the text comes from ---------------------------------------------------------------------------


class FsSource:
    """Files on this machine, optionally under a copied tree whose root stands for "/"."""

    def __init__(self, root: str | None) -> None:
        self.root = root.rstrip("/") if root else None

    def disk(self, real: str) -> str:
        return self.root + real if self.root else real

    def read(self, real: str) -> str | None:
        try:
            with open(self.disk(real), encoding="utf-8", errors="replace", newline="") as fh:
                return fh.read()
        except OSError:
            return None

    def exists(self, real: str) -> bool:
        return os.path.exists(self.disk(real))

    def isdir(self, real: str) -> bool:
        return os.path.isdir(self.disk(real))

    def missing(self, real: str) -> str:
        where = f" (looked for {self.disk(real)})" if self.root else ""
        return f'open() "{real}" failed (2: No such file or directory){where}'

    def glob(self, pattern: str) -> list[str]:
        base = self.root or ""
        matches = glob.glob(glob.escape(base) + pattern) if base else glob.glob(pattern)
        return sorted(m[len(base) :] for m in matches)

    def parse_path(self, real: str) -> tuple[str, Callable[[], None] | None]:
        return self.disk(real), None


class DumpSource:
    """The files of an ``nginx -T`` dump, parsed from a temporary copy (crossplane reads paths only)."""

    def __init__(self, files: dict[str, str]) -> None:
        self.files = files
        self._tmp: str | None = None
        self._n = 0

    def read(self, real: str) -> str | None:
        return self.files.get(real)

    def exists(self, real: str) -> bool:
        return real in self.files

    def isdir(self, real: str) -> bool:
        return False

    def missing(self, real: str) -> str:
        return f'"{real}" is not in the dump (nginx -T prints every file it read)'

    def glob(self, pattern: str) -> list[str]:
        return sorted(name for name in self.files if _glob_match(pattern, name))

    def parse_path(self, real: str) -> tuple[str, Callable[[], None] | None]:
        if self._tmp is None:
            import tempfile  # only for a dump with *_by_lua_block files (a few ms of imports otherwise)

            self._tmp = tempfile.mkdtemp(prefix="wsdoctor-dump-")
        self._n += 1
        path = os.path.join(self._tmp, f"{self._n}.conf")
        with open(path, "w", encoding="utf-8", newline="") as fh:
            fh.write(self.files[real])
        return path, lambda: os.unlink(path)

    def close(self) -> None:
        if self._tmp is not None:
            try:
                os.rmdir(self._tmp)
            except OSError:
                pass
            self._tmp = None


_SEGMENT_CACHE: dict[str, re.Pattern[str]] = {}


def _segment_re(seg: str) -> re.Pattern[str]:
    rx = _SEGMENT_CACHE.get(seg)
    if rx is None:
        rx = re.compile(fnmatch.translate(seg), re.DOTALL)
        _SEGMENT_CACHE[seg] = rx
    return rx


def _glob_match(pattern: str, name: str) -> bool:
    """glob(3) semantics on one path: ``*`` stays within a segment, a leading dot must be matched literally."""
    ps, ns = pattern.split("/"), name.split("/")
    if len(ps) != len(ns):
        return False
    for p, n in zip(ps, ns, strict=True):
        if not _GLOB_MAGIC.search(p):
            if p != n:
                return False
            continue
        if n.startswith(".") and not p.startswith("."):
            return False
        if not _segment_re(p).match(n):
            return False
    return True


# --- the loader ------------------------------------------------------------------------------------------

_CP_SUFFIX = re.compile(r" in \S+?(?::\d+)?$")


@dataclass
class _Late:
    """An include met after the last file of a dump was entered: what it reads may lie beyond a cut."""

    name: str  # the missing file, or the include's glob pattern as written
    glob: bool
    where: str  # the include's file:line
    error: ConfigError | None  # the "not in the dump" error of a missing file


class _Loader:
    """One load: reads each file through SOURCE, expands includes, collects every file's text and errors.

    LAST, for a dump, is its last file: includes met once it has been entered are noted in ``late``.
    """

    def __init__(
        self, source: Any, main: str, label: str, fs_root: str | None = None, last: str | None = None
    ) -> None:
        self.source = source
        self.main = main
        self.conf_dir = os.path.dirname(main) or "/"
        self.label = label
        self.fs_root = fs_root
        self.files: dict[str, str] = {}
        self.errors: list[ConfigError] = []
        # files whose parse errors are recorded (once, however often they are included)
        self.reported: set[str] = set()
        self.last = last
        self.late: list[_Late] = []

    def load(self) -> Config:
        try:
            root = self._file(self.main, None, [self.main]) or []
        finally:
            close = getattr(self.source, "close", None)
            if close:
                close()
        return Config(
            main_file=self.main,
            root=root,
            files=self.files,
            errors=self.errors,
            source=self.label,
            fs_root=self.fs_root,
        )

    def _copied_tree_root(self, pattern: str) -> str | None:
        """The copy's root when the main file sits in a copied tree (…/copy/etc/nginx/nginx.conf, no --root)
        and an absolute include names the original place (/etc/nginx/…); else None."""
        if self.fs_root is not None or not isinstance(self.source, FsSource) or not pattern.startswith("/"):
            return None
        main_dir = os.path.dirname(self.main)
        if pattern.startswith(main_dir.rstrip("/") + "/"):
            return None
        parts = [p for p in os.path.dirname(pattern).split("/") if p]
        for n in range(len(parts), 0, -1):  # the longest leading part of the include's directory …
            head = "/" + "/".join(parts[:n])
            if main_dir.endswith(head) and main_dir != head:  # … that the main file's directory ends with
                return main_dir[: -len(head)] or "/"
        return None

    def _text(self, real: str) -> str | None:
        if real in self.files:
            return self.files[real]
        text = self.source.read(real)
        if text is not None:
            self.files[real] = text
        return text

    def _file(self, real: str, parent: Directive | None, stack: list[str]) -> list[Directive] | None:
        """The directives of REAL as included under PARENT (includes expanded), None if it cannot be read."""
        text = self._text(real)
        if text is None:
            return None
        first = real not in self.reported
        self.reported.add(real)
        if needs_crossplane(text):
            return self._crossplane(real, text, parent, stack, first)
        mark = len(self.errors)
        directives, errors = parse_directives(text, real, parent, lambda d: self._include(d, d.parent, stack))
        if errors and not directives:
            del self.errors[mark:]  # the file is lost as a whole: so are its includes' complaints
        if first:
            self.errors.extend(ConfigError(real, e.line, e.message) for e in errors)
        return directives

    def _crossplane(
        self, real: str, text: str, parent: Directive | None, stack: list[str], first: bool
    ) -> list[Directive]:
        """crossplane itself, for files that need its lexer plugins (``*_by_lua_block``)."""
        import crossplane

        path, cleanup = self.source.parse_path(real)
        try:
            payload = crossplane.parse(
                path, catch_errors=True, single=True, comments=True, check_ctx=False, check_args=False
            )
        finally:
            if cleanup:
                cleanup()
        cfg = payload["config"][0] if payload["config"] else {"parsed": [], "errors": []}
        if first:
            for err in cfg.get("errors", ()):
                self.errors.append(self._error(real, text, err))
        return self._build(from_crossplane(cfg.get("parsed", [])), real, parent, stack)

    @staticmethod
    def _error(real: str, text: str, err: dict[str, Any]) -> ConfigError:
        message = _CP_SUFFIX.sub("", str(err.get("error") or "")).strip()
        line = err.get("line")
        if not message:  # crossplane lets a StopIteration escape at the end of the file
            message = 'unexpected end of file, expecting ";" or "}"'
            line = line or max(1, text.count("\n") + (0 if text.endswith("\n") else 1))
        return ConfigError(real, line, message)

    def _build(
        self, stmts: list[Stmt], file: str, parent: Directive | None, stack: list[str]
    ) -> list[Directive]:
        out: list[Directive] = []
        append = out.append
        for name, args, line, block in stmts:
            d = Directive(name, args, file, line, None, parent)
            append(d)
            if block is not None:
                d.block = self._build(block, file, d, stack)
            elif name == "include" and args:
                out.extend(self._include(d, parent, stack))
        return out

    def _include(self, inc: Directive, parent: Directive | None, stack: list[str]) -> list[Directive]:
        pattern = inc.args[0]
        if not pattern.startswith("/"):
            pattern = os.path.join(self.conf_dir, pattern)
        copy_root = self._copied_tree_root(pattern)
        if copy_root is not None:
            # A copy of /etc/nginx loaded without --root: following this include would read THIS machine's
            # files into the analysis of another host's config.
            self.errors.append(
                ConfigError(
                    inc.file,
                    inc.line,
                    f"include {inc.args[0]} would read this machine's {os.path.dirname(pattern)}, not the copy: "
                    f"the config looks copied under {copy_root} (give --root {copy_root})",
                )
            )
            inc.includes = []
            return []
        late = self.last is not None and self.last in self.reported
        if _GLOB_MAGIC.search(pattern):
            names = self.source.glob(pattern)
            if late:
                self.late.append(_Late(inc.args[0], True, inc.where, None))
        else:
            if not self.source.exists(pattern):
                error = ConfigError(inc.file, inc.line, self.source.missing(pattern))
                self.errors.append(error)
                if late:
                    self.late.append(_Late(pattern, False, inc.where, error))
                inc.includes = []
                return []
            names = [pattern]
        inc.includes = names
        out: list[Directive] = []
        for name in names:
            if self.source.isdir(name):
                self.errors.append(ConfigError(inc.file, inc.line, f'include "{name}" is a directory'))
                continue
            if name in stack:
                chain = " -> ".join([*stack[stack.index(name) :], name])
                self.errors.append(ConfigError(inc.file, inc.line, f"include cycle: {chain} (not followed)"))
                continue
            stack.append(name)
            try:
                built = self._file(name, parent, stack)
            finally:
                stack.pop()
            if built is None:
                self.errors.append(
                    ConfigError(
                        inc.file, inc.line, f'open() "{name}" failed (13: Permission denied or unreadable)'
                    )
                )
                continue
            out.extend(built)
        return out
