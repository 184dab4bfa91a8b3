"""The whole product against the real lab: every scenario is diagnosed as what it is, locally and over SSH.

Real nginx, real python-socketio backends, real sshd on loopback (the root conftest's lab fixtures).
For each scenario the set of failing checks is exactly the expected one (no spurious failure), and the
failing finding carries the evidence an on-call engineer needs: the probe's answer, the config line,
and over SSH the nginx log line.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re

import pytest

from wsdoctor.demo import lab_target
from wsdoctor.diagnose import Diagnosis
from wsdoctor.remote.session import RemoteSession
from wsdoctor.report import Finding, Status
from wsdoctor.target import Target

# scenario -> the exact set of checks that must fail
EXPECTED: dict[str, set[str]] = {
    "healthy": set(),
    "seed": {"client", "route"},
    "no-rewrite": {"route"},
    "backend-down": {"upstream"},
    "backend-down-all": {"upstream"},
    "no-sticky": {"sticky"},
    "bad-auth": {"auth"},
    "no-upgrade": {"upgrade"},
    "header-inheritance": set(),
    "cors-duplicate": {"cors"},
}


def _target(lab, ssh: bool, **changes) -> Target:
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


@pytest.mark.lab
@pytest.mark.parametrize("scenario", sorted(EXPECTED))
def test_scenario_local(lab_factory, scenario: str) -> None:
    lab = lab_factory(scenario)
    findings = _diagnose(_target(lab, ssh=False))
    assert _failing(findings) == EXPECTED[scenario], {
        c: f.summary for c, f in findings.items() if f.status is Status.FAIL
    }
    _assert_evidence(scenario, lab, findings)
    if scenario == "healthy":
        skipped = {c: f.summary for c, f in findings.items() if f.status is not Status.PASS}
        assert not skipped, skipped


def _assert_corrected_auth(findings: dict[str, Finding]) -> None:
    """The runbook's client misses the proxied location: the token is judged on the corrected client's CONNECT."""
    auth = findings["auth"]
    assert auth.status is Status.PASS, auth.summary
    assert auth.summary.startswith("For the corrected request /dev/aiwm/chat/socket.io/… (see client): "), (
        auth.summary
    )


def _assert_evidence(scenario: str, lab, findings: dict[str, Finding]) -> None:
    info = lab.info()
    if scenario == "seed":
        f = findings["client"]
        assert "/dev/aiwm/chat/socket.io" in (f.fix.code if f.fix else "")
        assert "404" in _evidence(findings["route"], "probe") or "404" in findings["route"].summary
        _assert_corrected_auth(findings)
    elif scenario == "no-rewrite":
        ev = _evidence(findings["route"], "probe")
        assert "404" in ev, ev
        # No Engine.IO session through the proxy on either transport: the token is judged by a backend itself.
        auth = findings["auth"]
        assert auth.status is Status.PASS, auth.summary
        assert any(
            e.where.startswith(f"CONNECT / over websocket ({b}")
            for b in info["backends"]
            for e in auth.evidence
        )
        fix = findings["route"].fix
        assert fix and "+" in fix.diff and "proxy_pass http://chat_ws/chat/;" in fix.diff, fix
    elif scenario == "backend-down":
        dead = info["backends"][2].split("//", 1)[1]
        assert dead in findings["upstream"].summary
    elif scenario == "backend-down-all":
        for b in info["backends"]:
            assert b.split("//", 1)[1] in findings["upstream"].summary + _evidence(findings["upstream"])
    elif scenario == "no-sticky":
        ev = _evidence(findings["sticky"], "probe")
        assert "400" in ev and "Invalid session" in ev, ev
        assert findings["sticky"].fix and findings["sticky"].fix.diff
    elif scenario == "bad-auth":
        f = findings["auth"]
        assert "authentication failed" in f.summary + _evidence(f)
        assert info["token"] not in json.dumps([e.text for e in f.evidence]) + f.summary
        # --backend-log is read without --ssh too: the backend's own line says why (this run's CONNECT)
        assert "ExpiredSignatureError" in _evidence(f, "log"), _evidence(f)
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


@pytest.mark.lab
def test_short_timeout_hold_measures_the_drop(lab_factory) -> None:
    lab = lab_factory("short-timeout")
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


@pytest.mark.lab
@pytest.mark.parametrize("scenario", sorted(EXPECTED))
def test_scenario_over_ssh(lab_factory, scenario: str) -> None:
    lab = lab_factory(scenario)
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
    if scenario == "no-upgrade":
        assert findings["auth"].status is Status.PASS and "over polling" in findings["auth"].summary
    if scenario == "seed":
        _assert_corrected_auth(findings)
    if scenario == "no-rewrite":  # judged by a backend, reached through the proxy host's tunnel
        assert findings["auth"].status is Status.PASS, findings["auth"].summary


@pytest.mark.lab
def test_short_timeout_over_ssh_shows_the_upgraded_timeout_line(lab_factory) -> None:
    lab = lab_factory("short-timeout")
    findings = _diagnose(_target(lab, ssh=True, hold=6.0))
    assert _failing(findings) == {"timeout"}
    assert "while proxying upgraded connection" in _evidence(findings["timeout"], "log")
