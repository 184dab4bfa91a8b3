"""Report renderings: the JSON contract, grouping by the runbook's five issues, redaction of secrets."""

from __future__ import annotations

import json
from pathlib import Path

from wsdoctor.report import CHECK_IDS, GROUPS, Evidence, Finding, Fix, Report, Status, redact

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlc2lnbmF0dXJl"


def _report() -> Report:
    findings = [
        Finding(cid, Status.PASS, f"{cid} title", f"{cid} is fine")
        for cid in CHECK_IDS
        if cid not in ("auth", "route")
    ]
    findings.append(
        Finding(
            "auth",
            Status.FAIL,
            "Authentication refused",
            f"The server refused the token {TOKEN}.",
            [
                Evidence(
                    "probe",
                    "GET wss://x/socket.io/",
                    f'Authorization: Bearer {TOKEN}\nCookie: io=abc; s=1\n40{{"token":"{TOKEN}"}}',
                )
            ],
            Fix("Renew the token", code=f"io(url, {{auth: {{token: '{TOKEN}'}}}})"),
        )
    )
    findings.append(
        Finding(
            "route",
            Status.WARN,
            "Route",
            "a | pipe",
            [Evidence("config", "/etc/nginx/x.conf:3", "  3 | location / {")],
            Fix("x", diff="--- a/etc/nginx/x.conf\n+++ b/etc/nginx/x.conf\n@@ -1 +1 @@\n-a\n+b\n"),
        )
    )
    return Report(target={"url": "wss://x", "token": TOKEN}, findings=findings, secrets=[TOKEN])


def test_json_contract() -> None:
    import jsonschema

    data = json.loads(_report().to_json())
    schema = json.loads((Path(__file__).resolve().parents[2] / "docs" / "report.schema.json").read_text())
    jsonschema.validate(data, schema)
    assert data["version"] == 1
    assert data["wsdoctor"] == "0.1.0"
    assert [f["id"] for f in data["findings"]] == list(CHECK_IDS)
    assert data["summary"] == {"pass": len(CHECK_IDS) - 2, "warn": 1, "fail": 1, "skip": 0}
    for f in data["findings"]:
        assert set(f) == {"id", "status", "title", "summary", "evidence", "fix"}
        for e in f["evidence"]:
            assert set(e) == {"kind", "where", "text"}
            assert e["kind"] in ("config", "probe", "log", "command")


def test_secrets_never_rendered() -> None:
    r = _report()
    for out in (r.to_json(), r.to_text(), r.to_text(color=True), r.to_markdown()):
        assert TOKEN not in out
        assert "io=abc" not in out
        assert "***" in out


def test_redact_patterns_without_known_secret() -> None:
    assert "abc.def" not in redact("Authorization: Bearer abc.def")
    assert redact('{"token":"hunter22"}') == '{"token":"***"}'
    assert "s3cr3t" not in redact("GET /socket.io/?EIO=4&token=s3cr3t&transport=polling")
    assert redact("nothing secret here") == "nothing secret here"


def test_text_is_grouped_by_runbook_issues() -> None:
    text = _report().to_text()
    positions = [text.index(group) for group, _ in GROUPS]
    assert positions == sorted(positions)
    assert "\x1b[" not in text  # no colour unless asked
    assert "\x1b[" in _report().to_text(color=True)


def test_exit_code() -> None:
    assert _report().exit_code() == 1
    ok = Report(target={}, findings=[Finding("client", Status.WARN, "t", "s")])
    assert ok.exit_code() == 0


def test_engine_path_candidates() -> None:
    from wsdoctor.gather.probes import engine_path_candidates

    assert engine_path_candidates("/dev/aiwm/chat/socket.io/?EIO=4&transport=polling") == [
        "/dev/aiwm/chat/socket.io/",
        "/aiwm/chat/socket.io/",
        "/chat/socket.io/",
        "/socket.io/",
    ]
    assert engine_path_candidates("/x") == ["/x/", "/socket.io/"]
