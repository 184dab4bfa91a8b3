"""The diagnosis header: the chain the engine computed, nginx version, SSH host, elapsed time, totals.

The chain (URL → request → namespace → location → upstream URI) is the one thing an
engineer needs to see to understand a 404: what the client really asks for and where
nginx sends it. All of it may come from remote config, so it is shown as plain text.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual.content import Content
from textual.widgets import Static

from wsdoctor.report import Finding, Status
from wsdoctor.widgets.render import STATUS_STYLE, clean


def chain_content(chain: Sequence[tuple[str, str]], secrets: Sequence[str] = ()) -> Content:
    if not chain:
        return Content.styled("no target yet", "$text-muted")
    parts: list[Content] = []
    for key, value in chain:
        parts.append(
            Content.assemble(
                (key + " ", "$text-muted"),
                (clean(value, secrets, multiline=False), "bold"),
            )
        )
    return Content.styled(" → ", "$accent").join(parts)


def status_line(
    *,
    nginx_version: str | None,
    ssh: str | None,
    elapsed: float | None,
    done: bool,
    findings: Sequence[Finding],
    running: bool,
    error: str | None = None,
) -> Content:
    parts: list[Content] = []
    parts.append(Content.assemble(("nginx ", "$text-muted"), nginx_version or "?"))
    parts.append(Content.assemble(("ssh ", "$text-muted"), clean(ssh, multiline=False) if ssh else "—"))
    if error:
        parts.append(Content.styled(f"stopped: {clean(error, multiline=False)}", "bold $error"))
    elif elapsed is not None:
        state = f"done in {elapsed:.1f} s" if done else f"running {elapsed:.1f} s"
        parts.append(Content.styled(state, "$success" if done else "$accent"))
    elif not running:
        parts.append(Content.styled("idle", "$text-muted"))
    counts = {s: 0 for s in Status}
    for f in findings:
        counts[f.status] += 1
    totals = []
    for status in (Status.FAIL, Status.WARN, Status.PASS, Status.SKIP):
        symbol, word, style = STATUS_STYLE[status]
        totals.append(Content.styled(f"{symbol} {counts[status]} {word.lower()}", style))
    parts.append(Content(" ").join(totals))
    return Content.styled(" · ", "$text-muted").join(parts)


class ChainHeader(Static):
    """Two parts: the chain (wraps as needed) and one status line."""

    DEFAULT_CSS = """
    ChainHeader {
        background: $boost;
        padding: 0 1;
        height: auto;
        max-height: 6;
        border-bottom: solid $primary 50%;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self._last: tuple[object, ...] | None = None

    def show(self, chain: Content, status: Content, notes: Content | None = None) -> None:
        lines = [chain, status] + ([notes] if notes is not None else [])
        key = tuple((c.plain, tuple(c.spans)) for c in lines)  # Content == compares text only
        if key == self._last:
            return
        self._last = key
        self.update(Content("\n").join(lines))
