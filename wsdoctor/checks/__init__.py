"""The checks: one module per check id, each a pure function of the facts, all of one shape.

Every module exposes:

- ``ID``: the stable check id (the JSON report's ``id``; listed in ``report.GROUPS``);
- ``TITLE``: a short title for the runbook-ordered listings;
- ``NEEDS``: the ``facts.Fact`` members whose arrival may change the verdict; while one of them is pending
  the finding is shown as pending;
- ``check(facts) -> Finding``: never raises for missing facts; says ``skip`` with the reason.

``check`` is a ``_flow.Flow``, which runs the same steps for every check:

1. **where** (``facts -> Place``): the place the check judges, or why it cannot (the skip reason). Checks of
   the Socket.IO location use ``reading(READS)``: the proxied location the Socket.IO requests reach (the
   corrected request's when the client's own misses it), waiting for `syntax` when a statement among READS
   (the directives the verdict builds on) is one nginx refuses. ``needs_client`` or a check's own function
   otherwise.
2. **the config half** (``facts, place -> Verdict | None``, or the check's own record of what the config
   says), run only when the place has no skip reason: status, title, one sentence, the config lines as
   evidence (``cfg_lines_ev``) and a ``Fix`` whose diff is ``diff_of(config, edit)``.
3. **the live half** (``facts, place -> Live``, or the check's own observations): what the probes and logs
   show, with their evidence. A probe sent for the client's own request says nothing about a corrected
   place: the live half drops it then.
4. **combine** (``facts, place, config half, live half -> Verdict``): the one place that decides: the config
   verdict confirmed by the probes ("…; live: …"), contradicted ("Config and live proxy disagree"), the probes
   alone when the config cannot be judged, or ``skip(reason)``. Without a combine the flow gives the config
   half's verdict, else a skip with the place's reason.

The flow then makes the Finding: the check's TITLE when the verdict has none, the summary opened by the
corrected-request lead (and ``Finding.corrected`` set) when the place is the corrected request's and the
verdict speaks of it (``Verdict.lead``), secret-looking text redacted.

Adding a config-only check: ``wsdoctor/checks/<id>.py`` with ID, TITLE, ``NEEDS = (Fact.CONFIG,)``, READS and
a config half, ending in ``check = Flow(ID, TITLE, reading(READS), config=_config)``; fixtures under
``tests/checks/fixtures/<id>/<status>_<what>/`` (a config tree and ``case.json``); the id in ``report.GROUPS``
(and in the id enum of ``docs/report.schema.json``, the JSON contract). A check that mostly reads probes
gives ``needs_client`` (or its own where), no config half, a live half and a combine.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from wsdoctor.facts import Facts
from wsdoctor.report import CHECK_IDS, Finding, Status, clip_long_lines


def module(cid: str) -> ModuleType:
    return importlib.import_module(f"wsdoctor.checks.{cid}")


def run_check(cid: str, facts: Facts) -> Finding:
    """Run one check; a bug in a check becomes a visible finding, never a crash of the run."""
    mod = module(cid)
    try:
        finding = mod.check(facts)
    except Exception as e:  # noqa: BLE001 - a check bug must not kill the diagnosis
        return Finding(
            id=cid,
            status=Status.SKIP,
            title=getattr(mod, "TITLE", cid),
            summary=f"internal error in check {cid}: {type(e).__name__}: {e} (please report this)",
        )
    # A name or value from outside (a 10 MB server_name) is quoted at most EVIDENCE_LINE_CAP characters long
    # in the sentences; the fix's diff keeps every byte (it must apply).
    finding.title, finding.summary = clip_long_lines(finding.title), clip_long_lines(finding.summary)
    if finding.fix is not None:
        finding.fix.summary = clip_long_lines(finding.fix.summary)
    return finding


def run_all(facts: Facts) -> dict[str, Finding]:
    return {cid: run_check(cid, facts) for cid in CHECK_IDS}


def is_pending(cid: str, facts: Facts) -> bool:
    return bool(set(getattr(module(cid), "NEEDS", ())) & facts.pending)
