"""The checks: one module per check id, each a pure function of the facts.

Every module exposes:

- ``ID``: the stable check id (DESIGN.md);
- ``TITLE``: a short title for the runbook-ordered listings;
- ``NEEDS``: the fact names (see ``Facts.pending``) whose arrival may change the verdict;
  while one of them is pending the finding is shown as pending;
- ``check(facts) -> Finding``: never raises for missing facts; says ``skip`` with the reason.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from wsdoctor.facts import Facts
from wsdoctor.report import CHECK_IDS, Finding, Status


def module(cid: str) -> ModuleType:
    return importlib.import_module(f"wsdoctor.checks.{cid}")


def skip(cid: str, title: str, reason: str) -> Finding:
    return Finding(id=cid, status=Status.SKIP, title=title, summary=reason)


def run_check(cid: str, facts: Facts) -> Finding:
    """Run one check; a bug in a check becomes a visible finding, never a crash of the run."""
    mod = module(cid)
    try:
        return mod.check(facts)
    except Exception as e:  # noqa: BLE001 - a check bug must not kill the diagnosis
        return Finding(
            id=cid,
            status=Status.SKIP,
            title=getattr(mod, "TITLE", cid),
            summary=f"internal error in check {cid}: {type(e).__name__}: {e} (please report this)",
        )


def run_all(facts: Facts) -> dict[str, Finding]:
    return {cid: run_check(cid, facts) for cid in CHECK_IDS}


def is_pending(cid: str, facts: Facts) -> bool:
    return bool(set(getattr(module(cid), "NEEDS", ())) & facts.pending)
