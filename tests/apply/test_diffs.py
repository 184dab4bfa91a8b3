"""Our own patch applier: every fix diff a check proposes applies to the files nginx reads (a copied tree, an
``nginx -T`` dump), gives exactly what ``patch -p1`` gives, and the check then passes; a file that changed since
the diagnosis is refused in one sentence."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.checks.helpers import FIXTURES, SEED_DUMP, case_data, case_dirs, case_facts, make_facts, run
from wsdoctor.apply.diffs import DiffError, apply_diff, apply_diffs, parse, unified
from wsdoctor.nginx.load import split_dump
from wsdoctor.nginx.patch import Patch
from wsdoctor.report import Fix, Status

CASES = case_dirs()
FIXABLE = [
    (c, k)
    for c, k in CASES
    if (case_data(c, k).get("expect") or k.split("_", 1)[0]) in ("fail", "warn")
    and case_data(c, k).get("after_fix", "pass") is not None
]
# The fixes that are config diffs (a client fix is code, checked by tests/checks/test_fixtures.py).
DIFFS = [(c, k) for c, k in FIXABLE if (run(case_facts(c, k))[c].fix or Fix("")).diff]


def _tree_texts(tree: Path) -> dict[str, str]:
    """Every file of a copied tree by its real path (the tree's root stands for /)."""
    return {
        "/" + str(p.relative_to(tree)): p.read_text()
        for p in tree.rglob("*")
        if p.is_file() and p.name != "case.json"
    }


def _patch_p1(tree: Path, diff: str, dest: Path) -> dict[str, str]:
    subprocess.run(["cp", "-a", f"{tree}/.", str(dest)], check=True, timeout=20)
    proc = subprocess.run(
        ["patch", "-p1", "--batch", "--forward", "-d", str(dest)],
        input=diff,
        text=True,
        capture_output=True,
        timeout=20,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return _tree_texts(dest)


@pytest.mark.parametrize(("check", "case"), DIFFS, ids=[f"{c}/{k}" for c, k in DIFFS])
def test_every_fixture_fix_applies_like_patch_and_the_check_passes(
    check: str, case: str, tmp_path: Path
) -> None:
    tree = FIXTURES / check / case
    f = run(case_facts(check, case))[check]
    assert f.fix is not None
    texts = _tree_texts(tree)
    ours = apply_diff(texts, f.fix.diff)
    theirs = _patch_p1(tree, f.fix.diff, tmp_path)
    for path, text in ours.items():
        assert text == theirs[path], path
    patched = tmp_path / "ours"
    for path, text in {**texts, **ours}.items():
        target = patched / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    again = run(case_facts(check, case, root=patched))
    want = case_data(check, case).get("after_fix", "pass")
    assert again[check].status.value == want, again[check].summary


def test_the_seed_dump_fixes_apply_to_the_dump_files() -> None:
    """From an ``nginx -T`` dump: the diff names the real files, and applies to their text in the dump."""
    facts = make_facts(url="wss://api.x-or.cloud", path="/dev/aiwm/chat/socket.io", dump=SEED_DUMP)
    files, _ = split_dump(SEED_DUMP.read_text())
    fixed = 0
    for finding in run(facts).values():
        if finding.fix is None or not finding.fix.diff or finding.status not in (Status.FAIL, Status.WARN):
            continue
        out = apply_diff(files, finding.fix.diff)
        assert set(out) <= set(files)
        fixed += 1
    assert fixed >= 1


def test_hunks_move_with_earlier_edits_and_keep_line_endings() -> None:
    texts = {
        "/etc/nginx/a.conf": "http {\n    server {\n        listen 80;\n    }\n}",
        "/etc/nginx/b.conf": "x;\r\ny;\r\nz;\r\n",
    }
    p = Patch(texts)
    p.insert_after("/etc/nginx/a.conf", 3, ["        server_name x;"])
    p.replace_line("/etc/nginx/b.conf", 2, ["yy;"])
    diff = p.diff()
    out = apply_diff(texts, diff)
    assert out == {f: p.new_text(f) for f in texts}
    assert out["/etc/nginx/b.conf"] == "x;\r\nyy;\r\nz;\r\n"  # CRLF kept, the diff's text matched without it
    moved = {**texts, "/etc/nginx/a.conf": "# added above\n# and again\n" + texts["/etc/nginx/a.conf"]}
    assert apply_diff(moved, diff)["/etc/nginx/a.conf"].startswith("# added above\n# and again\nhttp {")


def test_a_file_changed_since_the_diagnosis_is_refused_in_one_sentence() -> None:
    texts = {"/etc/nginx/a.conf": "server {\n    listen 80;\n    proxy_pass http://up;\n}\n"}
    diff = unified(
        "/etc/nginx/a.conf", texts["/etc/nginx/a.conf"], texts["/etc/nginx/a.conf"].replace("up;", "up/x/;")
    )
    edited = {"/etc/nginx/a.conf": texts["/etc/nginx/a.conf"].replace("listen 80", "listen 81")}
    with pytest.raises(DiffError) as e:
        apply_diff(edited, diff)
    assert str(e.value).count("\n") == 0 and "changed since the diagnosis" in str(e.value)
    with pytest.raises(DiffError, match="does not read"):
        apply_diff({}, diff)


def test_unified_round_trips_new_and_removed_files() -> None:
    new = unified("/etc/nginx/conf.d/ws.conf", None, "map $a $b {\n}\n")
    assert new.startswith("--- /dev/null\n+++ b/etc/nginx/conf.d/ws.conf\n")
    (fp,) = parse(new)
    assert fp.path == "/etc/nginx/conf.d/ws.conf"
    no_eol = unified("/x", "a\nb", "a\nc")
    assert apply_diff({"/x": "a\nb"}, no_eol) == {"/x": "a\nc"}


def test_several_fixes_of_one_location_merge_and_every_check_then_passes(tmp_path: Path) -> None:
    """`apply --fix timeout,sticky,upgrade,buffering`: four diffs made against the same text, each with context
    lines another one changes, merge because the lines they change differ."""
    conf = tmp_path / "etc/nginx/nginx.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text(
        "events {}\nhttp {\n    upstream up {\n        server 10.0.0.1:3000;\n        server 10.0.0.2:3000;\n    }\n"
        "    server {\n        listen 443 ssl;\n        server_name ws.example.com;\n"
        "        ssl_certificate /etc/ssl/a.pem;\n        ssl_certificate_key /etc/ssl/a.key;\n"
        "        location /socket.io/ {\n            proxy_pass http://up;\n            proxy_read_timeout 10s;\n"
        "        }\n    }\n}\n"
    )
    before = run(make_facts(url="wss://ws.example.com", root=tmp_path))
    diffs = [
        (f.id, f.fix.diff) for f in before.values() if f.fix and f.fix.diff and f.status is not Status.PASS
    ]
    assert {cid for cid, _ in diffs} >= {"timeout", "sticky", "upgrade"}
    texts = {"/etc/nginx/nginx.conf": conf.read_text()}
    conf.write_text(apply_diffs(texts, diffs)["/etc/nginx/nginx.conf"])
    after = run(make_facts(url="wss://ws.example.com", root=tmp_path))
    assert all(after[cid].status is Status.PASS for cid, _ in diffs), {c: after[c].summary for c, _ in diffs}


def test_two_fixes_of_the_same_line_are_refused_in_one_sentence() -> None:
    texts = {"/etc/nginx/a.conf": "a;\nb;\nc;\n"}
    one, two = Patch(texts), Patch(texts)
    one.replace_line("/etc/nginx/a.conf", 2, ["b1;"])
    two.replace_line("/etc/nginx/a.conf", 2, ["b2;"])
    with pytest.raises(DiffError) as e:
        apply_diffs(texts, [("route", one.diff()), ("timeout", two.diff())])
    assert str(e.value) == (
        "the fixes of route and timeout change the same lines of /etc/nginx/a.conf (line 2); apply them one at a time"
    )
