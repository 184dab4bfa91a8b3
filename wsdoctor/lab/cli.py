"""``wsdoctor lab up|down|status``: the lab's command-line face (argparse lives in wsdoctor/cli.py).

Text for people (the token, the public URL, the ports, the SSH key, the CA file and the exact
``wsdoctor check …`` to run), JSON for scripts: ``up`` and ``status`` print the same facts.
"""

from __future__ import annotations

import json
import shlex
import sys
from typing import Any, TextIO

from wsdoctor.lab.catalog import SCENARIOS
from wsdoctor.lab.lab import TOKEN_ENV, Lab, LabError, default_dir

DEFAULT_SCENARIO = "healthy"


def _text_up(info: dict[str, Any], status: dict[str, Any] | None, out: TextIO, verb: str) -> None:
    q = shlex.quote
    w = out.write
    w(f'wsdoctor lab "{info["scenario"]}" {verb} in {info["dir"]}\n')
    w(f"  broken:   {info['broken']}\n")
    w(f"  symptom:  {info['symptom']}\n\n")
    w(f"  public:   {info['url']}  (Socket.IO path {info['path']})\n")
    w(f"  client:   io('{info['url']}', {{path: '{info['path']}', auth: {{token}}}})\n")
    if info["client_url"] != info["url"]:
        w(
            f"  broken client (what the scenario reproduces): io('{info['client_url']}', "
            f"{{transports: {info['client_transports']}}}) -> requests {info['client_path']}/?EIO=4…\n"
        )
    w(f"  token:    {info['token']}\n")
    if info["token"] != info["valid_token"]:
        w(f"            (this token is refused on purpose; a valid one: {info['valid_token']})\n")
    w(f"  CA file:  {info['ca_file']}   (curl --cacert {q(info['ca_file'])} …)\n")
    w("  backends: ")
    procs = (status or {}).get("processes", {})
    parts = []
    for i, (name, base) in enumerate(info["instances"].items()):
        state = procs.get(name, {}).get("status", "stopped" if i in info["stopped_backends"] else "running")
        parts.append(f"{base} ({name}, {state})")
    w(",\n            ".join(parts) + "\n")
    where = "" if info["server"] in ("ws", "python-websockets") else f" at {info['backend_path']}"
    w(f"            {info['server_description']}{where} (--backends {info['backends_kind']})\n")
    nginx_state = procs.get("nginx", {}).get("status", "running")
    w(f"  nginx:    {nginx_state}, -p {info['nginx_prefix']} -c {info['nginx_conf']}\n")
    w(f"  logs:     {info['access_log']}, {info['error_log']}, backends: {info['backend_log']}\n")
    ssh = info.get("ssh")
    if ssh:
        ssh_state = procs.get("sshd", {}).get("status", "running")
        w(
            f"  ssh:      {ssh_state}, ssh -i {q(ssh['key'])} -o UserKnownHostsFile={q(ssh['known_hosts'])} "
            f"-p {ssh['port']} {ssh['user']}@{ssh['host']}\n"
        )
    if status and status.get("crashed"):
        w(
            f"  CRASHED:  {', '.join(status['crashed'])} (see their logs); `wsdoctor lab up` restarts the lab\n"
        )
    w("\nDiagnose it:\n")
    w(f"  export {TOKEN_ENV}={q(info['token'])}\n")
    w(f"  {info['check_command']}\n")
    if info.get("ssh_check_command"):
        w(f"  over SSH, as on a real proxy host:\n  {info['ssh_check_command']}\n")
    w(
        "Stop it: wsdoctor lab down"
        + (f" --dir {q(info['dir'])}" if info["dir"] != str(default_dir()) else "")
    )
    w("\n")


def _error(message: str) -> int:
    print(f"wsdoctor lab: {message}", file=sys.stderr)
    return 2


def lab_command(
    action: str, scenario: str | None, fmt: str, directory: str | None, backends: str | None = None
) -> int:
    """Run ``wsdoctor lab ACTION``; exit 0 on success, 1 when ``status`` finds a crashed process, 2 on error.

    BACKENDS (``up`` only): ``"node"`` or ``"python"``; None is ``Lab.up``'s default.
    """
    out = sys.stdout
    try:
        if action == "up":
            name = scenario or DEFAULT_SCENARIO
            if name not in SCENARIOS:
                return _error(f"unknown scenario {name!r}; choose one of: {', '.join(SCENARIOS)}")
            lab = Lab.up(name, directory, backends=backends)
            info = lab.info()
            status = lab.status()
            if fmt == "json":
                out.write(json.dumps({**info, "status": status}, indent=2) + "\n")
            else:
                _text_up(info, status, out, "is up")
            return 0
        if action == "status":
            lab = Lab.load(directory)
            status = lab.status()
            if fmt == "json":
                out.write(json.dumps({**lab.info(), "status": status}, indent=2) + "\n")
            elif status["state"] == "down":
                out.write(f'wsdoctor lab "{status["scenario"]}" in {status["dir"]} is down.\n')
            else:
                _text_up(lab.info(), status, out, f"is {status['state']}")
            return 1 if status["crashed"] else 0
        if action == "down":
            try:
                lab = Lab.load(directory)
            except LabError as e:
                if fmt == "json":
                    out.write(json.dumps({"dir": str(directory or default_dir()), "stopped": {}}) + "\n")
                else:
                    out.write(f"{e}; nothing to stop.\n")
                return 0
            stopped = lab.down()
            if fmt == "json":
                out.write(json.dumps({"dir": str(lab.directory), "stopped": stopped}, indent=2) + "\n")
            elif stopped:
                listing = ", ".join(f"{name} ({pid})" for name, pid in stopped.items())
                out.write(f"stopped {listing}; files kept in {lab.directory}\n")
            else:
                out.write(f"nothing was running in {lab.directory}; files kept.\n")
            return 0
        return _error(f"unknown action {action!r}; use up, down or status")
    except LabError as e:
        return _error(str(e))
    except BrokenPipeError:
        raise  # the reader went away (`| head`): wsdoctor's main exits quietly
    except OSError as e:
        return _error(
            f"{e.strerror or e}{': ' + str(e.filename) if e.filename else ''}; check the lab directory"
        )
