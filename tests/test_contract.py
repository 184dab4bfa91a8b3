"""The architecture's contract: the layers of pyproject.toml hold, the headless core never imports Textual
(not even at run time), and the CLI keeps its promises."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "wsdoctor"
CORE = [
    "checks",
    "nginx",
    "wire",
    "probes",
    "remote",
    "gather",
    "report.py",
    "diagnose.py",
    "facts.py",
    "routes.py",
    "logtime.py",
    "target.py",
    "errors.py",
    "logkinds.py",
]


def _core_files() -> list[Path]:
    files: list[Path] = []
    for name in CORE:
        p = PKG / name
        if p.is_dir():
            files += sorted(p.rglob("*.py"))
        elif p.exists():
            files.append(p)
    return files


def test_core_files_exist() -> None:
    assert len(_core_files()) >= 8


def test_import_contracts_hold() -> None:
    """The layers and the forbidden imports declared in pyproject.toml, as `lint-imports` checks them (every
    import statement, function-level ones included)."""
    lint = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(lint), "--no-cache"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


def test_core_import_at_runtime_pulls_no_textual() -> None:
    mods = []
    for p in _core_files():
        rel = p.relative_to(ROOT).with_suffix("")
        mod = ".".join(rel.parts)
        if mod.endswith(".__init__"):
            mod = mod[: -len(".__init__")]
        mods.append(mod)
    code = (
        "import importlib, sys\n"
        f"for m in {mods!r}:\n    importlib.import_module(m)\n"
        "print(sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def _wsdoctor(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wsdoctor", *args],
        capture_output=True,
        text=True,
        timeout=60,
        input=stdin,
        cwd=ROOT,
    )


def test_version() -> None:
    out = _wsdoctor("--version")
    assert out.returncode == 0
    assert out.stdout.strip() == "wsdoctor 0.1.0"


def test_help_lists_subcommands() -> None:
    out = _wsdoctor("--help")
    assert out.returncode == 0
    for cmd in ("check", "generate", "lab", "demo"):
        assert f"wsdoctor {cmd}" in out.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("check", "--bogus"),
        ("check", "--transports", "carrier-pigeon", "--url", "wss://x"),
        ("check",),
        ("check", "--nginx-conf", "/nonexistent/nginx.conf", "--offline"),
        ("check", "--nginx-dump", "/nonexistent/dump.txt", "--offline"),
        ("check", "--url", "wss://x", "--token-env", "WSDOCTOR_SURELY_UNSET_VAR"),
        ("lab", "sideways"),
    ],
)
def test_bad_input_exits_2_with_one_line(args: tuple[str, ...]) -> None:
    out = _wsdoctor(*args)
    assert out.returncode == 2, out
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("wsdoctor: ")
    assert "Traceback" not in out.stderr


def test_not_an_nginx_config_exits_2(tmp_path: Path) -> None:
    f = tmp_path / "nginx.conf"
    f.write_bytes(b"\x00\x01\x02 this is not { nginx")
    out = _wsdoctor("check", "--nginx-conf", str(f), "--offline")
    assert out.returncode == 2, out
    assert len(out.stderr.strip().splitlines()) == 1
    assert "Traceback" not in out.stderr


def test_json_report_has_every_check(tmp_path: Path) -> None:
    seed = (
        ROOT / "tests" / "nginx" / "fixtures" / "seed-nginx-T.txt"
    )  # the runbook's config, as `nginx -T` printed it
    out = _wsdoctor(
        "check", "--offline", "--nginx-dump", str(seed), "--url", "wss://api.x-or.cloud/dev/aiwm/chat",
        "--transports", "websocket", "--format", "json",
    )  # fmt: skip
    assert out.returncode == 1, out.stderr
    data = json.loads(out.stdout)
    import jsonschema

    from wsdoctor.report import CHECK_IDS

    jsonschema.validate(data, json.loads((ROOT / "docs" / "report.schema.json").read_text()))
    assert data["version"] == 1
    assert [f["id"] for f in data["findings"]] == list(CHECK_IDS)
    by = {f["id"]: f for f in data["findings"]}
    assert by["client"]["status"] == "fail"
    assert by["route"]["status"] == "fail"
    for cid in ("upstream", "auth", "tls"):
        assert by[cid]["status"] == "skip"
    assert sum(data["summary"].values()) == len(CHECK_IDS)


def test_schema_lists_exactly_the_registered_check_ids() -> None:
    """The JSON contract's id enum is the registry's: a check added to report.GROUPS without the schema
    (or the other way round) fails here, not in a user's validator."""
    from wsdoctor.report import CHECK_IDS

    schema = json.loads((ROOT / "docs" / "report.schema.json").read_text())
    enum = schema["properties"]["findings"]["items"]["properties"]["id"]["enum"]
    assert enum == list(CHECK_IDS)
