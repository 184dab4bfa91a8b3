"""`wsdoctor check --offline` against crossplane alone (the offline performance bars of the README).

1. A generated config of 500 servers / 11,000 locations / ~13,000 lines: whole-process
   `wsdoctor check --offline` ≤ 1.25× a whole-process `crossplane.parse` of the same file,
   peak memory ≤ 1.5× crossplane's.
2. The runbook's config: whole-process `wsdoctor check --offline` ≤ 4× `python -c "import crossplane"`.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PY, ROOT, measure, row  # noqa: E402


def big_config(directory: Path, servers: int = 500, locations: int = 11_000) -> Path:
    per = locations // servers
    extra = locations - per * servers
    lines = [
        "worker_processes 1;",
        "events { worker_connections 1024; }",
        "http {",
        "    map $http_upgrade $connection_upgrade { default upgrade; '' close; }",
    ]
    for u in range(20):
        lines += [
            f"    upstream pool{u} {{",
            f"        server 10.0.{u}.1:3350;",
            f"        server 10.0.{u}.2:3350;",
            "    }",
        ]
    n = 0
    for s in range(servers):
        lines += ["    server {", "        listen 443 ssl;", f"        server_name s{s}.example.com;"]
        count = per + (1 if s < extra else 0)
        for i in range(count):
            n += 1
            lines.append(f"        location /app{i}/v{n}/ {{ proxy_pass http://pool{n % 20}/; }}")
        lines.append("    }")
    lines += [
        "    server {",
        "        listen 443 ssl default_server;",
        "        server_name api.example.com;",
        "        location /chat/ {",
        "            proxy_pass http://pool1/;",
        "            proxy_http_version 1.1;",
        "            proxy_set_header Upgrade $http_upgrade;",
        "            proxy_set_header Connection $connection_upgrade;",
        "        }",
        "    }",
        "}",
    ]
    path = directory / "nginx.conf"
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> None:
    repeat = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    print("== offline check ==")
    with tempfile.TemporaryDirectory() as d:
        conf = big_config(Path(d))
        nlines = len(conf.read_text().splitlines())
        print(f"generated {conf.name}: {nlines} lines, 500 servers, 11,000 locations")
        cp = [
            PY,
            "-c",
            f"import crossplane; crossplane.parse({str(conf)!r}, check_ctx=False, check_args=False, comments=True)",
        ]
        ws = [PY, "-m", "wsdoctor", "check", "--offline", "--nginx-conf", str(conf), "--nginx-version", "1.22.1",
              "--url", "wss://api.example.com", "--path", "/chat/socket.io", "--format", "json"]  # fmt: skip
        cp_t, cp_m = measure(cp, repeat)
        # The bar is wsdoctor's own analysis; this machine's `nginx -t` on a copy (run by default with
        # --nginx-conf) is another program's work, measured on its own row with no bar.
        ws_t, ws_m = measure([*ws, "--no-nginx-test"], repeat)
        nt_t, nt_m = measure(ws, repeat)
        print(row("wsdoctor check --offline (big) vs crossplane.parse", ws_t, cp_t, 1.25))
        print(row("  peak RSS", ws_m / 1024, cp_m / 1024, 1.5, unit="MiB"))
        print(row("  the same with this machine's nginx -t on a copy", nt_t, cp_t, None))
        print(row("  peak RSS (nginx -t's own process included)", nt_m / 1024, cp_m / 1024, None, unit="MiB"))
    seed = ROOT / "tests" / "nginx" / "fixtures" / "seed-nginx-T.txt"
    imp_t, _ = measure([PY, "-c", "import crossplane"], repeat)
    seed_t, _ = measure(
        [
            PY,
            "-m",
            "wsdoctor",
            "check",
            "--offline",
            "--nginx-dump",
            str(seed),
            "--url",
            "wss://api.x-or.cloud/dev/aiwm/chat",
            "--transports",
            "websocket",
        ],
        repeat,  # fmt: skip
    )
    print(row("wsdoctor check --offline (seed) vs import crossplane", seed_t, imp_t, 4.0))


if __name__ == "__main__":
    main()
