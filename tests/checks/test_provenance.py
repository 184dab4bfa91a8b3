"""Where every input came from, in every format: the nginx version and its source (`nginx -v here`,
`nginx -V on HOST`, `--nginx-version`, or unknown), and each config file read from this machine rather than
the target (an absolute include of a `--nginx-conf` given without `--root`)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import jsonschema
import pytest

from wsdoctor.cli import main as wsdoctor_main
from wsdoctor.nginx import testcopy
from wsdoctor.nginx.version import local_version
from wsdoctor.report import Report

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "docs/report.schema.json").read_text())
HERE = local_version(testcopy.find_binary() or "") if testcopy.find_binary() else None


def site(tmp: Path) -> tuple[Path, Path]:
    """A config copied to a directory of its own that includes a file by an absolute path outside it."""
    shared = tmp / "shared/proxy_params"
    shared.parent.mkdir(parents=True)
    shared.write_text("proxy_set_header Host $http_host;\n")
    main = tmp / "copied/nginx.conf"
    main.parent.mkdir(parents=True)
    main.write_text(
        "events {}\nhttp {\n    server {\n        listen 80;\n        server_name notes.example.com;\n"
        "        location /socket.io/ {\n"
        f"            include {shared};\n"
        "            proxy_set_header Upgrade $http_upgrade;\n            proxy_set_header Connection upgrade;\n"
        "            proxy_pass http://127.0.0.1:3000;\n        }\n    }\n}\n"
    )
    return main, shared


def check(fmt: str, *argv: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = wsdoctor_main(
            ["check", "--offline", "--format", fmt, "--url", "http://notes.example.com", *argv]
        )
    assert code in (0, 1), out.getvalue()
    return out.getvalue()


@pytest.mark.skipif(HERE is None, reason="no nginx binary on this machine")
def test_version_from_this_machine_and_files_read_here_are_said_in_every_format(tmp_path: Path) -> None:
    main, shared = site(tmp_path)
    data = json.loads(check("json", "--nginx-conf", str(main)))
    jsonschema.validate(data, SCHEMA)
    t = data["target"]
    assert t["nginx_version"] == HERE and t["nginx_version_source"] == "nginx -v here"
    assert t["local_files"] == [str(shared)]
    text = check("text", "--nginx-conf", str(main), "--brief")
    assert f"  nginx version: {HERE} (from nginx -v here)\n" in text
    assert f"  read from this machine, not the target: {shared}\n" in text
    md = check("markdown", "--nginx-conf", str(main))
    assert f"- **nginx version**: `{HERE}` (from nginx -v here)" in md
    assert f"- **read from this machine, not the target**: `{shared}`" in md


def test_version_option_and_unknown_are_said(tmp_path: Path) -> None:
    main, _shared = site(tmp_path)
    t = json.loads(check("json", "--nginx-conf", str(main), "--nginx-version", "1.26.2"))["target"]
    assert t["nginx_version"] == "1.26.2" and t["nginx_version_source"] == "--nginx-version"
    # A copied tree (--root) is not this machine's nginx: no `nginx -v` here, and nothing read from here.
    tree = tmp_path / "tree"
    (tree / "etc/nginx").mkdir(parents=True)
    (tree / "etc/nginx/nginx.conf").write_text(
        main.read_text().replace(str(_shared), "/etc/nginx/proxy_params")
    )
    (tree / "etc/nginx/proxy_params").write_text("proxy_set_header Host $http_host;\n")
    argv = ("--nginx-conf", str(tree / "etc/nginx/nginx.conf"), "--root", str(tree))
    data = json.loads(check("json", *argv))
    jsonschema.validate(data, SCHEMA)
    assert "nginx_version" not in data["target"] and data["target"]["nginx_version_source"] == "unknown"
    assert "local_files" not in data["target"]
    assert "  nginx version: unknown (give --nginx-version" in check("text", *argv)


def test_no_config_says_no_version_source() -> None:
    data = json.loads(check("json"))
    assert "nginx_version_source" not in data["target"]


def test_the_schema_takes_the_remote_source_and_refuses_a_made_up_one() -> None:
    target = {"url": "wss://x", "nginx_version": "1.22.1", "nginx_version_source": "nginx -V on root@lb1"}
    jsonschema.validate(Report(target=target, findings=[]).to_dict(), SCHEMA)
    target["nginx_version_source"] = "a guess"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(Report(target=target, findings=[]).to_dict(), SCHEMA)
