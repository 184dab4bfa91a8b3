"""The whole product against the real lab: every scenario is diagnosed as what it is, locally and over SSH,
with Node backends (socket.io 4, or the scenario's own server: Socket.IO 2, a plain `ws` server) and with
python-socketio ones.

Real nginx, real backends, real sshd on loopback (the root conftest's lab fixtures, shared with the real
socket.io-client tests of tests/lab: the client's outcome is asserted there, the verdicts here). For each
scenario the set of failing checks is exactly the expected one (no spurious failure), and the failing
finding carries the evidence an on-call engineer needs: the probe's answer in the server's own words,
the config line, and over SSH the nginx log line. Healthy deployments pass every check, twice in a row.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re

import pytest

from tests.lab.helpers import KINDS, lab_of
from wsdoctor.demo import lab_target
from wsdoctor.diagnose import Diagnosis
from wsdoctor.lab import Lab
from wsdoctor.remote.session import RemoteSession
from wsdoctor.report import Finding, Status
from wsdoctor.target import Target

pytestmark = pytest.mark.lab

# scenario -> the exact set of checks that must fail (the same for both kinds of backends)
EXPECTED: dict[str, set[str]] = {
    "healthy": set(),
    "healthy-hash": set(),
    "healthy-websocket-only": set(),
    "healthy-fast-ping": set(),
    "seed": {"client", "route"},
    "no-rewrite": {"route"},
    "backend-down": {"upstream"},
    "backend-down-all": {"upstream"},
    "short-timeout": {"timeout"},
    "no-sticky": {"sticky"},
    "bad-auth": {"auth"},
    "no-upgrade": {"upgrade"},
    "header-inheritance": set(),
    "cors-duplicate": {"cors"},
    "version-mismatch": {"protocol"},
    "plain-websocket": {"protocol"},
    "literal-upgrade": {"upgrade"},
    "http10": set(),
}
HEALTHY = tuple(s for s in EXPECTED if s.startswith("healthy"))


def _target(lab: Lab, ssh: bool, **changes: object) -> Target:
    t = lab_target(lab.info())
    if not ssh:
        t.ssh = t.identity = t.known_hosts = None
        t.nginx_conf = lab.info()["nginx_conf"]
    t.backend_log = lab.info()["backend_log"]  # read here without --ssh, on the proxy host with it
    t.timeout = 5.0
    return dataclasses.replace(t, **changes) if changes else t


def _diagnose(target: Target) -> dict[str, Finding]:
    with RemoteSession(target) as session:
        d = Diagnosis(target, session)
        asyncio.run(asyncio.wait_for(d.run(), 90))
    report = d.report()
    if target.ssh:
        assert report.target.get("ssh") == target.ssh
    assert target.token not in report.to_json() + report.to_text() + report.to_markdown()
    return {f.id: f for f in report.findings}


def _failing(findings: dict[str, Finding]) -> set[str]:
    return {cid for cid, f in findings.items() if f.status is Status.FAIL}


def _evidence(f: Finding, kind: str | None = None) -> str:
    return "\n".join(f"{e.where}\n{e.text}" for e in f.evidence if kind is None or e.kind == kind)


# Scenarios whose servers do not depend on --backends (no python Socket.IO 2 exists: both kinds run Node's).
SAME_SERVERS = {"version-mismatch"}
# Over SSH the backend's kind matters where the run reads what the backends say through the proxy host: their
# answers through the SSH forwards (404s, refusals, a plain WebSocket server), their logs, `ss`. Elsewhere the
# SSH path is the same for both kinds, and the local runs prove each verdict on both.
SSH_BOTH_KINDS = {"no-rewrite", "backend-down", "backend-down-all", "bad-auth", "no-sticky", "plain-websocket"}


def _scenario_params(over_ssh: bool = False) -> list:
    out = []
    for scenario in sorted(EXPECTED):
        for kind in KINDS:
            if kind != "node" and (scenario in SAME_SERVERS or (over_ssh and scenario not in SSH_BOTH_KINDS)):
                continue
            out.append(pytest.param(scenario, kind, id=f"{scenario}-{kind}"))
    return out


@pytest.mark.parametrize(("scenario", "kind"), _scenario_params())
def test_scenario_local(lab_factory, scenario: str, kind: str) -> None:
    lab = lab_of(lab_factory, scenario, kind)
    findings = _diagnose(_target(lab, ssh=False))
    assert _failing(findings) == EXPECTED[scenario], {
        c: f.summary for c, f in findings.items() if f.status is Status.FAIL
    }
    _assert_evidence(scenario, kind, lab, findings)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("scenario", HEALTHY)
def test_healthy_deployments_pass_every_check_twice(lab_factory, scenario: str, kind: str) -> None:
    """ip_hash, hash $remote_addr, websocket-only round robin, a fast ping behind a short read timeout: all
    pass, and a second run right after the first too (the probes leave nothing behind that changes it)."""
    lab = lab_of(lab_factory, scenario, kind)
    for run in (1, 2):
        findings = _diagnose(_target(lab, ssh=False))
        not_pass = {c: f.summary for c, f in findings.items() if f.status is not Status.PASS}
        assert not not_pass, (run, not_pass)


def _assert_corrected_auth(findings: dict[str, Finding]) -> None:
    """The runbook's client misses the proxied location: the token is judged on the corrected client's CONNECT."""
    auth = findings["auth"]
    assert auth.status is Status.PASS, auth.summary
    assert auth.summary.startswith("For the corrected request /dev/aiwm/chat/socket.io/… (see client): "), (
        auth.summary
    )


def _assert_evidence(scenario: str, kind: str, lab: Lab, findings: dict[str, Finding]) -> None:
    info = lab.info()
    if scenario == "seed":
        f = findings["client"]
        assert "/dev/aiwm/chat/socket.io" in (f.fix.code if f.fix else "")
        assert "404" in _evidence(findings["route"], "probe") or "404" in findings["route"].summary
        assert "nginx itself answered 404" in findings["route"].summary  # its own page: nginx wrote it
        _assert_corrected_auth(findings)
    elif scenario == "no-rewrite":
        route = findings["route"]
        ev = _evidence(route, "probe")
        assert "404" in ev, ev
        # The 404 is the backend's own (Express's "Cannot GET", python's "Not Found"), never nginx's.
        assert "nginx itself" not in route.summary and "not the one nginx runs" not in route.summary
        who = "the backend's Node app (Express)" if kind == "node" else "the python-engineio backend"
        assert who in route.summary, route.summary
        # No Engine.IO session through the proxy on either transport: the token is judged by a backend itself.
        auth = findings["auth"]
        assert auth.status is Status.PASS, auth.summary
        assert any(
            e.where.startswith(f"CONNECT / over websocket ({b}")
            for b in info["backends"]
            for e in auth.evidence
        )
        fix = route.fix
        assert fix and "+" in fix.diff and "proxy_pass http://chat_ws/chat/;" in fix.diff, fix
    elif scenario == "backend-down":
        dead = info["backends"][2].split("//", 1)[1]
        assert dead in findings["upstream"].summary
        assert "connection refused" in findings["upstream"].summary
    elif scenario == "backend-down-all":
        for b in info["backends"]:
            assert b.split("//", 1)[1] in findings["upstream"].summary + _evidence(findings["upstream"])
    elif scenario == "no-sticky":
        ev = _evidence(findings["sticky"], "probe")
        words = "Session ID unknown" if kind == "node" else "Invalid session"
        assert "400" in ev and words in ev, ev
        assert findings["sticky"].fix and findings["sticky"].fix.diff
    elif scenario == "bad-auth":
        f = findings["auth"]
        assert "authentication failed" in f.summary + _evidence(f)
        assert info["token"] not in json.dumps([e.text for e in f.evidence]) + f.summary
        # --backend-log is read without --ssh too: the backend's own line says why (this run's CONNECT)
        assert "ExpiredSignatureError" in _evidence(f, "log"), _evidence(f)
        if kind == "node":  # next(err) with err.data: the reason travels to the client
            assert "token expired" in _evidence(f, "probe"), _evidence(f)
    elif scenario == "no-upgrade":
        f = findings["upgrade"]
        assert re.search(r"\b(400|403)\b", _evidence(f, "probe")), _evidence(f)
        assert f.fix and "Upgrade" in f.fix.diff
        # The WebSocket is refused, so the CONNECT goes over polling, as the client would: auth has a verdict.
        auth = findings["auth"]
        assert auth.status is Status.PASS and "over polling" in auth.summary, auth.summary
    elif scenario == "header-inheritance":
        f = findings["upgrade"]
        assert f.status is Status.WARN
        assert "Host" in f.summary and "X-Forwarded-For" in f.summary
    elif scenario == "cors-duplicate":
        f = findings["cors"]
        assert "Access-Control-Allow-Origin" in _evidence(f, "probe")
        assert f.fix and f.fix.diff
    elif scenario == "version-mismatch":
        _assert_version_mismatch(findings, client_version=4)
    elif scenario == "plain-websocket":
        _assert_plain_websocket(kind, findings)
    elif scenario == "http10":
        f = findings["upgrade"]
        assert f.status is Status.PASS, f.summary  # the backend upgrades over HTTP/1.0: the live 101 decides
        assert "101" in f.summary + _evidence(f, "probe")
        assert "not the one nginx runs" not in findings["route"].summary


def _assert_version_mismatch(findings: dict[str, Finding], client_version: int) -> None:
    """A Socket.IO 2 server: the route is right (the backend answered, in Engine.IO 3), protocol says why a
    v3/v4 client fails and how out; the rest is diagnosed in Engine.IO 3 (client pings, token in the query)."""
    route = findings["route"]
    assert route.status is Status.PASS and "Engine.IO 3" in route.summary, route.summary
    proto = findings["protocol"]
    assert "97:0{" in _evidence(proto, "probe") or ":0{" in _evidence(proto, "probe"), _evidence(proto)
    assert proto.fix is not None and "allowEIO3: true" in proto.fix.summary
    assert "--client-version 2" in proto.fix.summary or "socket.io-client 2" in proto.fix.summary
    assert proto.status is (Status.FAIL if client_version != 2 else Status.PASS), proto.summary
    auth = findings["auth"]
    assert auth.status is Status.PASS and "the token in the query" in auth.summary, auth.summary
    assert findings["sticky"].status is Status.PASS, findings["sticky"].summary


def _assert_plain_websocket(kind: str, findings: dict[str, Finding]) -> None:
    proto = findings["protocol"]
    lib = "Node `ws`" if kind == "node" else "python `websockets`"
    assert f"a plain WebSocket server ({lib}), not Socket.IO" in proto.summary, proto.summary
    assert "plain HTTP gets 426 Upgrade Required;" in proto.summary, proto.summary
    assert proto.fix is not None and "new WebSocket(" in proto.fix.summary
    assert '"type":"hello"' in proto.summary + _evidence(proto, "probe")
    for cid in ("sticky", "auth", "upstream"):
        f = findings[cid]
        assert f.status is Status.SKIP and "not Socket.IO (see protocol)" in f.summary, (cid, f.summary)
    route = findings["route"]
    assert route.status is Status.PASS and "426" in route.summary and "see protocol" in route.summary
    assert "nginx itself" not in route.summary


@pytest.mark.parametrize("kind", KINDS)
def test_literal_upgrade_blames_the_header_not_nginx(lab_factory, kind: str) -> None:
    """Every polling request reaches the backend as a key-less upgrade: the backend's 400, relayed by nginx,
    is attributed to the backend; route passes and points at upgrade; the WebSocket works."""
    lab = lab_of(lab_factory, "literal-upgrade", kind)
    findings = _diagnose(_target(lab, ssh=False))
    route = findings["route"]
    assert route.status is Status.PASS, route.summary
    assert "Sec-WebSocket-Key" in route.summary and "(see upgrade)" in route.summary, route.summary
    assert "nginx itself" not in route.summary and "not the one nginx runs" not in route.summary
    assert findings["protocol"].status is Status.PASS, findings["protocol"].summary
    assert findings["auth"].status is Status.PASS, findings["auth"].summary
    assert _failing(findings) <= {"upgrade"}, {
        c: f.summary for c, f in findings.items() if c in _failing(findings)
    }


def test_version_mismatch_with_socketio_client_2_passes(lab_factory) -> None:
    """--client-version 2: the same Socket.IO 2 backends are right for these clients."""
    lab = lab_of(lab_factory, "version-mismatch", "node")
    findings = _diagnose(_target(lab, ssh=False, client_version=2))
    assert not {c: f.summary for c, f in findings.items() if f.status is not Status.PASS}
    assert "socket.io-client 2" in findings["protocol"].summary


def test_socketio4_backends_and_socketio_client_2(lab_factory) -> None:
    """--client-version 2 against Socket.IO 4 without allowEIO3: protocol fails with both ways out; the rest
    of the diagnosis speaks what the server speaks and passes."""
    lab = lab_of(lab_factory, "healthy", "node")
    findings = _diagnose(_target(lab, ssh=False, client_version=2))
    assert _failing(findings) == {"protocol"}, {
        c: f.summary for c, f in findings.items() if f.status is not Status.PASS
    }
    proto = findings["protocol"]
    assert "refuse the EIO=3" in proto.summary and "Unsupported protocol version" in proto.summary
    assert (
        proto.fix is not None
        and "allowEIO3: true" in proto.fix.summary
        and "--client-version 4" in proto.fix.summary
    )


@pytest.mark.parametrize("kind", KINDS)
def test_short_timeout_hold_measures_the_drop(lab_factory, kind: str) -> None:
    lab = lab_of(lab_factory, "short-timeout", kind)
    findings = _diagnose(_target(lab, ssh=False, hold=6.0))
    assert _failing(findings) == {"timeout"}
    f = findings["timeout"]
    assert "proxy_read_timeout 3s" in f.summary, f.summary  # the configured value, from the config
    text = f.summary + _evidence(f)
    drop = [float(x) for x in re.findall(r"after (\d+(?:\.\d+)?) s", text)]  # the measured one
    assert drop and any(2.5 <= x <= 4.5 for x in drop), text


# Over SSH: the same verdicts, plus the nginx log lines (of this run) as evidence.
SSH_LOGS = {
    "backend-down": ("upstream", "connect() failed (111"),
    "backend-down-all": ("upstream", "upstream"),  # an error-log line, not only the probes' access lines
    "no-sticky": ("sticky", "sid="),
    "bad-auth": ("auth", "ExpiredSignatureError"),
}


@pytest.mark.parametrize(("scenario", "kind"), _scenario_params(over_ssh=True))
def test_scenario_over_ssh(lab_factory, scenario: str, kind: str) -> None:
    lab = lab_of(lab_factory, scenario, kind)
    findings = _diagnose(_target(lab, ssh=True))
    assert _failing(findings) == EXPECTED[scenario], {
        c: f.summary for c, f in findings.items() if f.status is Status.FAIL
    }
    cid, needle = SSH_LOGS.get(scenario, (None, None))
    if cid and needle:
        assert needle in _evidence(findings[cid], "log"), _evidence(findings[cid])
    if scenario == "backend-down-all":
        errors = [
            e
            for e in findings["upstream"].evidence
            if e.kind == "log" and e.where.startswith(lab.info()["error_log"])
        ]
        assert errors, _evidence(findings["upstream"])
    if scenario == "backend-down":
        # ss -ltnp is cut to nginx and the upstream's ports, and says which server does not listen
        ss = "\n".join(e.text for e in findings["upstream"].evidence if e.where.startswith("$ ss"))
        dead = lab.info()["backends"][2].split("//", 1)[1]
        assert f"nothing listens on port {dead.rsplit(':', 1)[1]}" in ss, ss
        assert "other listening socket" in ss or ss.count("LISTEN") <= 4, ss
        assert "nothing listens on that port, says `ss -ltnp`" in findings["upstream"].summary
    if scenario == "no-upgrade":
        assert findings["auth"].status is Status.PASS and "over polling" in findings["auth"].summary
    if scenario == "seed":
        _assert_corrected_auth(findings)
    if scenario == "no-rewrite":  # judged by a backend, reached through the proxy host's tunnel
        assert findings["auth"].status is Status.PASS, findings["auth"].summary
        assert "nginx itself" not in findings["route"].summary
    if scenario == "version-mismatch":
        _assert_version_mismatch(findings, client_version=4)
    if scenario == "plain-websocket":
        _assert_plain_websocket(kind, findings)


@pytest.mark.parametrize("kind", KINDS)
def test_short_timeout_over_ssh_shows_the_upgraded_timeout_line(lab_factory, kind: str) -> None:
    lab = lab_of(lab_factory, "short-timeout", kind)
    findings = _diagnose(_target(lab, ssh=True, hold=6.0))
    assert _failing(findings) == {"timeout"}
    assert "while proxying upgraded connection" in _evidence(findings["timeout"], "log")
