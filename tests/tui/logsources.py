"""Fake log sources implementing the TUI's protocol: ``factory(session, facts) -> async iterator of batches``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace

from wsdoctor.facts import Facts, LogEvent
from wsdoctor.remote.session import RemoteSession


@dataclass
class SourceState:
    started: int = 0
    closed: int = 0
    sent: int = 0
    elapsed: float = 0.0  # seconds from the first line to the last one sent
    go: bool = True  # a gated flood waits until this is set


def scripted_source(batches: Sequence[Sequence[LogEvent]], *, delay: float = 0.0, hold: bool = True):
    """Yield the given batches, then (with ``hold``) wait like a quiet ``tail -f`` until cancelled."""
    state = SourceState()

    async def factory(session: RemoteSession, facts: Facts) -> AsyncIterator[list[LogEvent]]:
        state.started += 1
        try:
            for batch in batches:
                if delay:
                    await asyncio.sleep(delay)
                state.sent += len(batch)
                yield list(batch)
            if hold:
                await asyncio.sleep(3600)
        finally:
            state.closed += 1

    factory.state = state  # type: ignore[attr-defined]
    return factory


def flood_source(
    templates: Sequence[LogEvent],
    *,
    rate: int = 10_000,
    duration: float = 2.0,
    tick: float = 0.02,
    gated: bool = False,
    numbered: bool = True,
):
    """``rate`` lines per second for ``duration`` seconds in batches every ``tick``, keeping the pace
    (after ``state.go`` is set, when ``gated``); ``numbered`` lines end with their number (each its own
    text), else they share the template's text (megabyte lines without copying megabytes here)."""
    state = SourceState(go=not gated)

    async def factory(session: RemoteSession, facts: Facts) -> AsyncIterator[list[LogEvent]]:
        state.started += 1
        while not state.go:
            await asyncio.sleep(0.01)
        start = time.perf_counter()
        total = int(rate * duration)
        n = 0
        try:
            while n < total:
                due = min(int((time.perf_counter() - start) * rate), total) - n  # a late wake-up catches up
                if due > 0:
                    batch = []
                    for i in range(n, n + due):
                        t = templates[i % len(templates)]
                        text = f"{t.text} #{i}" if numbered else t.text
                        batch.append(replace(t, line_no=i, text=text))
                    n += due
                    state.sent = n
                    yield batch
                if n < total:
                    await asyncio.sleep(tick)
            state.elapsed = time.perf_counter() - start
        finally:
            state.closed += 1

    factory.state = state  # type: ignore[attr-defined]
    return factory
