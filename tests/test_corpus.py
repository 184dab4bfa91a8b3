"""The real-world corpus: configs written after public deployments, judged by real nginx and by hand.

tests/corpus/NN-name/etc/nginx/nginx.conf (plus its includes under the same root) is one deployment pattern;
tests/corpus/expected.json holds, per config, the client target its author would intend, what real ``nginx -t``
says about it, and the status each check should give offline. Each (config, check) pair is one test. A pair
whose ``right`` flag is false is today's known defect: it is a strict xfail (the reason names the defect), so it
fails as soon as wsdoctor gives the expected status (update the flag) and fails outright if the output drifts to
a third status. Fix diffs are applied with ``patch -p1`` to a copy: a config real nginx accepted must stay
accepted, and a fix that names its location ("In location X: …") must change statements inside X only.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import crossplane
import pytest

from wsdoctor.cli import main as wsdoctor_main

CORPUS = Path(__file__).resolve().parent / "corpus"
EXPECTED = json.loads((CORPUS / "expected.json").read_text())
CHECKS = EXPECTED["checks"]
CONFIGS: dict[str, dict] = EXPECTED["configs"]
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

# Absolute paths a config may name (includes, certificates, logs, pid, cache); rewritten into the copy.
_ABS = re.compile(r"(?<![\w$/:.\-])/(?=(?:etc|var|run|srv|opt|home|certs?|cert|data|tmp)/)")
_USER = re.compile(r"^(\s*)user\s+[^;]*;", re.M)
_SSL_FILES = ("ssl_certificate", "ssl_certificate_key", "ssl_trusted_certificate", "ssl_dhparam")
_MADE_PATHS = ("access_log", "error_log", "pid", "proxy_cache_path", "proxy_temp_path")


def wsdoctor_offline(name: str) -> tuple[int, dict | None, str]:
    """`wsdoctor check --offline --format json` on corpus config NAME, in-process: (exit, report, stderr)."""
    t = CONFIGS[name]["target"]
    root = CORPUS / name
    argv = ["check", "--offline", "--format", "json", "--nginx-conf", str(root / "etc/nginx/nginx.conf")]
    argv += ["--root", str(root), "--url", t["url"], "--nginx-version", t["nginx_version"]]
    if t.get("path"):
        argv += ["--path", t["path"]]
    if t.get("transports"):
        argv += ["--transports", t["transports"]]
    if t.get("server_name"):
        argv += ["--server-name", t["server_name"]]
    if t.get("raw"):
        argv.append("--raw")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = wsdoctor_main(argv)
    report = json.loads(out.getvalue()) if code in (0, 1) and out.getvalue().strip() else None
    return code, report, err.getvalue()


_REPORTS: dict[str, tuple[int, dict | None, str]] = {}


def report_of(name: str) -> tuple[int, dict | None, str]:
    if name not in _REPORTS:
        _REPORTS[name] = wsdoctor_offline(name)
    return _REPORTS[name]


def statuses(report: dict | None) -> dict[str, str]:
    if report is None:
        return {}
    return {f["id"]: f["status"] for f in report["findings"]}


# -- real nginx -t on a copy --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tls_material(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """A throwaway self-signed certificate, its key and DH parameters, made for this run."""
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem"), "-days", "2", "-subj", "/CN=corpus.test"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    subprocess.run(
        ["openssl", "dhparam", "-dsaparam", "-out", str(d / "dh.pem"), "2048"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return {
        "cert": (d / "cert.pem").read_bytes(),
        "key": (d / "key.pem").read_bytes(),
        "dh": (d / "dh.pem").read_bytes(),
    }


def prepare_for_nginx(tree: Path, dest: Path, hosts: list[str], tls: dict[str, bytes]) -> Path:
    """Copy TREE to DEST with every absolute path pointing into DEST, container host names mapped to
    127.0.0.1, `user` dropped, and the certificates, keys and directories the config names created.
    Returns the main config of the copy."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(tree, dest)
    prefix = str(dest) + "/"
    host_re = None
    if hosts:
        names = "|".join(re.escape(h) for h in hosts)
        host_re = re.compile(
            rf"((?:proxy_pass\s+|\bserver\s+|set\s+\$\w+\s+\"?)(?:https?://)?)({names})(?=[:/;\"\s])"
        )
    for f in dest.rglob("*"):
        if not f.is_file():
            continue
        text = f.read_text()
        new = _ABS.sub(prefix, text)
        new = _USER.sub(r"\1# user dropped for the test;", new)
        if host_re is not None:
            new = host_re.sub(r"\g<1>127.0.0.1", new)
        if new != text:
            f.write_text(new)
    main = dest / "etc/nginx/nginx.conf"
    parsed = crossplane.parse(str(main), catch_errors=True, check_ctx=False, check_args=False)
    for cfg in parsed["config"]:
        for d in _walk(cfg.get("parsed", [])):
            if not d["args"]:
                continue
            arg = d["args"][0]
            if d["directive"] in _SSL_FILES and "$" not in arg:
                p = Path(arg) if arg.startswith("/") else main.parent / arg
                if not p.exists():
                    p.parent.mkdir(parents=True, exist_ok=True)
                    kind = {"ssl_certificate_key": "key", "ssl_dhparam": "dh"}.get(d["directive"], "cert")
                    p.write_bytes(tls[kind])
            elif d["directive"] in _MADE_PATHS and arg.startswith(prefix):
                p = Path(arg)
                (p if d["directive"] in ("proxy_cache_path", "proxy_temp_path") else p.parent).mkdir(
                    parents=True, exist_ok=True
                )
    return main


