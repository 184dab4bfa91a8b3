"""The one shape of every check: where it looks, the config half, the live half, one verdict, the finding.

``Flow`` runs the steps in the same order for every check (the package docstring says how a check is
written); ``Verdict`` is what a half or the whole concludes, ``Live`` what the probes and logs show.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from wsdoctor.checks import _util as u
from wsdoctor.checks._util import Place
from wsdoctor.facts import Facts
from wsdoctor.report import Evidence, Finding, Fix, Status


@dataclass
class Verdict:
    """A conclusion: the finding before the flow names its check and opens it with the place's lead."""

    status: Status
    title: str  # "" for the check's TITLE
    summary: str
    evidence: list[Evidence] = field(default_factory=list)
    fix: Fix | None = None
    # What the config half expects the probes to see ("proxied", "404", …), for the combine to agree or not.
    predicts: str = ""
    # The summary speaks of the place judged: opened by the corrected-request lead when the place is the
    # corrected request's (then Finding.corrected is set too).
    lead: bool = True

    def then(self, clause: str, sep: str = "; ") -> str:
        """The summary, its final stop dropped, continued by SEP and CLAUSE (which ends the sentence itself)."""
        return f"{self.summary.rstrip('.')}{sep}{clause}"


@dataclass
class Problem:
    """One thing the config half finds wrong: its own status, title and sentence, and what the fix edits."""

    status: Status
    title: str
    sentence: str
    edit: Any = None  # the check's description of the change that fixes it


_RANK = {Status.PASS: 0, Status.SKIP: 0, Status.WARN: 1, Status.FAIL: 2}


def worst(problems: list[Problem]) -> Problem:
    """The problem that sets the verdict: the first of the worst status."""
    return max(problems, key=lambda p: _RANK[p.status])


def problems_text(problems: list[Problem]) -> str:
    """The worst problem's sentence, then the others ("… Also: …")."""
    main = worst(problems)
    others = [p.sentence for p in problems if p is not main]
    return main.sentence + (f" Also: {' '.join(others)}" if others else "")


def skip(reason: str, evidence: list[Evidence] | None = None) -> Verdict:
    """The check cannot judge: REASON says why (a missing fact, a refused statement, a dead endpoint)."""
    return Verdict(Status.SKIP, "", reason, list(evidence or []), lead=False)


@dataclass
class Live:
    """What the probes and logs show: their evidence and the clauses the combine adds to the config's sentence."""

    evidence: list[Evidence] = field(default_factory=list)
    ok: str | None = None  # what they confirm ("live: 101 Switching Protocols through the proxy")
    fail: str | None = None  # what they show failing ("live: the WebSocket request got 400 …")
    notes: list[str] = field(default_factory=list)  # what they leave open (the endpoint is dead, …)


Where = Callable[[Facts], Place]
ConfigHalf = Callable[[Facts, Place], Verdict | None]
LiveHalf = Callable[[Facts, Place], Any]  # a Live, or the check's own observations (None: nothing seen)
Combine = Callable[[Facts, Place, Verdict | None, Any], Verdict]


def reading(reads: tuple[str, ...], upstream: bool = False) -> Where:
    """Where for the checks that judge the Socket.IO location: READS are the directives the verdict builds on
    (a statement nginx refuses among them makes the check wait for `syntax`); UPSTREAM adds the upstream block."""
    return lambda facts: u.socketio_place(facts, reads, upstream)


def needs_client(facts: Facts) -> Place:
    """Where for the checks that need only the client's request (no location)."""
    return Place(None, u.client_missing(facts))


class Flow:
    """A check: ``where`` → the config half (only when the place has no skip reason) → the live half → combine.

    Without a combine the verdict is the config half's, else a skip with the place's reason (a config half
    that judges whenever the place has no reason returns a Verdict every time).
    """

    def __init__(
        self,
        cid: str,
        title: str,
        where: Where,
        config: ConfigHalf | None = None,
        live: LiveHalf | None = None,
        combine: Combine | None = None,
    ) -> None:
        self.cid, self.title, self.where = cid, title, where
        self.config, self.live, self.combine = config, live, combine

    def __call__(self, facts: Facts) -> Finding:
        place = self.where(facts)
        judged = self.config(facts, place) if self.config is not None and place.why is None else None
        seen = self.live(facts, place) if self.live is not None else None
        if self.combine is not None:
            verdict = self.combine(facts, place, judged, seen)
        else:
            verdict = (
                judged if judged is not None else skip(place.why or "nothing in the config for this check")
            )
        return self.finding(place, verdict)

    def finding(self, place: Place, v: Verdict) -> Finding:
        corrected = place.corrected if v.lead else None
        return u.finding(
            self.cid,
            v.status,
            v.title or self.title,
            place.say(v.summary) if corrected else v.summary,
            v.evidence,
            v.fix,
            corrected=corrected,
        )
