"""`wsdoctor demo`: bring a lab up and diagnose it, so a newcomer sees a real diagnosis in one command.

The seed lab runs the runbook's nginx config; the demo diagnoses it the way the
runbook's users meet it: with the runbook's client (`io('wss://HOST/dev/aiwm/chat')`,
websocket only), over SSH to the lab's sshd, with the lab's token. Quitting stops the lab.
"""

from __future__ import annotations

import os
import sys

from wsdoctor.app import run_tui
from wsdoctor.diagnose import run_headless
from wsdoctor.lab import Lab
from wsdoctor.report import use_color
from wsdoctor.target import Target


def lab_target(info: dict, *, broken_client: bool = True) -> Target:
    """The Target that diagnoses a lab: over SSH, verified TLS with the lab's CA, the lab's token."""
    url = info.get("client_url") if broken_client and info.get("client_url") else info["url"]
    path = info.get("client_path") if broken_client and info.get("client_url") else info.get("path")
    transports = info.get("client_transports") if broken_client and info.get("client_transports") else None
    ssh = info.get("ssh") or {}
    t = Target(
        url=url,
        path=path,
        transports=tuple(transports or info.get("transports") or ("polling", "websocket")),
        token=info.get("token"),
        ca_file=info.get("ca_file"),
        timeout=5.0,
    )
    if ssh.get("port"):
        t.ssh = f"{ssh.get('user', 'root')}@{ssh.get('host', '127.0.0.1')}:{ssh['port']}"
        t.identity = ssh.get("key")
        t.known_hosts = ssh.get("known_hosts")
    else:
        t.nginx_conf = info.get("nginx_conf")
    return t


def demo(
    scenario: str = "seed", directory: str | None = None, text: bool = False, backends: str = "node"
) -> int:
    kind = "Node socket.io" if backends == "node" else "python-socketio"
    print(
        f"wsdoctor demo: starting the '{scenario}' lab (real nginx, 3 {kind} backends, sshd)…",
        file=sys.stderr,
    )
    lab = Lab.up(scenario, directory, backends=backends)
    try:
        target = lab_target(lab.info())
        if text or not sys.stdout.isatty():
            report = run_headless(target)
            sys.stdout.write(report.to_text(color=use_color(sys.stdout)))
            return report.exit_code()
        os.environ.setdefault("WSDOCTOR_LAB_DIR", str(lab.info()["dir"]))
        return run_tui(target, title_suffix=f" — demo: {scenario} lab")
    finally:
        lab.down()
        print("wsdoctor demo: lab stopped.", file=sys.stderr)
