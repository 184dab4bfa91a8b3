"""The runbook's own config and client (the seed): what wsdoctor must say about them, from a dump and a tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.checks.helpers import (
    RUNBOOK_URL,
    SEED_DUMP,
    SEED_TREE,
    apply_diff,
    make_facts,
    parse_client_code,
    run,
)
from wsdoctor.report import Status

FIXED = {"url": "wss://api.x-or.cloud", "path": "/dev/aiwm/chat/socket.io"}


def _facts(source: str, **kw):
    if source == "dump":
        return make_facts(dump=SEED_DUMP, **kw)
    return make_facts(root=SEED_TREE, **kw)


@pytest.mark.parametrize("source", ["dump", "tree"])
def test_runbook_client_fails_client_and_route(source: str) -> None:
    f = run(_facts(source, url=RUNBOOK_URL, transports=("websocket",), version=None))
    assert f["client"].status is Status.FAIL
    assert f["route"].status is Status.FAIL
    assert "/socket.io/" in f["route"].title and "404" in f["route"].title
    assert "namespace /dev/aiwm/chat" in f["client"].summary
    assert "GET /socket.io/?EIO=4&transport=websocket" in f["client"].summary
    code = f["client"].fix.code
    assert "io('wss://api.x-or.cloud', {" in code and "path: '/dev/aiwm/chat/socket.io'" in code
    assert "transports: ['websocket']" in code
    assert any(e.where == "/etc/nginx/sites-enabled/api.x-or.cloud:12" for e in f["client"].evidence)
    others = {cid: x.status for cid, x in f.items() if cid not in ("client", "route")}
    assert Status.FAIL not in others.values(), others


@pytest.mark.parametrize("source", ["dump", "tree"])
def test_runbook_client_config_checks_judge_the_corrected_request(source: str) -> None:
    """The runbook's own client misses the Socket.IO location; the config checks judge the location the
    corrected request reaches (the one `client` names) instead of skipping, and say so."""
    f = run(_facts(source, url=RUNBOOK_URL, transports=("websocket",), version="1.22.1"))
    lead = "For the corrected request /dev/aiwm/chat/socket.io/… (see client): "
    t = f["timeout"]
    assert (
        t.status is Status.WARN and "proxy_connect_timeout" in t.title
    )  # the 7 days, before the client is fixed
    assert t.summary.startswith(lead) and "/etc/nginx/sites-enabled/api.x-or.cloud:32" in t.summary
    assert t.fix is not None and "+        proxy_connect_timeout 5s;" in t.fix.diff
    for cid in ("upgrade", "buffering", "cors", "sticky"):
        assert f[cid].status is Status.PASS, (cid, f[cid].summary)
        assert f[cid].summary.startswith(lead), (cid, f[cid].summary)
        assert "location /dev/aiwm/chat/" in f[cid].summary or cid == "sticky"
    assert f["client"].status is Status.FAIL and f["route"].status is Status.FAIL
    # the same checks with the client fixed: the same verdicts, the same words without the lead
    fixed = run(_facts(source, version="1.22.1", transports=("websocket",), **FIXED))
    for cid in ("timeout", "upgrade", "buffering", "cors", "sticky"):
        assert fixed[cid].status is f[cid].status, cid
        assert fixed[cid].summary.lower() == f[cid].summary.removeprefix(lead).lower(), cid


@pytest.mark.parametrize("source", ["dump", "tree"])
@pytest.mark.parametrize("version", [None, "1.22.1"])
def test_corrected_client_passes_and_warns_the_connect_timeout(source: str, version: str | None) -> None:
    f = run(_facts(source, version=version, **FIXED))
    for cid in ("client", "route", "upgrade", "sticky"):
        assert f[cid].status is Status.PASS, (cid, f[cid].summary)
    t = f["timeout"]
    assert t.status is Status.WARN
    assert "proxy_connect_timeout" in t.title
    assert "/etc/nginx/sites-enabled/api.x-or.cloud:32" in t.summary
    assert "25 s" in t.summary and "assumed" in t.summary  # offline: the Socket.IO default, said so
    assert "upstream as http://api-aiwm-ws/chat/socket.io/?EIO=4&transport=polling" in f["route"].summary
    assert "order" in f["route"].summary  # prefix order does not matter: never flagged
    assert all(x.status is not Status.FAIL for x in f.values())
    # offline: the checks that need probes skip with the reason
    for cid in ("upstream", "auth", "tls"):
        assert f[cid].status is Status.SKIP and "--offline" in f[cid].summary


def test_dump_and_tree_give_the_same_findings() -> None:
    for kw in ({"url": RUNBOOK_URL, "transports": ("websocket",)}, FIXED):
        a = run(_facts("dump", **kw))
        b = run(_facts("tree", **kw))
        for cid in a:
            ja, jb = a[cid].to_json(), b[cid].to_json()
            # the source description differs (dump file vs tree), nothing else may
            for j in (ja, jb):
                j["summary"] = j["summary"].split(" parsed without errors")[-1]
            assert ja == jb, cid


def test_timeout_fix_applies_to_the_seed_tree(tmp_path: Path) -> None:
    t = run(_facts("tree", **FIXED))["timeout"]
    assert t.fix is not None and t.fix.diff.startswith("--- a/etc/nginx/sites-enabled/api.x-or.cloud\n")
    assert "+        proxy_connect_timeout 5s;" in t.fix.diff
    tree = apply_diff(SEED_TREE, t.fix.diff, tmp_path)
    again = run(make_facts(root=tree, **FIXED))
    assert again["timeout"].status is Status.PASS, again["timeout"].summary
    assert all(x.status is not Status.FAIL for x in again.values())


def test_client_fix_code_makes_client_and_route_pass() -> None:
    f = run(_facts("dump", url=RUNBOOK_URL, transports=("websocket",)))
    url, path, transports = parse_client_code(f["client"].fix.code)
    again = run(_facts("dump", url=url, path=path, transports=transports))
    assert again["client"].status is Status.PASS
    assert again["route"].status is Status.PASS
    # the route fix points at the same client code
    assert f["route"].fix.code == f["client"].fix.code


@pytest.mark.parametrize(("ok", "status"), [(True, Status.PASS), (False, Status.FAIL)])
def test_auth_judges_the_corrected_connect_with_the_lead(ok: bool, status: Status) -> None:
    """The runbook's client misses the proxied location, so gather sends the corrected client's CONNECT
    (path /dev/aiwm/chat/socket.io/, namespace "/"): auth judges it and says it is the corrected request."""
    from wsdoctor.checks import auth
    from wsdoctor.facts import ConnectProbe, Exchange

    facts = _facts("tree", url=RUNBOOK_URL, transports=("websocket",), token="opaque-token")
    url = "wss://api.x-or.cloud/dev/aiwm/chat/socket.io/?EIO=4&transport=websocket"
    facts.connect = ConnectProbe(
        where="proxy",
        namespace="/",
        transport="websocket",
        exchanges=[Exchange("GET", url, status=101)],
        ok=ok,
        refused_message=None if ok else "authentication failed",
        sent_token=True,
    )
    f = auth.check(facts)
    assert f.status is status, f.summary
    assert f.summary.startswith("For the corrected request /dev/aiwm/chat/socket.io/… (see client): "), (
        f.summary
    )
    # the client's own namespace, refused as unknown: no lead, and no verdict on the token
    facts.connect = ConnectProbe(
        where="proxy", namespace="/dev/aiwm/chat", transport="websocket", refused_message="Invalid namespace"
    )
    assert auth.check(facts).status is Status.SKIP
