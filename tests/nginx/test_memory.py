"""A hostile or broken config must not make the parser (or the loader) take memory out of proportion to it.

Each case runs in a child process that traces the memory allocated during the parse (``tracemalloc``'s peak,
the input itself excluded) under an address-space limit, so a regression fails quickly instead of swapping
the machine: a 10 MB line once peaked at 1.4 GB (a comment) and 2.6 GB (an argument).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

SIZE = 10_000_000  # bytes on the long line
BOUND = 4  # memory the parse may take at its peak, in multiples of the input

CHILD = textwrap.dedent(
    """
    import json, resource, sys, time, tracemalloc
    resource.setrlimit(resource.RLIMIT_AS, (1 << 31, 1 << 31))  # 2 GiB: a regression fails, it does not swap
    kind, size, how = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    long = {
        "comment": "# " + "x" * size + "\\n",
        "argument": "server_name " + "a" * size + ";\\n",
        "quoted": 'server_name "' + "a" * size + '";\\n',
        "escapes": "server_name " + "\\\\a" * (size // 2) + ";\\n",
        "quoted-escapes": 'server_name "' + '\\\\"' * (size // 2) + '";\\n',
    }[kind]
    head = "set $a ${b};\\n" if how == "slow" else ""  # "${" takes the character-level lexer
    text = "events {}\\n" + head + "http {\\n server {\\n listen 80;\\n " + long + " }\\n}\\n"
    from wsdoctor.nginx.load import _Loader, DumpSource, load_dump
    dump = "# configuration file /etc/nginx/nginx.conf:\\n" + text + "\\n" if how == "dump" else ""
    from wsdoctor.nginx.parse import parse_directives
    tracemalloc.start()
    t = time.perf_counter()
    if how == "load":
        cfg = _Loader(DumpSource({"/etc/nginx/nginx.conf": text}), "/etc/nginx/nginx.conf", "test").load()
        directives, errors = cfg.root, cfg.errors
    elif how == "dump":
        cfg = load_dump(dump, "dump.txt")
        directives, errors = cfg.root, cfg.errors
    else:
        directives, errors = parse_directives(text, "/x")
    elapsed = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    server = directives[-1].block[0]
    longest = max((max(map(len, d.args), default=0) for d in server.block), default=0)
    print(json.dumps({"peak": peak, "seconds": elapsed, "errors": [str(e) for e in errors],
                      "longest": longest}))
    """
)


@pytest.mark.parametrize("how", ["fast", "slow", "load", "dump"])
@pytest.mark.parametrize("kind", ["comment", "argument", "quoted", "escapes", "quoted-escapes"])
def test_a_10_mb_line_is_parsed_within_a_few_times_its_size(kind: str, how: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, kind, str(SIZE), how], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["errors"] == []
    if kind != "comment":
        assert out["longest"] >= SIZE // 2  # the long argument really was read, as one token
    assert out["peak"] < BOUND * SIZE, f"{kind}/{how}: the parse took {out['peak'] / 1e6:.0f} MB"
    assert out["seconds"] < 20, f"{kind}/{how}: {out['seconds']:.1f} s"