def _walk(stmts: list[dict]):
    for s in stmts:
        yield s
        yield from _walk(s.get("block") or [])


def nginx_test(main: Path) -> tuple[str, str]:
    """Real `nginx -t` on a prepared copy: ("ok" | "warn" | "emerg", nginx's first [emerg]/[warn] line)."""
    root = main.parents[2]
    proc = subprocess.run(
        [NGINX, "-t", "-p", str(root), "-c", str(main), "-e", str(root / "nginx-startup.log")],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    lines = [ln.replace(str(root), "") for ln in proc.stderr.splitlines()]
    emerg = [ln for ln in lines if "[emerg]" in ln]
    warn = [ln for ln in lines if "[warn]" in ln]
    if proc.returncode != 0:
        return "emerg", (emerg or lines or ["(no message)"])[0]
    if warn:
        return "warn", warn[0]
    return "ok", ""


def _verdict(name: str) -> str:
    return CONFIGS[name]["nginx_t"]["verdict"]


# -- tests --------------------------------------------------------------------------------------------------


def test_expected_covers_the_corpus() -> None:
    dirs = sorted(p.name for p in CORPUS.iterdir() if (p / "etc/nginx/nginx.conf").is_file())
    assert dirs == sorted(CONFIGS), "every corpus directory needs an entry in expected.json and vice versa"
    assert len(dirs) >= 40
    sources = (CORPUS / "SOURCES.md").read_text()
    assert all(f"`{name}`" in sources for name in dirs), "every config needs its row in SOURCES.md"
    for name, c in CONFIGS.items():
        assert set(c["checks"]) == set(CHECKS), name
        for cid, e in c["checks"].items():
            assert e["expect"] in ("pass", "warn", "fail", "skip"), (name, cid)
            assert e["right"] or e.get("defect"), f"{name}/{cid}: a wrong verdict needs its defect named"


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_nginx_t_verdict_recorded(name: str, tmp_path: Path, tls_material: dict[str, bytes]) -> None:
    """What SOURCES.md and expected.json say real nginx does is what real nginx does."""
    c = CONFIGS[name]
    main = prepare_for_nginx(CORPUS / name, tmp_path / name, c["nginx_t"].get("hosts", []), tls_material)
    verdict, line = nginx_test(main)
    assert verdict == c["nginx_t"]["verdict"], f"{name}: nginx -t {verdict}: {line}"
    if verdict != "ok":
        assert c["nginx_t"]["message"] in line, f"{name}: {line}"


def _pairs() -> list:
    out = []
    for name in sorted(CONFIGS):
        for cid in CHECKS:
            e = CONFIGS[name]["checks"][cid]
            marks = []
            if not e["right"]:
                marks.append(pytest.mark.xfail(strict=True, raises=AssertionError, reason=e["defect"]))
            out.append(pytest.param(name, cid, id=f"{name}/{cid}", marks=marks))
    return out


@pytest.mark.parametrize(("name", "cid"), _pairs())
def test_offline_verdict(name: str, cid: str) -> None:
    e = CONFIGS[name]["checks"][cid]
    code, report, err = report_of(name)
    got = "no report" if report is None else statuses(report).get(cid, "absent")
    said = f" (exit {code}: {err.strip()})" if report is None else ""
    if not e["right"] and got not in (e["today"], e["expect"]):
        pytest.fail(f"{name}/{cid}: {got}{said}, neither the known defect ({e['today']}) nor the expectation "
                    f"({e['expect']}): update expected.json")  # fmt: skip
    assert got == e["expect"], f"{name}/{cid}: {got}{said}, expected {e['expect']}"


def _fix_cases() -> list:
    out = []
    for name in sorted(CONFIGS):
        for cid, fx in sorted(CONFIGS[name].get("fix_diffs", {}).items()):
            marks = []
            if not fx["right"]:
                marks.append(pytest.mark.xfail(strict=True, raises=AssertionError, reason=fx["defect"]))
            out.append(pytest.param(name, cid, id=f"{name}/{cid}", marks=marks))
    return out


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_fix_diffs_recorded(name: str) -> None:
    """The checks that propose a config diff today are the ones expected.json lists (a new diff gets a case)."""
    _code, report, _err = report_of(name)
    have = sorted(
        f["id"]
        for f in (report or {}).get("findings", [])
        if f["status"] in ("fail", "warn") and (f.get("fix") or {}).get("diff")
    )
    assert have == sorted(CONFIGS[name].get("fix_diffs", {})), name


_NAMED_LOCATION = re.compile(r"\b[Ii]n (location .+?) \((/etc/[^)]+):\d+\)")
# A fix may also say it adds something at http level ("At http level (/etc/nginx/nginx.conf:3): add `map …`").
_NAMED_HTTP = re.compile(r"\b[Aa]t http level \((/etc/[^)]+):\d+\)")


def _statements(main: Path) -> Counter:
    """Every statement of the config with the blocks that enclose it: (enclosing blocks, directive, args)."""
    parsed = crossplane.parse(str(main), catch_errors=True, check_ctx=False, check_args=False, comments=False)
    root = str(main.parents[2])
    out: Counter = Counter()

    def walk(stmts: list[dict], path: tuple) -> None:
        for s in stmts:
            out[(path, s["directive"], tuple(a.replace(root, "") for a in s["args"]))] += 1
            if s.get("block") is not None:
                walk(s["block"], (*path, (s["directive"], " ".join(s["args"]))))

    for cfg in parsed["config"]:
        walk(cfg.get("parsed", []), ())
    return out


@pytest.mark.parametrize(("name", "cid"), _fix_cases())
def test_fix_diff_applies_keeps_nginx_accepting_and_lands_in_place(
    name: str, cid: str, tmp_path: Path, tls_material: dict
) -> None:
    """The diff applies with `patch -p1`; nginx still accepts the result when it accepted the original; and when
    the fix names a location ("In location X: …", "… in location X"), every statement it adds or removes sits in X
    (or, when the fix also names the http level, is a statement of the http block itself or of a map there)."""
    c = CONFIGS[name]
    hosts = c["nginx_t"].get("hosts", [])
    _code, report, _err = report_of(name)
    finding = next((f for f in (report or {}).get("findings", []) if f["id"] == cid), None)
    diff = ((finding or {}).get("fix") or {}).get("diff")
    if not diff:
        pytest.fail(f"{name}: {cid} proposes no fix diff any more: update fix_diffs in expected.json")
    assert diff.startswith("--- a/etc/"), diff
    patched = tmp_path / "patched"
    shutil.copytree(CORPUS / name, patched)
    proc = subprocess.run(
        ["patch", "-p1", "--batch", "--forward", "-d", str(patched)],
        input=diff, text=True, capture_output=True, timeout=20,
    )  # fmt: skip
    assert proc.returncode == 0, f"patch failed:\n{proc.stdout}{proc.stderr}\n{diff}"
    before = prepare_for_nginx(CORPUS / name, tmp_path / "before", hosts, tls_material)
    after = prepare_for_nginx(patched, tmp_path / "after", hosts, tls_material)
    if _verdict(name) != "emerg":
        verdict, line = nginx_test(after)
        assert verdict != "emerg", f"{name}: after the {cid} fix nginx -t refuses: {line}\n{diff}"
    m = _NAMED_LOCATION.search(finding["fix"]["summary"])
    if m:
        old, new = _statements(before), _statements(after)
        changed = (new - old) + (old - new)
        assert changed, f"{name}: the {cid} fix changes no statement"
        place = ("location", m.group(1)[len("location ") :])
        http_named = _NAMED_HTTP.search(finding["fix"]["summary"]) is not None
        misplaced = [
            (d, a)
            for (path, d, a) in changed
            if place not in path and not (http_named and _at_http_level(path))
        ]
        assert not misplaced, (
            f"{name}: the {cid} fix says {m.group(1)!r} but changes {misplaced} outside it:\n{diff}"
        )


def _at_http_level(path: tuple) -> bool:
    """A statement directly in the http block, or inside a map block there."""
    if path and path[-1] == ("http", ""):
        return True
    return len(path) >= 2 and path[-2] == ("http", "") and path[-1][0] == "map"
